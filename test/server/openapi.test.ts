/** The OpenAPI document: valid, and covering every route the app registered. */
import SwaggerParser from '@apidevtools/swagger-parser';
import { describe, expect, it } from 'vitest';
import { STATUS_BY_CODE } from '../../src/server/errors.js';
import { call, testApp } from '../support/server.js';

/** "/api/v1/functions/:bdf/bars/:n/:offset" -> "/api/v1/functions/{bdf}/bars/{n}/{offset}" */
function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

describe('OpenAPI document', () => {
  it('is served at /openapi.json and validates', async () => {
    const app = await testApp();
    const res = await call(app, 'GET', '/openapi.json');
    expect(res.statusCode).toBe(200);
    const doc = res.json() as { openapi: string; info: { title: string; version: string } };
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.title).toBe('vmmr');
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
  });

  it('covers every route registered (and nothing else)', async () => {
    const app = await testApp();
    const doc = (await call(app, 'GET', '/openapi.json')).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const registered = app.vmmr.routes
      .filter((r) => !r.hidden && r.method !== 'HEAD')
      .map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`)
      .sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method} ${path}`))
      .sort();
    expect(documented).toEqual(registered);
    // Every route of the contract is there.
    for (const route of [
      'get /healthz',
      'get /readyz',
      'get /metrics',
      'get /api/v1/pfs',
      'post /api/v1/pfs',
      'delete /api/v1/pfs/{bdf}',
      'get /api/v1/pfs/{bdf}/sriov',
      'put /api/v1/pfs/{bdf}/sriov',
      'get /api/v1/functions',
      'get /api/v1/functions/{bdf}',
      'get /api/v1/functions/{bdf}/config',
      'get /api/v1/functions/{bdf}/config/{offset}',
      'put /api/v1/functions/{bdf}/config/{offset}',
      'get /api/v1/functions/{bdf}/bars/{n}/{offset}',
      'put /api/v1/functions/{bdf}/bars/{n}/{offset}',
      'get /api/v1/functions/{bdf}/guest/config',
      'get /api/v1/functions/{bdf}/guest/config/{offset}',
      'put /api/v1/functions/{bdf}/guest/config/{offset}',
      'get /api/v1/functions/{bdf}/guest/io/{port}',
      'put /api/v1/functions/{bdf}/guest/io/{port}',
      'post /api/v1/access',
      'post /api/v1/functions/{bdf}/interrupt',
      'put /api/v1/functions/{bdf}/device-config',
      'get /api/v1/events',
      'get /api/v1/functions/{bdf}/trace',
      'put /api/v1/functions/{bdf}/trace',
      'get /api/v1/state',
      'put /api/v1/state',
      'post /api/v1/reset',
    ]) {
      expect(documented).toContain(route);
    }
  });

  it('documents problem responses and the bearer scheme on /api routes', async () => {
    const app = await testApp();
    const doc = (await call(app, 'GET', '/openapi.json')).json() as {
      paths: Record<
        string,
        Record<
          string,
          { security?: unknown; responses: Record<string, { content?: Record<string, unknown> }> }
        >
      >;
      components: { securitySchemes: Record<string, { type: string; scheme: string }> };
    };
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    const op = doc.paths['/api/v1/functions/{bdf}/config/{offset}']!.get!;
    expect(op.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(op.responses['400']!.content!)).toEqual(['application/problem+json']);
    expect(doc.paths['/healthz']!.get!.security).toBeUndefined();
  });

  it('serves the interactive documentation at /docs from local assets', async () => {
    const app = await testApp();
    const page = await call(app, 'GET', '/docs/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) {
      expect(asset).not.toMatch(/^https?:/);
      const url = asset.startsWith('/') ? asset : `/docs/${asset.replace(/^\.\//, '')}`;
      expect((await call(app, 'GET', url)).statusCode, url).toBe(200);
    }
    const init = await call(app, 'GET', '/docs/static/swagger-initializer.js');
    expect(init.statusCode).toBe(200);
    // No remote validator, no CDN: nothing but comments mentions a remote URL.
    const code = init.body
      .split('\n')
      .filter((line) => !line.trim().startsWith('//'))
      .join('\n');
    expect(code).not.toMatch(/https?:\/\//);
    expect(code).toContain('validatorUrl: null');
  });

  it('names every operation once, shares one problem schema, declares 401 and has no placeholders', async () => {
    const app = await testApp();
    const body = (await call(app, 'GET', '/openapi.json')).body;
    const doc = JSON.parse(body) as {
      paths: Record<string, Record<string, Operation>>;
      components: { schemas: Record<string, { properties: { code: { anyOf: { const: string }[] } } }> };
    };
    const ops = Object.entries(doc.paths).flatMap(([path, o]) =>
      Object.entries(o).map(([m, op]) => ({ path, m, op })),
    );
    const ids = ops.map(({ op }) => op.operationId);
    expect(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(body).not.toContain('Default Response');
    expect(body.match(/urn:vmmr:error:<code>/g)).toHaveLength(1);
    const codes = doc.components.schemas['Problem']!.properties.code.anyOf.map((c) => c.const);
    expect(codes.sort()).toEqual(Object.keys(STATUS_BY_CODE).sort());
    for (const { path, m, op } of ops) {
      for (const [status, r] of Object.entries(op.responses))
        if (r.content?.['application/problem+json'])
          expect(r.content['application/problem+json'].schema, `${m} ${path} ${status}`).toEqual({
            $ref: '#/components/schemas/Problem',
          });
      expect(op.responses['401'] !== undefined, `${m} ${path} 401`).toBe(path.startsWith('/api/'));
      if (path.startsWith('/api/v1/pfs/{bdf}'))
        expect(op.parameters?.find((p) => p.name === 'bdf')?.example, `${m} ${path}`).toBe('0000:01:00.0');
    }
    const page = await call(app, 'GET', '/docs/');
    expect(page.body).toMatch(/<title>vmmr<\/title>/);
  });
});

interface Operation {
  operationId?: string;
  parameters?: { name: string; example?: string }[];
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
}
