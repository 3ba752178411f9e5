/**
 * Property tests (fast-check):
 * - read-only bits never change under random config writes (oracle: the spec tables' write and
 *   RW1C masks placed at the capabilities found by walking the lists, plus the PCI BAR rules);
 * - four 1-byte writes equal one 4-byte write on plain read-write fields;
 * - a random access stream (random function, space, offset, width, value, garbage included)
 *   never throws anything but a VmmrError; a batch equals the same accesses one by one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SPACES, read, write, type AccessTarget, type Space } from '../../src/access/index.js';
import { runBatch, type Operation } from '../../src/access/batch.js';
import { VmmrError } from '../../src/base/errors.js';
import { Machine } from '../../src/machine/machine.js';
import { sriovCap } from '../../src/spec/index.js';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';
import {
  TYPES,
  enableMemory,
  expectSameBytes,
  machineOf,
  singlePf,
  withVfs,
  writableMask,
  type TypeName,
} from '../support/functions.js';

const RUNS = 60;

const configWrite = fc.record({
  offset: fc.oneof(
    fc.integer({ min: 0, max: 0xff }),
    fc.integer({ min: 0x100, max: 0x150 }),
    fc.integer({ min: 0, max: 0xfff }),
  ),
  width: fc.constantFrom(1, 2, 4),
  value: fc.oneof(fc.constant(0xffffffff), fc.constant(0), fc.nat({ max: 0xffffffff })),
});

describe('property: read-only config bits never change', () => {
  for (const kind of ['pf', 'vf'] as const) {
    for (const policy of ['strict', 'compat'] as const) {
      it(`${kind}, ${policy}: bits outside the spec write/RW1C masks keep their power-on value`, () => {
        fc.assert(
          fc.property(
            fc.constantFrom(...TYPES),
            fc.array(configWrite, { minLength: 1, maxLength: 40 }),
            (type, writes) => {
              const { pf, vf } = withVfs(type, 2, { policy });
              const fn: VirtioPciFunction = kind === 'pf' ? pf : vf;
              const mask = writableMask(fn);
              const before = fn.config.snapshot();
              for (const w of writes) {
                const offset = w.offset - (w.offset % w.width);
                const value = w.width === 4 ? w.value : w.value % 2 ** (8 * w.width);
                try {
                  write(fn, 'config', offset, w.width, value);
                } catch (e) {
                  if (!(e instanceof VmmrError)) throw e;
                }
                const after = fn.config.snapshot();
                for (let i = 0; i < after.length; i++) {
                  if ((after[i]! ^ before[i]!) & ~mask[i]!) {
                    throw new Error(
                      `byte 0x${i.toString(16)} changed read-only bits: 0x${before[i]!.toString(16)} -> 0x${after[i]!.toString(16)} ` +
                        `(mask 0x${mask[i]!.toString(16)}) after ${JSON.stringify({ offset, width: w.width, value })}`,
                    );
                  }
                }
              }
            },
          ),
          { numRuns: RUNS },
        );
      });
    }
  }
});

// ---- four 1-byte writes equal one 4-byte write ----

interface PlainField {
  what: string;
  type: TypeName;
  fn: 'pf' | 'vf';
  space: Space;
  offset: number;
}

/** Read-write dwords without write side effects (config registers, driver-writable device config). */
function plainFields(): PlainField[] {
  const { pf } = singlePf('net');
  const pciCfg = pf.template.caps.pciCfg;
  const vfBar = pf.sriov + sriovCap.registers.BAR0.offset + 8;
  return [
    { what: 'cache line / latency / header / BIST', type: 'net', fn: 'pf', space: 'config', offset: 0x0c },
    { what: 'BAR0 (sizing mask applies per bit)', type: 'net', fn: 'pf', space: 'config', offset: 0x10 },
    { what: 'BAR1', type: 'block', fn: 'pf', space: 'config', offset: 0x14 },
    { what: 'interrupt line / pin / grant / latency', type: 'net', fn: 'pf', space: 'config', offset: 0x3c },
    { what: 'SR-IOV VF BAR2', type: 'net', fn: 'pf', space: 'config', offset: vfBar },
    { what: 'SR-IOV VF BAR3', type: 'scsi', fn: 'pf', space: 'config', offset: vfBar + 4 },
    { what: 'PCI_CFG cap.offset', type: 'net', fn: 'pf', space: 'config', offset: pciCfg + 8 },
    { what: 'PCI_CFG cap.length', type: 'net', fn: 'vf', space: 'config', offset: pciCfg + 12 },
    {
      what: 'net MAC[0..3], modern window of a VF (legacy driver)',
      type: 'net',
      fn: 'vf',
      space: 'bar2',
      offset: 0x200,
    },
    { what: 'net MAC[0..3], legacy block', type: 'net', fn: 'vf', space: 'bar2', offset: 0x1000 + 20 },
    { what: 'scsi sense_size', type: 'scsi', fn: 'vf', space: 'bar2', offset: 0x200 + 20 },
    { what: 'scsi cdb_size, legacy block', type: 'scsi', fn: 'vf', space: 'bar2', offset: 0x1000 + 20 + 24 },
    { what: 'balloon actual', type: 'balloon', fn: 'pf', space: 'bar0', offset: 0x200 + 4 },
    { what: 'console emerg_wr', type: 'console', fn: 'vf', space: 'bar2', offset: 0x1000 + 20 + 8 },
  ];
}

function fixture(f: PlainField): VirtioPciFunction {
  const { pf, vf } = withVfs(f.type, 1);
  enableMemory(pf);
  return f.fn === 'pf' ? pf : vf;
}

describe('property: four 1-byte writes equal one 4-byte write on plain read-write fields', () => {
  it('same value read back, same config space, same device state', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...plainFields()),
        fc.nat({ max: 0xffffffff }),
        fc.constantFrom([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]),
        (field, value, order) => {
          const bytewise = fixture(field);
          const whole = fixture(field);
          for (const i of order)
            write(bytewise, field.space, field.offset + i, 1, Math.floor(value / 2 ** (8 * i)) & 0xff);
          write(whole, field.space, field.offset, 4, value);
          expect(read(bytewise, field.space, field.offset, 4), field.what).toBe(
            read(whole, field.space, field.offset, 4),
          );
          expectSameBytes(bytewise.config.snapshot(), whole.config.snapshot(), field.what);
          expect(bytewise.device.getState()).toEqual(whole.device.getState());
        },
      ),
      { numRuns: 120 },
    );
  });

  it('and the write took effect (the fields really are writable)', () => {
    for (const field of plainFields()) {
      const fn = fixture(field);
      const before = read(fn, field.space, field.offset, 4);
      write(fn, field.space, field.offset, 4, 0xa5a5a5a5);
      expect(read(fn, field.space, field.offset, 4), field.what).not.toBe(before);
    }
  });
});

// ---- random access streams ----

const GARBAGE_SPACES = ['bar6', 'bar-1', 'barx', 'BAR0', 'mem', '', 'io ', 'guest', 'config\u0000'];

function streamMachine(): Machine {
  const machine = machineOf([
    { bdf: '0000:01:00.0', type: 'net', totalVfs: 8 },
    { bdf: '0000:02:00.0', type: 'block', totalVfs: 4, policy: 'compat' },
    { bdf: '0000:03:00.0', type: 'rng', totalVfs: 4, notify: 'legacy-register' },
    { bdf: '0000:04:00.0', type: '9p', totalVfs: 2 },
  ]);
  for (const pf of machine.pfs) enableMemory(pf);
  const net = machine.findPf('01:00.0');
  write(net, 'config', net.sriov + 0x10, 2, 4);
  write(net, 'config', net.sriov + 0x08, 2, 0x9);
  const blk = machine.findPf('02:00.0');
  write(blk, 'config', blk.sriov + 0x10, 2, 2);
  write(blk, 'config', blk.sriov + 0x08, 2, 0x1);
  return machine;
}

const BDFS = [
  '0000:01:00.0',
  '0000:01:00.1',
  '0000:01:00.4',
  '0000:01:00.6', // disabled VF slot
  '0000:02:00.0',
  '0000:02:00.2',
  '0000:03:00.0',
  '0000:03:00.1', // disabled
  '0000:04:00.0',
  '0000:09:00.0', // nobody
];

const anyOffset = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 0x4000 }) },
  { weight: 4, arbitrary: fc.integer({ min: 0x1000, max: 0x1040 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 0x150 }) },
  { weight: 1, arbitrary: fc.integer({ min: -16, max: -1 }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, 0.5, 2 ** 53, 2 ** 32, 0x10_0000) },
);
const anyWidth = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(1, 2, 4, 8) },
  { weight: 1, arbitrary: fc.constantFrom(0, 3, 16, -4, 1.5, NaN) },
);
const anyValue = fc.oneof(
  { weight: 6, arbitrary: fc.nat({ max: 0xffffffff }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, 0xff, 0xffff, 0xffffffff) },
  { weight: 2, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(-1, NaN, 1.25, 2 ** 64, -1n, 2n ** 64n, undefined, null, '7', {}),
  },
);
const anySpace = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom<string>(...SPACES) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(...GARBAGE_SPACES, undefined, 3, null) },
);
const anyOp = fc.record({
  bdf: fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...BDFS) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>('zz', '', '0000:01:20.0', 5, undefined) },
  ),
  space: anySpace,
  op: fc.constantFrom('read', 'write'),
  offset: anyOffset,
  width: anyWidth,
  value: anyValue,
});

function describeOp(op: unknown): string {
  return JSON.stringify(op, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

describe('property: random access streams', () => {
  it('never throw anything but a VmmrError (direct read/write on live functions)', () => {
    fc.assert(
      fc.property(fc.array(anyOp, { minLength: 1, maxLength: 60 }), (ops) => {
        const machine = streamMachine();
        for (const op of ops) {
          let fn: AccessTarget;
          try {
            fn = machine.target(op.bdf as string, op.space as string);
          } catch (e) {
            if (!(e instanceof VmmrError)) throw new Error(`find(${describeOp(op.bdf)}) threw ${String(e)}`);
            continue;
          }
          try {
            if (op.op === 'read') read(fn, op.space as Space, op.offset, op.width);
            else write(fn, op.space as Space, op.offset, op.width, op.value as number);
          } catch (e) {
            if (!(e instanceof VmmrError)) throw new Error(`${describeOp(op)} threw ${String(e)}`);
            expect(e.code).toMatch(/^VMMR_ERR_[A-Z_]+$/);
            expect(e.context.bdf).toBe(machine.find(op.bdf as string).bdf);
          }
        }
      }),
      { numRuns: 100 },
    );
  });

  it('runBatch(continueOnError) reports every refusal as a VmmrError result and equals the accesses one by one', () => {
    fc.assert(
      fc.property(fc.array(anyOp, { minLength: 1, maxLength: 60 }), (ops) => {
        const batched = streamMachine();
        const single = streamMachine();
        const results = runBatch(batched, ops as unknown as Operation[], true);
        expect(results).toHaveLength(ops.length);
        ops.forEach((op, i) => {
          const r = results[i]!;
          let one: { ok: true; value?: unknown } | { ok: false; code: string };
          try {
            const fn = single.target(op.bdf as string, op.space as string);
            one =
              op.op === 'read'
                ? { ok: true, value: read(fn, op.space as Space, op.offset, op.width) }
                : (write(fn, op.space as Space, op.offset, op.width, op.value as number), { ok: true });
          } catch (e) {
            if (!(e instanceof VmmrError)) throw new Error(`${describeOp(op)} threw ${String(e)}`);
            one = { ok: false, code: e.code };
          }
          if (r.ok) expect(one).toEqual(op.op === 'read' ? { ok: true, value: r.value } : { ok: true });
          else {
            expect(r.error).toBeInstanceOf(VmmrError);
            expect(one).toEqual({ ok: false, code: r.error.code });
          }
        });
        expect(batched.snapshot()).toEqual(single.snapshot());
      }),
      { numRuns: 100 },
    );
  });

  it('snapshot and restore: a restored machine has the same state and answers the next accesses the same', () => {
    fc.assert(
      fc.property(
        fc.array(anyOp, { minLength: 1, maxLength: 60 }),
        fc.array(anyOp, { maxLength: 30 }),
        (before, after) => {
          const original = streamMachine();
          runBatch(original, before as unknown as Operation[], true);
          const state = original.snapshot();
          const restored = Machine.restore(JSON.parse(JSON.stringify(state)) as typeof state);
          expect(restored.snapshot()).toEqual(state);
          const keep = (r: ReturnType<typeof runBatch>[number]) =>
            r.ok ? r : { ok: false, code: r.error.code };
          // guest views are not machine state: compare the rest of the stream outside them
          const ops = (after as unknown as Operation[]).filter(
            (op) => op.space !== 'io' && op.space !== 'guest-config',
          );
          expect(runBatch(restored, ops, true).map(keep)).toEqual(runBatch(original, ops, true).map(keep));
          expect(restored.snapshot()).toEqual(original.snapshot());
        },
      ),
      { numRuns: 100 },
    );
  });

  it('runBatch without continueOnError stops at the first refusal', () => {
    const machine = streamMachine();
    const results = runBatch(
      machine,
      [
        { bdf: '0000:01:00.0', space: 'config', op: 'read', offset: 0, width: 4 },
        { bdf: '0000:01:00.0', space: 'config', op: 'read', offset: 1, width: 4 },
        { bdf: '0000:01:00.0', space: 'config', op: 'read', offset: 0, width: 4 },
      ],
      false,
    );
    expect(results).toHaveLength(2);
    expect(results[1]).toMatchObject({ ok: false, error: { code: 'VMMR_ERR_UNALIGNED' } });
  });
});
