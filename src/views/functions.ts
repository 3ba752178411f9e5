/**
 * Plain-JSON views of functions: summaries, paged listings (PFs by address, each followed by its
 * enabled VFs), and a full description of one function — identity, BARs, capabilities by the
 * names the spec tables give them, MMR locator, virtio state, guest view. Read-only and
 * transport-free.
 *
 * Conventions: register values and IDs are hex strings zero-padded to their width ("0x1af4");
 * offsets, sizes, indexes and counts are numbers; 64-bit addresses are hex strings.
 */
import { hex, hex64 } from '../base/hex.js';
import type { Machine } from '../machine/machine.js';
import { formatMac } from '../mmr/identity.js';
import { readMmrLocator } from '../mmr/locator.js';
import type { VirtioPf } from '../mmr/pf.js';
import type { MmrVf } from '../mmr/vf.js';
import { bdfKey } from '../pci/bdf.js';
import { listCapabilities } from '../pci/capabilities.js';
import {
  capabilityIds,
  legacy,
  mmrLocator,
  pciHeader,
  sriovCap,
  virtioPciCap,
  virtioStatus,
  type Constant,
} from '../spec/index.js';
import type { GuestView } from '../translator/guest-view.js';
import type { Translator } from '../translator/translator.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';
import { lspciName } from './naming.js';
import { checkLimit, DEFAULT_PAGE_LIMIT, parseCursor } from './paging.js';
import { sriovRegister, sriovState } from './pfs.js';
import type {
  BarDescription,
  CapabilityDescription,
  FunctionDescription,
  FunctionSummary,
  GuestSummary,
  Page,
  VirtioSummary,
} from './shapes.js';

const H = pciHeader.registers;
const HC = pciHeader.constants;
const S = sriovCap.registers;
const CI = capabilityIds.constants;
const VC = virtioPciCap.registers;
const ML = mmrLocator.registers;
const MC = mmrLocator.constants;

/** Value -> title of the constants of a table whose names start with `prefix` (no bare IDs here). */
function titles(constants: Readonly<Record<string, Constant>>, prefix: string): ReadonlyMap<number, string> {
  const out = new Map<number, string>();
  for (const [name, c] of Object.entries(constants)) {
    if (name.startsWith(prefix) && c.title !== undefined && !c.alias && !out.has(c.value))
      out.set(c.value, c.title);
  }
  return out;
}

const standardNames = titles(CI, 'CAP_ID_');
const extendedNames = titles(CI, 'EXT_CAP_ID_');
const virtioCfgNames = titles(virtioPciCap.constants, 'CFG_TYPE_');

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

export function describeCapabilities(fn: VirtioPciFunction): CapabilityDescription[] {
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
        const cfgName = virtioCfgNames.get(cfgType) ?? `cfg_type ${cfgType}`;
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
  return view ? describeGuestView(view) : undefined;
}

/** The state of an open guest view. */
export function describeGuestView(view: GuestView): GuestSummary {
  return {
    vendorId: hex(view.config.read(H.VENDOR_ID.offset, H.VENDOR_ID.size), H.VENDOR_ID.size),
    deviceId: hex(view.config.read(H.DEVICE_ID.offset, H.DEVICE_ID.size), H.DEVICE_ID.size),
    ioLength: view.ioLength,
    ioEnabled: view.ioEnabled,
    memoryEnabled: view.memoryEnabled,
    intxAsserted: view.intxAsserted,
    legacyOnly: view.legacyOnly,
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
