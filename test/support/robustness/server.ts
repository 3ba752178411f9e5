/**
 * A real listening vmmr server in this process (startServer, port 0) and small HTTP helpers.
 */
import { Writable } from 'node:stream';
import { Pool, request, type Dispatcher } from 'undici';
import { expect } from 'vitest';
import { loadConfig } from '../../../src/server/config.js';
import { startServer, type RunningServer } from '../../../src/server/main.js';
import { parseTopology, type ResolvedTopology } from '../../../src/machine/topology.js';

export const TOPOLOGY = parseTopology(
  {
    pfs: [
      { bdf: '0000:01:00.0', type: 'net', totalVfs: 64 },
      { bdf: '0000:02:00.0', type: 'block', totalVfs: 16, policy: 'compat' },
      { bdf: '0000:03:00.0', type: 'console', totalVfs: 4 },
    ],
  },
  'robustness topology',
);

export interface Started {
  server: RunningServer;
  url: string;
  /** Lines pino wrote (JSON), when the log was captured. */
  logs: string[];
  close(): Promise<void>;
}

/** Starts vmmr on 127.0.0.1:0 with extra environment settings; logs are captured, not printed. */
export async function start(
  env: Record<string, string> = {},
  topology: ResolvedTopology = TOPOLOGY,
  logLevel = 'warn',
): Promise<Started> {
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: logLevel, ...env });
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const server = await startServer(config, topology, { handleSignals: false, logger: { stream } });
  return { server, url: server.url, logs, close: () => server.close() };
}

export interface Answer {
  status: number;
  type: string;
  text: string;
  json: unknown;
}

export async function call(
  dispatcher: Dispatcher | string,
  method: Dispatcher.HttpMethod,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const opts = {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body:
      body === undefined
        ? undefined
        : typeof body === 'string' || Buffer.isBuffer(body)
          ? body
          : JSON.stringify(body),
  };
  const res =
    typeof dispatcher === 'string'
      ? await request(`${dispatcher}${path}`, opts)
      : await dispatcher.request({ path, ...opts });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), text, json };
}

/** The answer is a 4xx problem document with a VMMR_ERR_* code and a one-line detail. */
export function expectProblem(
  a: Answer,
  what: string,
  statuses?: number[],
): { code: string; detail: string } {
  const where = `${what} -> ${a.status} ${a.type} ${a.text.slice(0, 300)}`;
  expect(a.status, where).toBeGreaterThanOrEqual(400);
  expect(a.status, where).toBeLessThan(500);
  if (statuses) expect(statuses, where).toContain(a.status);
  expect(a.type, where).toMatch(/^application\/problem\+json/);
  const p = a.json as { code?: unknown; status?: unknown; detail?: unknown; type?: unknown; title?: unknown };
  expect(typeof p?.code === 'string' && p.code.startsWith('VMMR_ERR_'), where).toBe(true);
  expect(p.status, where).toBe(a.status);
  expect(typeof p.detail === 'string' && p.detail.length > 0 && !p.detail.includes('\n'), where).toBe(true);
  expect(typeof p.title, where).toBe('string');
  return { code: p.code as string, detail: p.detail as string };
}

export function pool(url: string, connections = 32): Pool {
  return new Pool(url, { connections, pipelining: 1 });
}

/** Enables n VFs on a PF through the sysfs-like route. */
export async function setNumVfs(d: Dispatcher | string, pf: string, numVfs: number): Promise<Answer> {
  return call(d, 'PUT', `/api/v1/pfs/${pf}/sriov`, { numVfs });
}
