/**
 * A real QEMU serving qtest, started as libqtest starts it (QEMU tests/qtest/libqtest.c
 * qtest_init_internal): the caller listens on a Unix socket, QEMU connects to it with
 * `-qtest unix:PATH`, and `-qtest-log /dev/null` keeps it from logging every command. Used by
 * the qtest benchmark section and, as an oracle, by the tests.
 *
 * The binary is $VMMR_QEMU or qemu-system-x86_64 on PATH (Debian: qemu-system-x86). Debian 12's
 * QEMU 7.2 is built without the qtest accelerator; there the machine runs under TCG, stopped
 * from the start (-S), so neither firmware nor guest code runs and the machine is as the qtest
 * accelerator leaves it (BARs unassigned).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const QEMU = process.env.VMMR_QEMU ?? 'qemu-system-x86_64';

/** The first line of `qemu --version`, or undefined when the binary does not run. */
export function qemuVersion(): string | undefined {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  return r.error || r.status !== 0 ? undefined : r.stdout.split('\n')[0]!.trim();
}

function hasQtestAccel(): boolean {
  const r = spawnSync(QEMU, ['-accel', 'help'], { encoding: 'utf8' });
  return r.stdout.split('\n').some((l) => l.trim() === 'qtest');
}

export interface QemuQtestProcess {
  /** The qtest connection QEMU opened. */
  socket: Socket;
  pid: number;
  /** `qtest` when the binary has the accelerator, else `tcg` with the CPUs stopped. */
  accel: 'qtest' | 'tcg';
  version: string;
  stop(): Promise<void>;
}

/** Starts QEMU q35 with `devices` (each one -device argument) under qtest. */
export async function startQemuQtest(devices: readonly string[]): Promise<QemuQtestProcess> {
  const version = qemuVersion();
  if (!version) throw new Error(`${QEMU} does not run: install Debian's qemu-system-x86 or set VMMR_QEMU`);
  const accel = hasQtestAccel() ? 'qtest' : 'tcg';
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-qemu-'));
  const path = join(dir, 'qtest.sock');
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  const args = [
    ...['-machine', 'q35', '-accel', accel],
    ...(accel === 'tcg' ? ['-S'] : []),
    ...['-nodefaults', '-display', 'none', '-qtest', `unix:${path}`, '-qtest-log', '/dev/null'],
    ...devices.flatMap((d) => ['-device', d]),
  ];
  const child: ChildProcess = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const socket = await Promise.race([
      new Promise<Socket>((resolve) => server.once('connection', resolve)),
      exited.then((code): never => {
        throw new Error(`${QEMU} exited with ${code} before connecting: ${stderr.trim()}`);
      }),
    ]);
    return {
      socket,
      pid: child.pid!,
      accel,
      version,
      async stop() {
        socket.destroy();
        child.kill('SIGTERM');
        await exited;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } finally {
    server.close();
  }
}

/** CPU time (user + system) a process has used, in microseconds, from /proc/PID/stat. */
export function processCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5) (utime, stime) are the 12th and 13th after the command name.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / CLOCK_TICKS;
}

/** Clock ticks per second of /proc times (sysconf(_SC_CLK_TCK), 100 on Linux). */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;
