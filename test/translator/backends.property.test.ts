/**
 * Differential property of the translator's two backends (docs/admin-commands.md): the same
 * random legacy guest sequence — I/O reads and writes of width 1, 2 and 4 anywhere in I/O BAR0,
 * QUEUE_PFN placements, notifications, guest MSI-X and Command toggles — through mmr (MMIO on the
 * MMR block) and through admin (legacy admin commands on the PF), on two fresh machines, gives
 * the same guest-visible value or refusal code per access, the same device state, the same VF
 * config space, the same guest config space and the same events. The topology routes mmr's
 * QUEUE_NOTIFY to the legacy register, where the admin backend's LEGACY_NOTIFY_INFO address is.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isVmmrError } from '../../src/base/errors.js';
import type { VmmrEvent } from '../../src/base/events.js';
import type { TopologyPf } from '../../src/machine/topology.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import { TYPES, rd, record, withVfs, wr, type TypeName } from '../support/functions.js';

type Op =
  | { kind: 'io-read'; port: number; width: 1 | 2 | 4 }
  | { kind: 'io-write'; port: number; width: 1 | 2 | 4; value: number }
  | { kind: 'msix'; on: boolean }
  | { kind: 'command'; value: number };

const width = fc.constantFrom<1 | 2 | 4>(1, 2, 4);
/** Ports mostly inside the block (64 bytes or more), some past it, aligned or not. */
const port = fc.oneof(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 140 }));
const value = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 8 }));
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('io-read' as const), port, width }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('io-write' as const), port, width, value }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('io-write' as const),
      port: fc.constantFrom(8, 14, 16, 18),
      width: fc.constantFrom<1 | 2 | 4>(1, 2, 4),
      value: fc.integer({ min: 0, max: 0x3000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('msix' as const), on: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('command' as const),
      value: fc.constantFrom(0, 1, 0x401, 0x405),
    }),
  },
);

interface Outcome {
  results: Array<number | string | undefined>;
  events: VmmrEvent[];
  vf: MmrVf;
}

function attempt(run: () => number | undefined): number | string | undefined {
  try {
    return run();
  } catch (e) {
    if (isVmmrError(e)) return e.code;
    throw e;
  }
}

function replay(
  type: TypeName,
  backend: 'mmr' | 'admin',
  ops: readonly Op[],
  extra: Partial<TopologyPf>,
): Outcome {
  const { machine, vf } = withVfs(type, 2, { adminQueue: true, translator: backend, ...extra });
  wr(vf, 'guest-config', 0x04, 2, 0x0001);
  const events = record(machine);
  const msix = vf.template.caps.msix + 2;
  const results = ops.map((o) =>
    attempt(() => {
      switch (o.kind) {
        case 'io-read':
          return rd(vf, 'io', o.port, o.width);
        case 'io-write':
          wr(vf, 'io', o.port, o.width, (o.value >>> 0) & (2 ** (8 * o.width) - 1));
          return undefined;
        case 'msix':
          wr(vf, 'guest-config', msix, 2, o.on ? 0x8000 : 0);
          return undefined;
        case 'command':
          wr(vf, 'guest-config', 0x04, 2, o.value);
          return undefined;
      }
    }),
  );
  return { results, events, vf };
}

function expectSame(type: TypeName, ops: readonly Op[], extra: Partial<TopologyPf>): void {
  const viaMmr = replay(type, 'mmr', ops, { notify: 'legacy-register', ...extra });
  const viaAdmin = replay(type, 'admin', ops, { notify: 'legacy-register', ...extra });
  expect(viaAdmin.results).toEqual(viaMmr.results);
  expect(viaAdmin.vf.device.getState()).toEqual(viaMmr.vf.device.getState());
  expect(viaAdmin.vf.config.snapshot()).toEqual(viaMmr.vf.config.snapshot());
  expect(rd(viaAdmin.vf, 'guest-config', 0x04, 4)).toBe(rd(viaMmr.vf, 'guest-config', 0x04, 4));
  expect(viaAdmin.events).toEqual(viaMmr.events);
}

describe('property: mmr and admin backends are indistinguishable to a legacy guest', () => {
  for (const policy of ['strict', 'compat'] as const) {
    it(`random legacy sequences on every type (${policy} policy)`, () => {
      fc.assert(
        fc.property(fc.constantFrom(...TYPES), fc.array(op, { minLength: 1, maxLength: 60 }), (type, ops) => {
          expectSame(type, ops, { policy });
        }),
        { numRuns: 60 },
      );
    });
  }

  it('the sequences reach what matters: values, refusals, resets, notifications and interrupts', () => {
    const ops: Op[] = [
      { kind: 'io-write', port: 18, width: 1, value: 3 },
      { kind: 'io-write', port: 8, width: 4, value: 0x20 },
      { kind: 'io-write', port: 16, width: 2, value: 0 },
      { kind: 'io-read', port: 18, width: 2 },
      { kind: 'io-read', port: 19, width: 1 },
      { kind: 'io-write', port: 18, width: 1, value: 0 },
    ];
    const run = replay('net', 'admin', ops, { notify: 'legacy-register' });
    expect(run.results).toEqual([undefined, undefined, undefined, 'VMMR_ERR_WIDTH_MISMATCH', 0, undefined]);
    expect(new Set(run.events.map((e) => e.type))).toEqual(new Set(['status', 'notify', 'reset']));
    expectSame('net', ops, {});
  });
});
