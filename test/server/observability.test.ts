/**
 * What an operator sees: refusals that name the setting to change, the 408 of a slow client,
 * the counters of /metrics, and a log whose start-up line and shutdown lines read right.
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForChildren, type Built } from '../support/build.js';
import { call, NET_PF, testApp, VF1 } from '../support/server.js';
import { startServer } from '../../src/server/main.js';
import { loadConfig } from '../../src/server/config.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';

const json = { 'content-type': 'application/json' };

describe('refusals name what to change', () => {
  it('a body over the limit names VMMR_BODY_LIMIT and the limit', async () => {
    const app = await testApp({ env: { VMMR_BODY_LIMIT: '1KiB' } });
    const res = await call(
      app,
      'POST',
      '/api/v1/access',
      JSON.stringify({ ops: [], pad: 'x'.repeat(2048) }),
      json,
    );
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: 'VMMR_ERR_TOO_LARGE', title: 'Request too large' });
    expect(res.json().detail).toBe(
      'the request body is larger than VMMR_BODY_LIMIT (1024 bytes) allows: send less, or start the server with a larger VMMR_BODY_LIMIT',
    );
  });

  it('a request not received in time is a 408 titled as a timeout, not a malformed request', async () => {
    const server = await startServer(
      loadConfig({ PORT: '0', VMMR_REQUEST_TIMEOUT: '100' }),
      DEFAULT_TOPOLOGY,
      {
        handleSignals: false,
        logger: false,
      },
    );
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(server.address.port, '127.0.0.1', () =>
          socket.write('GET /healthz HTTP/1.1\r\n'),
        );
        let data = '';
        socket.on('data', (c: Buffer) => (data += c.toString()));
        socket.on('close', () => resolve(data));
        socket.on('error', reject);
      });
      expect(reply).toMatch(/^HTTP\/1\.1 408 /);
      const problem = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
      expect(problem).toMatchObject({ status: 408, title: 'Request timeout' });
      expect(problem['detail']).toContain('VMMR_REQUEST_TIMEOUT');
    } finally {
      await server.close();
    }
  });
});

/** The value of one sample of the Prometheus text, or undefined when there is none. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('/metrics', () => {
  it('counts events by type, interrupts, notifies and dropped streams, and names the build', async () => {
    const app = await testApp();
    const put = (url: string, body: unknown) => call(app, 'PUT', url, JSON.stringify(body), json);
    expect((await put(`/api/v1/pfs/${NET_PF}/sriov`, { numVfs: 2 })).statusCode).toBe(200);
    await put(`/api/v1/functions/${VF1}/guest/config/0x04`, { width: 2, value: 1 });
    await put(`/api/v1/functions/${VF1}/guest/io/0x12`, { width: 1, value: 1 });
    await put(`/api/v1/functions/${VF1}/guest/io/0x12`, { width: 1, value: 3 });
    await put(`/api/v1/functions/${VF1}/guest/io/0x10`, { width: 2, value: 0 });
    await put(`/api/v1/functions/${VF1}/guest/io/0x10`, { width: 2, value: 1 });
    expect(
      (await call(app, 'POST', `/api/v1/functions/${VF1}/interrupt`, '{"queue":0}', json)).statusCode,
    ).toBe(200);
    const text = (await call(app, 'GET', '/metrics')).body;
    expect(sample(text, 'vmmr_events_total', '{type="vf-enable"}')).toBe(1);
    expect(sample(text, 'vmmr_events_total', '{type="status"}')).toBe(2);
    expect(sample(text, 'vmmr_events_total', '{type="notify"}')).toBe(2);
    expect(sample(text, 'vmmr_notifies_total', '{via="notify-region"}')).toBe(2);
    expect(sample(text, 'vmmr_interrupts_total', '{mode="intx"}')).toBe(1);
    expect(sample(text, 'vmmr_event_streams_dropped_total')).toBe(0);
    expect(sample(text, 'vmmr_event_subscribers')).toBe(0);
    expect(sample(text, 'vmmr_build_info', `{version="0.1.0",node="${process.versions.node}"}`)).toBe(1);
  });
});

describe('the log of a real process', () => {
  let built: Built;
  beforeAll(async () => {
    built = await buildForChildren('observability');
  }, 120_000);
  afterAll(() => built?.remove());

  it('names vfs as /readyz does at start-up, and writes "stopped" after "shutting down"', async () => {
    const child = spawn(process.execPath, [built.cli, 'serve'], {
      env: { PATH: process.env['PATH'] ?? '', PORT: '0', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const lines = () =>
      out
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const ready = await new Promise<Record<string, unknown>>((resolve) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const line = lines().find((l) => String(l['msg']).startsWith('vmmr ready on'));
        if (line) resolve(line);
      });
    });
    const readyz = (await (await fetch(`${String(ready['url'])}/readyz`)).json()) as Record<string, unknown>;
    expect({ pfs: ready['pfs'], vfs: ready['vfs'] }).toEqual({ pfs: readyz['pfs'], vfs: readyz['vfs'] });
    expect(ready['initialVfs']).toBe(2048);
    const code = await new Promise<number | null>((resolve) => {
      child.on('close', resolve);
      child.kill('SIGTERM');
    });
    expect(code).toBe(0);
    const messages = lines().map((l) => l['msg']);
    expect(messages.slice(-2)).toEqual(['shutting down', 'stopped']);
  });
});
