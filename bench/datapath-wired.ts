/**
 * The data path through the register model: what a legacy driver costs end to end on a VF's
 * translated guest view (QUEUE_NOTIFY as an I/O write through the access layer, the guest view,
 * the VF's legacy block, the machine's scheduler, the device), in process and through REST
 * batches (POST /api/v1/access with a `dma` write of the avail index and the `io` notify, block
 * data read back with `dma` block reads). Rings are laid out once; each round moves the avail
 * index by a full batch, as in the device-side cases of bench/datapath.ts.
 */
import { write } from '../src/access/index.js';
import { setNumVfs } from '../src/control/sriov.js';
import type { BlockDevice } from '../src/devices/block/device.js';
import type { DmaSpace } from '../src/dma/space.js';
import { SparseRam } from '../src/dma/sparse-ram.js';
import { RegisterTransport } from '../src/driver-sim/register-transport.js';
import { Machine } from '../src/machine/machine.js';
import { DEFAULT_TOPOLOGY } from '../src/machine/topology.js';
import { deviceConfigs, legacy, virtioRing } from '../src/spec/index.js';
import { legacyLayout, type RingAddresses } from '../src/virtqueue/index.js';
import { median, now, sink, type RateCase } from './lib/measure.js';
import { benchHttp, startServerChild, type ServerHandle } from './lib/servers.js';

const R = virtioRing.registers;
const C = virtioRing.constants;
const B = deviceConfigs.block.constants;
const QUEUE_SIZE = 256;
const PFN = 0x100;
const DATA = 0x20_0000;
const NOTIFY = legacy.registers.QUEUE_NOTIFY.offset;
export const NET_VF = '0000:01:00.1';
export const BLOCK_VF = '0000:81:00.1';
const LEGACY_NET_HEADER = 10;

function descriptor(
  dma: DmaSpace,
  ring: RingAddresses,
  i: number,
  address: number,
  length: number,
  flags: number,
  next: number,
): void {
  const at = ring.desc + C.DESC_SIZE.value * i;
  dma.writeU64(at + R.DESC_ADDR.offset, address);
  dma.writeU32(at + R.DESC_LEN.offset, length);
  dma.writeU16(at + R.DESC_FLAGS.offset, flags);
  dma.writeU16(at + R.DESC_NEXT.offset, next);
}

/** 256 transmit chains of a 10-byte legacy header + a frame, each its own avail slot. */
export function layOutTx(dma: DmaSpace, ring: RingAddresses, frameBytes: number): void {
  for (let i = 0; i < QUEUE_SIZE; i++) {
    const at = DATA + i * 128;
    const chain = new Uint8Array(LEGACY_NET_HEADER + frameBytes);
    chain.fill(0xff, LEGACY_NET_HEADER, LEGACY_NET_HEADER + 6);
    chain[LEGACY_NET_HEADER + 6] = 2;
    chain[LEGACY_NET_HEADER + 11] = i;
    dma.write(at, chain, 0, chain.length);
    descriptor(dma, ring, i, at, chain.length, 0, 0);
    dma.writeU16(ring.driver + R.AVAIL_RING.offset + 2 * i, i);
  }
}

/** `perNotify` block reads (header, data, status), repeated over the avail ring. */
export function layOutBlockReads(
  dma: DmaSpace,
  ring: RingAddresses,
  blockBytes: number,
  perNotify: number,
): number {
  const headers = DATA;
  const statuses = DATA + 0x1_0000;
  const buffers = DATA + 0x10_0000;
  for (let r = 0; r < perNotify; r++) {
    const h = headers + 16 * r;
    dma.writeU32(h, B.T_IN.value);
    dma.writeU64(h + 8, (r * blockBytes) / 512);
    descriptor(dma, ring, 3 * r, h, 16, C.DESC_F_NEXT.value, 3 * r + 1);
    descriptor(
      dma,
      ring,
      3 * r + 1,
      buffers + r * blockBytes,
      blockBytes,
      C.DESC_F_NEXT.value | C.DESC_F_WRITE.value,
      3 * r + 2,
    );
    descriptor(dma, ring, 3 * r + 2, statuses + r, 1, C.DESC_F_WRITE.value, 0);
  }
  for (let slot = 0; slot < QUEUE_SIZE; slot++)
    dma.writeU16(ring.driver + R.AVAIL_RING.offset + 2 * slot, 3 * (slot % perNotify));
  return buffers;
}

interface WiredVf {
  bdf: string;
  machine: Machine;
  transport: RegisterTransport;
  ring: RingAddresses;
}

/** A machine of the default topology, one VF of `pfIndex` brought up by a legacy driver on its guest I/O view. */
function wiredVf(pfIndex: number, bdf: string, queue: number): WiredVf {
  const machine = new Machine(DEFAULT_TOPOLOGY);
  setNumVfs(machine.pfs[pfIndex]!, 1);
  const transport = new RegisterTransport({ machine, bdf, via: 'legacy-io', wanted: { lo: 0, hi: 0 } });
  const ring = legacyLayout(PFN, QUEUE_SIZE);
  transport.setupQueue(queue, QUEUE_SIZE, ring);
  transport.ready();
  return { bdf, machine, transport, ring };
}

function publisher(w: WiredVf, queue: number, count: number): () => void {
  const view = w.machine.guestView(w.bdf);
  let idx = 0;
  return () => {
    idx = (idx + count) & 0xffff;
    w.transport.dma.writeU16(w.ring.driver + R.AVAIL_IDX.offset, idx);
    write(view, 'io', NOTIFY, 2, queue);
    w.machine.drain();
  };
}

export function wiredTxCase(frameBytes: number): RateCase & { frames(): number } {
  const w = wiredVf(0, NET_VF, 1);
  layOutTx(w.transport.dma, w.ring, frameBytes);
  const publish = publisher(w, 1, QUEUE_SIZE);
  const path = w.machine.dataPathOf(NET_VF);
  return {
    name: `wired net TX: ${frameBytes}-byte frames, legacy driver on a VF guest I/O view, ${QUEUE_SIZE} per notify`,
    opsPerIteration: QUEUE_SIZE,
    run(iterations) {
      for (let k = 0; k < iterations; k++) publish();
      sink(iterations);
    },
    frames: () => path.queueViews()[1]!.run?.requests ?? 0,
  };
}

export function wiredBlockCase(blockBytes: number, perNotify: number): RateCase & { reads(): number } {
  const w = wiredVf(1, BLOCK_VF, 0);
  const block = w.machine.dataPathOf(BLOCK_VF).backend as BlockDevice;
  const fill = new Uint8Array(blockBytes).fill(0x5a);
  for (let r = 0; r < perNotify; r++) block.backend.write(r * blockBytes, fill, 0, blockBytes);
  layOutBlockReads(w.transport.dma, w.ring, blockBytes, perNotify);
  const publish = publisher(w, 0, perNotify);
  return {
    name: `wired block IN: ${blockBytes / 1024} KiB reads, legacy driver on a VF guest I/O view, ${perNotify} per notify`,
    opsPerIteration: perNotify,
    run(iterations) {
      for (let k = 0; k < iterations; k++) publish();
      sink(block.stats.reads);
    },
    reads: () => block.stats.reads,
  };
}

// ---- REST batches ----

interface RestRate {
  name: string;
  opsPerSec: number;
  bytes?: number;
}

/** Every touched page of a local image as batch `dma` block writes. */
function uploadOps(ram: SparseRam): unknown[] {
  return Object.entries(ram.getState().pages).map(([address, page]) => [
    'wb',
    Number(address),
    Buffer.from(page, 'base64').toString('hex'),
  ]);
}

async function access(server: ServerHandle, body: unknown): Promise<{ failed: number }> {
  return JSON.parse(await benchHttp(server, 'POST', '/api/v1/access', body)) as { failed: number };
}

/** Brings a VF up over REST (legacy bring-up on the guest I/O view) and uploads its ring. */
async function restVf(
  server: ServerHandle,
  pf: string,
  bdf: string,
  queue: number,
  ram: SparseRam,
): Promise<void> {
  await benchHttp(server, 'PUT', `/api/v1/pfs/${pf}/sriov`, { numVfs: 1 });
  await access(server, { bdf, space: 'guest-config', ops: [['w', 4, 2, 0x5]] });
  const L = legacy.registers;
  await access(server, {
    bdf,
    space: 'io',
    ops: [
      ['w', L.STATUS.offset, 1, 0],
      ['w', L.STATUS.offset, 1, 3],
      ['w', L.GUEST_FEATURES.offset, 4, 0],
      ['w', L.QUEUE_SEL.offset, 2, queue],
      ['w', L.QUEUE_PFN.offset, 4, PFN],
      ['w', L.STATUS.offset, 1, 7],
    ],
  });
  const upload = await access(server, { bdf, space: 'dma', ops: uploadOps(ram) });
  if (upload.failed !== 0) throw new Error(`${bdf}: the ring upload failed`);
}

/** Sequential batches for `ms`: each publishes `count` chains and notifies (plus `extra` ops). */
async function restRounds(
  server: ServerHandle,
  bdf: string,
  queue: number,
  count: number,
  extra: unknown[],
  ms: number,
  rounds: number,
): Promise<number> {
  const availIdx = legacyLayout(PFN, QUEUE_SIZE).driver + R.AVAIL_IDX.offset;
  let idx = 0;
  const rates: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = now();
    let batches = 0;
    while (now() - started < ms) {
      idx = (idx + count) & 0xffff;
      const result = await access(server, {
        bdf,
        ops: [
          { space: 'dma', op: 'write', offset: availIdx, width: 2, value: idx },
          { space: 'io', op: 'write', offset: NOTIFY, width: 2, value: queue },
          ...extra,
        ],
      });
      if (result.failed !== 0) throw new Error(`${bdf}: a measured batch failed`);
      batches++;
    }
    rates.push((batches * count * 1000) / (now() - started));
  }
  return median(rates);
}

export async function runWiredRest(ms = 600, rounds = 3): Promise<RestRate[]> {
  const server = await startServerChild('vmmr');
  try {
    const ring = legacyLayout(PFN, QUEUE_SIZE);
    const netRam = new SparseRam();
    layOutTx(netRam, ring, 64);
    await restVf(server, '0000:01:00.0', NET_VF, 1, netRam);
    const tx = await restRounds(server, NET_VF, 1, QUEUE_SIZE, [], ms, rounds);
    const out: RestRate[] = [
      { name: `REST batches: wired net TX, 64-byte frames, ${QUEUE_SIZE} per batch`, opsPerSec: tx },
    ];
    const blockRam = new SparseRam();
    const perNotify = 16;
    const buffers = layOutBlockReads(blockRam, ring, 4096, perNotify);
    await restVf(server, '0000:81:00.0', BLOCK_VF, 0, blockRam);
    const readBack = Array.from({ length: perNotify }, (_, r) => ({
      space: 'dma',
      op: 'read',
      offset: buffers + r * 4096,
      length: 4096,
    }));
    const blk = await restRounds(server, BLOCK_VF, 0, perNotify, readBack, ms, rounds);
    out.push({
      name: `REST batches: wired block IN, 4 KiB reads, ${perNotify} per batch, data read back over dma`,
      opsPerSec: blk,
      bytes: 4096,
    });
    return out;
  } finally {
    await server.stop();
  }
}
