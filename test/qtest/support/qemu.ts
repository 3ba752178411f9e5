/**
 * A real QEMU as the qtest oracle, started as libqtest starts it (QEMU tests/qtest/libqtest.c
 * qtest_init_internal): the test listens on a Unix socket, QEMU connects to it with
 * `-qtest unix:PATH`, and `-qtest-log /dev/null` keeps it from logging every command.
 *
 * The binary is $VMMR_QEMU or qemu-system-x86_64 on PATH (Debian: `apt-get install -y
 * qemu-system-x86`). Debian 12's QEMU 7.2 is built without the qtest accelerator; there the
 * machine runs with TCG, paused from the start (-S), so no firmware or guest code runs and the
 * qtest commands see the machine as the qtest accelerator leaves it (BARs unassigned).
 * A missing QEMU is an error, not a skip: this is an oracle.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QtestClient } from './client.js';

export const QEMU = process.env.VMMR_QEMU ?? 'qemu-system-x86_64';

export interface QemuQtest {
  client: QtestClient;
  /** The accelerator used: `qtest` when the binary has it, else `tcg` with the CPUs stopped. */
  accel: 'qtest' | 'tcg';
  version: string;
  stop(): Promise<void>;
}

export function qemuVersion(): string {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      `${QEMU} is not runnable (${r.error?.message ?? `exit ${r.status}`}): install Debian's qemu-system-x86 or set VMMR_QEMU`,
    );
  }
  return r.stdout.split('\n')[0]!.trim();
}

function hasQtestAccel(): boolean {
  const r = spawnSync(QEMU, ['-accel', 'help'], { encoding: 'utf8' });
  return r.stdout.split('\n').some((l) => l.trim() === 'qtest');
}

/** Starts QEMU q35 with `devices` (each a -device argument) under qtest and returns a client. */
export async function startQemuQtest(devices: readonly string[]): Promise<QemuQtest> {
  const version = qemuVersion();
  const accel = hasQtestAccel() ? 'qtest' : 'tcg';
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-qemu-'));
  const path = join(dir, 'qtest.sock');
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  const args = [
    '-machine',
    'q35',
    '-accel',
    accel,
    ...(accel === 'tcg' ? ['-S'] : []),
    '-nodefaults',
    '-display',
    'none',
    '-qtest',
    `unix:${path}`,
    '-qtest-log',
    '/dev/null',
    ...devices.flatMap((d) => ['-device', d]),
  ];
  const child: ChildProcess = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const socket = await Promise.race([
    new Promise<import('node:net').Socket>((resolve) => server.once('connection', resolve)),
    exited.then((code) => {
      throw new Error(`${QEMU} exited with ${code} before connecting: ${stderr.trim()}`);
    }),
  ]);
  server.close();
  const client = QtestClient.wrap(socket);
  return {
    client,
    accel,
    version,
    async stop() {
      socket.destroy();
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
