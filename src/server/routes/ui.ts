/**
 * The dashboard at /ui/: the static assets that `npm ci` / `npm run build` build from ui/ into
 * dist/ui/ (vite), served by @fastify/static. They are public like /docs: the page asks for the
 * token and sends it on its /api requests (docs/dashboard.md).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { VmmrError } from '../../base/errors.js';
import type { RouteModule } from '../app.js';

/** dist/ui of the package this module belongs to (run from src/ by the tests, from dist/src/ when built). */
export function uiAssetsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return join(dir, 'dist', 'ui');
}

export const uiRoutes: RouteModule = async (app) => {
  const root = uiAssetsDir();
  app.get('/ui', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui/', 301));
  if (!existsSync(join(root, 'index.html'))) {
    app.get('/ui/*', { schema: { hide: true } }, async () => {
      throw new VmmrError(
        'VMMR_ERR_NOT_FOUND',
        `the dashboard is not built: ${root}/index.html is missing (npm run build:ui builds it)`,
      );
    });
    return;
  }
  await app.register(fastifyStatic, { root, prefix: '/ui/', index: 'index.html', wildcard: true });
};
