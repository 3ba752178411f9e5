/**
 * Oracles shared by the robustness suites.
 *
 * readOnlyMask() says which config-space bits of a function no access may change. It is derived
 * from the spec tables (spec-tables/*.json through src/spec), NOT from the write masks the
 * implementation built: the capability lists are walked the way a driver walks them, each
 * capability is matched to its table, and each register's `writeMask` (`vfWriteMask` on a VF) and
 * `rw1cMask` say which bits may change. Everything no table describes (reserved bytes, the space
 * between capabilities) is read-only.
 */
import {
  ariCap,
  barLayout,
  capabilityIds,
  mmrLocator,
  msixCap,
  pciHeader,
  pcieCap,
  sriovCap,
  virtioPciCap,
  type AnyTable,
} from '../../../src/spec/index.js';
import type { Machine } from '../../../src/machine/machine.js';
import type { MmrVf } from '../../../src/mmr/vf.js';
import type { Translator } from '../../../src/translator/translator.js';
import type { VirtioPciFunction } from '../../../src/virtio/pci-function.js';

const H = pciHeader.registers;
const HC = pciHeader.constants;
const CI = capabilityIds.constants;
const SIZE = HC.CFG_SPACE_EXP_SIZE.value;
const STD_END = HC.CFG_SPACE_SIZE.value;
const EXT_START = HC.EXT_CAP_START.value;
const BAR_SIZE = barLayout.constants.BAR_SIZE.value;
const PF_BAR = barLayout.constants.PF_BAR_INDEX.value;
const VF_BAR = barLayout.constants.VF_BAR_INDEX.value;
const PAGE_SHIFT_BASE = sriovCap.constants.PAGE_SHIFT_BASE.value;

type Reader = (offset: number, size: number) => number;

function readerOf(bytes: Uint8Array): Reader {
  return (offset, size) => {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (bytes[offset + i] ?? 0);
    return v;
  };
}

/** Sets bits of `mask` (little-endian field of `size` bytes at `offset`) to "writable". */
function allow(mask: Uint8Array, offset: number, size: number, bits: number): void {
  for (let i = 0; i < size && i < 4; i++) mask[offset + i]! &= ~(bits >>> (8 * i)) & 0xff;
}

/** The writable (or write-1-to-clear) bits of a register according to its table entry. */
function tableBits(reg: AnyTable['registers'][string], vf: boolean): number | undefined {
  const wm = vf ? (reg.vfWriteMask ?? reg.writeMask) : reg.writeMask;
  if (wm === undefined && reg.access === 'rw') return undefined; // sized by the implementation (BARs, windows)
  return ((wm ?? 0) | (reg.rw1cMask ?? 0)) >>> 0;
}

function applyTable(
  mask: Uint8Array,
  base: number,
  table: AnyTable,
  vf: boolean,
  special: (name: string, offset: number, size: number) => void,
): void {
  for (const [name, reg] of Object.entries(table.registers)) {
    if (reg.alias) continue;
    const bits = tableBits(reg, vf);
    if (bits === undefined) special(name, base + reg.offset, reg.size);
    else allow(mask, base + reg.offset, reg.size, bits);
  }
}

/** A 64-bit memory BAR pair of `size` bytes: address bits above the size are writable. */
function allowMemoryBar(mask: Uint8Array, offset: number, size: number): void {
  allow(mask, offset, 4, (~(size - 1) & ~0xf) >>> 0);
  allow(mask, offset + 4, 4, 0xffffffff);
}

interface Cap {
  kind: 'std' | 'ext';
  id: number;
  offset: number;
}

/** Walks both capability lists (PCI 3.0 §6.7, PCIe §7.6.3) of a config image. */
export function walkCapabilities(read: Reader): Cap[] {
  const caps: Cap[] = [];
  const seen = new Set<number>();
  if (read(H.STATUS.offset, 2) & HC.STATUS_CAP_LIST.value) {
    let ptr = read(H.CAPABILITY_LIST.offset, 1) & CI.CAP_POINTER_MASK.value;
    while (ptr >= HC.CAP_LIST_START.value && ptr < STD_END && !seen.has(ptr)) {
      seen.add(ptr);
      caps.push({ kind: 'std', id: read(ptr, 1), offset: ptr });
      ptr = read(ptr + 1, 1) & CI.CAP_POINTER_MASK.value;
    }
  }
  let ext = EXT_START;
  while (ext >= EXT_START && ext < SIZE && !seen.has(ext)) {
    seen.add(ext);
    const header = read(ext, 4);
    if (header === 0 || header === 0xffffffff) break;
    caps.push({ kind: 'ext', id: header & CI.EXT_CAP_ID_MASK.value, offset: ext });
    ext = (header >>> CI.EXT_CAP_NEXT_SHIFT.value) & CI.EXT_CAP_NEXT_MASK.value;
  }
  return caps;
}

/**
 * Bits (1 = read-only) of a function's config space that neither a driver nor the device may
 * change, except for the device-driven bits listed in DEVICE_DRIVEN below.
 */
export function readOnlyMask(kind: 'pf' | 'vf', image: Uint8Array): Uint8Array {
  const vf = kind === 'vf';
  const read = readerOf(image);
  const mask = new Uint8Array(SIZE).fill(0xff);
  applyTable(mask, 0, pciHeader, vf, (name, offset) => {
    // Header BARs: the PF implements one 64-bit memory BAR of the BAR layout's size; a VF's header
    // BARs are hard-wired 0 (vfWriteMask 0, PCIe SR-IOV §9.3.4.1.11) and never reach here.
    if (name === `BASE_ADDRESS_${PF_BAR}`) allowMemoryBar(mask, offset, BAR_SIZE);
  });
  for (const cap of walkCapabilities(read)) {
    const at = cap.offset;
    if (cap.kind === 'std') {
      if (cap.id === CI.CAP_ID_EXP.value) applyTable(mask, at, pcieCap, vf, () => undefined);
      else if (cap.id === CI.CAP_ID_MSIX.value) applyTable(mask, at, msixCap, vf, () => undefined);
      else if (cap.id === CI.CAP_ID_VNDR.value) {
        const cfgType = read(at + virtioPciCap.registers.CFG_TYPE.offset, 1);
        if (cfgType === virtioPciCap.constants.CFG_TYPE_PCI.value) {
          // virtio 1.2 §4.1.4.9: in VIRTIO_PCI_CAP_PCI_CFG the driver writes cap.bar, cap.offset,
          // cap.length and pci_cfg_data (the shared virtio_pci_cap table marks these fields
          // read-only because they are, in every other virtio capability).
          const R = virtioPciCap.registers;
          allow(mask, at + R.BAR.offset, R.BAR.size, 0xff);
          allow(mask, at + R.OFFSET.offset, R.OFFSET.size, 0xffffffff);
          allow(mask, at + R.LENGTH.offset, R.LENGTH.size, 0xffffffff);
          allow(mask, at + R.PCI_CFG_DATA.offset, R.PCI_CFG_DATA.size, 0xffffffff);
        }
        // Other virtio capabilities: every field read-only (the default).
      }
    } else if (cap.id === CI.EXT_CAP_ID_SRIOV.value) {
      applyTable(mask, at, sriovCap, false, (name, offset) => {
        if (name === `BAR${VF_BAR}`) {
          // VF BAR n: per-VF size = the BAR layout rounded up to the System Page Size (§9.3.3.13).
          const sysPgsize = read(at + sriovCap.registers.SYS_PGSIZE.offset, 4);
          const page = 2 ** (PAGE_SHIFT_BASE + Math.max(0, 31 - Math.clz32(sysPgsize)));
          allowMemoryBar(mask, offset, Math.max(BAR_SIZE, page));
        }
      });
    } else if (cap.id === CI.EXT_CAP_ID_ARI.value) {
      applyTable(mask, at, ariCap, false, () => undefined);
    } else if (cap.id === CI.EXT_CAP_ID_VNDR.value) {
      applyTable(mask, at, mmrLocator, false, () => undefined);
    }
  }
  return mask;
}

/**
 * Read-only bits the DEVICE changes by itself; they are left out of the "read-only bits never
 * change" comparison, one by one:
 * - PF Status.Interrupt (PCI 3.0 §6.2.3, bit 3): mirrors the INTx state — set while the ISR is
 *   non-zero and MSI-X is off, cleared when the ISR is read or MSI-X is enabled. (A VF has no
 *   INTx: its bit stays 0 and stays compared.)
 * Nothing else: SR-IOV NumVFs and the VF BAR are writable by the table (NumVFs writeMask) or by
 * BAR sizing (whose RO part follows System Page Size and is computed from the image before the
 * access); pci_cfg_data, filled by the device on a window read, is writable (§4.1.4.9).
 */
export function deviceDriven(
  kind: 'pf' | 'vf',
): Array<{ offset: number; size: number; bits: number; why: string }> {
  return kind === 'pf'
    ? [
        {
          offset: H.STATUS.offset,
          size: 2,
          bits: HC.STATUS_INTERRUPT.value,
          why: 'Status.Interrupt (INTx state)',
        },
      ]
    : [];
}

/** The offsets whose read-only bits differ between two images; empty when none changed. */
export function readOnlyChanges(kind: 'pf' | 'vf', before: Uint8Array, after: Uint8Array): string[] {
  const mask = readOnlyMask(kind, before);
  for (const d of deviceDriven(kind)) allow(mask, d.offset, d.size, d.bits);
  const out: string[] = [];
  for (let i = 0; i < SIZE; i++) {
    const diff = (before[i]! ^ after[i]!) & mask[i]!;
    if (diff)
      out.push(
        `0x${i.toString(16)}: 0x${before[i]!.toString(16)} -> 0x${after[i]!.toString(16)} (RO bits 0x${mask[i]!.toString(16)})`,
      );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Complete observable state of functions

export interface FunctionSnapshot {
  fn: VirtioPciFunction;
  kind: 'pf' | 'vf';
  config: Uint8Array;
  device: string;
  guest: Uint8Array | undefined;
}

/** config.snapshot() + device.getState() + the guest view's config when one is open. */
export function snapshotFunction(fn: VirtioPciFunction, translator: Translator): FunctionSnapshot {
  const view = fn.kind === 'vf' ? translator.existing(fn as MmrVf) : undefined;
  return {
    fn,
    kind: fn.kind,
    config: fn.config.snapshot(),
    device: JSON.stringify({ device: fn.device.getState(), msix: fn.template.msix.getState(fn) }),
    guest: view?.snapshot(),
  };
}

export function snapshotMachine(machine: Machine): Map<string, FunctionSnapshot> {
  const out = new Map<string, FunctionSnapshot>();
  for (const fn of machine.functions()) out.set(fn.bdf, snapshotFunction(fn, machine.translator));
  return out;
}

function bytesEqual(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** What differs between two snapshots of one function (empty when identical). */
export function diffFunction(a: FunctionSnapshot, b: FunctionSnapshot): string[] {
  const out: string[] = [];
  if (a.fn !== b.fn) out.push('a different function object');
  if (!bytesEqual(a.config, b.config)) {
    for (let i = 0; i < a.config.length; i++) {
      if (a.config[i] !== b.config[i]) {
        out.push(
          `config 0x${i.toString(16)}: 0x${a.config[i]!.toString(16)} -> 0x${b.config[i]!.toString(16)}`,
        );
        if (out.length > 8) break;
      }
    }
  }
  if (a.device !== b.device) out.push(`device ${a.device} -> ${b.device}`);
  if (!bytesEqual(a.guest, b.guest)) out.push('guest view config changed');
  return out;
}

export { bytesEqual };

/** A function as a comparable record: config image, device state, memory BARs (address, size, decode). */
export interface FunctionDump {
  bdf: string;
  kind: 'pf' | 'vf';
  config: string;
  device: string;
  bars: string;
}

export function dumpFunction(fn: VirtioPciFunction): FunctionDump {
  const bars = fn.memoryBars().map(({ index, size }) => {
    const reg = H.BASE_ADDRESS_0.offset + index * 4;
    const address =
      fn.kind === 'vf'
        ? (fn as MmrVf).barAddress()
        : ((fn.config.read(reg, 4) & ~0xf) >>> 0) + fn.config.read(reg + 4, 4) * 2 ** 32;
    return `bar${index}@0x${address.toString(16)}+0x${size.toString(16)}${fn.memoryDecodeEnabled() ? '' : ' (decode off)'}`;
  });
  return {
    bdf: fn.bdf,
    kind: fn.kind,
    config: Buffer.from(fn.config.snapshot()).toString('hex'),
    device: JSON.stringify({ device: fn.device.getState(), msix: fn.template.msix.getState(fn) }),
    bars: bars.join(', '),
  };
}

/** Every live function of a machine, in order. */
export function dumpMachine(machine: Machine): FunctionDump[] {
  return [...machine.functions()].map(dumpFunction);
}

/** The first differences between two machine dumps (empty when identical). */
export function diffDumps(a: FunctionDump[], b: FunctionDump[]): string[] {
  const out: string[] = [];
  if (a.length !== b.length) out.push(`${a.length} functions before, ${b.length} after`);
  const byBdf = new Map(b.map((d) => [d.bdf, d]));
  for (const d of a) {
    const e = byBdf.get(d.bdf);
    if (!e) out.push(`${d.bdf} missing`);
    else {
      for (const k of ['kind', 'config', 'device', 'bars'] as const) {
        if (d[k] !== e[k]) out.push(`${d.bdf} ${k}: ${d[k].slice(0, 120)} != ${e[k].slice(0, 120)}`);
      }
    }
    if (out.length > 10) break;
  }
  return out;
}
