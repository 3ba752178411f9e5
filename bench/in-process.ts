/**
 * In-process section: legacy register accesses per second, replaying the DriverSim legacy probe
 * (recorded once) on a VF's MMR block directly (BAR + 0x1000 + off: the "direct MMR" baseline)
 * and through the translator (the guest's I/O BAR0), interleaved round by round with a trivial
 * baseline call that shows the absolute scale of the machine.
 */
import type { MmrVf } from '../src/mmr/vf.js';
import { DEFAULT_TOPOLOGY } from '../src/machine/topology.js';
import { Machine } from '../src/machine/machine.js';
import {
  compileReplay,
  enableGuestIo,
  enableVfs,
  recordLegacyProbe,
  replay,
  verifyReplay,
  VF_BAR_SPACE,
  LEGACY_BLOCK,
} from './lib/machine.js';
import { measureRates, medianRatio, now, rateRows, sink, type RateCase } from './lib/measure.js';
import type { Section } from './lib/results.js';

export interface InProcessOptions {
  rounds: number;
  roundMs: number;
  warmupMs: number;
}

export const IN_PROCESS_DEFAULTS: InProcessOptions = { rounds: 25, roundMs: 80, warmupMs: 300 };

/** Translator overhead goal: direct ops/s ÷ translated ops/s. */
export const TRANSLATOR_OVERHEAD_GOAL = 1.5;

/**
 * The trivial baseline: one function call doing a Map lookup and a typed-array read, the least
 * an emulated register access could cost.
 */
export function baselineCase(): RateCase {
  const table = new Map<number, Uint32Array>();
  for (let k = 0; k < 64; k++)
    table.set(
      k,
      Uint32Array.from({ length: 16 }, (_, i) => k * 16 + i),
    );
  const lookup = (key: number): number => table.get(key & 63)![key & 15]!;
  return {
    name: 'baseline: call + Map lookup + typed-array read',
    opsPerIteration: 1,
    run(iterations) {
      let sum = 0;
      for (let i = 0; i < iterations; i++) sum += lookup(i);
      sink(sum);
    },
  };
}

export function runInProcess(options: InProcessOptions = IN_PROCESS_DEFAULTS): Section {
  const started = now();
  const machine = new Machine(DEFAULT_TOPOLOGY);
  const pf = machine.pfs[0]!;
  enableVfs(pf, 2);
  const direct = pf.vfs[0]! as MmrVf;
  const translated = machine.translator.view(pf.vfs[1]! as MmrVf);
  enableGuestIo(translated);

  const probe = { msix: false, notify: [0] } as const;
  const transcript = recordLegacyProbe(direct, 'mmr', probe);
  const directOps = compileReplay(transcript, 'mmr');
  const ioOps = compileReplay(transcript, 'io');
  // Both replays must see exactly what the recording saw (the same device behaviour).
  verifyReplay(direct, directOps, 'direct MMR replay');
  verifyReplay(translated, ioOps, 'translated replay');
  if (translated.trace) throw new Error('translator trace must be off for the benchmark');

  const n = transcript.length;
  const cases: RateCase[] = [
    baselineCase(),
    {
      name: `direct MMR: ${VF_BAR_SPACE} +0x${LEGACY_BLOCK.toString(16)}+off`,
      opsPerIteration: n,
      run(iterations) {
        let sum = 0;
        for (let i = 0; i < iterations; i++) sum += replay(direct, directOps);
        sink(sum);
      },
    },
    {
      name: 'translated: io (guest I/O BAR0)',
      opsPerIteration: n,
      run(iterations) {
        let sum = 0;
        for (let i = 0; i < iterations; i++) sum += replay(translated, ioOps);
        sink(sum);
      },
    },
  ];
  const [base, mmr, io] = measureRates(cases, options);
  const overhead = medianRatio(mmr!, io!);

  const rows = rateRows([base!, mmr!, io!]);
  const writes = transcript.filter((e) => e.op === 'write').length;
  return {
    id: 'in-process',
    title: 'In-process legacy register accesses (DriverSim legacy probe replayed)',
    baseline: 'a function call doing a Map lookup and a typed-array read, measured in the same rounds',
    rows,
    targets: [
      {
        name: 'translator overhead (direct ops/s ÷ translated ops/s, median of per-round ratios)',
        goal: `<= ${TRANSLATOR_OVERHEAD_GOAL}`,
        value: overhead,
        met: overhead <= TRANSLATOR_OVERHEAD_GOAL,
      },
    ],
    notes: [
      `sequence: legacyProbe({ msix: false, notify: [0] }) on a net VF, ${n} accesses (${n - writes} reads, ${writes} writes), recorded once and replayed`,
      `${options.rounds} interleaved rounds of ~${options.roundMs} ms per case; medians`,
    ],
    seconds: (now() - started) / 1000,
  };
}
