/**
 * Measuring helpers. The machine a benchmark runs on is shared and noisy, so nothing here
 * reports a single timing: cases are calibrated, warmed up, then run in interleaved rounds and
 * summarised by their median; figures are meant to be read as ratios against a baseline
 * measured in the same rounds.
 */
import { performance } from 'node:perf_hooks';
import type { Row } from './results.js';

/** Values the measured code returns end up here, so the JIT cannot drop the work. */
let sinkValue = 0;

export function sink(value: number): void {
  sinkValue = (sinkValue + value) | 0;
}

/** Read once at the end of a run (printing it keeps the sink observable). */
export function sinkChecksum(): number {
  return sinkValue;
}

export function now(): number {
  return performance.now();
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** Linear-interpolated quantile q in [0, 1] of unsorted values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

export interface Percentiles {
  p50: number;
  p99: number;
  min: number;
  max: number;
}

export function percentiles(values: readonly number[]): Percentiles {
  return {
    p50: quantile(values, 0.5),
    p99: quantile(values, 0.99),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

/** One thing to measure: `run(n)` performs n iterations of `opsPerIteration` operations each. */
export interface RateCase {
  readonly name: string;
  readonly opsPerIteration: number;
  run(iterations: number): void;
}

export interface RateOptions {
  /** Rounds per case; each round runs every case once, in a rotating order. */
  rounds: number;
  /** Target duration of one case in one round. */
  roundMs: number;
  /** Warm-up time per case before the rounds (the JIT settles). */
  warmupMs: number;
}

export interface RateResult {
  readonly name: string;
  /** Median over the rounds. */
  readonly opsPerSec: number;
  /** ops/s of every round, in round order. */
  readonly samples: readonly number[];
  readonly iterationsPerRound: number;
}

/** Wall time of `run(iterations)` in milliseconds. */
function timeRun(c: RateCase, iterations: number): number {
  const start = now();
  c.run(iterations);
  return now() - start;
}

/** Iterations that take about `targetMs`, found by growing the count until it is measurable. */
export function calibrate(c: RateCase, targetMs: number): number {
  let iterations = 1;
  for (;;) {
    const ms = timeRun(c, iterations);
    if (ms >= targetMs / 10 || iterations >= 2 ** 30) {
      return Math.max(1, Math.round((iterations * targetMs) / Math.max(ms, 1e-3)));
    }
    iterations *= ms < targetMs / 1000 ? 16 : 4;
  }
}

/** Runs a case for about `ms` milliseconds (warm-up). */
export function warmUp(c: RateCase, ms: number): void {
  const iterations = calibrate(c, Math.min(ms, 20));
  const end = now() + ms;
  while (now() < end) c.run(iterations);
}

/**
 * Measures several cases in interleaved rounds (round r runs every case once, starting at case
 * r mod n), so that a noisy period of the machine hits all of them alike. Each round of a case
 * lasts about `roundMs`; the result is the median ops/s over the rounds.
 */
export function measureRates(cases: readonly RateCase[], options: RateOptions): RateResult[] {
  for (const c of cases) warmUp(c, options.warmupMs);
  const iterations = cases.map((c) => calibrate(c, options.roundMs));
  const samples: number[][] = cases.map(() => []);
  for (let round = 0; round < options.rounds; round++) {
    for (let k = 0; k < cases.length; k++) {
      const i = (round + k) % cases.length;
      const c = cases[i]!;
      const ms = timeRun(c, iterations[i]!);
      samples[i]!.push((iterations[i]! * c.opsPerIteration * 1000) / ms);
    }
  }
  return cases.map((c, i) => ({
    name: c.name,
    opsPerSec: median(samples[i]!),
    samples: samples[i]!,
    iterationsPerRound: iterations[i]!,
  }));
}

/** Table rows of rates against the first result (the baseline): ops/s, ns/op, cost, spread. */
export function rateRows(results: readonly RateResult[]): Row[] {
  const base = results[0]!;
  return results.map((r) => ({
    case: r.name,
    'ops/s': Math.round(r.opsPerSec),
    'ns/op': 1e9 / r.opsPerSec,
    '× baseline cost': base.opsPerSec / r.opsPerSec,
    'IQR %': (100 * (quantile(r.samples, 0.75) - quantile(r.samples, 0.25))) / r.opsPerSec,
  }));
}

/**
 * Median of per-round ratios a/b (both measured in the same round): steadier than the ratio of
 * medians when the machine's speed drifts between rounds.
 */
export function medianRatio(a: RateResult, b: RateResult): number {
  const ratios = a.samples.map((s, i) => s / b.samples[i]!);
  return median(ratios);
}

/**
 * Time per call of `fn` in nanoseconds: `samples` samples, each timing `perSample` consecutive
 * calls (a single call is too short for the clock). Returns the per-call time of each sample.
 */
export function latencySamples(fn: (i: number) => void, samples: number, perSample: number): number[] {
  const out = new Array<number>(samples);
  let i = 0;
  for (let s = 0; s < samples; s++) {
    const start = now();
    for (let k = 0; k < perSample; k++) fn(i++);
    out[s] = ((now() - start) * 1e6) / perSample;
  }
  return out;
}

/** Runs a garbage collection when the process was started with --expose-gc. */
export function collectGarbage(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('run node with --expose-gc for memory figures');
  // Twice: the first pass may leave weak and finalizable objects for the second.
  g();
  g();
}

export function hasGc(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === 'function';
}

/** A deterministic PRNG (mulberry32): the same "random" VFs in every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
