/**
 * Scale section: one net PF with TotalVFs = N (1,000 / 10,000 / 60,000), VFs at 0000:01:00.1
 * onwards (stride 1).
 *
 * - Enable time, heap and RSS per VF: each N in its own child process (started with
 *   --expose-gc), so that one N's garbage and heap growth do not colour the next. Bytes per VF
 *   are the delta after a full GC from just before VF Enable, divided by N; "touched" repeats
 *   the figure after one write of ACKNOWLEDGE to every VF's legacy STATUS register, "driven"
 *   after a legacy driver's whole bring-up with MSI-X on every VF (driveAll). Enable time
 *   is compared with allocating N bare objects in the same process.
 * - Access time and listing: all three machines in this process, measured in interleaved
 *   rounds, against a trivial baseline call measured in the same rounds. One access resolves
 *   the VF by BDF with machine.find (as the HTTP layer does) and reads its legacy STATUS.
 *
 * - vfio-user exports: 1,024 guest views of net VFs exported from one process, each with a
 *   client that negotiated and mapped 64 KiB, doing REGION_READs and device DMA in rounds, then
 *   again beside a stuck client (bench/lib/vfio-user-fleet.ts, a child process of its own).
 *
 * `node --expose-gc dist/bench/scale.js` prints the section; with --json it prints the section
 * as one JSON line instead (for bench/run.ts).
 */
import { runIfScript } from './lib/script.js';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { getHeapSpaceStatistics } from 'node:v8';
import { fileURLToPath } from 'node:url';
import { read, write } from '../src/access/index.js';
import { formatBdf } from '../src/pci/bdf.js';
import { barLayout, legacy, msixCap, virtioStatus } from '../src/spec/index.js';
import type { Machine } from '../src/machine/machine.js';
import { baselineCase } from './in-process.js';
import { disableVfs, enableVfs, LEGACY_BLOCK, scaleMachine, VF_BAR_SPACE } from './lib/machine.js';
import {
  collectGarbage,
  hasGc,
  latencySamples,
  measureRates,
  median,
  medianRatio,
  now,
  percentiles,
  prng,
  sink,
  type RateCase,
} from './lib/measure.js';
import { formatSection, type Row, type Section } from './lib/results.js';
import type { FleetFigures } from './lib/vfio-user-fleet.js';
import { PROTO } from '../src/vfio-user/protocol.js';

export const SCALE_COUNTS = [1000, 10000, 60000] as const;
const HEAP_GOAL_BYTES = 1024;
/** A driven VF's registers, before DMA pages and data-path buffers. */
const DRIVEN_GOAL_BYTES = 512;
const ENABLE_GOAL_MS = 1000;
const FLAT_GOAL = 1.5;
const STATUS = LEGACY_BLOCK + legacy.registers.STATUS.offset;
const ACKNOWLEDGE = virtioStatus.constants.ACKNOWLEDGE.value;
const WARM_ENABLES = 5;
const SETTLE_MS = 100;
const TOUCH_SETTLE_MS = 100;
const TOUCH_SETTLE_PASSES = 10;
/**
 * Flags of the memory child processes: a GC on demand, and no bytecode flushing (V8 drops the
 * bytecode of functions idle for a few GCs, which would show up as VFs taking less memory).
 */
const MEMORY_CHILD_FLAGS = ['--expose-gc', '--no-flush-bytecode'];

/** What one child process measures for one N. */
export interface MemoryFigures {
  vfs: number;
  coldEnableMs: number;
  enableMs: number;
  allocBaselineMs: number;
  heapPerVf: number;
  externalPerVf: number;
  rssPerVf: number;
  /** The first pass (cold: right after enabling and a GC). */
  firstTouchMs: number;
  /** Median of later passes. */
  touchMs: number;
  heapPerVfTouched: number;
  rssPerVfTouched: number;
  /** After a legacy driver's bring-up of every VF with MSI-X (see driveAll). */
  heapPerVfDriven: number;
  rssPerVfDriven: number;
}

interface Memory {
  heap: number;
  external: number;
  rss: number;
}

/** Heap without the code spaces: compiled code is not memory the VFs hold. */
function dataHeapBytes(): number {
  let used = 0;
  for (const space of getHeapSpaceStatistics())
    if (!space.space_name.startsWith('code')) used += space.space_used_size;
  return used;
}

/** Memory after a full GC and a short pause (V8 returns freed pages to the OS in the background). */
async function memory(): Promise<Memory> {
  collectGarbage();
  await sleep(SETTLE_MS);
  collectGarbage();
  const m = process.memoryUsage();
  return { heap: dataHeapBytes(), external: m.external, rss: m.rss };
}

/** A minimal per-VF object, to compare enabling with the cost of bare allocation. */
class Bare {
  constructor(
    readonly owner: object,
    readonly index: number,
    readonly state: number,
  ) {}
}

function allocBaselineMs(n: number): number {
  const owner = {};
  const samples: number[] = [];
  for (let r = 0; r < WARM_ENABLES; r++) {
    const start = now();
    const list = new Array<Bare>(n);
    for (let i = 0; i < n; i++) list[i] = new Bare(owner, i, 0);
    samples.push(now() - start);
    sink(list.length);
  }
  return median(samples);
}

const LR = legacy.registers;
const MSIX_FLAGS = msixCap.registers.FLAGS;
const MSIX_ENABLE = msixCap.constants.FLAGS_ENABLE.value;
const MSIX_TABLE = barLayout.registers.MSIX_TABLE.offset;
const ENTRY_BYTES = 16;
const DRIVER_OK_STATUS =
  virtioStatus.constants.ACKNOWLEDGE.value |
  virtioStatus.constants.DRIVER.value |
  virtioStatus.constants.DRIVER_OK.value;
/** Guest pages of VF k's rings: any non-zero frame numbers do (no DMA happens here). */
const RING_PFN_BASE = 0x100;

/**
 * What a legacy driver with MSI-X leaves in every VF (Linux virtio_pci_legacy: vp_find_vqs with
 * per-queue vectors): MSI-X enabled in config space, every vector's table entry written and
 * unmasked, STATUS ACKNOWLEDGE | DRIVER, the device's features accepted, each queue placed by
 * QUEUE_PFN with its vector, the config vector, DRIVER_OK.
 */
function driveAll(machine: Machine): void {
  const pf = machine.pfs[0]!;
  const queues = pf.vfTemplate.model.queueNames.length;
  const vectors = pf.vfTemplate.model.msixVectors;
  const flagsAt = pf.vfTemplate.caps.msix + MSIX_FLAGS.offset;
  for (const vf of pf.vfs) {
    write(vf, 'config', flagsAt, MSIX_FLAGS.size, MSIX_ENABLE);
    for (let v = 0; v < vectors; v++) {
      const entry = MSIX_TABLE + v * ENTRY_BYTES;
      write(vf, VF_BAR_SPACE, entry, 4, 0xfee00000);
      write(vf, VF_BAR_SPACE, entry + 4, 4, 0);
      write(vf, VF_BAR_SPACE, entry + 8, 4, 0x4000 + v);
      write(vf, VF_BAR_SPACE, entry + 12, 4, 0);
    }
    write(vf, VF_BAR_SPACE, STATUS, 1, ACKNOWLEDGE);
    write(vf, VF_BAR_SPACE, STATUS, 1, ACKNOWLEDGE | virtioStatus.constants.DRIVER.value);
    const features = read(vf, VF_BAR_SPACE, LEGACY_BLOCK + LR.HOST_FEATURES.offset, 4) as number;
    write(vf, VF_BAR_SPACE, LEGACY_BLOCK + LR.GUEST_FEATURES.offset, 4, features);
    write(vf, VF_BAR_SPACE, LEGACY_BLOCK + LR.MSI_CONFIG_VECTOR.offset, 2, 0);
    for (let q = 0; q < queues; q++) {
      write(vf, VF_BAR_SPACE, LEGACY_BLOCK + LR.QUEUE_SEL.offset, 2, q);
      write(vf, VF_BAR_SPACE, LEGACY_BLOCK + LR.QUEUE_PFN.offset, 4, RING_PFN_BASE + vf.index * queues + q);
      write(vf, VF_BAR_SPACE, LEGACY_BLOCK + LR.MSI_QUEUE_VECTOR.offset, 2, Math.min(q + 1, vectors - 1));
    }
    write(vf, VF_BAR_SPACE, STATUS, 1, DRIVER_OK_STATUS);
  }
  const last = pf.vfs[pf.vfs.length - 1]!;
  if (read(last, VF_BAR_SPACE, STATUS, 1) !== DRIVER_OK_STATUS || !last.msixEnabled())
    throw new Error('drive did not land');
}

function touchAll(machine: Machine): void {
  for (const vf of machine.pfs[0]!.vfs) write(vf, VF_BAR_SPACE, STATUS, 1, ACKNOWLEDGE);
}

/**
 * Runs enable, touch and listing on a small throw-away machine first, so that the measured run
 * finds its code compiled. Small, so that it does not grow the heap the measured run then fills.
 */
function warmUpPaths(): void {
  const m = scaleMachine(64);
  const pf = m.pfs[0]!;
  for (let r = 0; r < 20; r++) {
    enableVfs(pf, 64);
    for (let t = 0; t < 50; t++) touchAll(m);
    driveAll(m);
    sink([...m.functions()].map((f) => f.bdf).length);
    disableVfs(pf);
  }
}

export async function measureMemory(n: number): Promise<MemoryFigures> {
  warmUpPaths();
  const machine = scaleMachine(n);
  const pf = machine.pfs[0]!;
  const before = await memory();
  let start = now();
  enableVfs(pf, n);
  const coldEnableMs = now() - start;
  if (pf.vfs.length !== n) throw new Error(`enabled ${pf.vfs.length} VFs, expected ${n}`);
  const idle = await memory();
  // One STATUS write per VF, then the memory figure.
  start = now();
  touchAll(machine);
  const firstTouchMs = now() - start;
  const touched = await memory();
  if (Number(read(pf.vfs[n - 1]!, VF_BAR_SPACE, STATUS, 1)) !== ACKNOWLEDGE)
    throw new Error('touch did not land');
  // The time per write comes from later passes: after the GCs above the JIT re-optimises the
  // path, which on a busy two-core machine takes a while; let it settle, then take a median.
  const settleUntil = now() + TOUCH_SETTLE_MS;
  for (let r = 0; r < TOUCH_SETTLE_PASSES || now() < settleUntil; r++) touchAll(machine);
  const touches: number[] = [];
  for (let r = 0; r < WARM_ENABLES; r++) {
    start = now();
    touchAll(machine);
    touches.push(now() - start);
  }
  const touchMs = median(touches);
  driveAll(machine);
  const driven = await memory();

  // Warm enables start from a collected heap: the time is creating VFs, not freeing the last ones.
  const enables: number[] = [];
  for (let r = 0; r < WARM_ENABLES; r++) {
    disableVfs(pf);
    collectGarbage();
    start = now();
    enableVfs(pf, n);
    enables.push(now() - start);
  }
  return {
    vfs: n,
    coldEnableMs,
    enableMs: median(enables),
    allocBaselineMs: allocBaselineMs(n),
    heapPerVf: (idle.heap - before.heap) / n,
    externalPerVf: (idle.external - before.external) / n,
    rssPerVf: (idle.rss - before.rss) / n,
    firstTouchMs,
    touchMs,
    heapPerVfTouched: (touched.heap + touched.external - before.heap - before.external) / n,
    rssPerVfTouched: (touched.rss - before.rss) / n,
    heapPerVfDriven: (driven.heap + driven.external - before.heap - before.external) / n,
    rssPerVfDriven: (driven.rss - before.rss) / n,
  };
}

const FLEET_EXPORTS = 1024;
/** A round beside a stuck client may take at most this many times a round without it. */
const STUCK_GOAL = 2;

function runFleet(n: number): FleetFigures {
  const script = fileURLToPath(new URL('./lib/vfio-user-fleet.js', import.meta.url));
  const child = spawnSync(process.execPath, [...MEMORY_CHILD_FLAGS, script, 'server', String(n)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (child.status !== 0)
    throw new Error(`vfio-user fleet of ${n} failed (${child.status}): ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').pop() ?? '') as FleetFigures;
}

function fleetNotes(f: FleetFigures): string[] {
  const b = (x: number): string => `${Math.round(x).toLocaleString('en-US')} B`;
  return [
    `vfio-user, ${f.exports.toLocaleString('en-US')} exports in one process: ${b(f.heapPerExport)} and ${f.fdsPerExport} fd per listening export; ` +
      `per connected client (VERSION + one 64 KiB DMA map): ${b(f.heapPerConnection)} heap, ${b(f.externalPerConnection)} outside it (the map included), ${f.fdsPerConnection.toFixed(2)} fd`,
    `vfio-user rounds (median of 9): one REGION_READ from every client ${f.readRoundMs.toFixed(1)} ms; 4 KiB device DMA through every client's map ${f.dmaRoundMs.toFixed(1)} ms; ` +
      `REGION_READs beside a stuck client ${f.readRoundWithStuckMs.toFixed(1)} ms (its queue held at ${b(f.stuckQueuedBytes)})`,
  ];
}

function runChild(n: number): MemoryFigures {
  const script = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, [...MEMORY_CHILD_FLAGS, script, '--memory', String(n)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (child.status !== 0) throw new Error(`scale child for N=${n} failed (${child.status}): ${child.stderr}`);
  const line = child.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as MemoryFigures;
}

interface AccessFigures {
  vfs: number;
  /** Median ns per access, VFs drawn from all N. */
  accessNs: number;
  /** Per-round ratio to N = 1,000 (median). */
  vs1k: number;
  /** The same with VFs drawn from the first 1,000 only: N without the working-set growth. */
  sameSetNs: number;
  sameSetVs1k: number;
  p50Ns: number;
  p99Ns: number;
  listMs: number;
}

const RANDOM_VFS = 4096;
const SAME_SET = 1000;
const LATENCY_SAMPLES = 2000;
const LATENCY_BATCH = 16;

/** Access time to a random VF by BDF, and the time to list every function, for each N. */
function measureAccess(counts: readonly number[]): { figures: AccessFigures[]; baselineNs: number } {
  const machines = counts.map((n) => {
    const m = scaleMachine(n);
    enableVfs(m.pfs[0]!, n);
    return m;
  });
  const random = prng(0x5eed);
  // BDF strings are made beforehand: the measured access starts from a string, as a request does.
  const draw = (m: Machine, range: number): string[] => {
    const pf = m.pfs[0]!;
    return Array.from({ length: RANDOM_VFS }, () =>
      formatBdf(pf.domain, pf.vfRid(Math.floor(random() * range))),
    );
  };
  const everywhere = machines.map((m) => draw(m, m.pfs[0]!.vfs.length));
  const sameSet = machines.map((m) => draw(m, Math.min(SAME_SET, m.pfs[0]!.vfs.length)));
  const access = (m: Machine, bdf: string): number => read(m.find(bdf), VF_BAR_SPACE, STATUS, 1) as number;
  const accessCase = (name: string, m: Machine, bdfs: readonly string[]): RateCase => ({
    name,
    opsPerIteration: 1,
    run(iterations: number) {
      let sum = 0;
      for (let i = 0; i < iterations; i++) sum += access(m, bdfs[i & (RANDOM_VFS - 1)]!);
      sink(sum);
    },
  });

  const cases: RateCase[] = [
    baselineCase(),
    ...machines.map((m, k) => accessCase(`N=${counts[k]}`, m, everywhere[k]!)),
    ...machines.map((m, k) => accessCase(`N=${counts[k]}, first ${SAME_SET}`, m, sameSet[k]!)),
  ];
  const [base, ...rest] = measureRates(cases, { rounds: 24, roundMs: 40, warmupMs: 150 });
  const all = rest.slice(0, counts.length);
  const same = rest.slice(counts.length);

  const latencies = machines.map(() => [] as number[]);
  const lists = machines.map(() => [] as number[]);
  for (let round = 0; round < 5; round++) {
    machines.forEach((m, k) => {
      const bdfs = everywhere[k]!;
      const chunk = latencySamples(
        (i) => sink(access(m, bdfs[i & (RANDOM_VFS - 1)]!)),
        LATENCY_SAMPLES / 5,
        LATENCY_BATCH,
      );
      latencies[k]!.push(...chunk);
      const start = now();
      const list = [...m.functions()].map((f) => f.bdf);
      lists[k]!.push(now() - start);
      sink(list.length);
    });
  }
  return {
    baselineNs: 1e9 / base!.opsPerSec,
    figures: counts.map((n, k) => {
      const p = percentiles(latencies[k]!);
      return {
        vfs: n,
        accessNs: 1e9 / all[k]!.opsPerSec,
        vs1k: medianRatio(all[0]!, all[k]!),
        sameSetNs: 1e9 / same[k]!.opsPerSec,
        sameSetVs1k: medianRatio(same[0]!, same[k]!),
        p50Ns: p.p50,
        p99Ns: p.p99,
        listMs: median(lists[k]!),
      };
    }),
  };
}

/** One printed row per metric, one column per N. */
function metricRow(metric: string, counts: readonly number[], value: (k: number) => number): Row {
  const row: Row = { metric };
  counts.forEach((n, k) => {
    row[`N = ${n.toLocaleString('en-US')}`] = value(k);
  });
  return row;
}

export function runScale(counts: readonly number[] = SCALE_COUNTS): Section {
  const started = now();
  const mem = counts.map(runChild);
  const fleet = runFleet(FLEET_EXPORTS);
  const { figures, baselineNs } = measureAccess(counts);
  const a = (k: number): AccessFigures => figures[k]!;
  const m = (k: number): MemoryFigures => mem[k]!;
  const rows: Row[] = [
    metricRow('enable (NumVFs + VFE), ms, median warm', counts, (k) => m(k).enableMs),
    metricRow('enable, ms, first (cold)', counts, (k) => m(k).coldEnableMs),
    metricRow('enable ÷ allocating N bare objects', counts, (k) => m(k).enableMs / m(k).allocBaselineMs),
    metricRow('heap B/VF, idle', counts, (k) => m(k).heapPerVf + m(k).externalPerVf),
    metricRow('RSS B/VF, idle', counts, (k) => m(k).rssPerVf),
    metricRow('heap B/VF, touched', counts, (k) => m(k).heapPerVfTouched),
    metricRow('RSS B/VF, touched', counts, (k) => m(k).rssPerVfTouched),
    metricRow('heap B/VF, driven (features, queues, MSI-X)', counts, (k) => m(k).heapPerVfDriven),
    metricRow('RSS B/VF, driven', counts, (k) => m(k).rssPerVfDriven),
    metricRow('touch (STATUS write to every VF), ns/VF', counts, (k) => (m(k).touchMs * 1e6) / m(k).vfs),
    metricRow('  first pass (cold), ns/VF', counts, (k) => (m(k).firstTouchMs * 1e6) / m(k).vfs),
    metricRow('access to a random VF, ns (median)', counts, (k) => a(k).accessNs),
    metricRow('  p50 ns (samples of 16 accesses)', counts, (k) => a(k).p50Ns),
    metricRow('  p99 ns (samples of 16 accesses)', counts, (k) => a(k).p99Ns),
    metricRow('  ÷ trivial call', counts, (k) => a(k).accessNs / baselineNs),
    metricRow('  ÷ N = 1,000 (random over all N VFs)', counts, (k) => a(k).vs1k),
    metricRow(`  ÷ N = 1,000 (random over the first ${SAME_SET})`, counts, (k) => a(k).sameSetVs1k),
    metricRow('list all functions, ms', counts, (k) => a(k).listMs),
    metricRow('list, ns per function', counts, (k) => (a(k).listMs * 1e6) / (m(k).vfs + 1)),
  ];
  const last = counts.length - 1;
  const worstHeap = Math.max(...mem.map((x) => x.heapPerVf + x.externalPerVf));
  const worstTouched = Math.max(...mem.map((x) => x.heapPerVfTouched));
  const worstDriven = Math.max(...mem.map((x) => x.heapPerVfDriven));
  const flatSameSet = Math.max(...figures.map((x) => x.sameSetVs1k));
  const flatAll = Math.max(...figures.map((x) => x.vs1k));
  return {
    id: 'scale',
    title: `Scale: one PF with N VFs (${counts.map((n) => n.toLocaleString('en-US')).join(', ')})`,
    baseline:
      `enable: allocating N bare 3-field objects in the same process; access: a trivial call (Map lookup + ` +
      `typed-array read, ${baselineNs.toPrecision(3)} ns here) and N = 1,000, both in the same interleaved rounds`,
    rows,
    targets: [
      {
        name: 'heap per idle VF (worst N), bytes',
        goal: `<= ${HEAP_GOAL_BYTES}`,
        value: worstHeap,
        met: worstHeap <= HEAP_GOAL_BYTES,
      },
      {
        name: 'heap per touched VF (worst N), bytes',
        goal: `<= ${HEAP_GOAL_BYTES}`,
        value: worstTouched,
        met: worstTouched <= HEAP_GOAL_BYTES,
      },
      {
        name: 'heap per driven VF (worst N), bytes',
        goal: `<= ${DRIVEN_GOAL_BYTES}`,
        value: worstDriven,
        met: worstDriven <= DRIVEN_GOAL_BYTES,
      },
      {
        name: `enable ${counts[last]!.toLocaleString('en-US')} VFs, ms (first, cold)`,
        goal: `well under ${ENABLE_GOAL_MS} (< ${ENABLE_GOAL_MS / 10})`,
        value: mem[last]!.coldEnableMs,
        met: mem[last]!.coldEnableMs < ENABLE_GOAL_MS / 10,
      },
      {
        name: `access time flat in N: worst N ÷ N = 1,000, same ${SAME_SET}-VF working set`,
        goal: `<= ${FLAT_GOAL}`,
        value: flatSameSet,
        met: flatSameSet <= FLAT_GOAL,
      },
      {
        name: 'access time, worst N ÷ N = 1,000, random over all N VFs (adds cache misses)',
        goal: `<= ${FLAT_GOAL}`,
        value: flatAll,
        met: flatAll <= FLAT_GOAL,
      },
      {
        name: `vfio-user: a round of REGION_READs to ${FLEET_EXPORTS.toLocaleString('en-US')} exports beside a stuck client ÷ without it`,
        goal: `<= ${STUCK_GOAL}`,
        value: fleet.readRoundWithStuckMs / fleet.readRoundMs,
        met: fleet.readRoundWithStuckMs / fleet.readRoundMs <= STUCK_GOAL,
      },
      {
        name: "vfio-user: reply bytes queued for the stuck client (bounded by the server's high-water mark)",
        goal: `<= ${PROTO.SERVER_OUTPUT_HIGH_WATER.value}`,
        value: fleet.stuckQueuedBytes,
        met: fleet.stuckQueuedBytes <= PROTO.SERVER_OUTPUT_HIGH_WATER.value,
      },
    ],
    chart: {
      xLabel: 'VFs enabled',
      yLabel: 'bytes per VF',
      xLog: true,
      series: [
        {
          name: 'heap, idle',
          group: 'heap',
          points: mem.map((x) => ({ x: x.vfs, y: x.heapPerVf + x.externalPerVf })),
        },
        { name: 'RSS, idle', group: 'RSS', points: mem.map((x) => ({ x: x.vfs, y: x.rssPerVf })) },
        {
          name: 'heap, touched',
          group: 'heap',
          dashed: true,
          points: mem.map((x) => ({ x: x.vfs, y: x.heapPerVfTouched })),
        },
        {
          name: 'RSS, touched',
          group: 'RSS',
          dashed: true,
          points: mem.map((x) => ({ x: x.vfs, y: x.rssPerVfTouched })),
        },
        {
          name: 'heap, driven',
          group: 'heap',
          dashed: true,
          points: mem.map((x) => ({ x: x.vfs, y: x.heapPerVfDriven })),
        },
      ],
      marks: [{ label: `goal: ${HEAP_GOAL_BYTES} B per idle VF`, y: HEAP_GOAL_BYTES }],
    },
    notes: [
      'bytes per VF: (after − before enabling) ÷ N after a full GC, one child process per N; heap = V8 data spaces (compiled code excluded) + external (ArrayBuffer) memory',
      'RSS moves in whole pages and V8 keeps freed pages, so RSS per VF is only meaningful at large N',
      `access: machine.find(BDF string) + a 1-byte read of the legacy STATUS, ${RANDOM_VFS} pseudo-random VFs per N; ` +
        `"first ${SAME_SET}" draws from VFs 0..${SAME_SET - 1} only, so any growth left with N would be the lookup's own`,
      ...fleetNotes(fleet),
    ],
    raw: { memory: mem, access: figures, baselineNs, vfioUser: fleet },
    seconds: (now() - started) / 1000,
  };
}

async function main(argv: readonly string[]): Promise<void> {
  if (!hasGc()) {
    process.stderr.write('scale: run with node --expose-gc (npm run bench:scale)\n');
    process.exit(2);
  }
  const memoryAt = argv.indexOf('--memory');
  if (memoryAt >= 0) {
    process.stdout.write(`${JSON.stringify(await measureMemory(Number(argv[memoryAt + 1])))}\n`);
    return;
  }
  const section = runScale();
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(section)}\n`);
  else process.stdout.write(`${formatSection(section)}\n`);
}

runIfScript(import.meta.url, 'scale', main);
