/**
 * Every error code the API can answer with, produced over HTTP, checked against the one
 * code -> status map (src/server/errors.ts) and the problem+json shape.
 */
import { describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import type { VmmrErrorCode } from '../../src/base/errors.js';
import { STATUS_BY_CODE } from '../../src/server/errors.js';
import type { VmmrApp } from '../../src/server/app.js';
import { BLK_PF, NET_PF, NOWHERE, VF1, call, enableVfs, problem, testApp } from '../support/server.js';

type Scenario = (app: VmmrApp) => Promise<LightMyRequestResponse>;

const fn = (bdf: string): string => `/api/v1/functions/${bdf}`;

/** One request per code that answers with it (the app has the default topology). */
const SCENARIOS: Record<VmmrErrorCode, { env?: Record<string, string>; run: Scenario }> = {
  VMMR_ERR_BAD_REQUEST: { run: (app) => call(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, { numVfs: 'four' }) },
  VMMR_ERR_BAD_BDF: { run: (app) => call(app, 'GET', fn('01:00.x')) },
  VMMR_ERR_BAD_SPACE: { run: (app) => call(app, 'GET', `${fn(NET_PF)}/bars/7/0?width=4`) },
  VMMR_ERR_BAD_OFFSET: { run: (app) => call(app, 'GET', `${fn(NET_PF)}/config/0xzz?width=4`) },
  VMMR_ERR_BAD_WIDTH: { run: (app) => call(app, 'GET', `${fn(NET_PF)}/config/0?width=3`) },
  VMMR_ERR_UNALIGNED: { run: (app) => call(app, 'GET', `${fn(NET_PF)}/config/0x2?width=4`) },
  VMMR_ERR_OUT_OF_RANGE: { run: (app) => call(app, 'GET', `${fn(NET_PF)}/config/0x1000?width=4`) },
  VMMR_ERR_BAD_VALUE: {
    run: (app) => call(app, 'PUT', `${fn(NET_PF)}/config/4`, { width: 2, value: '0x10000' }),
  },
  VMMR_ERR_SRIOV_RANGE: { run: (app) => call(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, { numVfs: 1025 }) },
  VMMR_ERR_UNAUTHORIZED: { env: { VMMR_TOKEN: 's3cret' }, run: (app) => call(app, 'GET', '/api/v1/pfs') },
  VMMR_ERR_NOT_FOUND: { run: (app) => call(app, 'GET', '/api/v1/nothing-here') },
  VMMR_ERR_NO_FUNCTION: { run: (app) => call(app, 'GET', fn(NOWHERE)) },
  VMMR_ERR_DECODE_DISABLED: { run: (app) => call(app, 'GET', `${fn(NET_PF)}/bars/0/0?width=4`) },
  VMMR_ERR_IO_DISABLED: {
    run: async (app) => {
      await enableVfs(app, 1);
      return call(app, 'GET', `${fn(VF1)}/guest/io/0?width=4`);
    },
  },
  VMMR_ERR_SRIOV_STATE: {
    run: async (app) => {
      await enableVfs(app, 2);
      return call(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, { numVfs: 3 });
    },
  },
  VMMR_ERR_TOPOLOGY: {
    run: (app) => call(app, 'POST', '/api/v1/pfs', { bdf: '01:00.5', type: 'net', totalVfs: 2 }),
  },
  VMMR_ERR_LIMIT: {
    env: { VMMR_MAX_VFS: '8' },
    run: (app) => call(app, 'PUT', `/api/v1/pfs/${BLK_PF}/sriov`, { numVfs: 9 }),
  },
  VMMR_ERR_VF_DISABLED: { run: (app) => call(app, 'GET', fn(VF1)) },
  VMMR_ERR_TOO_LARGE: {
    env: { VMMR_MAX_BATCH: '2' },
    run: (app) =>
      call(app, 'POST', '/api/v1/access', {
        ops: [0, 4, 8].map((offset) => ({ bdf: NET_PF, space: 'config', op: 'read', offset, width: 4 })),
      }),
  },
  VMMR_ERR_UNMAPPED: {
    run: async (app) => {
      await enableVfs(app, 1);
      return call(app, 'GET', `${fn(VF1)}/bars/2/0x500?width=2`);
    },
  },
  VMMR_ERR_WIDTH_MISMATCH: {
    run: async (app) => {
      await enableVfs(app, 1);
      return call(app, 'GET', `${fn(VF1)}/bars/2/0x1000?width=8`);
    },
  },
  VMMR_ERR_READ_ONLY: {
    run: async (app) => {
      await enableVfs(app, 1);
      return call(app, 'PUT', `${fn(VF1)}/bars/2/0x1000`, { width: 4, value: 1 });
    },
  },
  VMMR_ERR_WRITE_ONLY: {
    run: async (app) => {
      await enableVfs(app, 1);
      return call(app, 'GET', `${fn(VF1)}/bars/2/0x400?width=2`);
    },
  },
  VMMR_ERR_NOT_TRANSITIONAL: { run: (app) => call(app, 'GET', `${fn(NET_PF)}/guest/config/0?width=4`) },
  VMMR_ERR_DMA: {
    run: (app) => call(app, 'GET', `${fn(NET_PF)}/dma/0x1ffffffffffff8?length=16`),
  },
  VMMR_ERR_STATE: {
    run: async (app) => {
      const state = (await call(app, 'GET', '/api/v1/state')).json() as Record<string, unknown>;
      return call(app, 'PUT', '/api/v1/state', { ...state, version: 99 });
    },
  },
  VMMR_ERR_TOO_MANY: {
    env: { VMMR_MAX_SUBSCRIBERS: '1' },
    run: async (app) => {
      // The first stream stays open (it ends when the app closes after the test).
      void call(app, 'GET', '/api/v1/events');
      while (app.vmmr.sse.size < 1) await new Promise((resolve) => setTimeout(resolve, 5));
      return call(app, 'GET', '/api/v1/events');
    },
  },
  VMMR_ERR_NOT_CONFIGURED: { run: (app) => call(app, 'POST', '/api/v1/state/save') },
  VMMR_ERR_INTERNAL: { run: (app) => call(app, 'GET', '/test/boom') },
};

async function appFor(code: VmmrErrorCode): Promise<VmmrApp> {
  return testApp({
    env: SCENARIOS[code].env ?? {},
    routes: [
      (a) => {
        a.get('/test/boom', async () => {
          throw new Error('kaboom');
        });
      },
    ],
  });
}

describe('error codes and HTTP statuses', () => {
  it('has a scenario for every code in the map, and no scenario for an unmapped code', () => {
    expect(Object.keys(SCENARIOS).sort()).toEqual(Object.keys(STATUS_BY_CODE).sort());
  });

  it('maps codes to 400, 401, 404, 409, 410, 413, 422, 429 and (own bugs only) 500', () => {
    expect(new Set(Object.values(STATUS_BY_CODE))).toEqual(
      new Set([400, 401, 404, 409, 410, 413, 422, 429, 500]),
    );
  });

  it.each(Object.keys(STATUS_BY_CODE) as VmmrErrorCode[])('%s', async (code) => {
    const app = await appFor(code);
    const res = await SCENARIOS[code].run(app);
    const p = problem(res);
    expect(res.statusCode).toBe(STATUS_BY_CODE[code]);
    expect(p).toMatchObject({ code, status: STATUS_BY_CODE[code], type: `urn:vmmr:error:${code}` });
    expect(typeof p.title).toBe('string');
    expect(p.detail.length).toBeGreaterThan(0);
    expect(p.detail).not.toContain('\n');
  });
});

describe('problem documents', () => {
  it('name the access a refusal is about', async () => {
    const app = await testApp();
    const p = problem(await call(app, 'GET', `${fn(NET_PF)}/config/0x2?width=4`));
    expect(p).toMatchObject({ bdf: NET_PF, space: 'config', offset: 2, width: 4 });
    expect(p.detail).toBe(`${NET_PF} config offset 0x2 width 4: offset 0x2 is not aligned to width 4`);
  });

  it('name the register when one is involved', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const p = problem(await call(app, 'PUT', `${fn(VF1)}/bars/2/0x1000`, { width: 4, value: 1 }));
    expect(p.register).toBe('HOST_FEATURES');
  });

  it('give the JSON path of a schema violation', async () => {
    const app = await testApp();
    const p = problem(await call(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, { numVfs: -1 }));
    expect(p).toMatchObject({ code: 'VMMR_ERR_BAD_REQUEST', in: 'body', path: '/numVfs' });
    expect(p.detail).toMatch(/^body\/numVfs: must be >= 0/);
  });

  it('name unknown and missing properties', async () => {
    const app = await testApp();
    const unknown = problem(await call(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, { numVfs: 1, numvfs: 2 }));
    expect(unknown.detail).toBe('body: unknown property "numvfs"');
    const missing = problem(await call(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, {}));
    expect(missing.detail).toBe('body: missing required property "numVfs"');
  });

  it('report query-string violations as such', async () => {
    const app = await testApp();
    const p = problem(await call(app, 'GET', `/api/v1/functions?limit=0`));
    expect(p).toMatchObject({ code: 'VMMR_ERR_BAD_REQUEST', in: 'querystring', path: '/limit' });
  });

  it('answer invalid JSON with 400, never 5xx', async () => {
    const app = await testApp();
    const res = await call(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, '{"numVfs": ', {
      'content-type': 'application/json',
    });
    expect(res.statusCode).toBe(400);
    expect(problem(res).code).toBe('VMMR_ERR_BAD_REQUEST');
  });

  it('answer an unsupported media type with 415 and VMMR_ERR_BAD_REQUEST', async () => {
    const app = await testApp();
    const res = await call(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, '<numVfs/>', {
      'content-type': 'application/xml',
    });
    expect(res.statusCode).toBe(415);
    expect(problem(res)).toMatchObject({ code: 'VMMR_ERR_BAD_REQUEST', status: 415 });
  });

  it('answer a body above VMMR_BODY_LIMIT with 413 VMMR_ERR_TOO_LARGE', async () => {
    const app = await testApp({ env: { VMMR_BODY_LIMIT: '1KiB' } });
    const ops = Array.from({ length: 50 }, () => ({
      bdf: NET_PF,
      space: 'config',
      op: 'read',
      offset: 0,
      width: 4,
    }));
    const res = await call(app, 'POST', '/api/v1/access', { ops });
    expect(res.statusCode).toBe(413);
    expect(problem(res).code).toBe('VMMR_ERR_TOO_LARGE');
  });

  it('log unexpected errors at error level and hide them from the client', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const { Writable } = await import('node:stream');
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n'))
          if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const app = await testApp({
      logger: { stream },
      routes: [
        (a) => {
          a.get('/test/boom', async () => {
            throw new Error('kaboom');
          });
        },
      ],
    });
    const res = await call(app, 'GET', '/test/boom');
    expect(res.statusCode).toBe(500);
    expect(problem(res)).toMatchObject({
      code: 'VMMR_ERR_INTERNAL',
      detail: 'internal error: see the server log',
    });
    expect(lines.some((l) => l.level === 50 && l.msg === 'kaboom')).toBe(true);
  });
});
