/**
 * VMMR_TOKEN: no /api route answers without the token. Every route of the OpenAPI document (and
 * every registered /api route, hidden or not) is called with its path parameters filled with valid
 * values: without a token and with wrong ones it is 401 problem+json; with the right one it is not
 * 401. The token never appears in a log line (pino captured at trace level) nor in an answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'undici';
import { call, expectProblem, pool, start, type Started } from '../support/robustness/server.js';

const TOKEN = 'vmmr-test-Token_0123456789.abc~XYZ';
const WRONG = [
  undefined,
  'Bearer',
  'Bearer ',
  `Bearer ${TOKEN}x`,
  `Bearer ${TOKEN.slice(0, -1)}`,
  `Bearer ${TOKEN.toLowerCase()}`,
  `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`,
  TOKEN,
  `Bearer ${TOKEN} ${TOKEN}`,
  `Bearer\t${'A'.repeat(4096)}`,
];

let srv: Started;
let http: Pool;
const tally = { routes: 0, refused: 0, allowed: 0 };

beforeAll(async () => {
  srv = await start({ VMMR_TOKEN: TOKEN }, undefined, 'trace');
  http = pool(srv.url, 8);
});

afterAll(async () => {
  await http?.close();
  await srv?.close();
  console.log(
    `auth: ${tally.routes} routes × ${WRONG.length} missing/wrong tokens = ${tally.refused} refusals (401), ${tally.allowed} accepted with the token`,
  );
});

const VALUES: Record<string, string> = { bdf: '0000:01:00.1', offset: '0', n: '2', port: '0' };

function fill(template: string): string {
  return template.replace(
    /\{(\w+)\}|:(\w+)/g,
    (_m, a: string | undefined, b: string | undefined) => VALUES[a ?? b!] ?? '0',
  );
}

/** A GET of one register needs ?width=. */
function pathOf(r: { method: string; template: string }): string {
  return fill(r.template) + (r.method === 'GET' && /\{(offset|port)\}/.test(r.template) ? '?width=1' : '');
}

const BODIES: Record<string, unknown> = {
  'PUT /api/v1/pfs/{bdf}/sriov': { numVfs: 2 },
  'POST /api/v1/access': { ops: [] },
  'PUT /api/v1/functions/{bdf}/trace': { enabled: false },
  'POST /api/v1/functions/{bdf}/interrupt': { config: true },
};

describe('bearer token', () => {
  it('every /api route of the OpenAPI document (and every registered one) refuses missing or wrong tokens', async () => {
    const doc = await call(srv.url, 'GET', '/openapi.json');
    expect(doc.status).toBe(200);
    const paths = (doc.json as { paths: Record<string, Record<string, unknown>> }).paths;
    const routes: Array<{ method: string; template: string }> = [];
    for (const [template, methods] of Object.entries(paths)) {
      for (const method of Object.keys(methods)) {
        if (['get', 'put', 'post', 'delete', 'patch'].includes(method))
          routes.push({ method: method.toUpperCase(), template });
      }
    }
    // Routes hidden from the document are protected too.
    for (const r of srv.server.app.vmmr.routes) {
      const template = r.url.replace(/:(\w+)/g, '{$1}');
      if (r.method !== 'HEAD' && !routes.some((x) => x.method === r.method && x.template === template))
        routes.push({ method: r.method, template });
    }
    const api = routes.filter((r) => r.template.startsWith('/api/'));
    expect(api.length).toBeGreaterThan(15);
    for (const r of api) {
      tally.routes++;
      const path = pathOf(r);
      const body =
        BODIES[`${r.method} ${r.template}`] ?? (['PUT', 'POST'].includes(r.method) ? {} : undefined);
      for (const auth of WRONG) {
        const headers: Record<string, string> = auth === undefined ? {} : { authorization: auth };
        const a = await call(http, r.method as 'GET', path, body, headers);
        const what = `${r.method} ${path} with ${auth === undefined ? 'no token' : JSON.stringify(auth.slice(0, 40))}`;
        expect(expectProblem(a, what, [401]).code).toBe('VMMR_ERR_UNAUTHORIZED');
        expect(a.text).not.toContain(TOKEN);
        tally.refused++;
      }
    }
    // The right token: not 401 (whatever the route then decides). Events: just the headers.
    for (const r of api) {
      const path = pathOf(r);
      const body =
        BODIES[`${r.method} ${r.template}`] ?? (['PUT', 'POST'].includes(r.method) ? {} : undefined);
      if (r.template === '/api/v1/events') {
        const res = await http.request({
          method: 'GET',
          path,
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        expect(res.statusCode).toBe(200);
        res.body.destroy();
        tally.allowed++;
        continue;
      }
      const a = await call(http, r.method as 'GET', path, body, { authorization: `Bearer ${TOKEN}` });
      expect(a.status, `${r.method} ${path}: ${a.text.slice(0, 200)}`).not.toBe(401);
      expect(a.status, `${r.method} ${path}: ${a.text.slice(0, 200)}`).toBeLessThan(500);
      tally.allowed++;
    }
    // Outside /api: health and the document stay open.
    expect((await call(http, 'GET', '/healthz')).status).toBe(200);
  }, 60_000);

  it('the token never reaches a log line', async () => {
    // Requests that carry it, right and wrong, in every place a client might put it.
    await call(http, 'GET', '/api/v1/functions', undefined, { authorization: `Bearer ${TOKEN}` });
    await call(http, 'GET', '/api/v1/nope', undefined, { authorization: `Bearer ${TOKEN}` });
    await call(http, 'GET', '/api/v1/functions', undefined, { authorization: `Bearer ${TOKEN}x` });
    await call(http, 'PUT', `/api/v1/pfs/zz/sriov`, { numVfs: TOKEN }, { authorization: `Bearer ${TOKEN}` });
    await call(http, 'GET', '/api/v1/functions', undefined, {
      authorization: `Basic ${TOKEN}`,
      'x-token': TOKEN,
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(srv.logs.length, 'the log was captured at trace level').toBeGreaterThan(5);
    const leaks = srv.logs.filter((l) => l.includes(TOKEN) || l.includes(TOKEN.slice(0, -1)));
    expect(leaks).toEqual([]);
  });
});
