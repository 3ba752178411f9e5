/**
 * Shared fixtures for the core and translator suites: machines, VF enabling through config
 * writes (as a driver does it), typed access shorthands, event capture, refusal assertions and
 * the pciutils oracles (lspci -F / setpci -A dump), which fail the test when they cannot run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { read, write, type AccessTarget, type AccessValue, type Space } from '../../src/access/index.js';
import { VmmrError, type VmmrErrorCode } from '../../src/base/errors.js';
import type { VmmrEvent } from '../../src/base/events.js';
import { Machine } from '../../src/machine/machine.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import {
  ariCap,
  mmrLocator,
  msixCap,
  pciHeader,
  pcieCap,
  sriovCap,
  virtioPciCap,
  type AnyTable,
} from '../../src/spec/index.js';
import { GuestView } from '../../src/translator/guest-view.js';
import type { VirtioPf } from '../../src/mmr/pf.js';
import { normalizeBdf } from '../../src/pci/bdf.js';
import type { ResolvedPf, TopologyPf } from '../../src/machine/topology.js';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';

export type TypeName = TopologyPf['type'];

/** The seven virtio types vmmr emulates, in the order of the spec's device ID table (§2). */
export const TYPES: readonly TypeName[] = ['net', 'block', 'balloon', 'console', 'scsi', 'rng', '9p'];

/**
 * Identities straight from the device ID table (docs/device-model.md "Functions") and the virtio spec: the
 * expected values every identity test compares with (never the code's own tables).
 */
export const IDS: Record<
  TypeName,
  { typeId: number; transitional: number; modern: number; mmr: number; classCode: number; queues: number }
> = {
  // queues: virtio 1.2 §5.x "Virtqueues" with the features vmmr offers (net: rx, tx, ctrl;
  // balloon: inflate, deflate, stats; console without MULTIPORT: rx, tx; scsi: control, event, request).
  net: { typeId: 1, transitional: 0x1000, modern: 0x1041, mmr: 0x10f9, classCode: 0x020000, queues: 3 },
  block: { typeId: 2, transitional: 0x1001, modern: 0x1042, mmr: 0x10fa, classCode: 0x010000, queues: 1 },
  balloon: { typeId: 5, transitional: 0x1002, modern: 0x1045, mmr: 0x10fb, classCode: 0x050000, queues: 3 },
  console: { typeId: 3, transitional: 0x1003, modern: 0x1043, mmr: 0x10fc, classCode: 0x078000, queues: 2 },
  scsi: { typeId: 8, transitional: 0x1004, modern: 0x1048, mmr: 0x10fd, classCode: 0x010000, queues: 3 },
  rng: { typeId: 4, transitional: 0x1005, modern: 0x1044, mmr: 0x10fe, classCode: 0x00ff00, queues: 1 },
  '9p': { typeId: 9, transitional: 0x1009, modern: 0x1049, mmr: 0x10ff, classCode: 0x000200, queues: 1 },
};

export const VENDOR = 0x1af4;
export const NET_PF = '0000:01:00.0';
export const BLK_PF = '0000:81:00.0';

/**
 * A machine from topology PF objects, resolved with the topology file's documented defaults
 * (First VF Offset 1, VF Stride 1, queue size 256, strict, notify-region; InitialVFs 0 here).
 * Built directly rather than through parseTopology, whose schema compiler is slow to import.
 */
export function machineOf(
  pfs: Array<Partial<TopologyPf> & Pick<TopologyPf, 'bdf' | 'type' | 'totalVfs'>>,
  maxVfs?: number,
): Machine {
  const resolved = pfs.map((p): ResolvedPf => ({
    bdf: normalizeBdf(p.bdf),
    type: p.type,
    totalVfs: p.totalVfs,
    initialVfs: p.initialVfs ?? 0,
    firstVfOffset: p.firstVfOffset ?? 1,
    vfStride: p.vfStride ?? 1,
    queueSize: p.queueSize ?? 256,
    policy: p.policy ?? 'strict',
    notify: p.notify ?? 'notify-region',
    adminQueue: p.adminQueue ?? false,
    translator: p.translator ?? 'mmr',
    vfs: Object.fromEntries(
      Object.entries(p.vfs ?? {}).map(([bdf, o]) => [
        normalizeBdf(bdf),
        {
          ...(o.mac !== undefined ? { mac: o.mac.toLowerCase() } : {}),
          ...(o.serial !== undefined ? { serial: o.serial } : {}),
        },
      ]),
    ),
  }));
  return remember(new Machine({ pfs: resolved }, maxVfs === undefined ? {} : { maxVfs }));
}

/** The machine of each PF built here, so that a VF's guest view can be found from the VF. */
const machineOfPf = new WeakMap<VirtioPf, Machine>();

/** Registers a machine's PFs for viewOf; returns the machine. */
export function remember(machine: Machine): Machine {
  for (const pf of machine.pfs) machineOfPf.set(pf, machine);
  return machine;
}

/** The translator's guest view of a VF of a machine built or remembered here. */
export function viewOf(vf: MmrVf): GuestView {
  const machine = machineOfPf.get(vf.pf);
  if (!machine)
    throw new Error(`test helper: the machine of ${vf.bdf} was not built by machineOf (use remember)`);
  return machine.translator.view(vf);
}

/** The target of an access: guest spaces of a VF reach its guest view. */
function targetOf(fn: AccessTarget, space: Space): AccessTarget {
  if ((space === 'io' || space === 'guest-config') && !(fn instanceof GuestView) && fn.kind === 'vf')
    return viewOf(fn as MmrVf);
  return fn;
}

/** One PF per type, on buses 0x10, 0x20, ... (PF of type t at `pfBdfOf(t)`). */
export function sevenTypeMachine(extra: Partial<TopologyPf> = {}): Machine {
  return machineOf(TYPES.map((type) => ({ bdf: pfBdfOf(type), type, totalVfs: 8, ...extra })));
}

export function pfBdfOf(type: TypeName): string {
  const bus = (TYPES.indexOf(type) + 1) * 0x10;
  return `0000:${bus.toString(16).padStart(2, '0')}:00.0`;
}

/** A single-PF machine of one type; its PF is at 0000:01:00.0. */
export function singlePf(
  type: TypeName,
  extra: Partial<TopologyPf> = {},
): { machine: Machine; pf: VirtioPf } {
  const machine = machineOf([{ bdf: NET_PF, type, totalVfs: 16, ...extra }]);
  return { machine, pf: machine.findPf(NET_PF) };
}

// ---- typed access shorthands (everything goes through the one entry point) ----

export function rd(fn: AccessTarget, space: Space, offset: number, width: number): number {
  const v = read(targetOf(fn, space), space, offset, width);
  if (typeof v !== 'number') throw new Error(`expected a number from a ${width}-byte read`);
  return v;
}

export function rd64(fn: AccessTarget, space: Space, offset: number): bigint {
  const v = read(targetOf(fn, space), space, offset, 8);
  if (typeof v !== 'bigint') throw new Error('expected a bigint from an 8-byte read');
  return v;
}

export function wr(fn: AccessTarget, space: Space, offset: number, width: number, value: AccessValue): void {
  write(targetOf(fn, space), space, offset, width, value);
}

export const cfg = (fn: VirtioPciFunction, offset: number, width: number): number =>
  rd(fn, 'config', offset, width);
export const setCfg = (fn: VirtioPciFunction, offset: number, width: number, value: number): void =>
  wr(fn, 'config', offset, width, value);

const S = sriovCap.registers;
const SC = sriovCap.constants;
const H = pciHeader.registers;

/** Sets Command.Memory Space Enable on a PF (its BAR decodes only then). */
export function enableMemory(pf: VirtioPf): void {
  setCfg(pf, H.COMMAND.offset, 2, cfg(pf, H.COMMAND.offset, 2) | pciHeader.constants.COMMAND_MEMORY.value);
}

/** Driver-style VF enable: NumVFs, then Control = VF Enable | VF MSE (unless `mse` is false). */
export function enableVfs(pf: VirtioPf, numVfs: number, mse = true): void {
  setCfg(pf, pf.sriov + S.NUM_VF.offset, 2, numVfs);
  setCfg(pf, pf.sriov + S.CTRL.offset, 2, SC.CTRL_VFE.value | (mse ? SC.CTRL_MSE.value : 0));
}

/** A machine with one PF of `type` and `numVfs` VFs enabled with VF MSE; returns VF 0 too. */
export function withVfs(
  type: TypeName,
  numVfs = 2,
  extra: Partial<TopologyPf> = {},
): { machine: Machine; pf: VirtioPf; vf: MmrVf } {
  const { machine, pf } = singlePf(type, extra);
  enableVfs(pf, numVfs);
  return { machine, pf, vf: machine.findVf(pf.vfs[0]!.bdf) };
}

/** Everything the machine emits from now on. */
export function record(machine: Machine): VmmrEvent[] {
  const events: VmmrEvent[] = [];
  machine.events.subscribe((e) => events.push(e));
  return events;
}

/** Runs `f`, expects a VmmrError with `code` (and `register` when given); returns it. */
export function refusal(f: () => unknown, code: VmmrErrorCode, register?: string): VmmrError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected a refusal ${code}`).toBeInstanceOf(VmmrError);
  const e = caught as VmmrError;
  expect(e.code).toBe(code);
  if (register !== undefined) expect(e.context.register).toBe(register);
  return e;
}

// ---- pciutils oracles ----

export interface ToolRun {
  stdout: string;
  /** stderr without the harmless "Unable to load libkmod resources" line. */
  complaints: string[];
}

const HARMLESS = /^lspci: Unable to load libkmod resources/;

function runTool(cmd: string, args: string[]): ToolRun {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  // An oracle that cannot run fails the test: it is never skipped.
  if (r.error) throw new Error(`${cmd} could not run (${r.error.message}): install pciutils`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  const complaints = r.stderr.split('\n').filter((l) => l.trim() !== '' && !HARMLESS.test(l));
  return { stdout: r.stdout, complaints };
}

function withDumpFile<T>(dump: string, f: (file: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-lspci-'));
  try {
    const file = join(dir, 'dump.txt');
    writeFileSync(file, dump);
    return f(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `lspci -F dump -vvv -nn` on an `lspci -xxxx`-format dump. */
export function lspci(dump: string): ToolRun {
  return withDumpFile(dump, (file) => runTool('lspci', ['-F', file, '-vvv', '-nn']));
}

/** `setpci -A dump -O dump.name=FILE -s SLOT REG...`: one hex value per register. */
export function setpci(dump: string, slot: string, regs: string[]): string[] {
  return withDumpFile(dump, (file) => {
    const r = runTool('setpci', ['-A', 'dump', '-O', `dump.name=${file}`, '-s', slot, ...regs]);
    return r.stdout.trim().split('\n');
  });
}

/** The block of lspci output that describes one capability (its line and the indented lines after it). */
export function capabilityBlock(out: string, header: RegExp): string {
  const lines = out.split('\n');
  const start = lines.findIndex((l) => header.test(l));
  if (start < 0) return '';
  const block = [lines[start]!];
  for (let i = start + 1; i < lines.length && /^\t\t/.test(lines[i]!); i++) block.push(lines[i]!);
  return block.join('\n');
}

// ---- capability walkers, written from the PCI spec (independent of src/pci/capabilities.ts) ----

export interface FoundCap {
  id: number;
  offset: number;
}

/** Standard list: Status.CapList, pointer at 0x34, [id, next] bytes, dword-aligned (PCI 3.0 §6.7). */
export function standardCaps(readByte: (offset: number) => number): FoundCap[] {
  const out: FoundCap[] = [];
  if (!(readByte(0x06) & 0x10)) return out;
  let ptr = readByte(0x34) & 0xfc;
  while (ptr !== 0 && out.length < 48) {
    out.push({ id: readByte(ptr), offset: ptr });
    ptr = readByte(ptr + 1) & 0xfc;
  }
  return out;
}

/** Extended list from 0x100: header ID[15:0] Version[19:16] Next[31:20] (PCIe §7.6.3). */
export function extendedCaps(readDword: (offset: number) => number): Array<FoundCap & { version: number }> {
  const out: Array<FoundCap & { version: number }> = [];
  let ptr = 0x100;
  while (ptr !== 0 && out.length < 64) {
    const header = readDword(ptr) >>> 0;
    if (header === 0 || header === 0xffffffff) break;
    out.push({ id: header & 0xffff, version: (header >>> 16) & 0xf, offset: ptr });
    ptr = (header >>> 20) & 0xffc;
  }
  return out;
}

export function capsOf(fn: VirtioPciFunction, space: 'config' | 'guest-config' = 'config'): FoundCap[] {
  return standardCaps((o) => rd(fn, space, o, 1));
}

export function extCapsOf(
  fn: VirtioPciFunction,
  space: 'config' | 'guest-config' = 'config',
): Array<FoundCap & { version: number }> {
  return extendedCaps((o) => rd(fn, space, o, 4));
}

/** virtio vendor capabilities (cap ID 0x09) by cfg_type, decoded as virtio 1.2 §4.1.4 lays them out. */
export interface VirtioCap {
  at: number;
  capLen: number;
  cfgType: number;
  bar: number;
  offset: number;
  length: number;
  multiplier?: number;
}

export function virtioCaps(fn: VirtioPciFunction, space: 'config' | 'guest-config' = 'config'): VirtioCap[] {
  return capsOf(fn, space)
    .filter((c) => c.id === 0x09)
    .map((c) => {
      const cap: VirtioCap = {
        at: c.offset,
        capLen: rd(fn, space, c.offset + 2, 1),
        cfgType: rd(fn, space, c.offset + 3, 1),
        bar: rd(fn, space, c.offset + 4, 1),
        offset: rd(fn, space, c.offset + 8, 4),
        length: rd(fn, space, c.offset + 12, 4),
      };
      if (cap.cfgType === 2) cap.multiplier = rd(fn, space, c.offset + 16, 4);
      return cap;
    });
}

/** Byte-image equality with the first differing offset in the message (fast on 4 KiB images). */
export function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what = 'image'): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  const at = actual.findIndex((b, i) => b !== expected[i]);
  const show = (img: Uint8Array) => (at < 0 ? '' : `0x${img[at]!.toString(16)}`);
  expect(
    at < 0 ? 'same' : `differs at 0x${at.toString(16)}: ${show(actual)} vs ${show(expected)}`,
    what,
  ).toBe('same');
}

// ---- the oracle: which bits of each config byte software may change ----

function put(mask: Uint8Array, offset: number, size: number, bits: number): void {
  for (let i = 0; i < size && i < 4; i++) mask[offset + i]! |= Math.floor((bits >>> 0) / 2 ** (8 * i)) & 0xff;
}

function applyTable(
  mask: Uint8Array,
  base: number,
  table: AnyTable,
  vf: boolean,
  skip: readonly string[] = [],
): void {
  for (const [name, reg] of Object.entries(table.registers)) {
    if (reg.alias || skip.includes(name) || reg.exposed === false) continue;
    const wm = vf ? (reg.vfWriteMask ?? reg.writeMask) : reg.writeMask;
    put(mask, base + reg.offset, reg.size, (wm ?? 0) | (reg.rw1cMask ?? 0));
  }
}

/**
 * PCI 3.0 §6.2.5.1 BAR rules on a run of BAR registers, judged from the power-on image: a memory
 * BAR's type bits [3:0] are read-only and only bits [31:4] may change; a 64-bit BAR's next
 * register (upper half) may change entirely; an I/O BAR's bits [1:0] are read-only; a register
 * that reads 0 at power-on and is no upper half is not implemented and stays 0.
 */
function barRun(mask: Uint8Array, image: Uint8Array, first: number, count: number): void {
  for (let i = 0; i < count; i++) {
    const at = first + 4 * i;
    const value = new DataView(image.buffer).getUint32(at, true);
    if (value === 0) continue;
    if (value & 1) {
      put(mask, at, 4, 0xfffffffc); // I/O BAR: bits 1:0 read-only
      continue;
    }
    put(mask, at, 4, 0xfffffff0);
    if ((value & 0x6) === 0x4) {
      put(mask, at + 4, 4, 0xffffffff);
      i++;
    }
  }
}

/**
 * The bits software may change in each config byte (the property tests' oracle): the spec
 * tables' write and RW1C masks placed at the capabilities found by walking the lists, plus the
 * BAR rules. For `space` 'guest-config' (the translator's view of a VF): a classic function's
 * header (the table's non-VF masks), the VF's standard capabilities it passes through, no
 * extended capability.
 */
export function writableMask(fn: VirtioPciFunction, space: 'config' | 'guest-config' = 'config'): Uint8Array {
  const guest = space === 'guest-config';
  const vf = fn.kind === 'vf';
  const image = guest ? viewOf(fn as MmrVf).snapshot() : fn.config.snapshot();
  const mask = new Uint8Array(4096);
  const bars = [
    'BASE_ADDRESS_0',
    'BASE_ADDRESS_1',
    'BASE_ADDRESS_2',
    'BASE_ADDRESS_3',
    'BASE_ADDRESS_4',
    'BASE_ADDRESS_5',
  ];
  applyTable(mask, 0, pciHeader, vf && !guest, bars);
  barRun(mask, image, pciHeader.registers.BASE_ADDRESS_0.offset, 6);
  for (const cap of capsOf(fn, space)) {
    if (cap.id === 0x10) applyTable(mask, cap.offset, pcieCap, vf, ['CAP_ID', 'NEXT']);
    else if (cap.id === 0x11) applyTable(mask, cap.offset, msixCap, vf, ['CAP_ID', 'NEXT']);
    else if (cap.id === 0x09 && image[cap.offset + virtioPciCap.registers.CFG_TYPE.offset] === 5) {
      // virtio 1.2 §4.1.4.9: the driver writes cap.bar, cap.offset, cap.length and pci_cfg_data
      const R = virtioPciCap.registers;
      put(mask, cap.offset + R.BAR.offset, R.BAR.size, 0xff);
      put(mask, cap.offset + R.OFFSET.offset, 4, 0xffffffff);
      put(mask, cap.offset + R.LENGTH.offset, 4, 0xffffffff);
      put(mask, cap.offset + R.PCI_CFG_DATA.offset, 4, 0xffffffff);
    }
  }
  for (const cap of guest ? [] : extCapsOf(fn)) {
    if (cap.id === 0x0010) {
      applyTable(mask, cap.offset, sriovCap, vf, ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5']);
      barRun(mask, image, cap.offset + sriovCap.registers.BAR0.offset, 6);
    } else if (cap.id === 0x000e) applyTable(mask, cap.offset, ariCap, vf);
    else if (cap.id === 0x000b) applyTable(mask, cap.offset, mmrLocator, vf);
  }
  return mask;
}
