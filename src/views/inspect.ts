/**
 * Plain-JSON views of the machine for transports and harnesses: PF and function summaries, a
 * full description of one function (identity, BARs, capabilities by name, MMR locator, virtio
 * state), paged listings that stay cheap with tens of thousands of VFs, and the SR-IOV control
 * that Linux's sysfs `sriov_numvfs` performs. Transport-free: nothing here knows HTTP.
 *
 * Conventions: register values and IDs are hex strings zero-padded to their width ("0x1af4");
 * offsets, sizes, indexes and counts are numbers; 64-bit addresses are hex strings.
 */
import { lspciName } from './naming.js';
import {
  capabilityIds,
  legacy,
  mmrLocator,
  pciHeader,
  sriovCap,
  virtioPciCap,
  virtioStatus,
} from '../spec/index.js';
import { read, write } from '../access/index.js';
import { VmmrError } from '../base/errors.js';
import type { Machine } from '../machine/machine.js';
import { readMmrLocator, type MmrLocation } from '../mmr/locator.js';
import { formatMac } from '../mmr/identity.js';
import type { MmrVf } from '../mmr/vf.js';
import { bdfKey, formatBdf, parseBdf } from '../pci/bdf.js';
import { listCapabilities } from '../pci/capabilities.js';
import type { VirtioPf } from '../mmr/pf.js';
import type { Translator } from '../translator/translator.js';
import type { QueueState } from '../virtio/device.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';

const H = pciHeader.registers;
const HC = pciHeader.constants;
const S = sriovCap.registers;
const SC = sriovCap.constants;
const CI = capabilityIds.constants;
const VC = virtioPciCap.registers;
const VT = virtioPciCap.constants;
const ML = mmrLocator.registers;
const MC = mmrLocator.constants;

/** "0x" + value in hex, zero-padded to `bytes` bytes. */
export function hex(value: number | bigint, bytes: number): string {
  return `0x${value.toString(16).padStart(bytes * 2, '0')}`;
}

function hex64(lo: number, hi: number): string {
  return `0x${(hi >>> 0).toString(16).padStart(8, '0')}${(lo >>> 0).toString(16).padStart(8, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// PFs and SR-IOV

export interface PfSummary {
  bdf: string;
  type: string;
  totalVfs: number;
  initialVfs: number;
  firstVfOffset: number;
  vfStride: number;
  queueSize: number;
  policy: string;
  notify: string;
  /** SR-IOV NumVFs as the register holds it. */
  numVfs: number;
  /** SR-IOV Control VF Enable. */
  vfEnabled: boolean;
  /** SR-IOV Control VF Memory Space Enable (with VF Enable: VF BARs decode). */
  vfMemoryEnabled: boolean;
  /** SR-IOV VF Device ID, e.g. "0x10f9". */
  vfDeviceId: string;
}

function sriovRegister(pf: VirtioPf, reg: { offset: number; size: number }): number {
  return pf.config.read(pf.sriov + reg.offset, reg.size);
}

export function pfSummary(pf: VirtioPf): PfSummary {
  const d = pf.definition;
  const ctrl = sriovRegister(pf, S.CTRL);
  return {
    bdf: pf.bdf,
    type: d.type,
    totalVfs: d.totalVfs,
    initialVfs: d.initialVfs,
    firstVfOffset: d.firstVfOffset,
    vfStride: d.vfStride,
    queueSize: d.queueSize,
    policy: d.policy,
    notify: d.notify,
    numVfs: sriovRegister(pf, S.NUM_VF),
    vfEnabled: (ctrl & SC.CTRL_VFE.value) !== 0,
    vfMemoryEnabled: (ctrl & SC.CTRL_MSE.value) !== 0,
    vfDeviceId: hex(sriovRegister(pf, S.VF_DID), S.VF_DID.size),
  };
}

export interface Page<T> {
  items: T[];
  /** Items matching the request across all pages. */
  total: number;
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export const DEFAULT_PAGE_LIMIT = 256;
export const MAX_PAGE_LIMIT = 4096;

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new VmmrError(
      'VMMR_ERR_BAD_REQUEST',
      `limit ${String(limit)} is not allowed: use 1..${MAX_PAGE_LIMIT}`,
    );
  }
}

function badCursor(cursor: string, why: string): VmmrError {
  return new VmmrError('VMMR_ERR_BAD_REQUEST', `cursor "${cursor}" is not valid: ${why}`);
}

/** The enabled VFs of a PF as BDFs, a page at a time; the cursor is the last BDF returned. */
export function vfPage(pf: VirtioPf, limit = DEFAULT_PAGE_LIMIT, cursor?: string): Page<string> {
  checkLimit(limit);
  let start = 0;
  if (cursor !== undefined && cursor !== '') {
    const at = parseCursor(cursor);
    const n = at.domain === pf.domain ? pf.vfIndexAt(at.rid) : -1;
    if (n < 0) throw badCursor(cursor, `it is not a VF address of PF ${pf.bdf}`);
    start = n + 1;
  }
  const vfs = pf.vfs;
  const end = Math.min(vfs.length, start + limit);
  const items: string[] = [];
  for (let n = start; n < end; n++) items.push(formatBdf(pf.domain, pf.vfRid(n)));
  return {
    items,
    total: vfs.length,
    nextCursor: end < vfs.length && items.length > 0 ? items[items.length - 1]! : null,
  };
}

function parseCursor(cursor: string): { domain: number; rid: number } {
  try {
    return parseBdf(cursor);
  } catch {
    throw badCursor(cursor, 'expected the nextCursor of a previous page');
  }
}

export interface SriovState {
  numVfs: number;
  totalVfs: number;
  initialVfs: number;
  vfEnabled: boolean;
  vfMemoryEnabled: boolean;
  firstVfOffset: number;
  vfStride: number;
  vfDeviceId: string;
  /** SR-IOV System Page Size register (bit n = 4 KiB << n). */
  systemPageSize: string;
  /** Size of each VF's memory BAR (the layout rounded up to the System Page Size). */
  vfBarSize: number;
  /** Base of the VF BAR window in the SR-IOV capability (VF n's BAR = base + n * vfBarSize). */
  vfBarBase: string;
  vfs: Page<string>;
}

export function sriovState(pf: VirtioPf, limit = DEFAULT_PAGE_LIMIT, cursor?: string): SriovState {
  const s = pfSummary(pf);
  const barReg = pf.sriov + S.BAR0.offset + pf.vfTemplate.barIndex * 4;
  return {
    numVfs: s.numVfs,
    totalVfs: s.totalVfs,
    initialVfs: s.initialVfs,
    vfEnabled: s.vfEnabled,
    vfMemoryEnabled: s.vfMemoryEnabled,
    firstVfOffset: s.firstVfOffset,
    vfStride: s.vfStride,
    vfDeviceId: s.vfDeviceId,
    systemPageSize: hex(sriovRegister(pf, S.SYS_PGSIZE), S.SYS_PGSIZE.size),
    vfBarSize: pf.vfBarSize(),
    vfBarBase: hex64(
      pf.config.read(barReg, 4) & HC.BASE_ADDRESS_MEM_MASK.value,
      pf.config.read(barReg + 4, 4),
    ),
    vfs: vfPage(pf, limit, cursor),
  };
}

/**
 * What writing N to sysfs `sriov_numvfs` does (Linux drivers/pci/iov.c), through the PF's own
 * config-space path so the outcome is exactly that of the same config writes:
 *
 * - N = 0: clear VF Enable and VF MSE in SR-IOV Control, then NumVFs = 0 (sriov_disable);
 * - N > 0 while VFs are disabled: NumVFs = N, then set VF Enable and VF MSE (sriov_enable); if
 *   enabling is refused (process VF limit…), NumVFs goes back to its previous value;
 * - N equal to the current count: nothing to do;
 * - N > TotalVFs: VMMR_ERR_SRIOV_RANGE; another nonzero N while VFs are enabled:
 *   VMMR_ERR_SRIOV_STATE (sysfs answers EBUSY: write 0 first).
 */
export function setNumVfs(pf: VirtioPf, n: number): void {
  const context = { bdf: pf.bdf, register: 'SR-IOV NumVFs' };
  if (!Number.isInteger(n) || n < 0) {
    throw new VmmrError(
      'VMMR_ERR_BAD_VALUE',
      `${pf.bdf}: numVfs ${String(n)} is not a non-negative integer`,
      context,
    );
  }
  const total = pf.definition.totalVfs;
  if (n > total) {
    throw new VmmrError('VMMR_ERR_SRIOV_RANGE', `${pf.bdf}: numVfs ${n} exceeds TotalVFs ${total}`, context);
  }
  const ctrlAt = pf.sriov + S.CTRL.offset;
  const numAt = pf.sriov + S.NUM_VF.offset;
  const enableBits = SC.CTRL_VFE.value | SC.CTRL_MSE.value;
  const ctrl = Number(read(pf, 'config', ctrlAt, S.CTRL.size));
  const enabled = (ctrl & SC.CTRL_VFE.value) !== 0;
  if (n === 0) {
    if (enabled || (ctrl & enableBits) !== 0) write(pf, 'config', ctrlAt, S.CTRL.size, ctrl & ~enableBits);
    if (pf.numVfs !== 0) write(pf, 'config', numAt, S.NUM_VF.size, 0);
    return;
  }
  if (enabled) {
    if (pf.numVfs === n) return;
    throw new VmmrError(
      'VMMR_ERR_SRIOV_STATE',
      `${pf.bdf}: ${pf.numVfs} VFs are enabled: set numVfs to 0 first, then to ${n} (sysfs sriov_numvfs answers EBUSY)`,
      context,
    );
  }
  const previous = pf.numVfs;
  write(pf, 'config', numAt, S.NUM_VF.size, n);
  try {
    write(pf, 'config', ctrlAt, S.CTRL.size, ctrl | enableBits);
  } catch (e) {
    write(pf, 'config', numAt, S.NUM_VF.size, previous);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Function listings

export interface FunctionSummary {
  bdf: string;
  kind: 'pf' | 'vf';
  type: string;
  /** The PF of a VF. */
  pf?: string;
  /** 0-based VF number (VF n+1 in SR-IOV terms) of a VF. */
  vfIndex?: number;
  /** Logical IDs: a VF reports its PF's vendor and the PF's VF Device ID. */
  vendorId: string;
  deviceId: string;
  /** virtio device status. */
  status: string;
}

function logicalIds(fn: VirtioPciFunction): { vendorId: number; deviceId: number } {
  if (fn.kind === 'vf') {
    const pf = (fn as MmrVf).pf;
    return {
      vendorId: pf.config.read(H.VENDOR_ID.offset, H.VENDOR_ID.size),
      deviceId: sriovRegister(pf, S.VF_DID),
    };
  }
  return {
    vendorId: fn.config.read(H.VENDOR_ID.offset, H.VENDOR_ID.size),
    deviceId: fn.config.read(H.DEVICE_ID.offset, H.DEVICE_ID.size),
  };
}

export function functionSummary(fn: VirtioPciFunction): FunctionSummary {
  const ids = logicalIds(fn);
  const summary: FunctionSummary = {
    bdf: fn.bdf,
    kind: fn.kind === 'vf' ? 'vf' : 'pf',
    type: fn.template.model.type,
    vendorId: hex(ids.vendorId, H.VENDOR_ID.size),
    deviceId: hex(ids.deviceId, H.DEVICE_ID.size),
    status: hex(fn.device.status, 1),
  };
  if (fn.kind === 'vf') {
    summary.pf = (fn as MmrVf).pf.bdf;
    summary.vfIndex = (fn as MmrVf).index;
  }
  return summary;
}

export interface ListFunctionsOptions {
  /** Only this PF and its VFs. */
  pf?: string;
  kind?: 'pf' | 'vf';
  limit?: number;
  /** The nextCursor of the previous page (the BDF of its last item). */
  cursor?: string;
}

/**
 * Live functions in a stable order — PFs by address, each followed by its enabled VFs in VF
 * order — a page at a time. Cost is the page, not the machine: with 60,000 VFs a page of 256
 * builds 256 summaries. The cursor is the BDF of the last item returned; a page after a PF or
 * VF that went away resumes at the next PF by address.
 */
export function listFunctions(machine: Machine, options: ListFunctionsOptions = {}): Page<FunctionSummary> {
  const limit = options.limit ?? DEFAULT_PAGE_LIMIT;
  checkLimit(limit);
  const wantPf = options.kind !== 'vf';
  const wantVf = options.kind !== 'pf';
  const pfs = options.pf === undefined ? machine.pfs : [machine.findPf(options.pf)];

  let total = 0;
  for (const pf of pfs) total += (wantPf ? 1 : 0) + (wantVf ? pf.vfs.length : 0);

  // Where to start: PF index and position inside it (-1 = the PF itself, n = VF n).
  let pfIndex = 0;
  let position = -1;
  if (options.cursor !== undefined && options.cursor !== '') {
    const at = parseCursor(options.cursor);
    const key = bdfKey(at.domain, at.rid);
    pfIndex = -1;
    for (let i = 0; i < pfs.length && pfIndex < 0; i++) {
      const pf = pfs[i]!;
      if (bdfKey(pf.domain, pf.rid) === key) {
        pfIndex = i;
        position = 0;
      } else if (pf.domain === at.domain) {
        const n = pf.vfIndexAt(at.rid);
        if (n >= 0) {
          pfIndex = i;
          position = n + 1;
        }
      }
    }
    if (pfIndex < 0) {
      // The cursor's PF went away: go on with the next PF by address.
      pfIndex = pfs.findIndex((pf) => bdfKey(pf.domain, pf.rid) > key);
      if (pfIndex < 0) pfIndex = pfs.length;
      position = -1;
    }
  }

  const items: FunctionSummary[] = [];
  let more = false;
  for (let i = pfIndex; i < pfs.length; i++) {
    const pf = pfs[i]!;
    let n = i === pfIndex ? position : -1;
    if (n < 0) {
      if (wantPf) {
        if (items.length === limit) {
          more = true;
          break;
        }
        items.push(functionSummary(pf));
      }
      n = 0;
    }
    if (!wantVf) continue;
    const vfs = pf.vfs;
    if (n < vfs.length && items.length === limit) {
      more = true;
      break;
    }
    const end = Math.min(vfs.length, n + (limit - items.length));
    for (let k = n; k < end; k++) items.push(functionSummary(vfs[k]!));
    if (end < vfs.length) {
      more = true;
      break;
    }
  }
  return { items, total, nextCursor: more && items.length > 0 ? items[items.length - 1]!.bdf : null };
}

// ---------------------------------------------------------------------------------------------
// One function, in full

export interface BarDescription {
  index: number;
  type: 'memory';
  is64: boolean;
  prefetchable: boolean;
  size: number;
  /** Bus address the BAR is programmed to (64-bit hex). */
  address: string;
  /** Whether the function decodes it now (PF: Command.Memory; VF: the PF's VF Enable + VF MSE). */
  decoding: boolean;
}

export interface CapabilityDescription {
  kind: 'standard' | 'extended';
  id: string;
  name: string;
  offset: number;
  version?: number;
  /** virtio vendor capability (cap ID 0x09): the structure it locates. */
  virtio?: { cfgType: number; cfgName: string; bar: number; offset: number; length: number };
  /** Vendor-Specific Extended Capability header. */
  vsec?: { id: string; rev: number; length: number };
}

export interface VirtioSummary {
  /** Device status register and its decoded bits. */
  status: string;
  statusBits: string[];
  /** 64-bit feature words. */
  deviceFeatures: string;
  driverFeatures: string;
  isr: string;
  configGeneration: number;
  /** Config-change MSI-X vector (65535 = none). */
  configVector: number;
  /** Where the device config starts in the legacy block (24 with MSI-X enabled, else 20). */
  legacyConfigOffset?: number;
  queues: QueueState[];
  msix: { enabled: boolean; masked: boolean; vectors: number };
}

export interface GuestSummary {
  vendorId: string;
  deviceId: string;
  /** Size of the guest's I/O BAR0 (the legacy block length). */
  ioLength: number;
  ioEnabled: boolean;
  memoryEnabled: boolean;
  intxAsserted: boolean;
  trace: { enabled: boolean; depth: number; recorded: number };
}

export interface FunctionDescription extends FunctionSummary {
  revision: string;
  classCode: string;
  subsystemVendorId: string;
  subsystemId: string;
  /** Vendor and Device ID as config space reads them (0xffff on a VF, as SR-IOV requires). */
  configVendorId: string;
  configDeviceId: string;
  command: string;
  configStatus: string;
  bars: BarDescription[];
  capabilities: CapabilityDescription[];
  /** VF: where the MMR locator says the legacy block is. */
  mmrLocator?: MmrLocation;
  /** PF: SR-IOV state (the VF list is paged separately). */
  sriov?: Omit<SriovState, 'vfs'>;
  /** PF: INTx pin A. */
  intx?: { pin: 'A'; asserted: boolean };
  virtio: VirtioSummary;
  /** net: MAC as the device config shows it; block: serial. */
  identity: { mac?: string; serial?: string };
  /** VF: the translator's guest view, once opened (a guest-space access or trace opens it). */
  guest?: GuestSummary;
}

const STANDARD_NAMES: Readonly<Record<string, string>> = {
  CAP_ID_PM: 'Power Management',
  CAP_ID_AGP: 'AGP',
  CAP_ID_VPD: 'Vital Product Data',
  CAP_ID_SLOTID: 'Slot Identification',
  CAP_ID_MSI: 'MSI',
  CAP_ID_CHSWP: 'CompactPCI Hot Swap',
  CAP_ID_PCIX: 'PCI-X',
  CAP_ID_HT: 'HyperTransport',
  CAP_ID_VNDR: 'Vendor Specific',
  CAP_ID_DBG: 'Debug Port',
  CAP_ID_CCRC: 'CompactPCI Central Resource Control',
  CAP_ID_SHPC: 'PCI Standard Hot-Plug Controller',
  CAP_ID_SSVID: 'Bridge Subsystem Vendor ID',
  CAP_ID_AGP3: 'AGP 8x',
  CAP_ID_SECDEV: 'Secure Device',
  CAP_ID_EXP: 'PCI Express',
  CAP_ID_MSIX: 'MSI-X',
  CAP_ID_SATA: 'SATA Data/Index Configuration',
  CAP_ID_AF: 'PCI Advanced Features',
  CAP_ID_EA: 'Enhanced Allocation',
};

const EXTENDED_NAMES: Readonly<Record<string, string>> = {
  EXT_CAP_ID_ERR: 'Advanced Error Reporting',
  EXT_CAP_ID_VC: 'Virtual Channel',
  EXT_CAP_ID_DSN: 'Device Serial Number',
  EXT_CAP_ID_PWR: 'Power Budgeting',
  EXT_CAP_ID_VNDR: 'Vendor-Specific Extended',
  EXT_CAP_ID_ACS: 'Access Control Services',
  EXT_CAP_ID_ARI: 'Alternative Routing-ID Interpretation (ARI)',
  EXT_CAP_ID_ATS: 'Address Translation Services',
  EXT_CAP_ID_SRIOV: 'Single Root I/O Virtualization (SR-IOV)',
  EXT_CAP_ID_MRIOV: 'Multi-Root I/O Virtualization',
  EXT_CAP_ID_MCAST: 'Multicast',
  EXT_CAP_ID_PRI: 'Page Request Interface',
  EXT_CAP_ID_REBAR: 'Resizable BAR',
  EXT_CAP_ID_LTR: 'Latency Tolerance Reporting',
  EXT_CAP_ID_PASID: 'Process Address Space ID',
  EXT_CAP_ID_DPC: 'Downstream Port Containment',
  EXT_CAP_ID_L1SS: 'L1 PM Substates',
  EXT_CAP_ID_PTM: 'Precision Time Measurement',
  EXT_CAP_ID_DVSEC: 'Designated Vendor-Specific',
  EXT_CAP_ID_DOE: 'Data Object Exchange',
};

/** Capability ID -> name, built from the spec table's constant names (no bare IDs here). */
function nameTable(
  prefix: 'CAP_ID_' | 'EXT_CAP_ID_',
  names: Readonly<Record<string, string>>,
): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, c] of Object.entries(
    CI as Readonly<Record<string, { value: number; alias?: boolean }>>,
  )) {
    if (!name.startsWith(prefix) || name.endsWith('_MAX') || c.alias || out.has(c.value)) continue;
    if (prefix === 'CAP_ID_' && name.startsWith('EXT_')) continue;
    out.set(c.value, names[name] ?? name.slice(prefix.length));
  }
  return out;
}

const standardNames = nameTable('CAP_ID_', STANDARD_NAMES);
const extendedNames = nameTable('EXT_CAP_ID_', EXTENDED_NAMES);

const VIRTIO_CFG_NAMES: ReadonlyMap<number, string> = new Map([
  [VT.CFG_TYPE_COMMON.value, 'common configuration'],
  [VT.CFG_TYPE_NOTIFY.value, 'notifications'],
  [VT.CFG_TYPE_ISR.value, 'ISR status'],
  [VT.CFG_TYPE_DEVICE.value, 'device-specific configuration'],
  [VT.CFG_TYPE_PCI.value, 'PCI configuration access'],
  [VT.CFG_TYPE_SHARED_MEMORY.value, 'shared memory'],
  [VT.CFG_TYPE_VENDOR.value, 'vendor data'],
  [VT.CFG_TYPE_LEGACY_MMR.value, 'legacy MMR'],
]);

function describeCapabilities(fn: VirtioPciFunction): CapabilityDescription[] {
  const config = fn.config;
  return listCapabilities(config).map((c) => {
    if (c.kind === 'standard') {
      const out: CapabilityDescription = {
        kind: 'standard',
        id: hex(c.id, 1),
        name: standardNames.get(c.id) ?? `Unknown (0x${c.id.toString(16)})`,
        offset: c.offset,
      };
      if (c.id === CI.CAP_ID_VNDR.value) {
        const cfgType = config.read(c.offset + VC.CFG_TYPE.offset, VC.CFG_TYPE.size);
        const cfgName = VIRTIO_CFG_NAMES.get(cfgType) ?? `cfg_type ${cfgType}`;
        out.name = `virtio ${cfgName}`;
        out.virtio = {
          cfgType,
          cfgName,
          bar: config.read(c.offset + VC.BAR.offset, VC.BAR.size),
          offset: config.read(c.offset + VC.OFFSET.offset, VC.OFFSET.size),
          length: config.read(c.offset + VC.LENGTH.offset, VC.LENGTH.size),
        };
      }
      return out;
    }
    const out: CapabilityDescription = {
      kind: 'extended',
      id: hex(c.id, 2),
      name: extendedNames.get(c.id) ?? `Unknown (0x${c.id.toString(16)})`,
      offset: c.offset,
      version: c.version ?? 0,
    };
    if (c.id === CI.EXT_CAP_ID_VNDR.value) {
      const header = config.read(c.offset + ML.VSEC_HEADER.offset, ML.VSEC_HEADER.size);
      const id = (header >>> MC.VSEC_ID_SHIFT.value) & 0xffff;
      const rev = (header >>> MC.VSEC_REV_SHIFT.value) & 0xf;
      out.vsec = { id: hex(id, 2), rev, length: header >>> MC.VSEC_LENGTH_SHIFT.value };
      if (id === MC.VSEC_ID.value) out.name = `virtio MMR locator (Vendor-Specific Extended, cfg_type ${id})`;
    }
    return out;
  });
}

function barFlags(low: number): { is64: boolean; prefetchable: boolean } {
  return {
    is64: (low & HC.BASE_ADDRESS_MEM_TYPE_MASK.value) === HC.BASE_ADDRESS_MEM_TYPE_64.value,
    prefetchable: (low & HC.BASE_ADDRESS_MEM_PREFETCH.value) !== 0,
  };
}

function describeBars(fn: VirtioPciFunction): BarDescription[] {
  const decoding = fn.memoryDecodeEnabled();
  return fn.memoryBars().map(({ index, size }) => {
    if (fn.kind === 'vf') {
      const vf = fn as MmrVf;
      const reg = vf.pf.sriov + S.BAR0.offset + index * 4;
      const low = vf.pf.config.read(reg, 4);
      const base =
        (BigInt(vf.pf.config.read(reg + 4, 4)) << 32n) | BigInt((low & HC.BASE_ADDRESS_MEM_MASK.value) >>> 0);
      const address = base + BigInt(vf.index) * BigInt(size);
      return {
        index,
        type: 'memory',
        ...barFlags(low),
        size,
        address: hex(address & 0xffffffffffffffffn, 8),
        decoding,
      };
    }
    const reg = H.BASE_ADDRESS_0.offset + index * 4;
    const low = fn.config.read(reg, 4);
    const flags = barFlags(low);
    const high = flags.is64 ? fn.config.read(reg + 4, 4) : 0;
    return {
      index,
      type: 'memory',
      ...flags,
      size,
      address: hex64(low & HC.BASE_ADDRESS_MEM_MASK.value, high),
      decoding,
    };
  });
}

const STATUS_BITS = Object.entries(virtioStatus.constants as Readonly<Record<string, { value: number }>>)
  .filter(([, c]) => c.value !== 0 && (c.value & (c.value - 1)) === 0)
  .sort((a, b) => a[1].value - b[1].value);

/** Names of the status bits set, lowest first (ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK…). */
export function statusBitNames(status: number): string[] {
  return STATUS_BITS.filter(([, c]) => (status & c.value) !== 0).map(([name]) => name);
}

function describeVirtio(fn: VirtioPciFunction): VirtioSummary {
  const d = fn.device;
  const msixEnabled = fn.msixEnabled();
  const summary: VirtioSummary = {
    status: hex(d.status, 1),
    statusBits: statusBitNames(d.status),
    deviceFeatures: hex64(d.deviceFeatures(0), d.deviceFeatures(1)),
    driverFeatures: hex64(d.driverFeatures(0), d.driverFeatures(1)),
    isr: hex(d.isr, 1),
    configGeneration: d.generation,
    configVector: d.configVector,
    queues: d.queueStates(),
    msix: { enabled: msixEnabled, masked: fn.msixFunctionMasked(), vectors: d.model.msixVectors },
  };
  if (d.model.transitional) {
    summary.legacyConfigOffset = msixEnabled
      ? legacy.constants.CONFIG_OFF_MSIX.value
      : legacy.constants.CONFIG_OFF_NO_MSIX.value;
  }
  return summary;
}

function describeIdentity(fn: VirtioPciFunction): { mac?: string; serial?: string } {
  const model = fn.template.model;
  const field = model.identityField;
  if (field) return { mac: formatMac((k) => fn.device.configByte(field.offset + k)) };
  if (model.type === 'block')
    return { serial: fn.kind === 'vf' ? (fn as MmrVf).serial() : (fn as VirtioPf).serial() };
  return {};
}

function describeGuest(vf: MmrVf, translator: Translator): GuestSummary | undefined {
  const view = translator.existing(vf);
  if (!view) return undefined;
  return {
    vendorId: hex(view.config.read(H.VENDOR_ID.offset, H.VENDOR_ID.size), H.VENDOR_ID.size),
    deviceId: hex(view.config.read(H.DEVICE_ID.offset, H.DEVICE_ID.size), H.DEVICE_ID.size),
    ioLength: view.ioLength,
    ioEnabled: view.ioEnabled,
    memoryEnabled: view.memoryEnabled,
    intxAsserted: view.intxAsserted,
    trace: view.trace
      ? { enabled: true, depth: view.trace.depth, recorded: view.trace.recorded }
      : { enabled: false, depth: 0, recorded: 0 },
  };
}

/** Everything a harness may want to know about one live function, without side effects. */
export function describeFunction(fn: VirtioPciFunction, translator: Translator): FunctionDescription {
  const c = fn.config;
  const classCode =
    (c.read(H.CLASS_DEVICE.offset, H.CLASS_DEVICE.size) << 8) |
    c.read(H.CLASS_PROG.offset, H.CLASS_PROG.size);
  const out: FunctionDescription = {
    ...functionSummary(fn),
    revision: hex(c.read(H.REVISION_ID.offset, H.REVISION_ID.size), H.REVISION_ID.size),
    classCode: hex(classCode, 3),
    subsystemVendorId: hex(
      c.read(H.SUBSYSTEM_VENDOR_ID.offset, H.SUBSYSTEM_VENDOR_ID.size),
      H.SUBSYSTEM_VENDOR_ID.size,
    ),
    subsystemId: hex(c.read(H.SUBSYSTEM_ID.offset, H.SUBSYSTEM_ID.size), H.SUBSYSTEM_ID.size),
    configVendorId: hex(c.read(H.VENDOR_ID.offset, H.VENDOR_ID.size), H.VENDOR_ID.size),
    configDeviceId: hex(c.read(H.DEVICE_ID.offset, H.DEVICE_ID.size), H.DEVICE_ID.size),
    command: hex(c.read(H.COMMAND.offset, H.COMMAND.size), H.COMMAND.size),
    configStatus: hex(c.read(H.STATUS.offset, H.STATUS.size), H.STATUS.size),
    bars: describeBars(fn),
    capabilities: describeCapabilities(fn),
    virtio: describeVirtio(fn),
    identity: describeIdentity(fn),
  };
  if (fn.kind === 'vf') {
    const vf = fn as MmrVf;
    out.mmrLocator = readMmrLocator((offset, width) => c.read(offset, width), vf.pf.vfLocator);
    const guest = describeGuest(vf, translator);
    if (guest) out.guest = guest;
  } else {
    const pf = fn as VirtioPf;
    const { vfs: _vfs, ...sriov } = sriovState(pf, 1);
    out.sriov = sriov;
    out.intx = { pin: 'A', asserted: pf.intxAsserted };
  }
  return out;
}

/** The description line of an `lspci -xxxx`-style dump of a function (or of its guest view). */
export function dumpDescription(fn: VirtioPciFunction, view: 'function' | 'guest' = 'function'): string {
  return lspciName(fn.template.model.type, view === 'guest' ? 'guest' : fn.kind);
}
