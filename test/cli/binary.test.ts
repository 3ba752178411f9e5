/**
 * The built `vmmr` binary as a user runs it: an offline dump piped to lspci, a client command
 * that exits by itself, and `vmmr events` ended by SIGINT with exit code 0.
 */
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/main.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import { lspci, tmpFile, vmmr } from '../support/cli.js';
import { buildForChildren, type Built } from '../support/build.js';

let CLI = '';
let built: Built | undefined;
let server: RunningServer;

beforeAll(async () => {
  built = await buildForChildren('cli-client-test');
  CLI = built.cli;
  const config = { ...loadConfig({}), host: '127.0.0.1', port: 0, logLevel: 'silent' as const };
  server = await startServer(config, DEFAULT_TOPOLOGY, {
    handleSignals: false,
    logger: false,
  });
}, 120_000);

afterAll(async () => {
  await server?.close();
  built?.remove();
});

/** Runs the binary without blocking this process (the service under test lives here). */
function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: env() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolveRun({ status, stdout, stderr }));
  });
}

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, VMMR_URL: server.url };
  delete e.VMMR_TOKEN;
  return e;
}

describe('the vmmr binary', () => {
  it('dumps offline for lspci -F', () => {
    const r = spawnSync(process.execPath, [CLI, 'dump', '01:00.0', '--offline', '--num-vfs', '2'], {
      encoding: 'utf8',
      env: env(),
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(lspci(tmpFile(r.stdout), '-vvv')).toContain('Number of VFs: 2,');
  });

  it('exits by itself after a client command', async () => {
    const started = Date.now();
    const r = await run(['ls']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('0000:01:00.0  1af4:1041  Virtio 1.0 network device');
    expect(Date.now() - started).toBeLessThan(5_000);
    const refused = await run(['cfg', '01:00.0', '3.w']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^vmmr: .* \(VMMR_ERR_UNALIGNED\)\n$/);
    const usage = await run(['cfg', '01:00.0']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toBe("vmmr: missing required argument 'spec'\n");
  });

  it('follows events until SIGINT, then exits 0', async () => {
    const child = spawn(process.execPath, [CLI, 'events', '--types', 'vf-enable'], { env: env() });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const gotLine = new Promise<void>((resolveLine) =>
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        if (stdout.includes('\n')) resolveLine();
      }),
    );
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) =>
      child.on('exit', (code, signal) => r([code, signal])),
    );
    // Subscribe first, then cause an event until one arrives.
    let n = 0;
    while (!stdout.includes('\n') && n < 50) {
      await vmmr(['sriov', '81:00.0', String((n++ % 2) + 1)], { env: { VMMR_URL: server.url } });
      await vmmr(['sriov', '81:00.0', '0'], { env: { VMMR_URL: server.url } });
      await Promise.race([gotLine, new Promise((r) => setTimeout(r, 100))]);
    }
    expect(stdout).toMatch(/^\d+ vf-enable 0000:81:00\.0 numVfs=\d /);
    child.kill('SIGINT');
    expect(await exited).toEqual([0, null]);
    expect(stderr).toBe('');
  });
});
