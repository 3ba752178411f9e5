/**
 * Many vfio-user exports in one vmmr process (the scale section, bench/scale.ts):
 *
 *   node --expose-gc dist/bench/lib/vfio-user-fleet.js server N    N + 1 guest-view exports of net VFs;
 *                                                                prints the figures as one JSON line
 *   node dist/bench/lib/vfio-user-fleet.js clients N DIR           (forked by the server) one client
 *                                                                per export, non-blocking on one loop
 *
 * The server measures its heap and file descriptors before the exports, with them listening, and
 * with a client on each that negotiated VERSION and mapped a 64 KiB memfd (DMA_MAP with an fd).
 * Then, in rounds: every client sends one REGION_READ and waits for its reply (the round's time is
 * the client process's), and the device of every export reads 4 KiB through its client's map.
 * Last, a stuck client on export N + 1 asks for 16 MiB of config-space reads and never reads them;
 * the rounds of the N others are timed again (the stuck connection's queue is bounded: the
 * server stops reading from it, docs/vfio-user.md "Limits").
 */
import { readdirSync } from 'node:fs';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MmrVf } from '../../src/mmr/vf.js';
import { exportFunction, InterruptRouter, type FunctionDevice } from '../../src/vfio-user/adapter.js';
import { native, READABLE } from '../../src/vfio-user/native.js';
import { Command, HEADER_SIZE, newMessage, readHeader, setU64 } from '../../src/vfio-user/protocol.js';
import { VfioUserServer } from '../../src/vfio-user/server.js';
import { enableGuestIo, enableVfs, scaleMachine } from './machine.js';
import { collectGarbage, median, now } from './measure.js';
import { runIfScript } from './script.js';
import { CONFIG_REGION, regionRead, versionMessage } from './vfio-user-peer.js';

const EAGAIN = -11;
const MAP_BYTES = 64 * 1024;
const DMA_BYTES = 4096;
const ROUNDS = 9;
const STUCK_READS = 4096;
/** The whole config space per read: 4 KiB replies, 16 MiB asked for in all. */
const STUCK_READ_BYTES = 4096;
const SELF = fileURLToPath(import.meta.url);

export interface FleetFigures {
  exports: number;
  heapPerExport: number;
  fdsPerExport: number;
  heapPerConnection: number;
  /** Outside the heap: buffers and the client's 64 KiB map. */
  externalPerConnection: number;
  fdsPerConnection: number;
  readRoundMs: number;
  dmaRoundMs: number;
  readRoundWithStuckMs: number;
  stuckQueuedBytes: number;
}

function fds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** JS heap, and memory outside it (buffers, the client maps the server mmaps). */
function memory(): { heap: number; external: number } {
  collectGarbage();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external };
}

/** DMA_MAP of a fresh memfd of MAP_BYTES at bus address 0, read-write. */
function dmaMapMessage(): { bytes: Uint8Array; fd: number } {
  const fd = native.memfd('fleet', MAP_BYTES);
  const m = newMessage(3, Command.DMA_MAP, 0, 32);
  m.view.setUint32(16, 32, true);
  m.view.setUint32(20, 3, true);
  setU64(m.view, 24, 0);
  setU64(m.view, 32, 0);
  setU64(m.view, 40, MAP_BYTES);
  return { bytes: m.bytes, fd };
}

/** A non-blocking client: whole replies counted as they come, nothing else. */
class LoopClient {
  readonly fd: number;
  private readonly rx = new Uint8Array(1 << 16);
  private pending = new Uint8Array(0);
  private readonly fdsOut = new Int32Array(2);
  private waiting: (() => void) | undefined;
  private expected = 0;

  constructor(path: string) {
    this.fd = native.connect(path);
    native.watch(this.fd, READABLE, () => this.readable());
  }

  private readable(): void {
    for (;;) {
      const n = native.recv(this.fd, this.rx, this.fdsOut);
      if (n === EAGAIN) return;
      if (n <= 0) throw new Error(`the server closed a connection (${n})`);
      const data = new Uint8Array(this.pending.length + n);
      data.set(this.pending, 0);
      data.set(this.rx.subarray(0, n), this.pending.length);
      let at = 0;
      while (data.length - at >= HEADER_SIZE && data.length - at >= readHeader(data, at).size) {
        at += readHeader(data, at).size;
        this.expected--;
      }
      this.pending = data.slice(at);
      if (this.expected === 0) this.waiting?.();
    }
  }

  /** Sends `message` (with `fd`, which is closed after) and resolves at its reply. */
  request(message: Uint8Array, fd = -1): Promise<void> {
    this.expected++;
    const done = new Promise<void>((resolve) => (this.waiting = resolve));
    const n = native.send(this.fd, message, fd >= 0 ? Int32Array.of(fd) : null);
    if (fd >= 0) native.close(fd);
    if (n !== message.length) throw new Error(`short send (${n} of ${message.length})`);
    return done;
  }
}

/** Sends requests and never reads a reply. */
function stuckClient(path: string): void {
  const fd = native.connect(path);
  native.send(fd, versionMessage(), null);
  const big = regionRead(CONFIG_REGION, 0, STUCK_READ_BYTES);
  for (let i = 0; i < STUCK_READS; i++) if (native.send(fd, big, null) !== big.length) break;
}

async function clients(n: number, dir: string): Promise<void> {
  const all = Array.from({ length: n }, (_, i) => new LoopClient(join(dir, `vf${i}.sock`)));
  for (const c of all) await c.request(versionMessage());
  for (const c of all) {
    const map = dmaMapMessage();
    await c.request(map.bytes, map.fd);
  }
  const read = regionRead(CONFIG_REGION, 0, 4);
  const round = async (): Promise<number> => {
    const start = now();
    await Promise.all(all.map((c) => c.request(read)));
    return now() - start;
  };
  process.on('message', (m: string) => {
    if (m === 'stuck') stuckClient(join(dir, `vf${n}.sock`));
    void (async () => {
      const times: number[] = [];
      for (let r = 0; r < ROUNDS; r++) times.push(await round());
      process.send?.({ kind: m, ms: median(times) });
    })();
  });
  process.send?.({ kind: 'connected' });
}

function next(child: ChildProcess, kind: string): Promise<{ kind: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { kind: string; ms: number }): void => {
      if (m.kind !== kind) return;
      child.off('message', onMessage);
      resolve(m);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`the clients exited with ${code}`)));
  });
}

function dmaRound(devices: readonly FunctionDevice[]): number {
  const into = new Uint8Array(DMA_BYTES);
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = now();
    for (const d of devices) d.dma!.read(0, into, 0, DMA_BYTES);
    times.push(now() - start);
  }
  return median(times);
}

async function server(n: number): Promise<FleetFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-fleet-'));
  const machine = scaleMachine(n + 1);
  const pf = machine.findPf('0000:01:00.0');
  enableVfs(pf, n + 1);
  const router = new InterruptRouter(machine.events);
  const vfs = pf.vfs.map((vf) => machine.findVf(vf.bdf) as MmrVf);
  for (const vf of vfs) enableGuestIo(machine.translator.view(vf));
  const mem0 = memory();
  const fds0 = fds();
  const devices = vfs.map((vf) => exportFunction(machine, vf, 'guest', router));
  const servers = devices.map(
    (device, i) => new VfioUserServer({ socketPath: join(dir, `vf${i}.sock`), socketDir: dir, device }),
  );
  const mem1 = memory();
  const fds1 = fds();
  const child = fork(SELF, ['clients', String(n), dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await next(child, 'connected');
  const mem2 = memory();
  const fds2 = fds();
  child.send('rounds');
  const readRoundMs = (await next(child, 'rounds')).ms;
  const dmaRoundMs = dmaRound(devices.slice(0, n));
  child.send('stuck');
  const readRoundWithStuckMs = (await next(child, 'stuck')).ms;
  const stuckQueuedBytes = servers[n]!.status().queuedBytes;
  child.kill();
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
  const exports = n + 1;
  return {
    exports,
    heapPerExport: (mem1.heap - mem0.heap + mem1.external - mem0.external) / exports,
    fdsPerExport: (fds1 - fds0) / exports,
    heapPerConnection: (mem2.heap - mem1.heap) / n,
    externalPerConnection: (mem2.external - mem1.external) / n,
    fdsPerConnection: (fds2 - fds1) / n,
    readRoundMs,
    dmaRoundMs,
    readRoundWithStuckMs,
    stuckQueuedBytes,
  };
}

async function main(argv: readonly string[]): Promise<void> {
  const [role, count, dir] = argv;
  const n = Number(count);
  if (!Number.isInteger(n) || n < 1) throw new Error('usage: vfio-user-fleet.js server N | clients N DIR');
  if (role === 'clients' && dir) await clients(n, dir);
  else if (role === 'server') process.stdout.write(`${JSON.stringify(await server(n))}\n`);
  else throw new Error(`unknown role ${String(role)}`);
}

runIfScript(import.meta.url, 'vfio-user-fleet', main);
