/**
 * Data path section (device side, then wired through the register model and REST batches in
 * bench/datapath-wired.ts): 64-byte frames transmitted through a split ring (256 frames per notify,
 * capture on), and 4 KiB / 64 KiB reads from a RAM disk (64 requests per notify), device side
 * only: the rings are laid out once and each round the "driver" just publishes the same chains
 * again by moving the available index, so the figures measure the device's work (pop, checks,
 * gather/scatter, capture, used entries). Baselines in the same rounds: a plain Buffer.copy of
 * the same frame bytes, and of the same 64 KiB blocks between buffers of the same working-set
 * size.
 */
import { RamDisk } from '../src/devices/block/backend.js';
import { BlockDevice } from '../src/devices/block/device.js';
import { NetDevice } from '../src/devices/net/device.js';
import { StandaloneContext } from '../src/devices/standalone.js';
import { SparseRam } from '../src/dma/sparse-ram.js';
import { deviceConfigs, features, virtioRing } from '../src/spec/index.js';
import type { RingFeatures } from '../src/virtqueue/index.js';
import { runWiredRest, wiredBlockCase, wiredTxCase } from './datapath-wired.js';
import {
  measureRates,
  medianRatio,
  now,
  quantile,
  sink,
  type RateCase,
  type RateResult,
} from './lib/measure.js';
import type { Row, Section } from './lib/results.js';
import { runIfScript } from './lib/script.js';

const R = virtioRing.registers;
const C = virtioRing.constants;
const NO_RING_FEATURES: RingFeatures = {
  indirect: false,
  eventIdx: false,
  inOrder: false,
  notifyOnEmpty: false,
};
const VERSION_1 = { lo: 0, hi: 1 << (features.common.constants.VERSION_1.value - 32) };
const QUEUE_SIZE = 256;
const DESC = 0x1_0000;
const DRIVER = 0x2_0000;
const DEVICE = 0x3_0000;
const DATA = 0x10_0000;

export interface DatapathOptions {
  rounds: number;
  roundMs: number;
  warmupMs: number;
}

export const DATAPATH_DEFAULTS: DatapathOptions = { rounds: 15, roundMs: 80, warmupMs: 300 };
export const TX_TARGET = 1_000_000;
export const BLOCK_RATIO_TARGET = 0.5;

function writeDescriptor(
  ram: SparseRam,
  index: number,
  address: number,
  length: number,
  flags: number,
  next: number,
): void {
  const at = DESC + C.DESC_SIZE.value * index;
  ram.writeU64(at + R.DESC_ADDR.offset, address);
  ram.writeU32(at + R.DESC_LEN.offset, length);
  ram.writeU16(at + R.DESC_FLAGS.offset, flags);
  ram.writeU16(at + R.DESC_NEXT.offset, next);
}

/** Publishes `count` more chains (the avail ring already names them) and notifies. */
function republish(ram: SparseRam, state: { idx: number }, count: number): void {
  state.idx = (state.idx + count) & 0xffff;
  ram.writeU16(DRIVER + R.AVAIL_IDX.offset, state.idx);
}

function txCase(frameBytes: number, perNotify: number): { case: RateCase; device: NetDevice } {
  const ram = new SparseRam();
  const ctx = new StandaloneContext({ type: 'net', dma: ram, features: VERSION_1 });
  const device = new NetDevice(ctx, { name: 'bench' });
  ctx.setQueue({
    index: 1,
    size: QUEUE_SIZE,
    format: 'split',
    addresses: { desc: DESC, driver: DRIVER, device: DEVICE },
    features: NO_RING_FEATURES,
  });
  const header = 12;
  for (let i = 0; i < QUEUE_SIZE; i++) {
    const at = DATA + i * 128;
    const frame = new Uint8Array(header + frameBytes);
    frame.fill(0xff, header, header + 6);
    frame[header + 6] = 2;
    frame[header + 11] = i;
    ram.write(at, frame, 0, frame.length);
    writeDescriptor(ram, i, at, frame.length, 0, 0);
    ram.writeU16(DRIVER + R.AVAIL_RING.offset + 2 * i, i);
  }
  const state = { idx: 0 };
  return {
    device,
    case: {
      name: `net TX: ${frameBytes}-byte frames, split ring, ${perNotify} per notify, capture on`,
      opsPerIteration: perNotify,
      run(iterations) {
        for (let k = 0; k < iterations; k++) {
          republish(ram, state, perNotify);
          device.notify(1);
        }
        sink(device.stats.txFrames);
      },
    },
  };
}

function frameCopyBaseline(frameBytes: number, perNotify: number): RateCase {
  const src = Buffer.alloc(QUEUE_SIZE * 128, 7);
  const dst = Buffer.alloc(2 << 20);
  let at = 0;
  return {
    name: `baseline: Buffer.copy of the same ${frameBytes}-byte frames`,
    opsPerIteration: perNotify,
    run(iterations) {
      for (let k = 0; k < iterations; k++) {
        for (let i = 0; i < perNotify; i++) {
          if (at + frameBytes > dst.length) at = 0;
          src.copy(dst, at, i * 128 + 12, i * 128 + 12 + frameBytes);
          at += frameBytes;
        }
      }
      sink(dst[0]!);
    },
  };
}

function blockCase(blockBytes: number, perNotify: number): RateCase {
  const ram = new SparseRam();
  const ctx = new StandaloneContext({ type: 'block', dma: ram, features: VERSION_1 });
  const disk = new RamDisk((64 << 20) / 512);
  const fill = new Uint8Array(blockBytes).fill(0x5a);
  for (let r = 0; r < perNotify; r++) disk.write(r * blockBytes, fill, 0, blockBytes);
  const device = new BlockDevice(ctx, { backend: disk, serial: 'bench' });
  ctx.setQueue({
    index: 0,
    size: QUEUE_SIZE,
    format: 'split',
    addresses: { desc: DESC, driver: DRIVER, device: DEVICE },
    features: NO_RING_FEATURES,
  });
  const B = deviceConfigs.block.constants;
  const headers = DATA;
  const statuses = DATA + 0x1_0000;
  const buffers = DATA + 0x10_0000;
  for (let r = 0; r < perNotify; r++) {
    const h = headers + 16 * r;
    ram.writeU32(h, B.T_IN.value);
    ram.writeU64(h + 8, (r * blockBytes) / 512);
    writeDescriptor(ram, 3 * r, h, 16, C.DESC_F_NEXT.value, 3 * r + 1);
    writeDescriptor(
      ram,
      3 * r + 1,
      buffers + r * blockBytes,
      blockBytes,
      C.DESC_F_NEXT.value | C.DESC_F_WRITE.value,
      3 * r + 2,
    );
    writeDescriptor(ram, 3 * r + 2, statuses + r, 1, C.DESC_F_WRITE.value, 0);
  }
  for (let slot = 0; slot < QUEUE_SIZE; slot++)
    ram.writeU16(DRIVER + R.AVAIL_RING.offset + 2 * slot, 3 * (slot % perNotify));
  const state = { idx: 0 };
  return {
    name: `block IN: ${blockBytes / 1024} KiB reads from a RAM disk, ${perNotify} per notify`,
    opsPerIteration: perNotify,
    run(iterations) {
      for (let k = 0; k < iterations; k++) {
        republish(ram, state, perNotify);
        device.notify(0);
      }
      sink(device.stats.reads);
    },
  };
}

function blockCopyBaseline(blockBytes: number, perNotify: number): RateCase {
  const src = Buffer.alloc(blockBytes * perNotify, 0x5a);
  const dst = Buffer.alloc(blockBytes * perNotify);
  return {
    name: `baseline: Buffer.copy of the same ${blockBytes / 1024} KiB blocks`,
    opsPerIteration: perNotify,
    run(iterations) {
      for (let k = 0; k < iterations; k++) {
        for (let r = 0; r < perNotify; r++)
          src.copy(dst, r * blockBytes, r * blockBytes, (r + 1) * blockBytes);
      }
      sink(dst[7]!);
    },
  };
}

export async function runDatapath(options: DatapathOptions = DATAPATH_DEFAULTS): Promise<Section> {
  const started = now();
  const tx = txCase(64, 256);
  const wiredTx = wiredTxCase(64);
  const wiredBlock = wiredBlockCase(65536, 64);
  const cases: RateCase[] = [
    frameCopyBaseline(64, 256),
    tx.case,
    wiredTx,
    blockCopyBaseline(4096, 64),
    blockCase(4096, 64),
    wiredBlockCase(4096, 64),
    blockCopyBaseline(65536, 64),
    blockCase(65536, 64),
    wiredBlock,
  ];
  const results = measureRates(cases, options);
  const [copy64, tx64, wtx64, copy4k, blk4k, wblk4k, copy64k, blk64k, wblk64k] = results as [
    RateResult,
    RateResult,
    RateResult,
    RateResult,
    RateResult,
    RateResult,
    RateResult,
    RateResult,
    RateResult,
  ];
  if (wiredTx.frames() === 0 || wiredBlock.reads() === 0)
    throw new Error('the wired benchmarks processed nothing');
  const bytesOf: Record<string, number> = {
    [copy4k.name]: 4096,
    [blk4k.name]: 4096,
    [wblk4k.name]: 4096,
    [copy64k.name]: 65536,
    [blk64k.name]: 65536,
    [wblk64k.name]: 65536,
  };
  const baselineOf = new Map([
    [tx64, copy64],
    [wtx64, copy64],
    [blk4k, copy4k],
    [wblk4k, copy4k],
    [blk64k, copy64k],
    [wblk64k, copy64k],
  ]);
  const rows: Row[] = results.map((r) => {
    const base = baselineOf.get(r);
    const bytes = bytesOf[r.name];
    return {
      case: r.name,
      'ops/s': Math.round(r.opsPerSec),
      'ns/op': 1e9 / r.opsPerSec,
      'MB/s': bytes ? (r.opsPerSec * bytes) / 1e6 : null,
      '÷ baseline': base ? medianRatio(r, base) : null,
      'IQR %': (100 * (quantile(r.samples, 0.75) - quantile(r.samples, 0.25))) / r.opsPerSec,
    };
  });
  for (const r of await runWiredRest()) {
    rows.push({
      case: r.name,
      'ops/s': Math.round(r.opsPerSec),
      'ns/op': 1e9 / r.opsPerSec,
      'MB/s': r.bytes ? (r.opsPerSec * r.bytes) / 1e6 : null,
      '÷ baseline': null,
      'IQR %': null,
    });
  }
  const ratio64k = medianRatio(blk64k, copy64k);
  const wiredRatio64k = medianRatio(wblk64k, copy64k);
  const captured = tx.device.capture.frames();
  if (captured.length === 0 || captured[captured.length - 1]!.data.length !== 64)
    throw new Error('the TX benchmark captured no 64-byte frames');
  return {
    id: 'datapath',
    title: 'Data path: virtio-net transmit and virtio-blk reads through split rings (device side)',
    baseline: 'Buffer.copy of the same bytes, measured in the same rounds',
    rows,
    targets: [
      {
        name: '64-byte TX frames per second (256 per notify, capture on)',
        goal: `>= ${TX_TARGET.toLocaleString('en-US')}`,
        value: tx64.opsPerSec,
        met: tx64.opsPerSec >= TX_TARGET,
      },
      {
        name: '64 KiB RAM-disk read throughput ÷ Buffer.copy of the same bytes (median of per-round ratios)',
        goal: `>= ${BLOCK_RATIO_TARGET}`,
        value: ratio64k,
        met: ratio64k >= BLOCK_RATIO_TARGET,
      },
      {
        name: 'wired: 64-byte TX frames per second, legacy driver on a VF guest I/O view (256 per notify)',
        goal: `>= ${TX_TARGET.toLocaleString('en-US')}`,
        value: wtx64.opsPerSec,
        met: wtx64.opsPerSec >= TX_TARGET,
      },
      {
        name: 'wired: 64 KiB RAM-disk reads on a VF guest I/O view ÷ Buffer.copy of the same bytes',
        goal: `>= ${BLOCK_RATIO_TARGET}`,
        value: wiredRatio64k,
        met: wiredRatio64k >= BLOCK_RATIO_TARGET,
      },
    ],
    notes: [
      'rings laid out once; each round re-publishes the same chains by moving avail idx, so only device work is timed',
      'TX: 12-byte header + 64-byte frame in one descriptor; every frame copied into the capture ring (1024 frames, 2 MiB)',
      `block: header, data and status descriptors; RAM disk of 64 MiB with the read range written first; ${options.rounds} interleaved rounds of ~${options.roundMs} ms per case`,
      'wired: the same rings on a machine of the default topology, notified by an I/O write of QUEUE_NOTIFY through the access layer and the guest view, processed by the machine (drain)',
      'REST batches: sequential POST /api/v1/access to a server child, each a dma write of avail idx + the io notify (block: + 16 dma block reads of the data); median of 3 rounds of 0.6 s',
    ],
    seconds: (now() - started) / 1000,
  };
}

runIfScript(import.meta.url, 'datapath bench', async (argv) => {
  const section = await runDatapath();
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(section)}\n`);
  else {
    const { formatSection } = await import('./lib/results.js');
    process.stdout.write(`${formatSection(section)}\n`);
  }
});
