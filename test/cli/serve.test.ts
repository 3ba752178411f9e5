/**
 * End-to-end: build the CLI with the project's build config, spawn
 * `node <out>/src/cli.js serve` and talk to it over HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForChildren, type Built } from '../support/build.js';

const TMP = mkdtempSync(join(tmpdir(), 'vmmr-cli-'));
let CLI = '';
let built: Built | undefined;

beforeAll(async () => {
  built = await buildForChildren('cli-test');
  CLI = built.cli;
}, 60_000);

afterAll(() => {
  built?.remove();
  rmSync(TMP, { recursive: true, force: true });
});

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['HOST', 'PORT', 'LOG_LEVEL', 'VMMR_TOPOLOGY']) delete env[k];
  return { ...env, ...extra };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<Exit> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv(env), cwd: TMP });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vmmr ${args.join(' ')} did not exit; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // let the pipes drain
      setImmediate(() => resolvePromise({ code, signal, stdout, stderr }));
    });
  });
}

/** Spawns the server and resolves with its URL once it logs readiness. */
function startServe(
  args: string[],
  env: Record<string, string> = {},
  explicitServe = true,
): Promise<{ child: ChildProcess; url: string; logs: () => string; exited: Promise<Exit> }> {
  return new Promise((resolvePromise, reject) => {
    const argv = explicitServe ? [CLI, 'serve', ...args] : [CLI, ...args];
    const child = spawn(process.execPath, argv, { env: cleanEnv(env), cwd: TMP });
    let stdout = '';
    let stderr = '';
    let ready = false;
    const exited = new Promise<Exit>((res) => {
      child.on('exit', (code, signal) => setImmediate(() => res({ code, signal, stdout, stderr })));
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server not ready; stdout: ${stdout} stderr: ${stderr}`));
    }, 20_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (ready) return;
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as { url?: string; msg?: string };
        if (entry.url && entry.msg?.startsWith('vmmr ready')) {
          ready = true;
          clearTimeout(timer);
          resolvePromise({ child, url: entry.url, logs: () => stdout, exited });
          return;
        }
      }
    });
    child.on('exit', () => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`server exited early; stderr: ${stderr}`));
      }
    });
  });
}

describe.concurrent('vmmr serve (spawned)', () => {
  it('serves /healthz, refuses a second server on its port, and exits 0 on SIGTERM', async () => {
    const server = await startServe([], { PORT: '0' });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await request(`${server.url}/healthz`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ status: 'ok' });

      const port = new URL(server.url).port;
      const second = await run(['serve'], { PORT: port });
      expect(second.code).toBe(1);
      expect(second.stderr).toBe(`vmmr: cannot listen on 127.0.0.1:${port}: address already in use\n`);
    } finally {
      server.child.kill('SIGTERM');
    }
    const exit = await server.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.stdout).toContain('"msg":"stopped"');
    expect(exit.stderr).toBe('');
  });

  it('runs serve by default, lets options override the environment, and exits 0 on SIGINT', async () => {
    const topology = join(TMP, 'one.json');
    writeFileSync(topology, JSON.stringify({ pfs: [{ bdf: '02:00.0', type: 'rng', totalVfs: 2 }] }));
    const server = await startServe(
      ['--port', '0', '--host', '127.0.0.1', '--topology', topology],
      {
        PORT: 'not-a-port',
        HOST: '::1',
        VMMR_TOPOLOGY: join(TMP, 'missing.json'),
      },
      false,
    );
    expect(server.logs()).toContain(`"topology":${JSON.stringify(topology)}`);
    expect(server.logs()).toContain('"pfs":1,"vfs":0,"initialVfs":2');
    server.child.kill('SIGINT');
    expect((await server.exited).code).toBe(0);
  });

  it.each<[string, string[], Record<string, string>, string]>([
    ['bad PORT', [], { PORT: 'abc' }, 'vmmr: PORT="abc" is not a valid port: expected an integer 0..65535'],
    [
      'bad HOST',
      [],
      { HOST: 'not a host' },
      'vmmr: HOST="not a host" is not a valid host: expected an IPv4 or IPv6 address or a hostname',
    ],
    [
      'missing topology file',
      [],
      { VMMR_TOPOLOGY: '/nonexistent/vmmr-topology.json' },
      'vmmr: topology file /nonexistent/vmmr-topology.json: cannot read: no such file',
    ],
    ['unknown option', ['--bogus'], {}, "vmmr: unknown option '--bogus'"],
  ])('%s: exits 2 with one line on stderr', async (_name, args, env, message) => {
    const exit = await run(['serve', ...args], env);
    expect(exit.code).toBe(2);
    expect(exit.stderr).toBe(`${message}\n`);
    expect(exit.stdout).toBe('');
  });

  it('invalid topology file: exits 2 naming the file and the JSON path', async () => {
    const bad = join(TMP, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify({ pfs: [{ bdf: '01:00.0', type: 'net', totalVfs: 4, initialVfs: 9 }] }),
    );
    const exit = await run(['serve', '--topology', bad]);
    expect(exit.code).toBe(2);
    expect(exit.stderr).toBe(
      `vmmr: topology file ${bad}: pfs[0].initialVfs: expected at most totalVfs (4), got 9\n`,
    );
  });

  it('--version prints the package version and exits 0', async () => {
    const exit = await run(['--version']);
    expect(exit.code).toBe(0);
    expect(exit.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
