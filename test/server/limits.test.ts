/**
 * Limits: each is configurable, each is enforced with a clear error, each is documented in the
 * README `## Configuration` table (the single place), and a bad value stops startup with one line.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'undici';
import { ConfigError, loadConfig } from '../../src/server/config.js';
import { ROOT } from '../support/build.js';
import { call, expectProblem, pool, setNumVfs, start, type Started } from '../support/robustness/server.js';
import { openSse } from '../support/robustness/sse.js';

const LIMITS = {
  VMMR_MAX_VFS: '10',
  VMMR_MAX_BATCH: '32',
  VMMR_BODY_LIMIT: '8KiB',
  VMMR_MAX_SUBSCRIBERS: '3',
  VMMR_SSE_QUEUE: '8',
  VMMR_MAX_TRACE_DEPTH: '100',
  VMMR_REQUEST_TIMEOUT: '500',
};

let srv: Started;
let http: Pool;
const enforced: string[] = [];

beforeAll(async () => {
  srv = await start(LIMITS);
  http = pool(srv.url, 8);
});

afterAll(async () => {
  await http?.close();
  await srv?.close();
  console.log(`limits: enforced ${enforced.join(', ')}`);
});

/** VF 1 of PF 01:00.0. */
const VF = '0000:01:00.1';

describe('limits are enforced with a clear error', () => {
  it('VMMR_MAX_VFS: VF Enable beyond the process limit is 409 VMMR_ERR_LIMIT, nothing enabled', async () => {
    const over = await setNumVfs(http, '0000:01:00.0', 11);
    expect(expectProblem(over, 'VFs over the limit', [409]).code).toBe('VMMR_ERR_LIMIT');
    expect((await setNumVfs(http, '0000:01:00.0', 8)).status).toBe(200);
    const other = await setNumVfs(http, '0000:02:00.0', 3);
    expect(expectProblem(other, 'VFs over the limit on another PF', [409]).code).toBe('VMMR_ERR_LIMIT');
    expect((await setNumVfs(http, '0000:02:00.0', 2)).status).toBe(200);
    // The refused enables left nothing behind: exactly 8 + 2 VFs are live.
    const list = await call(http, 'GET', '/api/v1/functions?kind=vf&limit=100');
    expect((list.json as { total: number }).total).toBe(10);
    enforced.push('VMMR_MAX_VFS');
  });

  it('VMMR_MAX_BATCH: one operation more is 413 VMMR_ERR_TOO_LARGE and nothing runs', async () => {
    const op = (i: number): unknown => ({
      bdf: VF,
      space: 'bar2',
      op: 'write',
      offset: 0x2008,
      width: 4,
      value: i,
    });
    const ok = await call(http, 'POST', '/api/v1/access', {
      ops: Array.from({ length: 32 }, (_, i) => op(i)),
    });
    expect(ok.status, ok.text.slice(0, 200)).toBe(200);
    const over = await call(http, 'POST', '/api/v1/access', {
      ops: Array.from({ length: 33 }, (_, i) => op(1000 + i)),
    });
    expect(expectProblem(over, 'batch over the limit', [413]).code).toBe('VMMR_ERR_TOO_LARGE');
    const after = await call(http, 'GET', `/api/v1/functions/${VF}/bars/2/0x2008?width=4`);
    expect(Number((after.json as { value: string }).value)).toBe(31);
    enforced.push('VMMR_MAX_BATCH');
  });

  it('VMMR_BODY_LIMIT: a larger body is 413 VMMR_ERR_TOO_LARGE', async () => {
    const big = JSON.stringify({ ops: [], pad: 'x'.repeat(9 * 1024) });
    const a = await call(http, 'POST', '/api/v1/access', big);
    expect(expectProblem(a, 'body over the limit', [413]).code).toBe('VMMR_ERR_TOO_LARGE');
    const b = await call(http, 'PUT', `/api/v1/functions/${VF}/bars/2/0`, Buffer.alloc(9 * 1024), {
      'content-type': 'application/octet-stream',
    });
    expect(expectProblem(b, 'raw body over the limit', [413]).code).toBe('VMMR_ERR_TOO_LARGE');
    enforced.push('VMMR_BODY_LIMIT');
  });

  it('VMMR_MAX_SUBSCRIBERS: one stream more is 429 VMMR_ERR_TOO_MANY', async () => {
    const streams = await Promise.all([0, 1, 2].map(() => openSse(srv.url, '/api/v1/events')));
    const over = await call(srv.url, 'GET', '/api/v1/events');
    expect(expectProblem(over, 'subscriber over the limit', [429]).code).toBe('VMMR_ERR_TOO_MANY');
    for (const s of streams) s.close();
    enforced.push('VMMR_MAX_SUBSCRIBERS');
  });

  it('VMMR_SSE_QUEUE: a stream that falls further behind is dropped with a final event', async () => {
    const stream = await openSse(srv.url, '/api/v1/events');
    // One batch of 20 notifications: 20 events queued before the stream can send any.
    const ops = Array.from({ length: 20 }, () => ({
      bdf: VF,
      space: 'bar2',
      op: 'write',
      offset: 0x400,
      width: 2,
      value: 0,
    }));
    const a = await call(http, 'POST', '/api/v1/access', { ops });
    expect(a.status, a.text.slice(0, 200)).toBe(200);
    await stream.closed;
    const last = stream.events[stream.events.length - 1];
    expect(last?.event).toBe('dropped');
    expect(last?.data.queueLimit).toBe(8);
    enforced.push('VMMR_SSE_QUEUE');
  });

  it('VMMR_MAX_TRACE_DEPTH: a deeper trace ring is 400 VMMR_ERR_BAD_VALUE', async () => {
    const ok = await call(http, 'PUT', `/api/v1/functions/${VF}/trace`, { enabled: true, depth: 100 });
    expect(ok.status, ok.text).toBe(200);
    const over = await call(http, 'PUT', `/api/v1/functions/${VF}/trace`, { enabled: true, depth: 101 });
    expect(expectProblem(over, 'trace deeper than the limit', [400]).code).toBe('VMMR_ERR_BAD_VALUE');
    // Without a depth, the default is capped at the limit.
    const dflt = await call(http, 'PUT', `/api/v1/functions/${VF}/trace`, { enabled: true });
    expect((dflt.json as { depth: number }).depth).toBeLessThanOrEqual(100);
    enforced.push('VMMR_MAX_TRACE_DEPTH');
  });

  it('VMMR_REQUEST_TIMEOUT: a request not sent in time is 408 problem+json', async () => {
    const { connect } = await import('node:net');
    const { port } = new URL(srv.url);
    const t0 = Date.now();
    const reply = await new Promise<string>((resolveReply) => {
      const s = connect(Number(port), '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
      let data = '';
      s.on('data', (d) => (data += d.toString()));
      s.on('close', () => resolveReply(data));
      s.on('error', () => undefined);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(reply.toLowerCase()).toContain('application/problem+json');
    expect(Date.now() - t0).toBeLessThan(3000);
    enforced.push('VMMR_REQUEST_TIMEOUT');
  });
});

describe('limits are configured and documented', () => {
  const VARIABLES = [
    ...readFileSync(join(ROOT, 'src', 'server', 'config.ts'), 'utf8').matchAll(/env\.(VMMR_[A-Z_]+)/g),
  ].map((m) => m[1]!);

  it('every VMMR_* setting read by src/server/config.ts has a row in the README Configuration table', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(
      readme.indexOf('## Configuration'),
      readme.indexOf('\n## ', readme.indexOf('## Configuration') + 5),
    );
    const rows = new Set([...section.matchAll(/^\| `([A-Z_]+)`/gm)].map((m) => m[1]));
    expect(VARIABLES.length).toBeGreaterThanOrEqual(8);
    for (const v of [...VARIABLES, 'VMMR_TOPOLOGY', 'HOST', 'PORT', 'LOG_LEVEL'])
      expect(rows.has(v), `${v} in the README table`).toBe(true);
  });

  it.each([
    ['VMMR_MAX_VFS', '-1'],
    ['VMMR_MAX_BATCH', '0'],
    ['VMMR_BODY_LIMIT', '1TiB'],
    ['VMMR_MAX_SUBSCRIBERS', 'many'],
    ['VMMR_SSE_QUEUE', '1.5'],
    ['VMMR_MAX_TRACE_DEPTH', '0'],
    ['VMMR_REQUEST_TIMEOUT', '10'],
    ['VMMR_STATE_FILE', ''],
    ['VMMR_TOKEN', 'has spaces'],
  ])('%s=%j stops startup with one line naming the variable', (variable, value) => {
    let error: unknown;
    try {
      loadConfig({ [variable]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message.startsWith(`${variable}=`)).toBe(true);
    expect(message).not.toContain('\n');
  });
});
