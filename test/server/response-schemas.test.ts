/**
 * Every route answers what its published response schema says: real answers (successes and
 * refusals) of every registered route, validated against the schema fastify serializes them
 * through and the OpenAPI document publishes. A route added without a case here fails the first
 * test.
 */
import { describe, expect, it } from 'vitest';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import type { LightMyRequestResponse } from 'fastify';
import type { VmmrApp } from '../../src/server/app.js';
import {
  BLK_PF,
  NET_PF,
  NOWHERE,
  VF1,
  VF2,
  call,
  socketDir,
  testApp,
  type Method,
} from '../support/server.js';

const CON_PF = '0000:41:00.0';
const ADMIN_PF = '0000:50:00.0';
const BAL_PF = '0000:42:00.0';

interface Case {
  method: Method;
  url: string;
  payload?: unknown;
  /** The statuses this case must produce, in order of the requests. */
  expect: number;
}

/** Requests per route template: a success, and refusals where the route refuses. */
const CASES: Readonly<Record<string, Case[]>> = {
  'GET /healthz': [{ method: 'GET', url: '/healthz', expect: 200 }],
  'GET /readyz': [{ method: 'GET', url: '/readyz', expect: 200 }],
  'GET /metrics': [{ method: 'GET', url: '/metrics', expect: 200 }],
  'GET /api/v1/pfs': [{ method: 'GET', url: '/api/v1/pfs', expect: 200 }],
  'POST /api/v1/pfs': [
    {
      method: 'POST',
      url: '/api/v1/pfs',
      payload: { bdf: '0000:40:00.0', type: 'rng', totalVfs: 2 },
      expect: 201,
    },
    {
      method: 'POST',
      url: '/api/v1/pfs',
      payload: { bdf: CON_PF, type: 'console', totalVfs: 0 },
      expect: 201,
    },
    {
      method: 'POST',
      url: '/api/v1/pfs',
      payload: { bdf: BAL_PF, type: 'balloon', totalVfs: 0 },
      expect: 201,
    },
    {
      method: 'POST',
      url: '/api/v1/pfs',
      payload: {
        bdf: ADMIN_PF,
        type: 'net',
        totalVfs: 2,
        initialVfs: 2,
        adminQueue: true,
        translator: 'admin',
      },
      expect: 201,
    },
    { method: 'POST', url: '/api/v1/pfs', payload: { bdf: NET_PF, type: 'net', totalVfs: 2 }, expect: 409 },
    { method: 'POST', url: '/api/v1/pfs', payload: { bdf: 'zz', type: 'net', totalVfs: 2 }, expect: 400 },
  ],
  'GET /api/v1/pfs/:bdf': [
    { method: 'GET', url: `/api/v1/pfs/${NET_PF}`, expect: 200 },
    { method: 'GET', url: `/api/v1/pfs/${NOWHERE}`, expect: 404 },
  ],
  'DELETE /api/v1/pfs/:bdf': [
    { method: 'DELETE', url: '/api/v1/pfs/0000:40:00.0', expect: 204 },
    { method: 'DELETE', url: `/api/v1/pfs/${NOWHERE}`, expect: 404 },
  ],
  'GET /api/v1/pfs/:bdf/sriov': [{ method: 'GET', url: `/api/v1/pfs/${NET_PF}/sriov?limit=2`, expect: 200 }],
  'PUT /api/v1/pfs/:bdf/sriov': [
    { method: 'PUT', url: `/api/v1/pfs/${NET_PF}/sriov`, payload: { numVfs: 4 }, expect: 200 },
    { method: 'PUT', url: `/api/v1/pfs/${NET_PF}/sriov`, payload: { numVfs: 5 }, expect: 409 },
    { method: 'PUT', url: `/api/v1/pfs/${NET_PF}/sriov`, payload: { numVfs: 99999 }, expect: 400 },
  ],
  'GET /api/v1/functions': [
    { method: 'GET', url: '/api/v1/functions?limit=3', expect: 200 },
    { method: 'GET', url: '/api/v1/functions?cursor=zz', expect: 400 },
  ],
  'GET /api/v1/functions/:bdf': [
    { method: 'GET', url: `/api/v1/functions/${NET_PF}`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${VF1}`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${BLK_PF}`, expect: 200 },
    { method: 'GET', url: '/api/v1/functions/0000:01:00.7', expect: 410 },
  ],
  'GET /api/v1/functions/:bdf/registers': [
    { method: 'GET', url: `/api/v1/functions/${NET_PF}/registers`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${VF1}/registers`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${BLK_PF}/registers`, expect: 200 },
    { method: 'GET', url: '/api/v1/functions/0000:01:00.7/registers', expect: 410 },
  ],
  'GET /api/v1/functions/:bdf/config': [
    { method: 'GET', url: `/api/v1/functions/${VF1}/config`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${VF1}/config?format=lspci`, expect: 200 },
  ],
  'GET /api/v1/functions/:bdf/config/:offset': [
    { method: 'GET', url: `/api/v1/functions/${VF1}/config/0?width=4`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${VF1}/config/0x40?length=16`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${VF1}/config/1?width=2`, expect: 400 },
  ],
  'PUT /api/v1/functions/:bdf/config/:offset': [
    {
      method: 'PUT',
      url: `/api/v1/functions/${VF1}/config/0x3c`,
      payload: { width: 1, value: 5 },
      expect: 200,
    },
  ],
  'GET /api/v1/functions/:bdf/bars/:n/:offset': [
    { method: 'GET', url: `/api/v1/functions/${VF1}/bars/2/0x100c?width=2`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${VF1}/bars/2/0x2000?width=8`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${VF1}/bars/2/0x1012?width=2`, expect: 422 },
  ],
  'PUT /api/v1/functions/:bdf/bars/:n/:offset': [
    {
      method: 'PUT',
      url: `/api/v1/functions/${VF1}/bars/2/0x1004`,
      payload: { width: 4, value: 0 },
      expect: 200,
    },
    {
      method: 'PUT',
      url: `/api/v1/functions/${VF1}/bars/2/0x2000`,
      payload: { data: '0011223344556677' },
      expect: 200,
    },
  ],
  'PUT /api/v1/functions/:bdf/guest': [
    { method: 'PUT', url: `/api/v1/functions/${VF1}/guest`, payload: { legacyOnly: true }, expect: 200 },
    { method: 'PUT', url: `/api/v1/functions/${VF1}/guest`, payload: { legacyOnly: 1 }, expect: 400 },
    { method: 'PUT', url: `/api/v1/functions/${NET_PF}/guest`, payload: { legacyOnly: true }, expect: 422 },
  ],
  'GET /api/v1/functions/:bdf/guest/config': [
    { method: 'GET', url: `/api/v1/functions/${VF1}/guest/config`, expect: 200 },
  ],
  'GET /api/v1/functions/:bdf/guest/config/:offset': [
    { method: 'GET', url: `/api/v1/functions/${VF1}/guest/config/0?width=4`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${NET_PF}/guest/config/0?width=4`, expect: 422 },
  ],
  'PUT /api/v1/functions/:bdf/guest/config/:offset': [
    {
      method: 'PUT',
      url: `/api/v1/functions/${VF1}/guest/config/4`,
      payload: { width: 2, value: 1 },
      expect: 200,
    },
  ],
  'GET /api/v1/functions/:bdf/guest/io/:port': [
    { method: 'GET', url: `/api/v1/functions/${VF1}/guest/io/12?width=2`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${VF1}/guest/io/18?width=2`, expect: 422 },
  ],
  'PUT /api/v1/functions/:bdf/guest/io/:port': [
    {
      method: 'PUT',
      url: `/api/v1/functions/${VF1}/guest/io/18`,
      payload: { width: 1, value: 1 },
      expect: 200,
    },
  ],
  'POST /api/v1/access': [
    {
      method: 'POST',
      url: '/api/v1/access',
      payload: {
        bdf: VF1,
        space: 'bar2',
        onError: 'continue',
        ops: [
          { op: 'read', offset: 0x100c, width: 2 },
          { op: 'read', offset: 0x1000, length: 8 },
          { op: 'read', offset: 0x1012, width: 2 },
        ],
      },
      expect: 200,
    },
    { method: 'POST', url: '/api/v1/access', payload: { ops: 'x' }, expect: 400 },
  ],
  'POST /api/v1/functions/:bdf/interrupt': [
    { method: 'POST', url: `/api/v1/functions/${VF1}/interrupt`, payload: { config: true }, expect: 200 },
    { method: 'POST', url: `/api/v1/functions/${VF1}/interrupt`, payload: {}, expect: 400 },
  ],
  'PUT /api/v1/functions/:bdf/device-config': [
    {
      method: 'PUT',
      url: `/api/v1/functions/${VF1}/device-config`,
      payload: { offset: 6, data: '0100' },
      expect: 200,
    },
  ],
  'GET /api/v1/events': [{ method: 'GET', url: '/api/v1/events?types=nonsense', expect: 400 }],
  'GET /api/v1/functions/:bdf/trace': [{ method: 'GET', url: `/api/v1/functions/${VF1}/trace`, expect: 200 }],
  'PUT /api/v1/functions/:bdf/trace': [
    {
      method: 'PUT',
      url: `/api/v1/functions/${VF1}/trace`,
      payload: { enabled: true, depth: 16 },
      expect: 200,
    },
  ],
  'GET /api/v1/functions/:bdf/dma/:addr': [
    { method: 'GET', url: `/api/v1/functions/${NET_PF}/dma/0x100000?length=16`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${NET_PF}/dma/0x1ffffffffffff8?length=16`, expect: 422 },
    { method: 'GET', url: `/api/v1/functions/${NET_PF}/dma/0x100000?length=0`, expect: 400 },
  ],
  'PUT /api/v1/functions/:bdf/dma/:addr': [
    {
      method: 'PUT',
      url: `/api/v1/functions/${NET_PF}/dma/0x100000`,
      payload: { data: '00112233' },
      expect: 200,
    },
    { method: 'PUT', url: `/api/v1/functions/${NET_PF}/dma/0x100000`, payload: { data: 'xyz' }, expect: 400 },
  ],
  'GET /api/v1/functions/:bdf/queues': [
    { method: 'GET', url: `/api/v1/functions/${NET_PF}/queues`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${NOWHERE}/queues`, expect: 404 },
  ],
  'POST /api/v1/functions/:bdf/queues/:n/drain': [
    { method: 'POST', url: `/api/v1/functions/${NET_PF}/queues/1/drain`, expect: 200 },
    { method: 'POST', url: `/api/v1/functions/${NET_PF}/queues/99/drain`, expect: 400 },
  ],
  'GET /api/v1/functions/:bdf/net': [
    { method: 'GET', url: `/api/v1/functions/${NET_PF}/net`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${BLK_PF}/net`, expect: 400 },
  ],
  'GET /api/v1/functions/:bdf/net/capture.pcap': [
    { method: 'GET', url: `/api/v1/functions/${NET_PF}/net/capture.pcap`, expect: 200 },
  ],
  'POST /api/v1/functions/:bdf/net/rx': [
    {
      method: 'POST',
      url: `/api/v1/functions/${NET_PF}/net/rx`,
      payload: { frame: 'ff'.repeat(60) },
      expect: 200,
    },
    { method: 'POST', url: `/api/v1/functions/${NET_PF}/net/rx`, payload: { frame: 'f' }, expect: 400 },
  ],
  'PUT /api/v1/functions/:bdf/net/switch': [
    { method: 'PUT', url: `/api/v1/functions/${NET_PF}/net/switch`, payload: { switch: 'lan' }, expect: 200 },
    { method: 'PUT', url: `/api/v1/functions/${NET_PF}/net/switch`, payload: { switch: 'a b' }, expect: 400 },
  ],
  'GET /api/v1/functions/:bdf/block': [
    { method: 'GET', url: `/api/v1/functions/${BLK_PF}/block`, expect: 200 },
  ],
  'POST /api/v1/functions/:bdf/block/errors': [
    {
      method: 'POST',
      url: `/api/v1/functions/${BLK_PF}/block/errors`,
      payload: { first: 8, count: 8, op: 'read' },
      expect: 200,
    },
  ],
  'DELETE /api/v1/functions/:bdf/block/errors': [
    { method: 'DELETE', url: `/api/v1/functions/${BLK_PF}/block/errors`, expect: 200 },
  ],
  'GET /api/v1/functions/:bdf/console': [
    { method: 'GET', url: `/api/v1/functions/${CON_PF}/console`, expect: 200 },
  ],
  'POST /api/v1/functions/:bdf/console/rx': [
    { method: 'POST', url: `/api/v1/functions/${CON_PF}/console/rx`, payload: { data: '6869' }, expect: 200 },
  ],
  'GET /api/v1/functions/:bdf/balloon': [
    { method: 'GET', url: `/api/v1/functions/${BAL_PF}/balloon`, expect: 200 },
  ],
  'PUT /api/v1/functions/:bdf/balloon': [
    { method: 'PUT', url: `/api/v1/functions/${BAL_PF}/balloon`, payload: { numPages: 256 }, expect: 200 },
  ],
  'POST /api/v1/functions/:bdf/vfio-user': [
    {
      method: 'POST',
      url: `/api/v1/functions/${VF1}/vfio-user`,
      payload: { socket: 'schemas.sock' },
      expect: 201,
    },
    {
      method: 'POST',
      url: `/api/v1/functions/${VF1}/vfio-user`,
      payload: { socket: 'schemas-2.sock' },
      expect: 409,
    },
    {
      method: 'POST',
      url: `/api/v1/functions/${BLK_PF}/vfio-user`,
      payload: { socket: '/etc/vmmr.sock', view: 'function' },
      expect: 400,
    },
    {
      method: 'POST',
      url: `/api/v1/functions/${NET_PF}/vfio-user`,
      payload: { socket: 'pf.sock', view: 'guest' },
      expect: 422,
    },
  ],
  'GET /api/v1/vfio-user': [{ method: 'GET', url: '/api/v1/vfio-user', expect: 200 }],
  'GET /api/v1/functions/:bdf/vfio-user': [
    { method: 'GET', url: `/api/v1/functions/${VF1}/vfio-user`, expect: 200 },
    { method: 'GET', url: `/api/v1/functions/${VF2}/vfio-user`, expect: 404 },
  ],
  'DELETE /api/v1/functions/:bdf/vfio-user': [
    { method: 'DELETE', url: `/api/v1/functions/${VF1}/vfio-user`, expect: 204 },
    { method: 'DELETE', url: `/api/v1/functions/${VF1}/vfio-user`, expect: 404 },
  ],
  'POST /api/v1/pfs/:bdf/admin': [
    {
      method: 'POST',
      url: `/api/v1/pfs/${ADMIN_PF}/admin`,
      payload: {
        commands: [
          { opcode: 'LIST_QUERY', resultLength: 8 },
          { opcode: 1, data: '7f00000000000000' },
          { opcode: 'LEGACY_COMMON_CFG_READ', memberId: 1, data: '0c', resultLength: 2 },
          { opcode: 'LEGACY_COMMON_CFG_READ', memberId: '0x9', data: '0c', resultLength: 2 },
        ],
      },
      expect: 200,
    },
    {
      method: 'POST',
      url: `/api/v1/pfs/${NET_PF}/admin`,
      payload: { commands: [{ opcode: 0 }] },
      expect: 409,
    },
    {
      method: 'POST',
      url: `/api/v1/pfs/${ADMIN_PF}/admin`,
      payload: { commands: [{ opcode: 0, data: 'zz' }] },
      expect: 400,
    },
    {
      method: 'POST',
      url: `/api/v1/pfs/${NOWHERE}/admin`,
      payload: { commands: [{ opcode: 0 }] },
      expect: 404,
    },
  ],
  'GET /api/v1/functions/:bdf/guest/backend': [
    { method: 'GET', url: `/api/v1/functions/${VF1}/guest/backend`, expect: 200 },
    { method: 'GET', url: '/api/v1/functions/0000:01:00.7/guest/backend', expect: 410 },
  ],
  'PUT /api/v1/functions/:bdf/guest/backend': [
    {
      method: 'PUT',
      url: `/api/v1/functions/${VF1}/guest/backend`,
      payload: { backend: 'mmr' },
      expect: 200,
    },
    {
      method: 'PUT',
      url: `/api/v1/functions/${VF1}/guest/backend`,
      payload: { backend: 'admin' },
      expect: 400,
    },
  ],
  'GET /api/v1/state': [{ method: 'GET', url: '/api/v1/state', expect: 200 }],
  'PUT /api/v1/state': [
    {
      method: 'PUT',
      url: '/api/v1/state',
      payload: { format: 'x', version: 1, pfs: [], functions: [] },
      expect: 422,
    },
  ],
  'POST /api/v1/reset': [{ method: 'POST', url: '/api/v1/reset', expect: 200 }],
  'POST /api/v1/state/save': [{ method: 'POST', url: '/api/v1/state/save', expect: 409 }],
};

const SOCKET_DIR = socketDir();

/** The schema a route declares for a status and the content type of the answer. */
function schemaFor(
  response: Readonly<Record<string, unknown>>,
  status: number,
  contentType: string,
): TSchema | undefined {
  const declared = (response[String(status)] ??
    response[`${Math.floor(status / 100)}xx`] ??
    response.default) as (TSchema & { content?: Record<string, { schema: TSchema }> }) | undefined;
  if (!declared) return undefined;
  if (!declared.content) return declared;
  const type = contentType.split(';')[0]!.trim();
  return declared.content[type]?.schema;
}

async function check(app: VmmrApp, routeKey: string, c: Case): Promise<void> {
  const route = app.vmmr.routes.find((r) => `${r.method} ${r.url}` === routeKey)!;
  const res: LightMyRequestResponse = await call(app, c.method, c.url, c.payload);
  const what = `${c.method} ${c.url} -> ${res.statusCode} ${res.body.slice(0, 200)}`;
  expect(res.statusCode, what).toBe(c.expect);
  if (res.statusCode === 204) {
    expect(res.body, what).toBe('');
    expect(Object.keys(route.response), `${routeKey} declares its 204`).toContain('204');
    return;
  }
  const contentType = String(res.headers['content-type'] ?? '');
  const schema = schemaFor(route.response, res.statusCode, contentType);
  expect(schema, `${what}: no response schema for ${res.statusCode} ${contentType}`).toBeDefined();
  const body: unknown = contentType.includes('json') ? JSON.parse(res.body) : res.body;
  const validator = Compile(schema!);
  const errors = validator.Check(body)
    ? []
    : [...validator.Errors(body)].map((e) => `${e.instancePath} ${e.message}`);
  expect(errors, what).toEqual([]);
}

describe('response schemas', () => {
  it('every route the app registers has cases here (HEAD and the /docs pages aside)', async () => {
    const app = await testApp();
    const keys = app.vmmr.routes
      .filter((r) => !r.hidden && r.method !== 'HEAD')
      .map((r) => `${r.method} ${r.url}`)
      .sort();
    expect(keys).toEqual(Object.keys(CASES).sort());
  });

  it('real answers of every route match the schema they are serialized through', async () => {
    const app = await testApp({ env: { VMMR_SOCKET_DIR: SOCKET_DIR } });
    let checked = 0;
    for (const [key, cases] of Object.entries(CASES)) {
      for (const c of cases) {
        await check(app, key, c);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(Object.keys(CASES).length);
  });
});
