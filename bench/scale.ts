/**
 * Scale section: one net PF with TotalVFs = N (1,000 / 10,000 / 60,000), VFs at 0000:01:00.1
 * onwards (stride 1).
 *
 * - Enable time, heap and RSS per VF: each N in its own child process (started with
 *   --expose-gc), so that one N's garbage and heap growth do not colour the next. Bytes per VF
 *   are the delta after a full GC from just before VF Enable, divided by N; "touched" repeats
 *   the figure after one write of ACKNOWLEDGE to every VF's legacy STATUS register. Enable time
 *   is compared with allocating N bare objects in the same process.
 * - Access time and listing: all three machines in this process, measured in interleaved
 *   rounds, against a trivial baseline call measured in the same rounds. One access resolves
 *   the VF by BDF with machine.find (as the HTTP layer does) and reads its legacy STATUS.
 *
 * `node --expose-gc dist/bench/scale.js` prints the section; with --json it prints the section
 * as one JSON line instead (for bench/run.ts).
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { read, write } from '../src/access/index.js';
import { formatBdf } from '../src/pci/bdf.js';
import { legacy, virtioStatus } from '../src/spec/index.js';
import type { Machine } from '../src/machine.js';
import { baselineCase } from './in-process.js';
import { disableVfs, enableVfs, LEGACY_BLOCK, scaleMachine, VF_BAR_SPACE } from './lib/machine.js';
import {
  collectGarbage,
  hasGc,
  latencySamples,
  measureRates,
  median,
  now,
  percentiles,
  prng,
  sink,
  type RateCase,
} from './lib/measure.js';
import { formatSection, type Row, type Section } from './lib/results.js';

export const SCALE_COUNTS = [1000, 10000, 60000] as const;
const HEAP_GOAL_BYTES = 1024;
const ENABLE_GOAL_MS = 1000;
const FLAT_GOAL = 1.5;
const STATUS = LEGACY_BLOCK + legacy.registers.STATUS.offset;
const ACKNOWLEDGE = virtioStatus.constants.ACKNOWLEDGE.value;
const WARM_ENABLES = 5;

/** What one child process measures for one N. */
export interface MemoryFigures {
  vfs: number;
  coldEnableMs: number;
  enableMs: number;
  allocBaselineMs: number;
  heapPerVf: number;
  externalPerVf: number;
  rssPerVf: number;
  touchMs: number;
  heapPerVfTouched: number;
  rssPerVfTouched: number;
}

interface Memory {
  heap: number;
  external: number;
  rss: number;
}

function memory(): Memory {
  collectGarbage();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external, rss: m.rss };
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

function touchAll(machine: Machine): void {
  for (const vf of machine.pfs[0]!.vfs) write(vf, VF_BAR_SPACE, STATUS, 1, ACKNOWLEDGE);
}

/** Runs the enable/touch path once on a small PF so the JIT has compiled it before measuring. */
function warmUpPaths(): void {
  const m = scaleMachine(64);
  const pf = m.pfs[0]!;
  for (let r = 0; r < 20; r++) {
    enableVfs(pf, 64);
    touchAll(m);
    sink([...m.functions()].map((f) => f.bdf).length);
    disableVfs(pf);
  }
}

export function measureMemory(n: number): MemoryFigures {
  warmUpPaths();
  const machine = scaleMachine(n);
  const pf = machine.pfs[0]!;
  const before = memory();
  let start = now();
  enableVfs(pf, n);
  const coldEnableMs = now() - start;
  if (pf.vfs.length !== n) throw new Error(`enabled ${pf.vfs.length} VFs, expected ${n}`);
  const idle = memory();
  start = now();
  touchAll(machine);
  const touchMs = now() - start;
  const touched = memory();
  if (Number(read(pf.vfs[n - 1]!, VF_BAR_SPACE, STATUS, 1)) !== ACKNOWLEDGE) throw new Error('touch did not land');

  const enables: number[] = [];
  for (let r = 0; r < WARM_ENABLES; r++) {
    disableVfs(pf);
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
    touchMs,
    heapPerVfTouched: (touched.heap + touched.external - before.heap - before.external) / n,
    rssPerVfTouched: (touched.rss - before.rss) / n,
  };
}

function runChild(n: number): MemoryFigures {
  const script = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, ['--expose-gc', script, '--memory', String(n)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (child.status !== 0) throw new Error(`scale child for N=${n} failed (${child.status}): ${child.stderr}`);
  const line = child.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as MemoryFigures;
}

interface AccessFigures {
  vfs: number;
  accessNs: number;
  p50Ns: number;
  p99Ns: number;
  listMs: number;
}

const RANDOM_VFS = 4096;
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
  const targets = machines.map((m) => {
    const pf = m.pfs[0]!;
    return Array.from({ length: RANDOM_VFS }, () => formatBdf(pf.domain, pf.vfRid(Math.floor(random() * pf.vfs.length))));
  });
  const access = (m: Machine, bdf: string): number => read(m.find(bdf), VF_BAR_SPACE, STATUS, 1) as number;

  const cases: RateCase[] = [
    baselineCase(),
    ...machines.map((m, k) => {
      const bdfs = targets[k]!;
      return {
        name: `N=${counts[k]}`,
        opsPerIteration: 1,
        run(iterations: number) {
          let sum = 0;
          for (let i = 0; i < iterations; i++) sum += access(m, bdfs[i & (RANDOM_VFS - 1)]!);
          sink(sum);
        },
      };
    }),
  ];
  const [base, ...perN] = measureRates(cases, { rounds: 12, roundMs: 100, warmupMs: 200 });

  const latencies = machines.map(() => [] as number[]);
  const lists = machines.map(() => [] as number[]);
  for (let round = 0; round < 5; round++) {
    machines.forEach((m, k) => {
      const bdfs = targets[k]!;
      const chunk = latencySamples((i) => sink(access(m, bdfs[i & (RANDOM_VFS - 1)]!)), LATENCY_SAMPLES / 5, LATENCY_BATCH);
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
      return { vfs: n, accessNs: 1e9 / perN[k]!.opsPerSec, p50Ns: p.p50, p99Ns: p.p99, listMs: median(lists[k]!) };
    }),
  };
}

export function runScale(counts: readonly number[] = SCALE_COUNTS): Section {
  const started = now();
  const mem = counts.map(runChild);
  const { figures, baselineNs } = measureAccess(counts);
  const first = figures[0]!;
  const rows: Row[] = counts.map((n, k) => {
    const m = mem[k]!;
    const a = figures[k]!;
    return {
      VFs: n,
      'enable ms': m.enableMs,
      'cold enable ms': m.coldEnableMs,
      'enable ÷ alloc': m.enableMs / m.allocBaselineMs,
      'heap B/VF': m.heapPerVf + m.externalPerVf,
      'RSS B/VF': m.rssPerVf,
      'heap B/VF touched': m.heapPerVfTouched,
      'RSS B/VF touched': m.rssPerVfTouched,
      'touch ns/VF': (m.touchMs * 1e6) / n,
      'access ns': a.accessNs,
      'access p99 ns': a.p99Ns,
      'access ÷ call': a.accessNs / baselineNs,
      'access ÷ 1k': a.accessNs / first.accessNs,
      'list ms': a.listMs,
      'list ns/fn': (a.listMs * 1e6) / (n + 1),
    };
  });
  const last = counts.length - 1;
  const worstHeap = Math.max(...mem.map((m) => m.heapPerVf + m.externalPerVf));
  const worstTouched = Math.max(...mem.map((m) => m.heapPerVfTouched));
  const flat = Math.max(...figures.map((a) => a.accessNs / first.accessNs));
  return {
    id: 'scale',
    title: `Scale: one PF with N VFs (${counts.join(', ')})`,
    baseline:
      `enable: allocating N bare 3-field objects in the same process; access: ${baselineNs.toPrecision(3)} ns ` +
      'trivial call (Map lookup + typed-array read) in the same rounds; access ÷ 1k: against N = 1,000 in the same rounds',
    rows,
    targets: [
      { name: 'heap per idle VF (worst N), bytes', goal: `<= ${HEAP_GOAL_BYTES}`, value: worstHeap, met: worstHeap <= HEAP_GOAL_BYTES },
      {
        name: 'heap per touched VF (worst N), bytes',
        goal: `<= ${HEAP_GOAL_BYTES}`,
        value: worstTouched,
        met: worstTouched <= HEAP_GOAL_BYTES,
      },
      {
        name: `enable ${counts[last]} VFs, ms (median warm)`,
        goal: `well under ${ENABLE_GOAL_MS}`,
        value: mem[last]!.enableMs,
        met: mem[last]!.enableMs < ENABLE_GOAL_MS / 10,
      },
      {
        name: `enable ${counts[last]} VFs, ms (first, cold)`,
        goal: `well under ${ENABLE_GOAL_MS}`,
        value: mem[last]!.coldEnableMs,
        met: mem[last]!.coldEnableMs < ENABLE_GOAL_MS / 10,
      },
      { name: 'random access time, worst N ÷ N = 1k', goal: `flat (<= ${FLAT_GOAL})`, value: flat, met: flat <= FLAT_GOAL },
    ],
    chart: {
      xLabel: 'VFs enabled',
      yLabel: 'bytes per VF',
      xLog: true,
      series: [
        { name: 'heap, idle', points: mem.map((m) => ({ x: m.vfs, y: m.heapPerVf + m.externalPerVf })) },
        { name: 'RSS, idle', points: mem.map((m) => ({ x: m.vfs, y: m.rssPerVf })) },
        { name: 'heap, touched', points: mem.map((m) => ({ x: m.vfs, y: m.heapPerVfTouched })) },
        { name: 'RSS, touched', points: mem.map((m) => ({ x: m.vfs, y: m.rssPerVfTouched })) },
      ],
      marks: [{ label: `goal ${HEAP_GOAL_BYTES} B`, y: HEAP_GOAL_BYTES }],
    },
    notes: [
      'bytes per VF: (after − before enabling) ÷ N after a full GC, one child process per N; heap includes external (ArrayBuffer) memory',
      '"well under" a second is read as under a tenth of it',
      `access: machine.find(BDF string) + a 1-byte read of the legacy STATUS, ${RANDOM_VFS} random VFs; p99 over samples of ${LATENCY_BATCH} accesses`,
    ],
    seconds: (now() - started) / 1000,
  };
}

function main(argv: readonly string[]): void {
  if (!hasGc()) {
    process.stderr.write('scale: run with node --expose-gc (npm run bench:scale)\n');
    process.exit(2);
  }
  const memoryAt = argv.indexOf('--memory');
  if (memoryAt >= 0) {
    process.stdout.write(`${JSON.stringify(measureMemory(Number(argv[memoryAt + 1])))}\n`);
    return;
  }
  const section = runScale();
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(section)}\n`);
  else process.stdout.write(`${formatSection(section)}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) main(process.argv.slice(2));
