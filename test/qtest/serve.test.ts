/**
 * The qtest listeners in the service: `vmmr serve` with VMMR_QTEST_SOCKET and VMMR_QTEST_PORT
 * (spawned from the built CLI), next to REST on the same machine; the settings' errors; shutdown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/server/config.js';
import { buildForChildren, type Built } from '../support/build.js';
import { QtestClient } from '../support/qtest/client.js';

const TMP = mkdtempSync(join(tmpdir(), 'vmmr-qtest-serve-'));
let built: Built | undefined;

beforeAll(async () => {
  built = await buildForChildren('qtest-serve');
}, 60_000);

afterAll(() => {
  built?.remove();
  rmSync(TMP, { recursive: true, force: true });
});

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Served {
  child: ChildProcess;
  url: string;
  qtestPort: number;
  exited: Promise<Exit>;
}

function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e = { ...process.env };
  for (const k of [
    'HOST',
    'PORT',
    'LOG_LEVEL',
    'VMMR_TOPOLOGY',
    'VMMR_TOKEN',
    'VMMR_QTEST_SOCKET',
    'VMMR_QTEST_PORT',
  ])
    delete e[k];
  return { ...e, PORT: '0', ...extra };
}

function spawnServe(extra: Record<string, string>): {
  child: ChildProcess;
  exited: Promise<Exit>;
  stdout: () => string;
} {
  const child = spawn(process.execPath, [built!.cli, 'serve'], { env: env(extra), cwd: TMP });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<Exit>((resolve) =>
    child.on('exit', (code) => setImmediate(() => resolve({ code, stdout, stderr }))),
  );
  return { child, exited, stdout: () => stdout };
}

async function serve(extra: Record<string, string>): Promise<Served> {
  const s = spawnServe(extra);
  for (let i = 0; i < 400; i++) {
    const entries = s
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; url?: string; qtest?: string });
    const ready = entries.find((e) => e.msg?.startsWith('vmmr ready'));
    if (ready) {
      const tcp = entries.find((e) => e.qtest && !e.qtest.startsWith('unix:'));
      return {
        child: s.child,
        url: ready.url!,
        qtestPort: tcp ? Number(tcp.qtest!.split(':').pop()) : 0,
        exited: s.exited,
      };
    }
    if (s.child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  s.child.kill('SIGKILL');
  throw new Error(`vmmr serve not ready: ${s.stdout()} ${(await s.exited).stderr}`);
}

describe('vmmr serve with qtest listeners', () => {
  it('serves qtest on the Unix socket and on TCP, over the same machine REST drives; removes the socket on SIGTERM', async () => {
    const socket = join(TMP, 'qtest.sock');
    const s = await serve({ VMMR_QTEST_SOCKET: socket, VMMR_QTEST_PORT: '0' });
    try {
      // The default topology: net PF 01:00.0. REST enables 2 VFs; qtest finds VF 01:00.1.
      const res = await fetch(`${s.url}/api/v1/pfs/0000:01:00.0/sriov`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ numVfs: 2 }),
      });
      expect(res.status).toBeLessThan(300);
      const unix = await QtestClient.connect(socket);
      const tcp = await QtestClient.connect({ host: '127.0.0.1', port: s.qtestPort });
      const cf8 = (rid: number, offset: number): string =>
        `0x${((0x80000000 | (rid << 8) | offset) >>> 0).toString(16)}`;
      const lines = [`outl 0xcf8 ${cf8(0x0101, 0)}`, 'inl 0xcfc', 'endianness'];
      expect(await unix.pipeline(lines)).toEqual(['OK', 'OK 0x10001af4', 'OK little']);
      expect(await tcp.pipeline(['view host', `outl 0xcf8 ${cf8(0x0100, 0)}`, 'inl 0xcfc'])).toEqual([
        'OK',
        'OK',
        'OK 0x10411af4',
      ]);
      // A guest Command write over qtest shows in REST.
      expect(await unix.pipeline([`outl 0xcf8 ${cf8(0x0101, 0x04)}`, 'outw 0xcfc 0x1'])).toEqual([
        'OK',
        'OK',
      ]);
      const guest = await fetch(`${s.url}/api/v1/functions/0000:01:00.1/guest/config/0x4?width=2`);
      expect(((await guest.json()) as { value: string }).value).toBe('0x0001');
      tcp.socket.destroy();
    } finally {
      s.child.kill('SIGTERM');
    }
    const exit = await s.exited;
    expect(exit.code).toBe(0);
    expect(exit.stdout).toContain(`"msg":"qtest listening on unix:${socket}"`);
    expect(existsSync(socket)).toBe(false);
  });

  it('with VMMR_TOKEN the first line must be the token', async () => {
    const socket = join(TMP, 'token.sock');
    const s = await serve({ VMMR_QTEST_SOCKET: socket, VMMR_TOKEN: 'tok-123' });
    try {
      const wrong = await QtestClient.connect(socket);
      expect(await wrong.command('endianness')).toMatch(/^FAIL authentication required/);
      await wrong.whenClosed();
      const right = await QtestClient.connect(socket);
      expect(await right.pipeline(['tok-123', 'endianness'])).toEqual(['OK', 'OK little']);
      right.socket.destroy();
    } finally {
      s.child.kill('SIGTERM');
    }
    expect((await s.exited).code).toBe(0);
  });

  it('replaces a stale socket file, refuses a socket another process serves (exit 1)', async () => {
    const socket = join(TMP, 'stale.sock');
    const stale = createServer();
    await new Promise<void>((resolve) => stale.listen(socket, resolve));
    // A listener that went away without removing its file leaves a socket nobody answers.
    const left = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(join(TMP, 'left.sock'))}, () => process.exit(0))`,
    ]);
    await new Promise((resolve) => left.on('exit', resolve));
    expect(existsSync(join(TMP, 'left.sock'))).toBe(true);
    const taken = spawnServe({ VMMR_QTEST_SOCKET: socket });
    const exit = await taken.exited;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toBe(`vmmr: cannot listen for qtest on unix:${socket}: address already in use\n`);
    stale.close();
    const s = await serve({ VMMR_QTEST_SOCKET: join(TMP, 'left.sock') });
    const q = await QtestClient.connect(join(TMP, 'left.sock'));
    expect(await q.command('endianness')).toBe('OK little');
    q.socket.destroy();
    s.child.kill('SIGTERM');
    expect((await s.exited).code).toBe(0);
  });

  it('does not touch a path that is not a socket', async () => {
    const file = join(TMP, 'not-a-socket');
    writeFileSync(file, 'keep me');
    const exit = await spawnServe({ VMMR_QTEST_SOCKET: file }).exited;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toBe(`vmmr: cannot listen for qtest on unix:${file}: address already in use\n`);
    expect(existsSync(file)).toBe(true);
  });

  it.each([
    [{ VMMR_QTEST_PORT: 'x' }, 'vmmr: VMMR_QTEST_PORT="x" is not a valid port: expected an integer 0..65535'],
    [
      { VMMR_QTEST_PORT: '70000' },
      'vmmr: VMMR_QTEST_PORT="70000" is not a valid port: expected an integer 0..65535',
    ],
    [
      { VMMR_QTEST_SOCKET: '' },
      'vmmr: VMMR_QTEST_SOCKET="" is not a valid path: expected the path of a Unix socket (leave it unset for none)',
    ],
  ])('%j: exits 2 with one line', async (extra, message) => {
    const exit = await spawnServe(extra).exited;
    expect(exit.code).toBe(2);
    expect(exit.stderr).toBe(`${message}\n`);
  });
});

describe('qtest settings', () => {
  it('are off by default and parsed from the environment', () => {
    expect(loadConfig({})).not.toHaveProperty('qtestSocket');
    expect(loadConfig({})).not.toHaveProperty('qtestPort');
    expect(loadConfig({ VMMR_QTEST_SOCKET: '/run/vmmr/qtest.sock', VMMR_QTEST_PORT: '0' })).toMatchObject({
      qtestSocket: '/run/vmmr/qtest.sock',
      qtestPort: 0,
    });
  });

  it('refuse a socket path longer than sun_path holds', () => {
    expect(() => loadConfig({ VMMR_QTEST_SOCKET: `/tmp/${'x'.repeat(110)}` })).toThrow(
      /VMMR_QTEST_SOCKET=".*" is too long for a Unix socket path: at most 107 bytes/,
    );
  });
});
