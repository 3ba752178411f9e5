/**
 * Builds the `vmmr` binary for tests that spawn it: only the CLI's import graph, emitted
 * without type checking (npm run typecheck covers that), under node_modules/.cache so that
 * packages resolve and `npm run build`'s dist/ is untouched.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface BuiltCli {
  /** Path of the built dist/src/cli.js equivalent. */
  cli: string;
  remove(): void;
}

export function buildCli(name: string): BuiltCli {
  const build = join(ROOT, 'node_modules', '.cache', `vmmr-${name}-${process.pid}`);
  const cli = join(build, 'out', 'src', 'cli.js');
  mkdirSync(build, { recursive: true });
  writeFileSync(
    join(build, 'tsconfig.json'),
    JSON.stringify({
      extends: join(ROOT, 'tsconfig.build.json'),
      compilerOptions: {
        outDir: join(build, 'out'),
        noCheck: true,
        declaration: false,
        sourceMap: false,
        incremental: false,
      },
      files: [join(ROOT, 'src', 'cli.ts')],
      include: [],
    }),
  );
  const tsc = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(build, 'tsconfig.json')],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (!existsSync(cli)) throw new Error(`build failed:\n${tsc.stdout}${tsc.stderr}`);
  return { cli, remove: () => rmSync(build, { recursive: true, force: true }) };
}
