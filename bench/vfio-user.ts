/**
 * vfio-user section:
 *
 * - REGION_READ round trips per second: a blocking client process (as a QEMU vCPU thread waits)
 *   against vmmr's vfio-user server exporting a net VF's guest view, and against two echoes of
 *   the same message sizes in processes of their own: one on the same native socket calls as the
 *   server (the transport's floor), one on node:net. Target: a vfio-user read takes at most 1.5×
 *   the native echo's time.
 * - Posted REGION_WRITE throughput (bursts of 256 No_reply writes, then one read to sync), against
 *   the same burst to the native echo, which discards them.
 * - DMA throughput of the device's DmaSpace, 64 KiB reads: through a memfd the client mapped, and
 *   through DMA_READ messages answered by a client thread; baseline a plain 64 KiB copy in process.
 *
 *   node dist/bench/vfio-user.js [--json]
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DmaSpace } from '../src/dma/space.js';
import { Machine } from '../src/machine/machine.js';
import { DEFAULT_TOPOLOGY } from '../src/machine/topology.js';
import { exportFunction, InterruptRouter } from '../src/vfio-user/adapter.js';
import { native } from '../src/vfio-user/native.js';
import { VfioUserServer } from '../src/vfio-user/server.js';
import { enableVfs } from './lib/machine.js';
import { measureRates, medianRatio, now, sink, type RateResult } from './lib/measure.js';
import type { Row, Section } from './lib/results.js';
import { runIfScript } from './lib/script.js';
import type { ClientResult } from './lib/vfio-user-peer.js';

export const READ_GOAL = 1.5;
const PEER = fileURLToPath(new URL('./lib/vfio-user-peer.js', import.meta.url));
const ADDON = fileURLToPath(
  new URL('../../src/vfio-user/native/build/Release/vmmr_vfio_user.node', import.meta.url),
);

export interface VfioUserOptions {
  rounds: number;
  roundMs: number;
  warmupMs: number;
}

export const VFIO_USER_DEFAULTS: VfioUserOptions = { rounds: 15, roundMs: 150, warmupMs: 300 };

function startPeer(role: string, dir: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = fork(PEER, [role, dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
  });
}

async function socketCases(options: VfioUserOptions): Promise<ClientResult> {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-bench-vu-'));
  const peers = await Promise.all(
    ['vfio-server', 'native-echo', 'net-echo'].map((role) => startPeer(role, dir)),
  );
  try {
    const run = spawnSync(
      process.execPath,
      [PEER, 'client', dir, String(options.rounds), String(options.roundMs), String(options.warmupMs)],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    if (run.status !== 0) throw new Error(`the client exited with ${run.status}`);
    return JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as ClientResult;
  } finally {
    for (const p of peers) p.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A client thread: VERSION, one DMA map (with `fd`, or -1 for DMA messages), then DMA answers. */
const RESPONDER = `
const { parentPort, workerData } = require('node:worker_threads');
const native = require(workerData.addon);
const { path, fd: mapFd, base, size } = workerData;
const mem = new Uint8Array(workerData.memory);
const stop = new Int32Array(workerData.stop);
const fd = native.connect(path);
let buf = new Uint8Array(1 << 21), start = 0, end = 0;
const fdsOut = new Int32Array(2);
function sendAll(b, fds) { let at = 0; while (at < b.length) { const n = native.send(fd, at ? b.subarray(at) : b, at ? null : fds); if (n === -11) native.poll(fd, 4, -1); else if (n < 0) throw new Error('send ' + n); else at += n; } }
function header(id, command, size, flags, error) { const b = new Uint8Array(size); const v = new DataView(b.buffer); v.setUint16(0, id, true); v.setUint16(2, command, true); v.setUint32(4, size, true); v.setUint32(8, flags, true); v.setUint32(12, error, true); return [b, v]; }
function next(block) {
  for (;;) {
    if (end - start >= 16) { const v = new DataView(buf.buffer, start, 16); const size = v.getUint32(4, true); if (end - start >= size) { const m = buf.subarray(start, start + size); start += size; return m; } }
    if (start === end) start = end = 0;
    if (native.poll(fd, 1, block ? 10000 : 20) <= 0) return null;
    const n = native.recv(fd, buf.subarray(end), fdsOut);
    if (n <= 0 && n !== -11) throw new Error('recv ' + n);
    if (n > 0) end += n;
  }
}
const caps = new TextEncoder().encode('{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576}}\\0');
let [m, v] = header(1, 1, 20 + caps.length, 0, 0); m.set(caps, 20); sendAll(m, null); next(true);
[m, v] = header(2, 2, 48, 0, 0); v.setUint32(16, 32, true); v.setUint32(20, 3, true); v.setUint32(32, base, true); v.setUint32(40, size, true);
sendAll(m, mapFd >= 0 ? Int32Array.from([mapFd]) : null);
const mapped = next(true);
if (new DataView(mapped.buffer, mapped.byteOffset).getUint32(8, true) !== 1) throw new Error('DMA_MAP refused');
parentPort.postMessage('ready');
while (Atomics.load(stop, 0) === 0) {
  const q = next(false);
  if (!q) continue;
  const h = new DataView(q.buffer, q.byteOffset, q.length);
  const address = h.getUint32(16, true) + h.getUint32(20, true) * 2 ** 32, count = h.getUint32(24, true);
  if (h.getUint16(2, true) === 11) {
    const [r] = header(h.getUint16(0, true), 11, 32 + count, 1, 0);
    r.set(q.subarray(16, 28), 16);
    r.set(mem.subarray(address - base, address - base + count), 28);
    sendAll(r, null);
  } else {
    mem.set(q.subarray(28, 28 + count), address - base);
    sendAll(header(h.getUint16(0, true), 12, 16, 1, 0)[0], null);
  }
}
native.close(fd);
`;

interface DmaBench {
  dma: DmaSpace;
  close(): Promise<void>;
}

const DMA_BASE = 0x4000_0000;
const DMA_SIZE = 16 << 20;
const CHUNK = 64 << 10;

async function dmaExport(machine: Machine, vfIndex: number, mapped: boolean): Promise<DmaBench> {
  const pf = machine.pfs[0]!;
  const vf = machine.findVf(pf.vfs[vfIndex]!.bdf);
  const device = exportFunction(machine, vf, 'guest', new InterruptRouter(machine.events));
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-bench-dma-'));
  const server = new VfioUserServer({ socketPath: join(dir, 'vf.sock'), socketDir: dir, device });
  const memfd = mapped ? native.memfd('bench-ram', DMA_SIZE) : -1;
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(RESPONDER, {
    eval: true,
    workerData: {
      addon: ADDON,
      path: server.socketPath,
      fd: memfd,
      base: DMA_BASE,
      size: DMA_SIZE,
      memory: new SharedArrayBuffer(DMA_SIZE),
      stop: stop.buffer,
    },
  });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  if (memfd >= 0) native.close(memfd);
  return {
    dma: device.dma!,
    async close() {
      Atomics.store(stop, 0, 1);
      await worker.terminate();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function dmaCases(options: VfioUserOptions): Promise<RateResult[]> {
  const machine = new Machine(DEFAULT_TOPOLOGY);
  enableVfs(machine.pfs[0]!, 2);
  const mapped = await dmaExport(machine, 0, true);
  const messages = await dmaExport(machine, 1, false);
  const source = new Uint8Array(DMA_SIZE);
  const into = new Uint8Array(CHUNK);
  const reads = (name: string, dma: DmaSpace) => ({
    name,
    opsPerIteration: CHUNK,
    run(iterations: number) {
      for (let i = 0; i < iterations; i++) dma.read(DMA_BASE + ((i * CHUNK) % DMA_SIZE), into, 0, CHUNK);
      sink(into[7]!);
    },
  });
  try {
    return measureRates(
      [
        {
          name: 'memory copy in process (baseline)',
          opsPerIteration: CHUNK,
          run(iterations: number) {
            for (let i = 0; i < iterations; i++)
              into.set(source.subarray((i * CHUNK) % DMA_SIZE, ((i * CHUNK) % DMA_SIZE) + CHUNK));
            sink(into[7]!);
          },
        },
        reads('DMA read through the mapped memfd', mapped.dma),
        reads('DMA read through DMA_READ messages', messages.dma),
      ],
      { rounds: options.rounds, roundMs: options.roundMs, warmupMs: options.warmupMs },
    );
  } finally {
    await mapped.close();
    await messages.close();
  }
}

function asResult(c: ClientResult['cases'][number]): RateResult {
  return { name: c.name, opsPerSec: c.opsPerSec, samples: c.samples, iterationsPerRound: 0 };
}

export async function runVfioUser(options: VfioUserOptions = VFIO_USER_DEFAULTS): Promise<Section> {
  const started = now();
  const socket = (await socketCases(options)).cases.map(asResult);
  const [read, echo, net, posted, echoPosted] = socket as [
    RateResult,
    RateResult,
    RateResult,
    RateResult,
    RateResult,
  ];
  const dma = await dmaCases(options);
  const [copy, mapped, messages] = dma as [RateResult, RateResult, RateResult];
  const readRatio = medianRatio(echo, read);
  const us = (r: RateResult): number => Number((1e6 / r.opsPerSec).toFixed(2));
  const rows: Row[] = [
    {
      case: read.name,
      'ops/s': Math.round(read.opsPerSec),
      'µs/op': us(read),
      '× baseline time': Number(readRatio.toFixed(2)),
    },
    { case: echo.name, 'ops/s': Math.round(echo.opsPerSec), 'µs/op': us(echo), '× baseline time': 1 },
    {
      case: net.name,
      'ops/s': Math.round(net.opsPerSec),
      'µs/op': us(net),
      '× baseline time': Number(medianRatio(echo, net).toFixed(2)),
    },
    {
      case: posted.name,
      'ops/s': Math.round(posted.opsPerSec),
      'µs/op': us(posted),
      '× baseline time': Number(medianRatio(echoPosted, posted).toFixed(2)),
    },
    {
      case: echoPosted.name,
      'ops/s': Math.round(echoPosted.opsPerSec),
      'µs/op': us(echoPosted),
      '× baseline time': 1,
    },
  ];
  const mb = (r: RateResult): number => Math.round(r.opsPerSec / 2 ** 20);
  const dmaRows: Row[] = [copy, mapped, messages].map((r) => ({
    case: `${r.name}, 64 KiB (${mb(r)} MiB/s)`,
    'ops/s': Math.round(r.opsPerSec / CHUNK),
    'µs/op': Number(((1e6 * CHUNK) / r.opsPerSec).toFixed(2)),
    '× baseline time': Number(medianRatio(copy, r).toFixed(1)),
  }));
  return {
    id: 'vfio-user',
    title: 'vfio-user: REGION_READ round trips, posted writes, DMA',
    baseline:
      'an echo of the same message sizes on the same native socket calls (round trips, posted bursts); a 64 KiB copy in process (DMA)',
    rows: [...rows, ...dmaRows],
    targets: [
      {
        name: 'REGION_READ round trip ÷ native echo round trip (time)',
        goal: `<= ${READ_GOAL}`,
        value: Number(readRatio.toFixed(2)),
        met: readRatio <= READ_GOAL,
      },
    ],
    notes: [
      `posted writes: ${Math.round(posted.opsPerSec)} writes/s, ${(posted.opsPerSec / read.opsPerSec).toFixed(1)} × the round-trip read rate`,
      `DMA 64 KiB: mapped ${mb(mapped)} MiB/s, messages ${mb(messages)} MiB/s (mapped ÷ messages ${medianRatio(mapped, messages).toFixed(1)})`,
    ],
    raw: { socket, dma },
    seconds: (now() - started) / 1000,
  };
}

async function main(argv: readonly string[]): Promise<void> {
  const section = await runVfioUser();
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(section)}\n`);
  else process.stdout.write(`${JSON.stringify(section.rows, null, 2)}\n${section.notes?.join('\n')}\n`);
}

runIfScript(import.meta.url, 'vfio-user bench', main);
