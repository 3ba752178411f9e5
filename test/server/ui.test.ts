/** The dashboard's assets at /ui/: public like /docs, while /api still asks for the token. */
import { describe, expect, it } from 'vitest';
import { call, testApp } from '../support/server.js';

describe('GET /ui', () => {
  it('redirects /ui to /ui/ and serves the page and every asset it names without the token', async () => {
    const app = await testApp({ env: { VMMR_TOKEN: 'ui-secret' } });
    const bare = await call(app, 'GET', '/ui');
    expect(bare.statusCode).toBe(301);
    expect(bare.headers.location).toBe('/ui/');
    const page = await call(app, 'GET', '/ui/');
    expect(page.statusCode).toBe(200);
    expect(String(page.headers['content-type'])).toMatch(/^text\/html/);
    const assets = [...page.body.matchAll(/(?:src|href)="(\/ui\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
    expect(assets.some((a) => a.endsWith('.css'))).toBe(true);
    for (const asset of assets) expect((await call(app, 'GET', asset)).statusCode, asset).toBe(200);
    expect(page.body).not.toMatch(/https?:\/\//);
    expect((await call(app, 'GET', '/api/v1/pfs')).statusCode).toBe(401);
    expect((await call(app, 'GET', '/ui/no-such-file.js')).statusCode).toBe(404);
  });
});
