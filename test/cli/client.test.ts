/**
 * The client's plumbing without the REST service: the server-sent events parser, what is sent
 * (bearer token, paths, bodies), and how failures read when nobody or something else answers.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatEvent, eventJson, SseParser } from '../../src/cli/events.js';
import { describeFunction, parseLspciDump } from '../../src/cli/format.js';
import { vfRuns } from '../../src/cli/vfs.js';
import { vmmr } from '../support/cli.js';

describe('SseParser', () => {
  it('splits messages on blank lines, across chunk boundaries and line-ending styles', () => {
    const p = new SseParser();
    expect(p.push(': comment\n\nid: 1\nevent: notify\nda')).toEqual([]);
    expect(p.push('ta: {"bdf":"0000:01:00.1","queue":0}\n\nid: 2\r\nevent: status\r')).toEqual([
      { id: '1', event: 'notify', data: '{"bdf":"0000:01:00.1","queue":0}' },
    ]);
    expect(p.push('\ndata:{"from":0,\r\ndata: "to":1}\r\n\r\n')).toEqual([
      { id: '2', event: 'status', data: '{"from":0,\n"to":1}' },
    ]);
    expect(p.push('data: x\n\n')).toEqual([{ id: '2', event: 'message', data: 'x' }]);
    expect(p.push('event: lonely\n\n')).toEqual([]);
  });

  it('formats SEQ TYPE BDF details, and JSON lines', () => {
    const message = {
      id: '7',
      event: 'vf-enable',
      data: '{"type":"vf-enable","bdf":"0000:01:00.0","numVfs":2,"first":"0000:01:00.1","last":"0000:01:00.2"}',
    };
    expect(formatEvent(message)).toBe(
      '7 vf-enable 0000:01:00.0 numVfs=2 first=0000:01:00.1 last=0000:01:00.2',
    );
    expect(eventJson(message)).toEqual({
      seq: 7,
      type: 'vf-enable',
      bdf: '0000:01:00.0',
      numVfs: 2,
      first: '0000:01:00.1',
      last: '0000:01:00.2',
    });
    expect(
      formatEvent({
        id: '3',
        event: 'notify',
        data: '{"seq":3,"type":"notify","bdf":"0000:01:00.1","queue":0,"note":"a b"}',
      }),
    ).toBe('3 notify 0000:01:00.1 queue=0 note="a b"');
  });
});

describe('formatting helpers', () => {
  it('names functions like lspci from the device-types table', () => {
    expect(describeFunction('net', 'pf')).toBe(
      'Ethernet controller: Red Hat, Inc. Virtio 1.0 network device',
    );
    expect(describeFunction('block', 'vf')).toBe(
      'SCSI storage controller: Red Hat, Inc. Virtio block device (transitional MMR VF)',
    );
    expect(describeFunction('console', 'guest')).toBe(
      'Communication controller: Red Hat, Inc. Virtio console',
    );
    expect(describeFunction('rng', 'pf')).toBe(
      'Unclassified device [00ff]: Red Hat, Inc. Virtio 1.0 entropy device',
    );
  });

  it('reads back lspci -xxxx dumps', () => {
    const parsed = parseLspciDump('0000:01:00.0 Ethernet controller: x\n00: f4 1a 41 10\n10: 01\n\n');
    expect(parsed.bdf).toBe('0000:01:00.0');
    expect(parsed.description).toBe('Ethernet controller: x');
    expect(Array.from(parsed.bytes.subarray(0, 5))).toEqual([0xf4, 0x1a, 0x41, 0x10, 0xff]);
    expect(parsed.bytes[0x10]).toBe(1);
    expect(() => parseLspciDump('x\nzz\n')).toThrow('malformed config dump line "zz"');
  });

  it('summarises VF runs: all up to the limit, else first, gap, last', () => {
    expect(vfRuns(3, false, 8)).toHaveLength(3);
    expect(vfRuns(9, false, 8)).toEqual([
      { kind: 'vf', index: 0 },
      { kind: 'gap', from: 1, to: 7 },
      { kind: 'vf', index: 8 },
    ]);
    expect(vfRuns(9, true, 8)).toHaveLength(9);
  });
});

describe('talking to a server', () => {
  let server: Server;
  let url: string;
  const seen: Array<{ method?: string; url?: string; auth?: string; body: string }> = [];
  const answer = new Map<string, (req: IncomingMessage) => [number, string, string]>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
        const [status, type, text] = answer.get(`${req.method} ${req.url?.split('?')[0]}`)?.(req) ?? [
          404,
          'application/json',
          '{"message":"Route not found","statusCode":404}',
        ];
        res.writeHead(status, { 'content-type': type }).end(text);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('sends the bearer token (--token wins over VMMR_TOKEN) and the access as JSON', async () => {
    answer.set('PUT /api/v1/functions/0000:01:00.0/config/0x4', () => [200, 'application/json', '{}']);
    answer.set('GET /api/v1/functions/0000:01:00.0/config/0x4', () => [
      200,
      'application/json',
      '{"value":"0x6"}',
    ]);
    seen.length = 0;
    const r = await vmmr(['cfg', '1:0.0', '4.w=6', 'COMMAND', '--url', `${url}/`], {
      env: { VMMR_TOKEN: 'from-env' },
    });
    expect(r).toEqual({ code: 0, stdout: '0006\n', stderr: '' });
    expect(seen).toEqual([
      {
        method: 'PUT',
        url: '/api/v1/functions/0000:01:00.0/config/0x4',
        auth: 'Bearer from-env',
        body: '{"width":2,"value":"0x6"}',
      },
      {
        method: 'GET',
        url: '/api/v1/functions/0000:01:00.0/config/0x4?width=2',
        auth: 'Bearer from-env',
        body: '',
      },
    ]);
    seen.length = 0;
    await vmmr(['cfg', '01:00.0', 'COMMAND', '--token', 'opt', '--url', url], {
      env: { VMMR_TOKEN: 'from-env' },
    });
    expect(seen[0]?.auth).toBe('Bearer opt');
  });

  it('turns problem+json into "detail (code)" and other failures into a readable line', async () => {
    answer.set('GET /api/v1/pfs', () => [
      409,
      'application/problem+json',
      '{"type":"about:blank","title":"Conflict","status":409,"code":"VMMR_ERR_X","detail":"it is busy"}',
    ]);
    expect(await vmmr(['ls', '--url', url])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'vmmr: it is busy (VMMR_ERR_X)\n',
    });
    answer.set('GET /api/v1/pfs', () => [401, 'application/json', '{}']);
    expect((await vmmr(['ls', '--url', url])).stderr).toBe(
      'vmmr: GET /api/v1/pfs: HTTP 401, not authorized: pass --token or set VMMR_TOKEN\n',
    );
    answer.delete('GET /api/v1/pfs');
    expect((await vmmr(['ls', '--url', url])).stderr).toBe(
      `vmmr: GET /api/v1/pfs: HTTP 404: ${url} has no such route (is it a vmmr service of this version?)\n`,
    );
  });

  it('explains which URL it tried when nobody answers (exit 1), and refuses a bad URL (exit 2)', async () => {
    const dead = await new Promise<string>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(`http://127.0.0.1:${port}`));
      });
    });
    expect(await vmmr(['ls'], { env: { VMMR_URL: dead } })).toEqual({
      code: 1,
      stdout: '',
      stderr: `vmmr: cannot reach the vmmr service at ${dead}: connection refused (is \`vmmr serve\` running? set --url or VMMR_URL)\n`,
    });
    expect(await vmmr(['ls', '--url', 'nope'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'vmmr: --url "nope" is not a URL: expected e.g. http://127.0.0.1:8080\n',
    });
  });

  it('ends an event stream the service closes with exit 1, and a dropped one with its reason', async () => {
    answer.set('GET /api/v1/events', () => [
      200,
      'text/event-stream',
      'id: 1\nevent: notify\ndata: {"bdf":"0000:01:00.1","queue":1,"via":"notify-region"}\n\n',
    ]);
    expect(await vmmr(['events', '--url', url])).toEqual({
      code: 1,
      stdout: '1 notify 0000:01:00.1 queue=1 via=notify-region\n',
      stderr: `vmmr: the service at ${url} closed the event stream\n`,
    });
    answer.set('GET /api/v1/events', () => [
      200,
      'text/event-stream',
      'id: 1\nevent: status\ndata: {"seq":1,"type":"status","bdf":"0000:01:00.1","from":0,"to":1}\n\n' +
        'event: dropped\ndata: {"reason":"slow-subscriber","queueLimit":1024,"lastSeq":1}\n\n',
    ]);
    expect(await vmmr(['events', '--url', url, '--json'])).toEqual({
      code: 1,
      stdout: '{"seq":1,"type":"status","bdf":"0000:01:00.1","from":0,"to":1}\n',
      stderr:
        '{"error":{"message":"the service dropped this event stream after event 1: slow-subscriber","exitCode":1}}\n',
    });
    answer.set('GET /api/v1/events', () => [
      200,
      'text/event-stream',
      'event: end\ndata: {"reason":"function-removed","lastSeq":0,"bdf":"0000:01:00.1","detail":"0000:01:00.1 is no longer enabled"}\n\n',
    ]);
    expect(await vmmr(['events', '--url', url, '--bdf', '01:00.1'])).toEqual({
      code: 0,
      stdout: '',
      stderr:
        'vmmr: the service ended the event stream after event 0: function-removed: 0000:01:00.1 is no longer enabled\n',
    });
  });
});
