/**
 * Server child processes of the HTTP sections (bench/server.ts): started with an IPC channel,
 * asked for their CPU time between measurements, stopped cleanly (so that a --cpu-prof profile
 * gets written).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { legacy } from '../../src/spec/index.js';
import { LEGACY_BLOCK, VF_BAR_SPACE } from './machine.js';

export type ServerKind = 'vmmr' | 'bare';

/** Messages from the child. */
export type ServerMessage = { url: string } | { cpu: { user: number; system: number } };

/** The URL template of the single-access route (GET …/bars/{n}/{offset}). */
export const BAR_ROUTE = '/api/v1/functions/:bdf/bars/:n/:offset';

/** What the bare route answers: the shape (and size) of a 2-byte read of vmmr's BAR route. */
export const BARE_ANSWER = {
  bdf: '0000:01:00.1',
  space: 'bar2',
  offset: 0x100c,
  width: 2,
  value: '0x0100',
} as const;

export interface ServerOptions {
  /** Run the child under `node --cpu-prof`, writing the profile into this directory at exit. */
  profileDir?: string;
  /** Extra environment of the child (e.g. VMMR_QTEST_SOCKET). */
  env?: Record<string, string>;
}

export interface ServerHandle {
  readonly kind: ServerKind;
  readonly url: string;
  readonly pid: number;
  /** CPU time (user + system) the child has used so far, in microseconds. */
  cpuMicros(): Promise<number>;
  /** Closes the server and waits for the child to exit. */
  stop(): Promise<void>;
}

const SERVER_SCRIPT = fileURLToPath(new URL('../server.js', import.meta.url));

export async function startServerChild(kind: ServerKind, options: ServerOptions = {}): Promise<ServerHandle> {
  const execArgv = options.profileDir
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${options.profileDir}`,
        `--cpu-prof-name=${kind}-${Date.now()}.cpuprofile`,
      ]
    : [];
  const child: ChildProcess = fork(SERVER_SCRIPT, [kind], {
    execArgv,
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const next = <T>(pick: (m: ServerMessage) => T | undefined): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (m: ServerMessage): void => {
        const value = pick(m);
        if (value === undefined) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(value);
      };
      const onExit = (code: number | null): void => {
        child.off('message', onMessage);
        reject(new Error(`bench server (${kind}) exited with ${code}`));
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const url = await next((m) => ('url' in m ? m.url : undefined));
  return {
    kind,
    url,
    pid: child.pid!,
    async cpuMicros() {
      const answer = next((m) => ('cpu' in m ? m.cpu : undefined));
      child.send('cpu');
      const cpu = await answer;
      return cpu.user + cpu.system;
    },
    async stop() {
      if (child.exitCode === null && child.connected) child.send('stop');
      const code = await exited;
      if (code !== 0) throw new Error(`bench server (${kind}) exited with ${code}`);
    },
  };
}

/** The PF, VF and VF count the HTTP sections use (default topology). */
export const BENCH_PF = '0000:01:00.0';
export const BENCH_VF = '0000:01:00.1';
export const BENCH_VFS = 16;

/** The legacy QUEUE_NUM register of the bench VF, in its BAR: 2 bytes, no side effect on read. */
export const QUEUE_NUM = LEGACY_BLOCK + legacy.registers.QUEUE_NUM.offset;
/** One read of it through the single-access route. */
export const SINGLE_READ_PATH = `/api/v1/functions/${BENCH_VF}/bars/${VF_BAR_SPACE.slice(3)}/0x${QUEUE_NUM.toString(16)}?width=2`;
/** One request; throws unless the answer is 2xx; returns the body. */
export async function benchHttp(
  server: ServerHandle,
  method: string,
  path: string,
  body?: unknown,
): Promise<string> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text;
}

/** PUT …/sriov {numVfs}: what a harness does before it touches a VF. */
export async function enableBenchVfs(server: ServerHandle): Promise<void> {
  await benchHttp(server, 'PUT', `/api/v1/pfs/${BENCH_PF}/sriov`, { numVfs: BENCH_VFS });
}
