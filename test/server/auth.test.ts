/** VMMR_TOKEN: bearer authentication of /api routes, never logged. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { call, ok, problem, testApp } from '../support/server.js';

const TOKEN = 'vmmr-test-token_1.2~3+4/5=';

describe('bearer token', () => {
  it('lets every route through when VMMR_TOKEN is unset', async () => {
    const app = await testApp();
    expect((await call(app, 'GET', '/api/v1/pfs')).statusCode).toBe(200);
  });

  it('requires Authorization: Bearer <token> on /api routes', async () => {
    const app = await testApp({ env: { VMMR_TOKEN: TOKEN } });
    const none = await call(app, 'GET', '/api/v1/pfs');
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="vmmr"');
    expect(problem(none)).toMatchObject({ code: 'VMMR_ERR_UNAUTHORIZED', status: 401 });

    const wrong = await call(app, 'GET', '/api/v1/pfs', undefined, { authorization: `Bearer ${TOKEN}x` });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toBe('Bearer realm="vmmr", error="invalid_token"');
    expect(problem(wrong).detail).toBe('the bearer token is not the one this server was started with');

    const basic = await call(app, 'GET', '/api/v1/pfs', undefined, { authorization: 'Basic dXNlcjpwYXNz' });
    expect(problem(basic).detail).toBe('the Authorization header is not "Bearer <token>"');

    const good = await call(app, 'GET', '/api/v1/pfs', undefined, { authorization: `Bearer ${TOKEN}` });
    expect(good.statusCode).toBe(200);
    const lower = await call(app, 'GET', '/api/v1/pfs', undefined, { authorization: `bearer ${TOKEN}` });
    expect(lower.statusCode).toBe(200);
  });

  it('protects every /api route, including batches and event streams, before any work', async () => {
    const app = await testApp({ env: { VMMR_TOKEN: TOKEN } });
    for (const [method, url] of [
      ['POST', '/api/v1/access'],
      ['GET', '/api/v1/events'],
      ['PUT', '/api/v1/pfs/0000:01:00.0/sriov'],
      ['POST', '/api/v1/reset'],
      ['GET', '/api/v1/state'],
    ] as const) {
      expect((await call(app, method, url, method === 'GET' ? undefined : {})).statusCode, url).toBe(401);
    }
    expect(await ok(app, 'GET', '/readyz')).toMatchObject({ status: 'ready' });
  });

  it('leaves health, metrics and documentation open', async () => {
    const app = await testApp({ env: { VMMR_TOKEN: TOKEN } });
    for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs/']) {
      expect((await call(app, 'GET', url)).statusCode, url).toBe(200);
    }
  });

  it('never logs the token', async () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString('utf8'));
        done();
      },
    });
    const app = await testApp({
      env: { VMMR_TOKEN: TOKEN, LOG_LEVEL: 'trace' },
      logger: { stream },
      routes: [
        (a) => {
          a.get('/api/test/log-headers', async (request) => {
            request.log.info({ headers: request.headers }, 'headers');
            return { ok: true };
          });
        },
      ],
    });
    await call(app, 'GET', '/api/test/log-headers', undefined, { authorization: `Bearer ${TOKEN}` });
    await call(app, 'GET', '/api/v1/pfs', undefined, { authorization: 'Bearer wrong-token' });
    const log = chunks.join('');
    expect(log).toContain('headers');
    expect(log).toContain('[redacted]');
    expect(log).not.toContain(TOKEN);
    expect(log).not.toContain('wrong-token');
  });
});
