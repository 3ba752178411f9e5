/**
 * Batch section: register accesses per second through POST /api/v1/access at batch sizes 1, 16,
 * 256 and 4096, against the in-process direct MMR rate measured in the same rounds.
 *
 * The batch is the DriverSim legacy probe (the sequence of the in-process section: reads and
 * writes, recorded once on an in-process VF of the same topology), expressed as batch operations
 * on one VF's BAR 2 at 0x1000 + off, repeated to fill the batch and cut at its size. The probe
 * starts by writing STATUS = 0 (a device reset), so every batch is self-contained: whatever the
 * batch before it left behind, a batch gives the same results, and concurrent clients can share
 * the VF (a batch runs as one unit). Every size is checked once before it is measured: every
 * operation succeeds and every read returns what the recording saw.
 *
 * The server runs in a child process (bench/server.ts), the load generator (autocannon, a few
 * connections) in this process. Each round measures every batch size (rotating order), then the
 * in-process direct replay in this process while the server is idle; the ratio to direct MMR is
 * the median of per-round ratios.
 *
 * `node dist/bench/batch.js` prints the section; --json prints it as one JSON line (for run.ts);
 * --profile DIR runs the server under `node --cpu-prof` and leaves the profile in DIR;
 * --sizes 4096 measures some batch sizes only (comma-separated), e.g. to profile one.
 */
import { runIfScript } from './lib/script.js';
import { resolve } from 'node:path';
import type { TranscriptEntry } from '../src/driver-sim/probes.js';
import { Machine } from '../src/machine/machine.js';
import type { MmrVf } from '../src/mmr/vf.js';
import { DEFAULT_TOPOLOGY } from '../src/machine/topology.js';
import { runLoad, type LoadResult } from './lib/load.js';
import {
  compileReplay,
  enableVfs,
  LEGACY_BLOCK,
  recordLegacyProbe,
  replay,
  VF_BAR_SPACE,
} from './lib/machine.js';
import { calibrate, median, now, sink, warmUp, type RateCase } from './lib/measure.js';
import { formatNumber, formatSection, type Row, type Section } from './lib/results.js';
import {
  BENCH_VF,
  benchHttp,
  enableBenchVfs,
  QUEUE_NUM,
  SINGLE_READ_PATH,
  startServerChild,
  type ServerHandle,
} from './lib/servers.js';

export interface BatchOptions {
  sizes: readonly number[];
  rounds: number;
  connections: number;
  firstWarmupMs: number;
  warmupMs: number;
  measureMs: number;
  /** In-process direct replay per round. */
  directMs: number;
  profileDir?: string;
}

export const BATCH_DEFAULTS: BatchOptions = {
  sizes: [1, 16, 256, 4096],
  rounds: 3,
  connections: 4,
  firstWarmupMs: 1000,
  warmupMs: 250,
  measureMs: 1200,
  directMs: 250,
};

/** Accesses per second at the largest batch. */
export const BATCH_GOAL = 1_000_000;

/** The probe options of the in-process section: the same sequence. */
const PROBE = { msix: false, notify: [0] } as const;

/** The recorded probe as batch operations on the VF's legacy block (bar2 + 0x1000 + off). */
function batchOps(transcript: readonly TranscriptEntry[], format: 'tuples' | 'objects'): unknown[] {
  return transcript.map((e) => {
    const offset = LEGACY_BLOCK + e.offset;
    if (format === 'tuples')
      return e.op === 'write' ? ['w', offset, e.width, e.value] : ['r', offset, e.width];
    return e.op === 'write'
      ? { op: 'write', offset, width: e.width, value: e.value }
      : { op: 'read', offset, width: e.width };
  });
}

/** A batch of `size` operations: the sequence repeated and cut; bdf and space given once. */
function batchBody(ops: readonly unknown[], size: number): string {
  const list = Array.from({ length: size }, (_, i) => ops[i % ops.length]!);
  return JSON.stringify({ bdf: BENCH_VF, space: VF_BAR_SPACE, ops: list });
}

interface BatchAnswer {
  results: Array<{ ok: boolean; value?: string }>;
  executed: number;
  failed: number;
}

/** One request per size, checked against the recording. */
async function verify(
  server: ServerHandle,
  transcript: readonly TranscriptEntry[],
  size: number,
  body: string,
): Promise<void> {
  const answer = JSON.parse(
    await benchHttp(server, 'POST', '/api/v1/access', JSON.parse(body)),
  ) as BatchAnswer;
  if (answer.executed !== size || answer.failed !== 0 || answer.results.length !== size) {
    throw new Error(`batch of ${size}: executed ${answer.executed}, failed ${answer.failed}`);
  }
  answer.results.forEach((r, i) => {
    const e = transcript[i % transcript.length]!;
    const expected = e.op === 'read' ? e.value : undefined;
    const got = r.value === undefined ? undefined : Number.parseInt(r.value, 16);
    if (!r.ok || got !== expected) {
      throw new Error(`batch of ${size}, op ${i}: got ${JSON.stringify(r)}, recorded ${JSON.stringify(e)}`);
    }
  });
}

export async function runBatch(o: BatchOptions = BATCH_DEFAULTS): Promise<Section> {
  const started = now();
  // The sequence, and the in-process direct MMR replay of it.
  const machine = new Machine(DEFAULT_TOPOLOGY);
  const pf = machine.pfs[0]!;
  enableVfs(pf, 1);
  const vf = pf.vfs[0]! as MmrVf;
  const transcript = recordLegacyProbe(vf, 'mmr', PROBE);
  const directOps = compileReplay(transcript, 'mmr');
  const n = transcript.length;
  const direct: RateCase = {
    name: 'in-process direct MMR',
    opsPerIteration: n,
    run(iterations) {
      let sum = 0;
      for (let i = 0; i < iterations; i++) sum += replay(vf, directOps);
      sink(sum);
    },
  };
  warmUp(direct, 300);
  const directIterations = calibrate(direct, o.directMs);
  const directRate = (): number => {
    const t = now();
    direct.run(directIterations);
    return (directIterations * n * 1000) / (now() - t);
  };

  const ops = batchOps(transcript, 'tuples');
  const last = o.sizes.length - 1;
  const largest = o.sizes[last]!;
  // Every size as compact tuples, then the largest once more as objects.
  const bodies = [
    ...o.sizes.map((size) => batchBody(ops, size)),
    batchBody(batchOps(transcript, 'objects'), largest),
  ];
  const sizes = [...o.sizes, largest];
  const formats = [...o.sizes.map(() => 'tuples'), 'objects'];
  const server = await startServerChild('vmmr', o.profileDir ? { profileDir: o.profileDir } : {});
  try {
    await enableBenchVfs(server);
    for (let k = 0; k < sizes.length; k++) await verify(server, transcript, sizes[k]!, bodies[k]!);
    // The batch sizes, then single GETs (the same VF, one access per request) for comparison.
    const single = sizes.length;
    const load = (k: number, warmupMs: number): Promise<LoadResult> =>
      runLoad({
        server,
        ...(k === single
          ? { path: SINGLE_READ_PATH }
          : { path: '/api/v1/access', method: 'POST' as const, body: bodies[k]! }),
        connections: o.connections,
        warmupMs,
        measureMs: o.measureMs,
      });
    for (let k = 0; k <= single; k++) await load(k, o.firstWarmupMs);

    const runs: LoadResult[][] = sizes.map(() => []);
    const singles: LoadResult[] = [];
    const directRates: number[] = [];
    for (let round = 0; round < o.rounds; round++) {
      for (let j = 0; j <= single; j++) {
        const k = (round + j) % (single + 1);
        const result = await load(k, o.warmupMs);
        if (k === single) singles.push(result);
        else runs[k]!.push(result);
      }
      directRates.push(directRate());
    }
    const singleRate = median(singles.map((r) => r.rps));

    const accessRates = runs.map((list, k) => list.map((r) => r.rps * sizes[k]!));
    const directMedian = median(directRates);
    const ratioToDirect = median(accessRates[last]!.map((rate, round) => rate / directRates[round]!));
    const rows: Row[] = sizes.map((size, k) => {
      const list = runs[k]!;
      const rate = median(accessRates[k]!);
      return {
        batch: size,
        format: formats[k]!,
        'accesses/s': Math.round(rate),
        'req/s': median(list.map((r) => r.rps)),
        'p50 ms': median(list.map((r) => r.p50Ms)),
        'p99 ms': median(list.map((r) => r.p99Ms)),
        'server CPU ns/access': (1000 * median(list.map((r) => r.serverCpuUs))) / size,
        'server core busy %': 100 * median(list.map((r) => r.serverCpuShare)),
        '÷ direct MMR': median(accessRates[k]!.map((a, round) => a / directRates[round]!)),
        'request bytes': Buffer.byteLength(bodies[k]!),
      };
    });
    rows.push({
      batch: `GET …/bars/2/0x${QUEUE_NUM.toString(16)}?width=2 (1 access/request)`,
      format: null,
      'accesses/s': Math.round(singleRate),
      'req/s': singleRate,
      'p50 ms': median(singles.map((r) => r.p50Ms)),
      'p99 ms': median(singles.map((r) => r.p99Ms)),
      'server CPU ns/access': 1000 * median(singles.map((r) => r.serverCpuUs)),
      'server core busy %': 100 * median(singles.map((r) => r.serverCpuShare)),
      '÷ direct MMR': median(singles.map((r, round) => r.rps / directRates[round]!)),
      'request bytes': null,
    });
    rows.push({
      batch: 'in-process direct MMR (no HTTP)',
      format: null,
      'accesses/s': Math.round(directMedian),
      'req/s': null,
      'p50 ms': null,
      'p99 ms': null,
      'server CPU ns/access': 1e9 / directMedian,
      'server core busy %': null,
      '÷ direct MMR': 1,
      'request bytes': null,
    });
    const writes = transcript.filter((e) => e.op === 'write').length;
    const largestRate = median(accessRates[last]!);
    return {
      id: 'batch',
      title: `Accesses per second through POST /api/v1/access against batch size (${o.connections} clients)`,
      baseline: `in-process direct MMR replay of the same sequence, ${formatNumber(directMedian)} accesses/s in the same rounds`,
      rows,
      targets: [
        {
          name: `accesses/s at batch ${largest} (tuples)`,
          goal: `>= ${BATCH_GOAL.toLocaleString('en-US')}`,
          value: largestRate,
          met: largestRate >= BATCH_GOAL,
        },
      ],
      chart: {
        xLabel: 'operations per batch',
        yLabel: 'accesses per second',
        xLog: true,
        yLog: true,
        series: [
          {
            name: 'POST /api/v1/access (tuples)',
            group: 'batch',
            points: o.sizes.map((size, k) => ({ x: size, y: median(accessRates[k]!) })),
          },
          {
            name: 'GET, 1 access each',
            group: 'single',
            dashed: true,
            points: o.sizes.map((size) => ({ x: size, y: singleRate })),
          },
          {
            name: 'in process, no HTTP',
            group: 'direct',
            dashed: true,
            points: o.sizes.map((size) => ({ x: size, y: directMedian })),
          },
        ],
        marks: [{ label: `goal: ${formatNumber(BATCH_GOAL)} at ${largest}`, y: BATCH_GOAL }],
      },
      notes: [
        `sequence: legacyProbe({ msix: false, notify: [0] }), ${n} accesses (${n - writes} reads, ${writes} writes), repeated and cut to the batch size; it starts with a device reset, so each batch is self-contained`,
        `body: {"bdf":"${BENCH_VF}","space":"${VF_BAR_SPACE}","ops":[["w",${LEGACY_BLOCK + transcript[0]!.offset},1,0],…]} (compact tuples with the default bdf and space; offsets as JSON numbers); the objects row sends {"op":"write","offset":…,"width":1,"value":0} per operation`,
        `load: autocannon in the parent process, ${o.connections} connections; server in a child process; ${o.rounds} rounds of ${o.measureMs} ms per size after ${o.warmupMs} ms of warm-up load; medians`,
        `ratio at ${largest} to in-process direct MMR (median of per-round ratios): ${formatNumber(ratioToDirect)}; the direct replay runs in the load generator's process while the server is idle`,
        `the GET row: single reads of the same VF's QUEUE_NUM over ${o.connections} connections in the same rounds (drawn flat: it has no batch size)`,
        'server CPU: user + system time of the server process (its helper threads included) over the window ÷ accesses',
      ],
      raw: {
        sizes,
        formats,
        runs,
        singles,
        directRates,
        ratioToDirect,
      },
      seconds: (now() - started) / 1000,
    };
  } finally {
    await server.stop();
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const profileAt = argv.indexOf('--profile');
  const profileDir = profileAt >= 0 ? resolve(argv[profileAt + 1] ?? '.') : undefined;
  const sizesAt = argv.indexOf('--sizes');
  const sizes = sizesAt >= 0 ? (argv[sizesAt + 1] ?? '').split(',').map(Number) : BATCH_DEFAULTS.sizes;
  const section = await runBatch({ ...BATCH_DEFAULTS, sizes, ...(profileDir ? { profileDir } : {}) });
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(section)}\n`);
  else process.stdout.write(`${formatSection(section)}\n`);
}

runIfScript(import.meta.url, 'batch', main);
