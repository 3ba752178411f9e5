/**
 * Bad input, in process: random access streams through the one access entry point
 * (src/access: read, write, runBatch) with wrong BDFs, spaces, offsets, widths and values mixed
 * into valid ones. After every step:
 * - the outcome is a result of the right width or a VmmrError with a VMMR_ERR_* code (anything
 *   else — TypeError, RangeError, a silent success on garbage input — fails);
 * - a refused access changed nothing at all;
 * - the read-only bits of the target's config space (derived from the spec tables, see
 *   support/oracle.ts) are unchanged, save the documented device-driven bits;
 * - every OTHER function's complete state (4 KiB config image, device state, guest view) is
 *   byte-for-byte what it was; the one exception is a write reaching a PF's SR-IOV Control or
 *   Device Control (FLR), which may remove that PF's VFs or create fresh ones.
 *
 * Time-boxed: FUZZ_SECONDS (default 4) per property; FUZZ_LONG=1 runs 5 minutes.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { read, SPACES, write, type AccessTarget, type Space } from '../../src/access/index.js';
import { runBatch, type Operation } from '../../src/access/batch.js';
import { isVmmrError, VmmrError } from '../../src/base/errors.js';
import { EVENT_TYPES, type VmmrEvent } from '../../src/base/events.js';
import { Machine } from '../../src/machine/machine.js';
import { normalizeBdf } from '../../src/pci/bdf.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import {
  barLayout,
  commonCfg,
  legacy,
  msixCap,
  msixTableEntry,
  pciHeader,
  pcieCap,
  sriovCap,
  virtioPciCap,
} from '../../src/spec/index.js';
import type { VirtioPf } from '../../src/mmr/pf.js';
import { parseTopology } from '../../src/machine/topology.js';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';
import {
  bytesEqual,
  diffFunction,
  readOnlyChanges,
  readOnlyMask,
  snapshotFunction,
  snapshotMachine,
  walkCapabilities,
  type FunctionSnapshot,
} from '../support/robustness/oracle.js';

const LONG = process.env.FUZZ_LONG === '1';
const SECONDS = LONG ? 300 : Number(process.env.FUZZ_SECONDS ?? 4);
const MS = SECONDS * 1000;

const ERROR_CODES = new Set([
  'VMMR_ERR_BAD_BDF',
  'VMMR_ERR_NO_FUNCTION',
  'VMMR_ERR_VF_DISABLED',
  'VMMR_ERR_BAD_SPACE',
  'VMMR_ERR_BAD_OFFSET',
  'VMMR_ERR_BAD_WIDTH',
  'VMMR_ERR_UNALIGNED',
  'VMMR_ERR_OUT_OF_RANGE',
  'VMMR_ERR_BAD_VALUE',
  'VMMR_ERR_UNMAPPED',
  'VMMR_ERR_WIDTH_MISMATCH',
  'VMMR_ERR_READ_ONLY',
  'VMMR_ERR_WRITE_ONLY',
  'VMMR_ERR_DECODE_DISABLED',
  'VMMR_ERR_IO_DISABLED',
  'VMMR_ERR_NOT_TRANSITIONAL',
  'VMMR_ERR_SRIOV_STATE',
  'VMMR_ERR_SRIOV_RANGE',
  'VMMR_ERR_LIMIT',
]);

/** Every device type, both policies, odd First VF Offset / Stride, two domains, a PF without VFs. */
const TOPOLOGY = parseTopology(
  {
    pfs: [
      {
        bdf: '0000:01:00.0',
        type: 'net',
        totalVfs: 6,
        vfs: { '0000:01:00.2': { mac: '52:54:00:00:00:02' } },
      },
      {
        bdf: '0000:02:00.0',
        type: 'block',
        totalVfs: 4,
        firstVfOffset: 8,
        vfStride: 2,
        policy: 'compat',
        queueSize: 64,
      },
      { bdf: '0000:03:00.0', type: 'console', totalVfs: 3, notify: 'legacy-register' },
      { bdf: '0001:04:00.0', type: 'rng', totalVfs: 2, policy: 'compat', notify: 'legacy-register' },
      { bdf: '0000:05:00.0', type: 'scsi', totalVfs: 2, queueSize: 16 },
      { bdf: '0000:06:00.0', type: '9p', totalVfs: 1, vfStride: 0 },
      { bdf: '0000:07:00.0', type: 'balloon', totalVfs: 0 },
    ],
  },
  'fuzz topology',
);
/** Below the sum of TotalVFs (18), so VF Enable can hit the process limit. */
const MAX_VFS = 12;

const S = sriovCap.registers;
const SC = sriovCap.constants;
const DEVCTL = pcieCap.registers.DEVCTL;

// ---------------------------------------------------------------------------------------------
// Generators
//
// A step is a VALID access (a live function, one of its spaces, a register it implements at the
// register's width, a value that fits) with at most one fault injected, so that the machine state
// keeps evolving (VFs come and go, MSI-X turns on, drivers reach DRIVER_OK) while every kind of
// wrong input is tried against it.

interface AccessSpec {
  pick: number;
  spaceN: number;
  reg: { hot: boolean; n: number };
  op: 'read' | 'write';
  value: bigint;
  fault: Fault;
}
type Fault =
  | { kind: 'none' }
  | { kind: 'bdf'; bdf: string }
  | { kind: 'space'; space: unknown }
  | { kind: 'offset'; offset: unknown }
  | { kind: 'width'; width: unknown }
  | { kind: 'value'; value: unknown }
  | {
      kind: 'wild';
      where: 'abs' | 'cap' | 'region';
      n: number;
      delta: number;
      width: unknown;
      align: boolean;
    };
type Step =
  ({ kind: 'access' } & AccessSpec) | { kind: 'batch'; ops: AccessSpec[]; continueOnError: boolean };

const hex = (n: number, d: number): string => n.toString(16).padStart(d, '0');
const badBdf = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    'zz:00.0',
    '0000:01:20.0',
    '0000:01:00.8',
    '01:00.0 ',
    ' 01:00.0',
    '0x01:00.0',
    '00000:01:00.0',
    '0000:001:00.0',
    '0000:01:00',
    '0000:01:00.1\n',
    '0000:01:00.-1',
    '\u0000',
    '../../etc/passwd',
    '%30000:01:00.0',
    'ffff:ff:1f.7',
    '0000:01:00.7',
    '0000:02:00.1',
    '0000:02:01.0',
    '0001:04:00.3',
    '__proto__',
  ),
  fc.string({ maxLength: 16 }),
  fc
    .tuple(
      fc.integer({ min: 0, max: 2 }),
      fc.integer({ min: 0, max: 9 }),
      fc.integer({ min: 0, max: 0x1f }),
      fc.integer({ min: 0, max: 7 }),
    )
    .map(([d, b, dev, f]) => `${hex(d, 4)}:${hex(b, 2)}:${hex(dev, 2)}.${f}`),
);
const badSpace = fc.oneof(
  fc.constantFrom<unknown>(...SPACES), // valid names, mostly wrong for the function (bar1 of a VF, io of a PF)
  fc.constantFrom<unknown>(
    'bar',
    'bar6',
    'bar-1',
    'bar02',
    'bar2.0',
    'bar 2',
    'bar0x2',
    'BAR2',
    'xyz2',
    'Config',
    'config ',
    'io\n',
    '',
    '__proto__',
    'constructor',
    'toString',
    'guest',
    'memory',
  ),
  fc.string({ maxLength: 8 }),
  fc.constantFrom<unknown>(null, undefined, 0, 2, {}, ['config']),
);
const BAD_NUMBERS: unknown[] = [
  -1,
  -4,
  -(2 ** 31),
  NaN,
  Infinity,
  -Infinity,
  0.5,
  1.5,
  2 ** 32,
  2 ** 53,
  2 ** 64,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  '4',
  '0x10',
  null,
  undefined,
  4n,
  true,
  {},
];
/** Values drivers write at the registers vmmr reacts to (VF Enable/MSE, MSI-X Enable, FLR, status…). */
const INTERESTING = [
  0, 1, 2, 3, 4, 6, 7, 8, 9, 0xb, 0xf, 0x19, 0xff, 0x100, 0x4000, 0x8000, 0xc000, 0xffff, 0x80000000,
  0xffffffff,
];
const fault: fc.Arbitrary<Fault> = fc.oneof(
  { weight: 14, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: badBdf.map((bdf) => ({ kind: 'bdf' as const, bdf })) },
  { weight: 2, arbitrary: badSpace.map((space) => ({ kind: 'space' as const, space })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...BAD_NUMBERS, -0).map((offset) => ({ kind: 'offset' as const, offset })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<unknown>(0, 3, 5, 6, 7, 16, 32, 2 ** 32 + 4, ...BAD_NUMBERS)
      .map((width) => ({ kind: 'width' as const, width })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<unknown>(
        ...BAD_NUMBERS,
        0x100,
        0x10000,
        2 ** 33,
        -1n,
        2n ** 64n,
        2n ** 70n,
        0xffffffffn + 1n,
      )
      .map((value) => ({ kind: 'value' as const, value })),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('wild' as const),
      where: fc.constantFrom<'abs' | 'cap' | 'region'>('abs', 'cap', 'region'),
      n: fc.nat(),
      delta: fc.integer({ min: 0, max: 0x3f }),
      width: fc.constantFrom<unknown>(1, 2, 4, 8),
      align: fc.boolean(),
    }),
  },
);
const accessSpec: fc.Arbitrary<AccessSpec> = fc.record({
  pick: fc.nat(),
  spaceN: fc.nat(),
  reg: fc.record({ hot: fc.boolean(), n: fc.nat() }),
  op: fc.constantFrom<'read' | 'write'>('read', 'write'),
  value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(...INTERESTING.map(BigInt))),
  fault,
});
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 10, arbitrary: accessSpec.map((a) => ({ kind: 'access' as const, ...a })) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('batch' as const),
      ops: fc.array(accessSpec, { minLength: 0, maxLength: 8 }),
      continueOnError: fc.boolean(),
    }),
  },
);
/** Per PF: NumVFs (mod TotalVFs + 1), VF Enable, VF MSE, Command.MSE; per VF a guest Command. */
const mostly = fc.constantFrom(true, true, true, false);
const setup = fc.record({
  pfs: fc.array(
    fc.record({ numVfs: fc.integer({ min: 0, max: 6 }), vfe: mostly, vfMse: mostly, mse: mostly }),
    {
      minLength: TOPOLOGY.pfs.length,
      maxLength: TOPOLOGY.pfs.length,
    },
  ),
  guestCommand: fc.array(fc.constantFrom(0, 1, 1, 3, 5, 0x401), { minLength: 0, maxLength: 18 }),
});

// ---------------------------------------------------------------------------------------------
// Resolution of a generated access against the live machine

const REGIONS = [0, 0x100, 0x200, 0x400, 0x1000, 0x2000, 0x3000, 0x4000, 0x8000];

function capsOf(fn: VirtioPciFunction): ReturnType<typeof walkCapabilities> {
  return walkCapabilities((o, size) => fn.config.read(o, size));
}

/**
 * Registers a driver actually uses, as [offset, width] per space, built from the spec tables and
 * the function's capability list.
 */
function registersOf(fn: VirtioPciFunction, sp: Space): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const table = (
    base: number,
    regs: Record<string, { offset: number; size: number; alias?: boolean }>,
  ): void => {
    for (const r of Object.values(regs)) if (!r.alias && r.size <= 8) out.push([base + r.offset, r.size]);
  };
  if (sp === 'config' || sp === 'guest-config') {
    table(0, pciHeader.registers);
    for (const cap of capsOf(fn)) {
      if (cap.kind === 'std' && cap.id === 0x10) table(cap.offset, pcieCap.registers);
      else if (cap.kind === 'std' && cap.id === 0x11) table(cap.offset, msixCap.registers);
      else if (cap.kind === 'std' && cap.id === 0x09) table(cap.offset, virtioPciCap.registers);
      else if (cap.kind === 'ext' && cap.id === 0x10) table(cap.offset, sriovCap.registers);
    }
  } else if (sp === 'io') {
    table(0, legacy.registers);
    for (let i = 20; i < 40; i += 2) out.push([i, 2]);
  } else {
    const B = barLayout.registers;
    table(B.COMMON_CFG.offset, commonCfg.registers);
    table(B.LEGACY.offset, legacy.registers);
    out.push([B.ISR.offset, 1]);
    for (let i = 0; i < 24; i += 2) out.push([B.DEVICE_CFG.offset + i, 2], [B.LEGACY.offset + 20 + i, 1]);
    for (let q = 0; q < 4; q++) out.push([B.NOTIFY.offset + q * 4, 2]);
    for (let v = 0; v < 3; v++) table(B.MSIX_TABLE.offset + v * 16, msixTableEntry.registers);
    out.push([B.MSIX_PBA.offset, 8]);
  }
  return out;
}

/** The registers with the most behaviour behind them: VF lifecycle, FLR, MSI-X, status, queues. */
function hotRegistersOf(fn: VirtioPciFunction, sp: Space): Array<[number, number]> {
  const caps = capsOf(fn);
  const at = (kind: 'std' | 'ext', id: number): number | undefined =>
    caps.find((c) => c.kind === kind && c.id === id)?.offset;
  if (sp === 'config' || sp === 'guest-config') {
    const out: Array<[number, number]> = [[pciHeader.registers.COMMAND.offset, 2]];
    const pcie = at('std', 0x10);
    const msix = at('std', 0x11);
    const sriov = at('ext', 0x10);
    if (pcie !== undefined) out.push([pcie + pcieCap.registers.DEVCTL.offset, 2]);
    if (msix !== undefined) out.push([msix + msixCap.registers.FLAGS.offset, 2]);
    if (sriov !== undefined) {
      const R = sriovCap.registers;
      out.push(
        [sriov + R.CTRL.offset, 2],
        [sriov + R.CTRL.offset, 2],
        [sriov + R.NUM_VF.offset, 2],
        [sriov + R.SYS_PGSIZE.offset, 4],
      );
    }
    return out;
  }
  const legacyRegs = (base: number): Array<[number, number]> => {
    const L = legacy.registers;
    return [L.STATUS, L.QUEUE_SEL, L.QUEUE_PFN, L.ISR, L.MSI_CONFIG_VECTOR, L.QUEUE_NOTIFY].map((r) => [
      base + r.offset,
      r.size,
    ]);
  };
  if (sp === 'io') return legacyRegs(0);
  const C = commonCfg.registers;
  const B = barLayout.registers;
  return [
    ...[C.DEVICE_STATUS, C.QUEUE_SELECT, C.QUEUE_ENABLE, C.QUEUE_DESC, C.DRIVER_FEATURE, C.MSIX_CONFIG].map(
      (r): [number, number] => [B.COMMON_CFG.offset + r.offset, r.size],
    ),
    ...legacyRegs(B.LEGACY.offset),
    [B.MSIX_TABLE.offset + msixTableEntry.registers.VECTOR_CTRL.offset, 4],
  ];
}

function spacesOf(fn: VirtioPciFunction): Space[] {
  const bar = `bar${fn.template.barIndex}` as Space;
  return fn.kind === 'pf' ? ['config', bar, bar] : ['config', bar, bar, 'io', 'guest-config'];
}

interface Resolved {
  fn?: VirtioPciFunction;
  bdf: string;
  space: unknown;
  offset: unknown;
  width: unknown;
  value: unknown;
  op: 'read' | 'write';
  /** Why the input is invalid (must be refused whatever the state), or undefined. */
  invalid?: string;
}

function fits(v: unknown, w: unknown): boolean {
  if (typeof w !== 'number' || ![1, 2, 4, 8].includes(w)) return false;
  const max = 2n ** BigInt(8 * w);
  if (typeof v === 'bigint') return v >= 0n && v < max;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && BigInt(v) < max;
}

/** 8-byte values travel as bigint or, when safe, as number: both forms must work. */
function valueFor(raw: bigint, width: unknown): unknown {
  if (width === 8) return (raw & 1n) === 1n || raw > BigInt(Number.MAX_SAFE_INTEGER) ? raw : Number(raw);
  const w = typeof width === 'number' && [1, 2, 4].includes(width) ? width : 4;
  return Number(raw & ((1n << BigInt(8 * w)) - 1n));
}

function resolve(m: Machine, a: AccessSpec): Resolved {
  const all = [...m.functions()];
  const fn = all[a.pick % all.length]!;
  const spaces = spacesOf(fn);
  const space = spaces[a.spaceN % spaces.length]!;
  const regs = a.reg.hot ? hotRegistersOf(fn, space) : registersOf(fn, space);
  const [offset, width] = regs[a.reg.n % regs.length]!;
  const r: Resolved = { fn, bdf: fn.bdf, space, offset, width, value: valueFor(a.value, width), op: a.op };
  const f = a.fault;
  switch (f.kind) {
    case 'none':
      break;
    case 'bdf':
      r.bdf = f.bdf;
      try {
        r.fn = m.find(f.bdf);
      } catch (e) {
        r.fn = undefined;
        expectVmmrError(e, `find(${JSON.stringify(f.bdf)})`);
      }
      break;
    case 'space':
      r.space = f.space;
      if (!(SPACES as readonly unknown[]).includes(f.space)) r.invalid = 'space';
      break;
    case 'offset':
      r.offset = f.offset;
      if (!(typeof f.offset === 'number' && Number.isSafeInteger(f.offset) && f.offset >= 0))
        r.invalid = 'offset';
      break;
    case 'width':
      r.width = f.width;
      r.invalid = 'width';
      break;
    case 'value':
      r.value = f.value;
      if (a.op === 'write' && !fits(f.value, width)) r.invalid = 'value';
      break;
    case 'wild': {
      let base = f.n;
      if (f.where === 'cap') {
        const anchors = [0, ...capsOf(fn).map((c) => c.offset)];
        base = anchors[f.n % anchors.length]!;
      } else if (f.where === 'region') {
        base = space.startsWith('bar') ? REGIONS[f.n % REGIONS.length]! : 0;
      } else {
        base = f.n % 0x4100;
      }
      let off = base + f.delta;
      if (f.align) off -= off % (f.width as number);
      r.offset = off;
      r.width = f.width;
      r.value = valueFor(a.value, f.width);
      break;
    }
  }
  return r;
}

const stats = {
  ok: new Map<string, number>(),
  startVfs: 0,
  runs: 0,
  steps: 0,
  accesses: 0,
  refused: 0,
  batches: 0,
  events: 0,
  vfSetChanges: 0,
  codes: new Map<string, number>(),
};

function expectVmmrError(e: unknown, where: string): VmmrError {
  if (!isVmmrError(e)) {
    throw new Error(
      `${where}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}, not a VmmrError`,
    );
  }
  if (!ERROR_CODES.has(e.code)) throw new Error(`${where}: unknown code ${e.code}`);
  if (typeof e.message !== 'string' || e.message.length === 0 || e.message.includes('\n')) {
    throw new Error(`${where}: ${e.code} without a one-line message: ${JSON.stringify(e.message)}`);
  }
  stats.codes.set(e.code, (stats.codes.get(e.code) ?? 0) + 1);
  return e;
}

function checkReadResult(v: unknown, w: number, where: string): void {
  if (w === 8) {
    if (typeof v !== 'bigint' || v < 0n || v >= 2n ** 64n)
      throw new Error(`${where}: 8-byte read gave ${String(v)}`);
    return;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** (8 * w)) {
    throw new Error(`${where}: ${w}-byte read gave ${String(v)}`);
  }
}

/** Whether a config write at [off, off+w) of a PF reaches the registers that create/remove VFs. */
function touchesVfLifecycle(pf: VirtioPf, off: unknown, w: unknown): boolean {
  if (typeof off !== 'number' || typeof w !== 'number') return false;
  const over = (at: number, size: number): boolean => off < at + size && off + w > at;
  const pcie = walkCapabilities((o, s) => pf.config.read(o, s)).find(
    (c) => c.kind === 'std' && c.id === 0x10,
  );
  return (
    over(pf.sriov + S.CTRL.offset, S.CTRL.size) ||
    (pcie !== undefined && over(pcie.offset + DEVCTL.offset, DEVCTL.size))
  );
}

function isFreshVf(machine: Machine, vf: MmrVf): string | undefined {
  if (!vf.live) return 'not live';
  if (!vf.pristine) return 'not pristine';
  if (machine.translator.existing(vf)) return 'has a guest view already';
  if (!bytesEqual(vf.config.snapshot(), vf.pf.vfTemplate.config.bytes))
    return 'config differs from the VF template';
  return undefined;
}

/**
 * Every function outside `targets` is unchanged, except the VFs of the PFs in `lifecycle`, which
 * may have been removed (no longer live) or created fresh.
 */
function checkOthers(
  machine: Machine,
  before: Map<string, FunctionSnapshot>,
  after: Map<string, FunctionSnapshot>,
  targets: Set<string>,
  lifecycle: Set<VirtioPf>,
  where: string,
): void {
  for (const bdf of new Set([...before.keys(), ...after.keys()])) {
    const a = before.get(bdf);
    const b = after.get(bdf);
    if (targets.has(bdf)) {
      if (a && b && a.fn !== b.fn && !(a.fn.kind === 'vf' && lifecycle.has((a.fn as MmrVf).pf))) {
        throw new Error(`${where}: ${bdf} was replaced without a VF lifecycle write`);
      }
      continue;
    }
    const pf = (a ?? b)!.fn.kind === 'vf' ? ((a ?? b)!.fn as MmrVf).pf : undefined;
    if (pf && lifecycle.has(pf)) {
      if (a && b && a.fn === b.fn) {
        const d = diffFunction(a, b);
        if (d.length) throw new Error(`${where}: surviving VF ${bdf} changed: ${d.join('; ')}`);
        continue;
      }
      if (a && (a.fn as MmrVf).live)
        throw new Error(`${where}: VF ${bdf} replaced but the old object is still live`);
      if (b) {
        const why = isFreshVf(machine, b.fn as MmrVf);
        if (why) throw new Error(`${where}: new VF ${bdf} is not fresh: ${why}`);
      }
      stats.vfSetChanges++;
      continue;
    }
    if (!a || !b)
      throw new Error(
        `${where}: ${bdf} ${a ? 'disappeared' : 'appeared'} although no write reached its PF's SR-IOV/FLR`,
      );
    const d = diffFunction(a, b);
    if (d.length) throw new Error(`${where}: untouched function ${bdf} changed: ${d.join('; ')}`);
  }
  for (const pf of machine.pfs) {
    const expected = pf.vfEnabled ? pf.numVfs : 0;
    if (pf.vfs.length !== expected)
      throw new Error(`${where}: PF ${pf.bdf} has ${pf.vfs.length} VFs, VF Enable/NumVFs say ${expected}`);
  }
  if (machine.enabledVfCount() > machine.maxVfs)
    throw new Error(`${where}: ${machine.enabledVfCount()} VFs exceed the limit ${machine.maxVfs}`);
}

function checkTarget(
  m: Machine,
  fn: VirtioPciFunction,
  before: FunctionSnapshot,
  refused: boolean,
  where: string,
): void {
  const after = snapshotFunction(fn, m.translator);
  if (refused) {
    const d = diffFunction(before, after);
    if (d.length) throw new Error(`${where}: refused access changed its target: ${d.join('; ')}`);
    return;
  }
  const changes = readOnlyChanges(fn.kind, before.config, after.config);
  if (changes.length)
    throw new Error(`${where}: read-only config bits changed: ${changes.slice(0, 6).join('; ')}`);
}

// ---------------------------------------------------------------------------------------------
// Running

interface Setup {
  pfs: Array<{ numVfs: number; vfe: boolean; vfMse: boolean; mse: boolean }>;
  guestCommand: number[];
}

function buildMachine(s: Setup): Machine {
  const m = new Machine(TOPOLOGY, { maxVfs: MAX_VFS });
  m.pfs.forEach((pf, i) => {
    const p = s.pfs[i]!;
    const total = pf.definition.totalVfs;
    write(pf, 'config', 4, 2, p.mse ? 6 : 0);
    write(pf, 'config', pf.sriov + S.NUM_VF.offset, 2, p.numVfs % (total + 1));
    const ctrl = (p.vfe ? SC.CTRL_VFE.value : 0) | (p.vfMse ? SC.CTRL_MSE.value : 0);
    try {
      write(pf, 'config', pf.sriov + S.CTRL.offset, 2, ctrl);
    } catch (e) {
      if (!isVmmrError(e) || e.code !== 'VMMR_ERR_LIMIT') throw e;
    }
  });
  const vfs = [...m.functions()].filter((f) => f.kind === 'vf') as MmrVf[];
  s.guestCommand.forEach((cmd, i) => {
    const vf = vfs[i];
    if (vf) write(m.translator.view(vf), 'guest-config', 4, 2, cmd);
  });
  return m;
}

type Snap = Map<string, FunctionSnapshot>;

/** The guest view is opened on first use; open it before the "before" snapshot is taken. */
function openView(m: Machine, r: Resolved, before: Snap): void {
  if (
    r.fn?.kind === 'vf' &&
    (r.space === 'io' || r.space === 'guest-config') &&
    !m.translator.existing(r.fn as MmrVf)
  ) {
    m.translator.view(r.fn as MmrVf);
    before.set(r.fn.bdf, snapshotFunction(r.fn, m.translator));
  }
}

/** What an access of `space` reaches: a VF's guest view for the guest spaces. */
function targetOf(m: Machine, fn: VirtioPciFunction, space: unknown): AccessTarget {
  return fn.kind === 'vf' && (space === 'io' || space === 'guest-config')
    ? m.translator.view(fn as MmrVf)
    : fn;
}

function describe1(r: Resolved): string {
  const v = r.op === 'write' ? ` value ${String(r.value)}` : '';
  return `${r.op} ${JSON.stringify(r.bdf)} ${String(r.space)} offset ${String(r.offset)} width ${String(r.width)}${v}`;
}

/** Runs one access; `before` is the machine's snapshot now, the result its snapshot after. */
function runAccess(m: Machine, a: AccessSpec, n: number, before: Snap): Snap {
  const r = resolve(m, a);
  const label = `step ${n}: ${describe1(r)}`;
  const fn = r.fn;
  if (!fn) return before; // the BDF named no live function: refused by find() (checked in resolve)
  openView(m, r, before);
  const self = before.get(fn.bdf)!;
  let refused = false;
  let result: unknown;
  stats.accesses++;
  try {
    const target = targetOf(m, fn, r.space);
    if (r.op === 'read') result = read(target, r.space as Space, r.offset as number, r.width as number);
    else write(target, r.space as Space, r.offset as number, r.width as number, r.value as number);
  } catch (e) {
    const err = expectVmmrError(e, label);
    refused = true;
    stats.refused++;
    if (err.context.bdf !== fn.bdf)
      throw new Error(`${label}: refusal names ${String(err.context.bdf)}, not ${fn.bdf}`);
    if (r.invalid === 'space' && err.code !== 'VMMR_ERR_BAD_SPACE')
      throw new Error(`${label}: unknown space refused as ${err.code}`);
  }
  if (!refused && r.invalid) throw new Error(`${label}: invalid ${r.invalid} was accepted`);
  if (!refused) {
    if (r.op === 'read') checkReadResult(result, r.width as number, label);
    const key = `${fn.kind} ${String(r.space)} ${r.op}`;
    stats.ok.set(key, (stats.ok.get(key) ?? 0) + 1);
  }
  checkTarget(m, fn, self, refused, label);
  const lifecycle = new Set<VirtioPf>();
  if (
    !refused &&
    r.op === 'write' &&
    r.space === 'config' &&
    fn.kind === 'pf' &&
    touchesVfLifecycle(fn as VirtioPf, r.offset, r.width)
  ) {
    lifecycle.add(fn as VirtioPf);
  }
  const after = snapshotMachine(m);
  checkOthers(m, before, after, new Set([fn.bdf]), lifecycle, label);
  return after;
}

/** Runs a batch through runBatch: every result is a value or a VmmrError; nobody else changes. */
function runBatchStep(
  m: Machine,
  specs: AccessSpec[],
  continueOnError: boolean,
  n: number,
  before: Snap,
): Snap {
  const where = `step ${n} (batch of ${specs.length})`;
  const ops: Operation[] = [];
  const targets = new Set<string>();
  const lifecycle = new Set<VirtioPf>();
  const resolved = specs.map((a) => resolve(m, a));
  for (const r of resolved) {
    try {
      targets.add(normalizeBdf(r.bdf));
    } catch {
      // a malformed BDF targets nothing
    }
    openView(m, r, before);
    if (r.fn?.kind === 'pf' && r.op === 'write' && r.space === 'config') lifecycle.add(r.fn as VirtioPf);
    const op = { bdf: r.bdf, space: r.space, op: r.op, offset: r.offset, width: r.width } as Operation;
    if (r.op === 'write') (op as { value: unknown }).value = r.value;
    ops.push(op);
  }
  stats.batches++;
  stats.accesses += ops.length;
  let results;
  try {
    results = runBatch(m, ops, continueOnError);
  } catch (e) {
    throw new Error(`${where}: runBatch threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  const firstError = results.findIndex((x) => !x.ok);
  const expectedLength = continueOnError || firstError < 0 ? ops.length : firstError + 1;
  if (results.length !== expectedLength)
    throw new Error(`${where}: ${results.length} results, expected ${expectedLength}`);
  results.forEach((x, i) => {
    const label = `${where} op ${i}: ${describe1(resolved[i]!)}`;
    if (x.ok) {
      if (resolved[i]!.invalid) throw new Error(`${label}: invalid ${resolved[i]!.invalid} was accepted`);
      if (ops[i]!.op === 'read') checkReadResult(x.value, ops[i]!.width!, label);
    } else {
      expectVmmrError(x.error, label);
      stats.refused++;
    }
  });
  const after = snapshotMachine(m);
  checkOthers(m, before, after, targets, lifecycle, where);
  return after;
}

describe('in-process access fuzz', () => {
  afterAll(() => {
    const codes = [...stats.codes]
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => `${c.replace('VMMR_ERR_', '')} ${n}`);
    console.log(
      `fuzz-access: ${stats.runs} runs (${(stats.startVfs / Math.max(1, stats.runs)).toFixed(1)} VFs enabled at start on average), ${stats.steps} steps, ${stats.accesses} accesses (${stats.batches} batches), ` +
        `${stats.refused} refused, ${stats.events} events, ${stats.vfSetChanges} VF create/remove checks in ${SECONDS}s per property\n` +
        `  refusals by code: ${codes.join(', ')}\n` +
        `  accepted single accesses: ${[...stats.ok]
          .sort()
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`,
    );
  });

  it('the spec-derived read-only oracle agrees with every function template', () => {
    // Guards the oracle itself: were it wrong, the fuzz below would prove nothing.
    const m = buildMachine({
      pfs: TOPOLOGY.pfs.map((p) => ({ numVfs: p.totalVfs, vfe: true, vfMse: true, mse: true })),
      guestCommand: [],
    });
    for (const fn of m.functions()) {
      const t = fn.template.config;
      const oracle = readOnlyMask(fn.kind, fn.config.snapshot());
      const impl = t.wmask.map((w, i) => ~(w | t.w1cmask[i]!) & 0xff);
      expect(Buffer.from(oracle).equals(Buffer.from(impl)), `${fn.bdf} (${fn.kind})`).toBe(true);
    }
  });

  it(
    `random access streams only ever answer results or VMMR_ERR_* and keep everything else intact (${SECONDS}s)`,
    () => {
      fc.assert(
        fc.property(setup, fc.array(step, { minLength: 1, maxLength: 120, size: 'max' }), (init, steps) => {
          stats.runs++;
          const m = buildMachine(init);
          stats.startVfs += m.enabledVfCount();
          const unsubscribe = m.events.subscribe((event: VmmrEvent) => {
            stats.events++;
            if (!EVENT_TYPES.includes(event.type) || typeof event.bdf !== 'string') {
              throw new Error(`malformed event ${JSON.stringify(event)}`);
            }
          });
          try {
            let snap = snapshotMachine(m);
            steps.forEach((s, i) => {
              stats.steps++;
              snap =
                s.kind === 'access'
                  ? runAccess(m, s, i, snap)
                  : runBatchStep(m, s.ops, s.continueOnError, i, snap);
            });
          } finally {
            unsubscribe();
          }
        }),
        { numRuns: Number.MAX_SAFE_INTEGER, plugins: [fc.interruptAfterTimeLimit(MS)] },
      );
      expect(stats.runs).toBeGreaterThan(0);
    },
    MS + 60_000,
  );
});
