import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, type LogLevel } from '../../src/server/config.js';
import { buildApp, type VmmrApp } from '../../src/server/app.js';
import { startServer } from '../../src/server/main.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';

/** Collects pino's JSON lines. */
function logSink(): { stream: Writable; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { stream, lines };
}

const apps: VmmrApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function app(logLevel: LogLevel = 'info', logger?: boolean | object): Promise<VmmrApp> {
  const config = { ...loadConfig({}), logLevel };
  const a = await buildApp({ config, topology: DEFAULT_TOPOLOGY, logger: logger ?? false });
  apps.push(a);
  return a;
}

describe('GET /healthz', () => {
  it('answers 200 {"status":"ok"} as JSON', async () => {
    const res = await (await app()).inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ status: 'ok' });
    expect(res.body).toBe('{"status":"ok"}');
  });

  it('answers HEAD too', async () => {
    const res = await (await app()).inject({ method: 'HEAD', url: '/healthz' });
    expect(res.statusCode).toBe(200);
  });

  it('answers 404 as problem+json for unknown routes', async () => {
    const res = await (await app()).inject({ method: 'GET', url: '/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({
      status: 404,
      code: 'VMMR_ERR_NOT_FOUND',
      detail: 'no route GET /nope',
    });
  });
});

describe('request logging', () => {
  it('logs nothing per request at info', async () => {
    const sink = logSink();
    const a = await app('info', { stream: sink.stream });
    await a.inject({ method: 'GET', url: '/healthz' });
    await a.inject({ method: 'GET', url: '/missing' });
    expect(sink.lines.filter((l) => l.reqId !== undefined)).toEqual([]);
  });

  it('logs one debug line per request at debug', async () => {
    const sink = logSink();
    const a = await app('debug', { stream: sink.stream });
    await a.inject({ method: 'GET', url: '/healthz' });
    const requestLines = sink.lines.filter((l) => l.msg === 'request');
    expect(requestLines).toHaveLength(1);
    expect(requestLines[0]).toMatchObject({ level: 20, method: 'GET', url: '/healthz', statusCode: 200 });
    expect(typeof requestLines[0]?.ms).toBe('number');
  });

  it('still logs 5xx errors at error level', async () => {
    const sink = logSink();
    const config = loadConfig({});
    const a = await buildApp({
      config,
      topology: DEFAULT_TOPOLOGY,
      logger: { stream: sink.stream },
      routes: [
        (inst) => {
          inst.get('/boom', async () => {
            throw new Error('kaboom');
          });
        },
      ],
    });
    apps.push(a);
    const res = await a.inject({ method: 'GET', url: '/boom' });
    expect(res.statusCode).toBe(500);
    expect(sink.lines.some((l) => l.level === 50 && l.msg === 'kaboom')).toBe(true);
  });
});

describe('startServer', () => {
  it('listens on an ephemeral port, serves /healthz, and closes', async () => {
    const sink = logSink();
    const config = loadConfig({ PORT: '0' });
    const server = await startServer(config, DEFAULT_TOPOLOGY, {
      handleSignals: false,
      logger: { stream: sink.stream },
    });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(server.address.port).toBeGreaterThan(0);
      const res = await fetch(`${server.url}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok' });
      expect(sink.lines.some((l) => l.url === server.url && l.pfs === 2)).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('fails with a one-line ListenError when the port is taken', async () => {
    const first = await startServer(loadConfig({ PORT: '0' }), DEFAULT_TOPOLOGY, {
      handleSignals: false,
      logger: false,
    });
    try {
      const port = String(first.address.port);
      await expect(
        startServer(loadConfig({ PORT: port }), DEFAULT_TOPOLOGY, { handleSignals: false, logger: false }),
      ).rejects.toThrow(`cannot listen on 127.0.0.1:${port}: address already in use`);
    } finally {
      await first.close();
    }
  });
});
