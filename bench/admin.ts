/**
 * Admin section: guest legacy I/O accesses per second through the translator's two backends on
 * identical VFs of one PF — mmr (each access one MMIO access on the VF's MMR block) and admin
 * (each access one legacy admin command on the PF, encoded, parsed and answered as the bytes of
 * one command chain; QUEUE_NOTIFY one write to the LEGACY_NOTIFY_INFO address) — replaying the
 * DriverSim legacy probe, interleaved round by round with the trivial baseline. The ratio is the
 * measured cost of carrying legacy registers in admin commands rather than in a memory BAR.
 */
import { Machine } from '../src/machine/machine.js';
import { parseTopology } from '../src/machine/topology.js';
import type { MmrVf } from '../src/mmr/vf.js';
import { baselineCase } from './in-process.js';
import {
  compileReplay,
  enableGuestIo,
  enableVfs,
  recordLegacyProbe,
  replay,
  verifyReplay,
} from './lib/machine.js';
import { measureRates, medianRatio, now, rateRows, sink, type RateCase } from './lib/measure.js';
import type { Section } from './lib/results.js';

export interface AdminBenchOptions {
  rounds: number;
  roundMs: number;
  warmupMs: number;
}

export const ADMIN_BENCH_DEFAULTS: AdminBenchOptions = { rounds: 25, roundMs: 80, warmupMs: 300 };

function adminMachine(): Machine {
  const topology = parseTopology(
    { pfs: [{ bdf: '0000:01:00.0', type: 'net', totalVfs: 2, initialVfs: 0, adminQueue: true }] },
    'admin bench',
  );
  return new Machine(topology);
}

export function runAdmin(options: AdminBenchOptions = ADMIN_BENCH_DEFAULTS): Section {
  const started = now();
  const machine = adminMachine();
  const pf = machine.pfs[0]!;
  enableVfs(pf, 2);
  const viaMmr = machine.translator.view(pf.vfs[0]! as MmrVf);
  const viaAdmin = machine.translator.view(pf.vfs[1]! as MmrVf);
  viaAdmin.setBackend('admin');
  enableGuestIo(viaMmr);
  enableGuestIo(viaAdmin);

  const transcript = recordLegacyProbe(pf.vfs[0]! as MmrVf, 'mmr', { msix: false, notify: [0] });
  const ioOps = compileReplay(transcript, 'io');
  // Both backends must see exactly what the recording saw (the same device behaviour).
  verifyReplay(viaMmr, ioOps, 'mmr backend replay');
  verifyReplay(viaAdmin, ioOps, 'admin backend replay');

  const n = transcript.length;
  const through = (name: string, view: typeof viaMmr): RateCase => ({
    name,
    opsPerIteration: n,
    run(iterations) {
      let sum = 0;
      for (let i = 0; i < iterations; i++) sum += replay(view, ioOps);
      sink(sum);
    },
  });
  const [base, mmr, admin] = measureRates(
    [
      baselineCase(),
      through('guest io through the mmr backend (MMIO on the MMR block)', viaMmr),
      through('guest io through the admin backend (admin command on the PF)', viaAdmin),
    ],
    options,
  );
  const ratio = medianRatio(mmr!, admin!);
  const rows = rateRows([base!, mmr!, admin!]);
  const writes = transcript.filter((e) => e.op === 'write').length;
  return {
    id: 'admin',
    title:
      'Guest legacy I/O accesses through the mmr and the admin backend (DriverSim legacy probe replayed)',
    baseline: 'a function call doing a Map lookup and a typed-array read, measured in the same rounds',
    rows,
    notes: [
      `admin ÷ mmr cost per access: ${ratio.toFixed(2)} (median of per-round ratios of ops/s)`,
      `sequence: legacyProbe({ msix: false, notify: [0] }) on a net VF, ${n} guest I/O accesses (${n - writes} reads, ${writes} writes), replayed through I/O BAR0 of two VFs of one PF`,
      `${options.rounds} interleaved rounds of ~${options.roundMs} ms per case; medians`,
    ],
    raw: { ratio },
    seconds: (now() - started) / 1000,
  };
}
