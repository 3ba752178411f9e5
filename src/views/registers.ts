/**
 * A function's registers decoded like `lspci -vvv`, from the spec tables: the capability list
 * with each capability's registers and fields, the summary and detail lines worded as pciutils
 * words them (ls-caps.c, ls-ecaps.c, ls-caps-vendor.c), the legacy block of a transitional VF and
 * the modern common configuration as register tables, and the feature bits by name. Reading has
 * no side effect: ISR is shown as held, not read (a read clears it, virtio 1.2 §4.1.4.5).
 */
import { hex } from '../base/hex.js';
import { listCapabilities, type CapabilityEntry } from '../pci/capabilities.js';
import type { ConfigStore } from '../pci/config-space.js';
import {
  ariCap,
  capabilityIds,
  commonCfg,
  features,
  legacy,
  mmrLocator,
  msixCap,
  pciHeader,
  pcieCap,
  sriovCap,
  virtioPciCap,
  type AnyTable,
} from '../spec/index.js';
import { commonCfgBlock } from '../virtio/common-cfg.js';
import type { VirtioDevice } from '../virtio/device.js';
import { legacyHeaderMsix, legacyHeaderNoMsix } from '../virtio/legacy.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';
import { describeCapabilities, statusBitNames } from './functions.js';
import type { DecodedCapability, FeatureBit, FunctionRegisters, RegisterValue } from './shapes.js';

type Config = Pick<ConfigStore, 'read'>;
type Lines = Pick<DecodedCapability, 'summary' | 'lines'>;

const CI = capabilityIds.constants;
const PC = pcieCap.constants;
const XC = msixCap.constants;
const SC = sriovCap.constants;
const AC = ariCap.constants;
const VC = virtioPciCap.constants;
const ML = mmrLocator.constants;
const HC = pciHeader.constants;
/** ARI Control Function Group: 3 bits at CTRL_FG_SHIFT (PCIe Base 4.0 §7.8.7.3). */
const ARI_FUNCTION_GROUP_MASK = 0x7;

const flag = (value: number, mask: number): string => ((value & mask) !== 0 ? '+' : '-');
const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');
const lowBit = (mask: number): number => mask & -mask;
const fieldOf = (value: number, mask: number): number => ((value & mask) >>> 0) / lowBit(mask);

/** The registers of a capability table at `base` in config space, named and valued. */
function tableRegisters(
  config: Config,
  base: number,
  t: AnyTable,
  skip: readonly string[] = [],
): RegisterValue[] {
  return Object.entries(t.registers)
    .filter(([name, r]) => !skip.includes(name) && r.size <= 4)
    .map(([name, r]) => ({
      name,
      offset: base + r.offset,
      size: r.size,
      value: hex(config.read(base + r.offset, r.size), r.size),
    }));
}

/** PCI Express Base 4.0 §7.5.3 (PCI Express Capability); pciutils ls-caps.c cap_express(). */
function expressLines(config: Config, at: number): Lines {
  const R = pcieCap.registers;
  const flags = config.read(at + R.FLAGS.offset, R.FLAGS.size);
  const type = fieldOf(flags, PC.FLAGS_TYPE.value);
  const typeName =
    type === PC.TYPE_ENDPOINT.value
      ? 'Endpoint'
      : type === PC.TYPE_LEG_END.value
        ? 'Legacy Endpoint'
        : type === PC.TYPE_RC_END.value
          ? 'Root Complex Integrated Endpoint'
          : `type ${type}`;
  const msi = fieldOf(flags, PC.FLAGS_IRQ.value);
  const devctl = config.read(at + R.DEVCTL.offset, R.DEVCTL.size);
  const devcap = config.read(at + R.DEVCAP.offset, R.DEVCAP.size);
  const payload = 128 << fieldOf(devctl, PC.DEVCTL_PAYLOAD.value);
  const readReq = 128 << fieldOf(devctl, PC.DEVCTL_READRQ.value);
  return {
    summary: `Express (v${fieldOf(flags, PC.FLAGS_VERS.value)}) ${typeName}, MSI ${msi.toString(16).padStart(2, '0')}`,
    lines: [
      `DevCap: MaxPayload ${128 << fieldOf(devcap, PC.DEVCAP_PAYLOAD.value)} bytes`,
      `RBE${flag(devcap, PC.DEVCAP_RBER.value)} FLReset${flag(devcap, PC.DEVCAP_FLR.value)}`,
      `MaxPayload ${payload} bytes, MaxReadReq ${readReq} bytes`,
    ],
  };
}

/** PCI Local Bus 3.0 §6.8.2 (MSI-X capability); pciutils ls-caps.c cap_msix(). */
function msixLines(config: Config, at: number): Lines {
  const R = msixCap.registers;
  const flags = config.read(at + R.FLAGS.offset, R.FLAGS.size);
  const table = config.read(at + R.TABLE.offset, R.TABLE.size);
  const pba = config.read(at + R.PBA.offset, R.PBA.size);
  return {
    summary:
      `MSI-X: Enable${flag(flags, XC.FLAGS_ENABLE.value)} Count=${(flags & XC.FLAGS_QSIZE.value) + 1} ` +
      `Masked${flag(flags, XC.FLAGS_MASKALL.value)}`,
    lines: [
      `Vector table: BAR=${table & XC.TABLE_BIR.value} offset=${hex8(table & XC.TABLE_OFFSET.value)}`,
      `PBA: BAR=${pba & XC.PBA_BIR.value} offset=${hex8(pba & XC.PBA_OFFSET.value)}`,
    ],
  };
}

/** The words pciutils (ls-caps-vendor.c) gives the virtio structure types it knows. */
const LSPCI_VIRTIO_NAMES: ReadonlyMap<number, string> = new Map([
  [VC.CFG_TYPE_COMMON.value, 'CommonCfg'],
  [VC.CFG_TYPE_NOTIFY.value, 'Notify'],
  [VC.CFG_TYPE_ISR.value, 'ISR'],
  [VC.CFG_TYPE_DEVICE.value, 'DeviceCfg'],
]);

/** virtio 1.2 §4.1.4 (Virtio Structure PCI Capabilities); pciutils ls-caps-vendor.c. */
function virtioLines(config: Config, at: number): Lines {
  const R = virtioPciCap.registers;
  const type = config.read(at + R.CFG_TYPE.offset, R.CFG_TYPE.size);
  const bar = config.read(at + R.BAR.offset, R.BAR.size);
  const offset = config.read(at + R.OFFSET.offset, R.OFFSET.size);
  const length = config.read(at + R.LENGTH.offset, R.LENGTH.size);
  let detail = `BAR=${bar} offset=${hex8(offset)} size=${hex8(length)}`;
  if (type === VC.CFG_TYPE_NOTIFY.value) {
    detail += ` multiplier=${hex8(config.read(at + R.NOTIFY_OFF_MULTIPLIER.offset, R.NOTIFY_OFF_MULTIPLIER.size))}`;
  }
  return {
    summary: `Vendor Specific Information: VirtIO: ${LSPCI_VIRTIO_NAMES.get(type) ?? '<unknown>'}`,
    lines: [detail],
  };
}

/** PCIe Base 4.0 §7.8.7 (ARI Extended Capability); pciutils ls-ecaps.c cap_ari(). */
function ariLines(config: Config, at: number): Lines {
  const R = ariCap.registers;
  const cap = config.read(at + R.CAP.offset, R.CAP.size);
  const ctl = config.read(at + R.CTRL.offset, R.CTRL.size);
  return {
    summary: 'Alternative Routing-ID Interpretation (ARI)',
    lines: [
      `ARICap: MFVC${flag(cap, AC.CAP_MFVC.value)} ACS${flag(cap, AC.CAP_ACS.value)}, Next Function: ${(cap >>> AC.CAP_NFN_SHIFT.value) & AC.CAP_NFN_MASK.value}`,
      `ARICtl: MFVC${flag(ctl, AC.CTRL_MFVC.value)} ACS${flag(ctl, AC.CTRL_ACS.value)}, Function Group: ${(ctl >>> AC.CTRL_FG_SHIFT.value) & ARI_FUNCTION_GROUP_MASK}`,
    ],
  };
}

/** The VF BARs of an SR-IOV capability as pciutils prints them (64-bit BARs take two slots). */
function sriovBarLines(config: Config, at: number): string[] {
  const out: string[] = [];
  const first = at + sriovCap.registers.BAR0.offset;
  for (let i = 0; i < SC.NUM_BARS.value; i++) {
    const low = config.read(first + i * 4, 4);
    const is64 = (low & HC.BASE_ADDRESS_MEM_TYPE_MASK.value) === HC.BASE_ADDRESS_MEM_TYPE_64.value;
    const high = is64 && i + 1 < SC.NUM_BARS.value ? config.read(first + (i + 1) * 4, 4) : 0;
    if (low !== 0 || high !== 0) {
      const base = hex8(high) + hex8(low & HC.BASE_ADDRESS_MEM_MASK.value);
      const prefetch = (low & HC.BASE_ADDRESS_MEM_PREFETCH.value) !== 0 ? 'prefetchable' : 'non-prefetchable';
      out.push(`Region ${i}: Memory at ${base} (${is64 ? '64-bit' : '32-bit'}, ${prefetch})`);
    }
    if (is64) i++;
  }
  return out;
}

/** PCIe Base 4.0 §9.3.3 (SR-IOV Extended Capability); pciutils ls-ecaps.c cap_sriov(). */
function sriovLines(config: Config, at: number): Lines {
  const R = sriovCap.registers;
  const reg = (r: { offset: number; size: number }): number => config.read(at + r.offset, r.size);
  const ctl = reg(R.CTRL);
  return {
    summary: 'Single Root I/O Virtualization (SR-IOV)',
    lines: [
      `IOVCtl: Enable${flag(ctl, SC.CTRL_VFE.value)} Migration${flag(ctl, SC.CTRL_VFM.value)} ` +
        `Interrupt${flag(ctl, SC.CTRL_INTR.value)} MSE${flag(ctl, SC.CTRL_MSE.value)} ARIHierarchy${flag(ctl, SC.CTRL_ARI.value)}`,
      `Initial VFs: ${reg(R.INITIAL_VF)}, Total VFs: ${reg(R.TOTAL_VF)}, Number of VFs: ${reg(R.NUM_VF)}, ` +
        `Function Dependency Link: ${reg(R.FUNC_LINK).toString(16).padStart(2, '0')}`,
      `VF offset: ${reg(R.VF_OFFSET)}, stride: ${reg(R.VF_STRIDE)}, Device ID: ${reg(R.VF_DID).toString(16).padStart(4, '0')}`,
      `Supported Page Size: ${hex8(reg(R.SUP_PGSIZE))}, System Page Size: ${hex8(reg(R.SYS_PGSIZE))}`,
      ...sriovBarLines(config, at),
    ],
  };
}

/** PCIe Base 4.0 §7.9.5 (Vendor-Specific Extended Capability); pciutils ls-ecaps.c cap_vsec(). */
function vsecLines(config: Config, at: number): Lines {
  const header = config.read(at + mmrLocator.registers.VSEC_HEADER.offset, 4);
  const id = (header >>> ML.VSEC_ID_SHIFT.value) & 0xffff;
  const rev = (header >>> ML.VSEC_REV_SHIFT.value) & 0xf;
  const len = header >>> ML.VSEC_LENGTH_SHIFT.value;
  return {
    summary: `Vendor Specific Information: ID=${id.toString(16).padStart(4, '0')} Rev=${rev} Len=${len.toString(16).padStart(3, '0')}`,
    lines: [],
  };
}

interface CapabilityDecoder {
  table: AnyTable;
  /** Registers of the table not shown (the list header, decoded by the walk itself). */
  skip: readonly string[];
  lines(config: Config, at: number): Lines;
}

const STANDARD: ReadonlyMap<number, CapabilityDecoder> = new Map([
  [CI.CAP_ID_EXP.value, { table: pcieCap, skip: ['CAP_ID', 'NEXT'], lines: expressLines }],
  [CI.CAP_ID_MSIX.value, { table: msixCap, skip: ['CAP_ID', 'NEXT'], lines: msixLines }],
  [
    CI.CAP_ID_VNDR.value,
    { table: virtioPciCap, skip: ['CAP_VNDR', 'CAP_NEXT', 'PADDING'], lines: virtioLines },
  ],
]);
const EXTENDED: ReadonlyMap<number, CapabilityDecoder> = new Map([
  [CI.EXT_CAP_ID_ARI.value, { table: ariCap, skip: [], lines: ariLines }],
  [CI.EXT_CAP_ID_SRIOV.value, { table: sriovCap, skip: [], lines: sriovLines }],
  [CI.EXT_CAP_ID_VNDR.value, { table: mmrLocator, skip: ['PADDING'], lines: vsecLines }],
]);

/** A virtio structure capability's registers: the notify multiplier only on a notify capability. */
function virtioRegisters(config: Config, at: number): RegisterValue[] {
  const type = config.read(at + virtioPciCap.registers.CFG_TYPE.offset, 1);
  const length = config.read(at + virtioPciCap.registers.CAP_LEN.offset, 1);
  const extra = type === VC.CFG_TYPE_NOTIFY.value ? ['PCI_CFG_DATA', 'OFFSET_HI', 'LENGTH_HI'] : [];
  const skip = ['CAP_VNDR', 'CAP_NEXT', 'PADDING', ...extra];
  return tableRegisters(config, at, virtioPciCap, skip).filter(
    (r) =>
      r.offset - at < length && (type === VC.CFG_TYPE_NOTIFY.value || r.name !== 'NOTIFY_OFF_MULTIPLIER'),
  );
}

function decodeCapability(
  config: Config,
  entry: CapabilityEntry,
): Pick<DecodedCapability, 'summary' | 'lines' | 'registers'> {
  const decoder = (entry.kind === 'standard' ? STANDARD : EXTENDED).get(entry.id);
  if (!decoder) return { summary: '', lines: [], registers: [] };
  const registers =
    decoder.table === virtioPciCap
      ? virtioRegisters(config, entry.offset)
      : tableRegisters(config, entry.offset, decoder.table, decoder.skip);
  return { ...decoder.lines(config, entry.offset), registers };
}

/** Every feature bit of a 64-bit word by name (transport bits, then the type's own). */
function featureBits(
  type: VirtioPciFunction['template']['model']['type'],
  low: number,
  high: number,
): FeatureBit[] {
  const names = new Map<number, string>();
  for (const [name, c] of Object.entries(features.byType[type].constants)) names.set(c.value, name);
  for (const [name, c] of Object.entries(features.common.constants))
    if (!names.has(c.value)) names.set(c.value, name);
  const out: FeatureBit[] = [];
  for (let bit = 0; bit < 64; bit++) {
    const word = bit < 32 ? low : high;
    if (((word >>> (bit % 32)) & 1) === 1) out.push({ bit, name: names.get(bit) ?? `bit ${bit}` });
  }
  return out;
}

/** The registers of a virtio register block, read without side effects (never ISR's read-to-clear). */
function blockRegisters(
  device: VirtioDevice,
  t: typeof legacy | typeof commonCfg,
  length: number,
  read: (offset: number, size: number) => number | bigint,
): RegisterValue[] {
  return Object.entries(t.registers)
    .filter(([, r]) => r.offset + r.size <= length)
    .map(([name, r]) => {
      const value =
        r.access === 'wo' ? null : t === legacy && name === 'ISR' ? device.isr : read(r.offset, r.size);
      return { name, offset: r.offset, size: r.size, value: value === null ? null : hex(value, r.size) };
    });
}

/** The decoded registers of a live function (GET /api/v1/functions/{bdf}/registers). */
export function functionRegisters(fn: VirtioPciFunction): FunctionRegisters {
  const config = fn.config;
  const d = fn.device;
  const entries = listCapabilities(config);
  const capabilities = describeCapabilities(fn).map((c, i) => ({
    ...c,
    ...decodeCapability(config, entries[i]!),
  }));
  const common = (offset: number, size: number): number | bigint =>
    size === 8 ? commonCfgBlock.read64(d, offset, false) : commonCfgBlock.read(d, offset, size, false);
  const out: FunctionRegisters = {
    bdf: fn.bdf,
    kind: fn.kind === 'vf' ? 'vf' : 'pf',
    capabilities,
    commonCfg: blockRegisters(d, commonCfg, commonCfg.size ?? 0, common),
    deviceFeatures: featureBits(fn.template.model.type, d.deviceFeatures(0), d.deviceFeatures(1)),
    driverFeatures: featureBits(fn.template.model.type, d.driverFeatures(0), d.driverFeatures(1)),
    statusBits: statusBitNames(d.status),
  };
  if (d.model.transitional) {
    const block = fn.msixEnabled() ? legacyHeaderMsix : legacyHeaderNoMsix;
    const length = fn.msixEnabled()
      ? legacy.constants.CONFIG_OFF_MSIX.value
      : legacy.constants.CONFIG_OFF_NO_MSIX.value;
    out.legacy = blockRegisters(d, legacy, length, (offset, size) => block.read(d, offset, size, false));
  }
  return out;
}
