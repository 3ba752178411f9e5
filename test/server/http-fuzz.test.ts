/**
 * Bad input, over HTTP, against a real listening server: malformed JSON, wrong types, hex with
 * junk, offsets >= 2^64, invalid BDFs, unknown spaces, oversized bodies and batches, malformed
 * HTTP, slow-loris clients, floods of event-stream subscribers. Every answer is a 4xx
 * application/problem+json (never a 5xx, never a hang), /healthz answers throughout, and since
 * every request carries a fault, the machine state afterwards is byte-for-byte what it was.
 */
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { Agent, request, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, expectProblem, pool, setNumVfs, start, type Started } from '../support/robustness/server.js';
import { STATE_VERSION } from '../../src/machine/state.js';

const LONG = process.env.FUZZ_LONG === '1';
const SECONDS = LONG ? 120 : Number(process.env.FUZZ_SECONDS ?? 4);

const LIMITS = {
  VMMR_BODY_LIMIT: '16KiB',
  VMMR_MAX_BATCH: '64',
  VMMR_MAX_SUBSCRIBERS: '16',
  VMMR_MAX_TRACE_DEPTH: '1024',
  VMMR_REQUEST_TIMEOUT: '1000',
};

const tally = {
  bad: 0,
  batchOps: 0,
  raw: 0,
  slowLoris: 0,
  subscribers: 0,
  refusedSubscribers: 0,
  healthz: 0,
  healthzFailures: 0,
};

let srv: Started;
let http: Dispatcher;
let healthTimer: NodeJS.Timeout | undefined;
const healthErrors: string[] = [];

beforeAll(async () => {
  srv = await start(LIMITS);
  http = pool(srv.url, 16);
  expect((await setNumVfs(http, '0000:01:00.0', 4)).status).toBe(200);
  expect((await setNumVfs(http, '0000:02:00.0', 2)).status).toBe(200);
  // /healthz keeps answering, whatever the other clients do (its own connection).
  const agent = new Agent({ connections: 1 });
  const probe = async (): Promise<void> => {
    try {
      const res = await request(`${srv.url}/healthz`, {
        dispatcher: agent,
        headersTimeout: 2000,
        bodyTimeout: 2000,
      });
      await res.body.text();
      tally.healthz++;
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    } catch (e) {
      tally.healthzFailures++;
      healthErrors.push((e as Error).message);
    }
    healthTimer = setTimeout(() => void probe(), 50);
  };
  void probe();
});

afterAll(async () => {
  clearTimeout(healthTimer);
  await http?.close();
  await srv?.close();
  console.log(
    `http-fuzz: ${tally.bad} bad requests (${tally.batchOps} bad batch operations), ${tally.raw} raw malformed HTTP, ` +
      `${tally.slowLoris} slow-loris sockets, ${tally.subscribers} event streams opened and ${tally.refusedSubscribers} refused; ` +
      `/healthz ${tally.healthz} answers, ${tally.healthzFailures} failures`,
  );
});

// ---------------------------------------------------------------------------------------------
// Generators: every request has exactly one fault

/** Stands for the JSON number literal 1e400 in generated bodies. */
const RAW_HUGE = Symbol('1e400');
const VF = '0000:01:00.1';
const PF = '0000:01:00.0';
const DISABLED_VF = '0000:01:00.9'; // VF 9 of PF 01:00.0: only 4 are enabled

const badBdf = fc.constantFrom(
  'zz',
  '0000:01:00.8',
  '0000:01:20.0',
  '00000:01:00.0',
  '1:2:3:4',
  '%00',
  '%0a0000:01:00.1',
  '0000%3A01%3A00.1x',
  '..%2F..%2Fetc',
  'ffff:ff:1f.7',
  DISABLED_VF,
  '0000:09:00.0',
  'a'.repeat(200),
);
/** Offsets no access may take: negative, fractional, junk, >= 2^64, beyond the space. */
const badOffset = fc.constantFrom(
  '-1',
  '-0x4',
  '1.5',
  '0x',
  '0xg0',
  '0x10g',
  'x10',
  '0x-10',
  '1e3',
  ' 16',
  '16 ',
  '0x1_0',
  '１６',
  'NaN',
  'Infinity',
  '18446744073709551616',
  '0x10000000000000000',
  '0xffffffffffffffffff',
  '9'.repeat(40),
  '0x1000',
  '4096',
  '3',
);
const badWidth = fc.constantFrom('0', '3', '5', '16', '-4', '1.5', 'four', '0x3', '', '99999999999999999999');
/** Values no write may take at width 4: too big, negative, junk hex. */
const badValue = fc.constantFrom<unknown>(
  -1,
  1.5,
  2 ** 32,
  2 ** 53,
  RAW_HUGE,
  '0x100000000',
  '0x',
  '0xzz',
  '0x1g',
  '-0x1',
  '12abc',
  ' 0x10',
  '0x1_0',
  '18446744073709551616',
  '0x10000000000000000',
  '',
  null,
  true,
  [],
  {},
  '１',
);
const malformedJson = fc.oneof(
  fc.constantFrom(
    '{',
    '}',
    '{"width":4,',
    "{'width':4}",
    '{"width":4 "value":1}',
    '{"width":4,"value":1}}',
    '{"width":4,"value":1}x',
    'nul',
    '[',
    '"',
    '{"a":"\\x41"}',
    '\u0000',
    '\ufeff{"width":4,"value":1',
    `${'['.repeat(5000)}${']'.repeat(4999)}`,
  ),
  fc.string({ maxLength: 40 }).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  }),
);
const badSpace = fc.constantFrom(
  'bar6',
  'BAR0',
  'cfg',
  'io ',
  '',
  'config\u0000',
  '__proto__',
  'bar-1',
  'bar2.0',
  'guest_config',
);

interface BadRequest {
  what: string;
  method: Dispatcher.HttpMethod;
  path: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** A batch answered 200 whose every operation must be refused. */
  batch?: boolean;
}

const enc = encodeURIComponent;
/** JSON text; RAW_HUGE becomes the literal 1e400 (a number JSON.parse turns into Infinity). */
const json = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) => (x === RAW_HUGE ? '__HUGE__' : x)).replace(/"__HUGE__"/g, '1e400');

const bad: fc.Arbitrary<BadRequest> = fc.oneof(
  // Single accesses: one bad part each.
  badBdf.map((b) => ({
    what: 'bad BDF',
    method: 'GET' as const,
    path: `/api/v1/functions/${enc(b)}/config/0?width=4`,
  })),
  badBdf.map((b) => ({
    what: 'bad BDF write',
    method: 'PUT' as const,
    path: `/api/v1/functions/${enc(b)}/config/4`,
    body: json({ width: 2, value: 6 }),
  })),
  badOffset.map((o) => ({
    what: 'bad offset',
    method: 'GET' as const,
    path: `/api/v1/functions/${VF}/config/${enc(o)}?width=4`,
  })),
  badOffset.map((o) => ({
    what: 'bad BAR offset',
    method: 'PUT' as const,
    path: `/api/v1/functions/${VF}/bars/2/${enc(o)}`,
    body: json({ width: 4, value: 1 }),
  })),
  fc.constantFrom('6', '-1', 'x', '1', '0', '', '2.0', '02').map((n) => ({
    what: 'bad BAR',
    method: 'GET' as const,
    path: `/api/v1/functions/${VF}/bars/${enc(n)}/0?width=4`,
  })),
  badWidth.map((w) => ({
    what: 'bad width',
    method: 'GET' as const,
    path: `/api/v1/functions/${VF}/bars/2/0?width=${enc(w)}`,
  })),
  badWidth.map((w) => ({
    what: 'bad width in body',
    method: 'PUT' as const,
    path: `/api/v1/functions/${VF}/config/4`,
    body: `{"width":${/^-?[0-9.]+$/.test(w) ? w : json(w)},"value":1}`,
  })),
  badValue.map((v) => ({
    what: 'bad value',
    method: 'PUT' as const,
    path: `/api/v1/functions/${VF}/bars/2/0x1004`,
    body: json({ width: 4, value: v }),
  })),
  fc.constantFrom(0x100, 0x1000, 0xffff + 1).map((v) => ({
    what: 'value beyond width',
    method: 'PUT' as const,
    path: `/api/v1/functions/${PF}/config/0x3c`,
    body: json({ width: 1, value: v }),
  })),
  malformedJson.map((t) => ({
    what: 'malformed JSON',
    method: 'PUT' as const,
    path: `/api/v1/functions/${VF}/config/4`,
    body: t,
  })),
  malformedJson.map((t) => ({
    what: 'malformed JSON batch',
    method: 'POST' as const,
    path: '/api/v1/access',
    body: t,
  })),
  malformedJson.map((t) => ({
    what: 'malformed JSON sriov',
    method: 'PUT' as const,
    path: `/api/v1/pfs/${PF}/sriov`,
    body: t,
  })),
  fc.constantFrom<unknown>('4', -1, 1.5, null, true, [], {}, RAW_HUGE, 2 ** 64, 65, '0x4').map((n) => ({
    what: 'bad numVfs',
    method: 'PUT' as const,
    path: `/api/v1/pfs/${PF}/sriov`,
    body: json({ numVfs: n }),
  })),
  fc.constantFrom<unknown>({}, { numVfs: 2, extra: 1 }, { numvfs: 2 }, [], 'x', 2).map((b) => ({
    what: 'bad sriov body',
    method: 'PUT' as const,
    path: `/api/v1/pfs/${PF}/sriov`,
    body: json(b),
  })),
  fc
    .constantFrom(
      'text/plain',
      'application/xml',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-16',
      'application/x-www-form-urlencoded',
    )
    .map((t) => ({
      what: `content-type ${t}`,
      method: 'PUT' as const,
      path: `/api/v1/pfs/${PF}/sriov`,
      body: json({ numVfs: 1 }),
      headers: { 'content-type': t },
    })),
  fc
    .constantFrom<unknown>(
      { width: 4 },
      { value: 1 },
      { width: 4, value: 1, data: '00' },
      { data: 'zz' },
      { data: '0' },
      { width: 4, value: 1, extra: true },
      [],
      'x',
    )
    .map((b) => ({
      what: 'bad write body',
      method: 'PUT' as const,
      path: `/api/v1/functions/${VF}/config/4`,
      body: json(b),
    })),
  fc
    .constantFrom('', 'width=4&length=4', 'length=0', 'length=-1', 'length=99999999', 'width=4&x=1')
    .map((q) => ({
      what: 'bad query',
      method: 'GET' as const,
      path: `/api/v1/functions/${VF}/config/0?${q}`,
    })),
  // Guest view of a PF (not a transitional VF), io port beyond the BAR.
  fc
    .constantFrom(
      `/api/v1/functions/${PF}/guest/config/0?width=4`,
      `/api/v1/functions/${PF}/guest/io/0?width=1`,
      `/api/v1/functions/${VF}/guest/io/0x400?width=1`,
    )
    .map((p) => ({ what: 'guest of a PF', method: 'GET' as const, path: p })),
  // Batches: malformed structure (400) or operations that are each refused (200, ok: false).
  fc
    .constantFrom<unknown>(
      {},
      { ops: {} },
      { ops: [1] },
      { ops: [{}] },
      { ops: [{ bdf: VF }] },
      { ops: [], extra: 1 },
      { ops: [], onError: 'retry' },
      [],
      null,
    )
    .map((b) => ({
      what: 'malformed batch',
      method: 'POST' as const,
      path: '/api/v1/access',
      body: json(b),
    })),
  fc
    .array(
      fc.oneof(
        badSpace.map((s) => ({ bdf: VF, space: s, op: 'read', offset: 0, width: 4 })),
        badBdf.map((b) => ({ bdf: b, space: 'config', op: 'read', offset: 0, width: 4 })),
        badOffset.map((o) => ({ bdf: VF, space: 'config', op: 'read', offset: o, width: 4 })),
        fc
          .constantFrom(0, 3, 16, -4)
          .map((w) => ({ bdf: VF, space: 'bar2', op: 'read', offset: 0, width: w })),
        badValue
          .filter((v) => typeof v === 'number' || typeof v === 'string')
          .map((v) => ({ bdf: VF, space: 'bar2', op: 'write', offset: 0x2000, width: 4, value: v })),
        fc
          .constantFrom('zz', '0', 'abc')
          .map((d) => ({ bdf: VF, space: 'bar2', op: 'write', offset: 0x2000, data: d })),
      ),
      { minLength: 1, maxLength: 10 },
    )
    .chain((ops) =>
      fc.constantFrom('stop', 'continue').map((onError) => ({
        what: 'refused batch',
        method: 'POST' as const,
        path: '/api/v1/access',
        body: json({ ops, onError }),
        batch: true,
      })),
    ),
  // Limits: body and batch size.
  fc.integer({ min: 17 * 1024, max: 64 * 1024 }).map((n) => ({
    what: 'oversized body',
    method: 'PUT' as const,
    path: `/api/v1/functions/${VF}/config/4`,
    body: json({ width: 4, value: 1, pad: 'x'.repeat(n) }),
  })),
  fc.integer({ min: 65, max: 200 }).map((n) => ({
    what: 'oversized batch',
    method: 'POST' as const,
    path: '/api/v1/access',
    body: json({
      ops: Array.from({ length: n }, () => ({ bdf: VF, space: 'config', op: 'read', offset: 0, width: 4 })),
    }),
  })),
  // Other routes.
  fc
    .constantFrom<unknown>(
      {},
      { format: 'vmmr-state', version: STATE_VERSION + 1, pfs: [], functions: [] },
      { format: 'x' },
      [],
      { format: 'vmmr-state', version: 1, pfs: [{ bdf: 'zz', type: 'net', totalVfs: 1 }], functions: [] },
    )
    .map((b) => ({
      what: 'bad state document',
      method: 'PUT' as const,
      path: '/api/v1/state',
      body: json(b),
    })),
  fc
    .constantFrom<unknown>(
      { msix: [1, 2, 3] },
      { queues: [1] },
      { config: [256] },
      { driverFeatures: '0xzz' },
      { status: 256 },
      { status: -1 },
    )
    .map((device) => ({
      what: 'state with a device of the wrong shape',
      method: 'PUT' as const,
      path: '/api/v1/state',
      body: json({
        format: 'vmmr-state',
        version: 1,
        pfs: [
          {
            bdf: '0000:01:00.0',
            type: 'net',
            totalVfs: 64,
            initialVfs: 64,
            firstVfOffset: 1,
            vfStride: 1,
            queueSize: 256,
            policy: 'strict',
            notify: 'notify-region',
            vfs: {},
          },
        ],
        functions: [
          {
            bdf: '0000:01:00.0',
            config: [],
            device: {
              status: 0,
              isr: 0,
              generation: 0,
              queueSelect: 0,
              configVector: 65535,
              deviceFeatureSelect: 0,
              driverFeatureSelect: 0,
              driverFeatures: '0x0',
              queues: null,
              config: null,
              msix: null,
              ...(device as object),
            },
          },
        ],
      }),
    })),
  fc
    .constantFrom(
      'width=4&width=4',
      'limit=0',
      'limit=100000',
      'cursor=%00',
      'cursor=zz',
      'kind=pfs',
      'pf=zz',
    )
    .map((q) => ({
      what: 'bad list query',
      method: 'GET' as const,
      path: q.startsWith('width') ? `/api/v1/functions/${VF}/config/0?${q}` : `/api/v1/functions?${q}`,
    })),
  fc
    .constantFrom('types=nope', 'types=notify,,x', `bdf=${DISABLED_VF}`, 'bdf=zz', 'bdf=0000:09:00.0', 'x=1')
    .map((q) => ({ what: 'bad event filter', method: 'GET' as const, path: `/api/v1/events?${q}` })),
  fc
    .constantFrom<unknown>(
      { enabled: true, depth: 0 },
      { enabled: true, depth: 1025 },
      { enabled: 'yes' },
      {},
      { enabled: true, depth: 1.5 },
    )
    .map((b) => ({
      what: 'bad trace request',
      method: 'PUT' as const,
      path: `/api/v1/functions/${VF}/trace`,
      body: json(b),
    })),
  fc
    .constantFrom<unknown>(
      {},
      { bdf: '0000:01:00.0', type: 'net', totalVfs: 1 },
      { bdf: 'zz', type: 'net', totalVfs: 1 },
      { bdf: '0000:40:00.0', type: 'gpu', totalVfs: 1 },
      { bdf: '0000:40:00.0', type: 'net', totalVfs: 70000 },
    )
    .map((b) => ({
      what: 'bad PF',
      method: 'POST' as const,
      path: '/api/v1/pfs',
      body: json(b),
    })),
  fc
    .constantFrom(
      '/api/v1/nope',
      '/api/v2/functions',
      '/api/v1/functions/0000:01:00.1/config',
      '/api/v1/functions/0000:01:00.1/bars/2',
      '/%',
      '/api/v1/functions//config/0',
    )
    .map((p) => ({ what: 'unknown route', method: 'POST' as const, path: p, body: '{}' })),
  fc.constantFrom('DELETE', 'PATCH').map((m) => ({
    what: `method ${m}`,
    method: m as Dispatcher.HttpMethod,
    path: `/api/v1/functions/${VF}/config/0`,
  })),
);

async function send(r: BadRequest): Promise<void> {
  const headers = { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...r.headers };
  const res = await http.request({
    method: r.method,
    path: r.path,
    body: r.body,
    headers,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const text = await res.body.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const answer = {
    status: res.statusCode,
    type: String(res.headers['content-type'] ?? ''),
    text,
    json: parsed,
  };
  const label = `${r.what}: ${r.method} ${r.path.slice(0, 120)} ${String(r.body ?? '').slice(0, 120)}`;
  if (r.batch && answer.status === 200) {
    const results = (parsed as { results: Array<{ ok: boolean; error?: { code: string } }> }).results;
    expect(results.length, label).toBeGreaterThan(0);
    for (const x of results) {
      expect(x.ok, `${label}: ${text.slice(0, 300)}`).toBe(false);
      expect(x.error?.code, label).toMatch(/^VMMR_ERR_/);
      tally.batchOps++;
    }
    return;
  }
  expectProblem(answer, label);
}

async function stateNow(): Promise<string> {
  const a = await call(http, 'GET', '/api/v1/state');
  expect(a.status).toBe(200);
  return a.text;
}

describe('bad requests over HTTP', () => {
  it(
    `fuzzed bad requests are all 4xx problem+json and change nothing (${SECONDS}s)`,
    async () => {
      const before = await stateNow();
      await fc.assert(
        fc.asyncProperty(fc.array(bad, { minLength: 1, maxLength: 16 }), async (requests) => {
          // Sent concurrently: the server must not mix them up either.
          await Promise.all(
            requests.map(async (r) => {
              tally.bad++;
              await send(r);
            }),
          );
        }),
        { numRuns: Number.MAX_SAFE_INTEGER, plugins: [fc.interruptAfterTimeLimit(SECONDS * 1000)] },
      );
      expect(await stateNow()).toBe(before);
    },
    SECONDS * 1000 + 60_000,
  );

  it('malformed HTTP on a raw socket gets a problem document, then the connection closes', async () => {
    const { port } = new URL(srv.url);
    const garbage = [
      'GARBAGE\r\n\r\n',
      'GET / HTTP/9.9\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'PUT /api/v1/pfs/0000:01:00.0/sriov HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n',
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n',
      '\u0000\u0001\u0002\r\n\r\n',
    ];
    for (const g of garbage) {
      tally.raw++;
      const reply = await rawExchange(Number(port), [g], 5000);
      expect(reply.closed, JSON.stringify(g.slice(0, 60))).toBe(true);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(reply.data)?.[1]);
      expect(
        status,
        `${JSON.stringify(g.slice(0, 60))} -> ${reply.data.slice(0, 200)}`,
      ).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(500);
      expect(reply.data.toLowerCase()).toContain('content-type: application/problem+json');
    }
  });
});

interface RawReply {
  data: string;
  closed: boolean;
  ms: number;
}

/** Writes the pieces to a fresh connection, then waits for the server to answer and close. */
function rawExchange(port: number, pieces: string[], waitMs: number): Promise<RawReply> {
  return new Promise((resolveReply) => {
    const t0 = Date.now();
    const socket: Socket = connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolveReply({ data, closed, ms: Date.now() - t0 });
    };
    socket.on('data', (d) => (data += d.toString('latin1')));
    socket.on('close', () => finish(true));
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      for (const p of pieces) socket.write(p);
    });
    setTimeout(() => finish(false), waitMs).unref();
  });
}

describe('every route, every method', () => {
  it('any method on any documented path answers in time: a result or a 4xx problem, never a 5xx or a hang', async () => {
    const doc = await call(http, 'GET', '/openapi.json');
    const paths = Object.keys((doc.json as { paths: Record<string, unknown> }).paths);
    const values: Record<string, string> = { bdf: VF, offset: '0x4', n: '2', port: '0' };
    for (const template of paths) {
      const path = template.replace(/\{(\w+)\}/g, (_m, k: string) => values[k] ?? '0');
      for (const method of ['HEAD', 'OPTIONS', 'DELETE', 'PATCH', 'TRACE', 'PROPFIND'] as const) {
        tally.bad++;
        const res = await http.request({
          method: method as Dispatcher.HttpMethod,
          path,
          headersTimeout: 5000,
          bodyTimeout: 5000,
        });
        const text = await res.body.text();
        const label = `${method} ${path} -> ${res.statusCode} ${text.slice(0, 200)}`;
        expect(res.statusCode, label).toBeLessThan(500);
        if (res.statusCode >= 400 && method !== 'HEAD') {
          expectProblem(
            {
              status: res.statusCode,
              type: String(res.headers['content-type']),
              text,
              json: JSON.parse(text),
            },
            label,
          );
        }
      }
    }
    // No method left a stream (or anything else) open behind it.
    expect(srv.server.app.vmmr.sse.size).toBe(0);
  }, 60_000);
});

describe('slow clients and subscriber floods', () => {
  it('slow-loris connections are cut off with 408 while everyone else is served', async () => {
    const { port } = new URL(srv.url);
    const partial = [
      'GET /healthz HTTP/1.1\r\nHost: x\r\n', // headers never end
      'PUT /api/v1/pfs/0000:01:00.0/sriov HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"num', // body never ends
      'GET /heal', // request line never ends
    ];
    const sockets = Array.from({ length: 60 }, (_, i) =>
      rawExchange(Number(port), [partial[i % partial.length]!], 8000),
    );
    tally.slowLoris += 60;
    // Meanwhile, normal clients are served at once.
    for (let i = 0; i < 20; i++) {
      const a = await call(http, 'GET', '/healthz');
      expect(a.status).toBe(200);
      const r = await call(http, 'GET', `/api/v1/functions/${VF}/config/0?width=4`);
      expect(r.status).toBe(200);
    }
    const replies = await Promise.all(sockets);
    for (const r of replies) {
      expect(r.closed, 'the server closed the stalled connection').toBe(true);
      expect(r.ms).toBeLessThan(7000);
      if (r.data) {
        expect(r.data).toMatch(/^HTTP\/1\.1 408 /);
        expect(r.data.toLowerCase()).toContain('content-type: application/problem+json');
      }
    }
  }, 30_000);

  it('a flood of event-stream subscribers: exactly VMMR_MAX_SUBSCRIBERS get a stream, the others 429 problem+json', async () => {
    const max = Number(LIMITS.VMMR_MAX_SUBSCRIBERS);
    const flood = await Promise.allSettled(Array.from({ length: 120 }, () => openStream(srv.url)));
    const streams = flood
      .filter((r): r is PromiseFulfilledResult<OpenStream> => r.status === 'fulfilled')
      .map((r) => r.value);
    const refused = flood
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => String((r.reason as Error).message));
    tally.subscribers += streams.length;
    tally.refusedSubscribers += refused.length;
    expect(streams.length).toBe(max);
    for (const head of refused) {
      expect(head).toMatch(/^HTTP\/1\.1 429 /);
      expect(head.toLowerCase()).toContain('content-type: application/problem+json');
      expect(head).toContain('VMMR_ERR_TOO_MANY');
    }
    expect((await call(http, 'GET', '/healthz')).status).toBe(200);
    // Closing one frees a place.
    streams.pop()!.close();
    await new Promise((r) => setTimeout(r, 100));
    const again = await openStream(srv.url);
    tally.subscribers++;
    streams.push(again);
    for (const st of streams) st.close();
  });
});

interface OpenStream {
  close(): void;
}

function openStream(url: string): Promise<OpenStream> {
  const { port } = new URL(url);
  return new Promise((resolveStream, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let head = '';
    socket.on('connect', () =>
      socket.write('GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n'),
    );
    socket.on('data', (d) => {
      head += d.toString();
      if (head.includes('\r\n\r\n')) {
        if (/^HTTP\/1\.1 200 /.test(head)) {
          resolveStream({ close: () => socket.destroy() });
          socket.removeAllListeners('data');
        } else if (/\r\n\r\n[\s\S]*\}\s*$/.test(head)) {
          // A refusal: wait for its problem document, then report the whole answer.
          reject(new Error(head));
          socket.destroy();
        }
      }
    });
    socket.on('error', reject);
  });
}

describe('health', () => {
  it('/healthz answered throughout', () => {
    expect(tally.healthz).toBeGreaterThan(0);
    expect(healthErrors).toEqual([]);
  });
});
