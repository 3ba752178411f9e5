import {
  capabilityIds,
  msixCap,
  pciHeader,
  pcieCap,
  virtioPciCap,
  type AnyTable,
} from '../spec/index.js';
import { VmmrError } from '../base/errors.js';
import type { EventBus } from '../base/events.js';
import { CapabilityLayout } from '../pci/capabilities.js';
import { ConfigTemplate } from '../pci/config-space.js';
import { PciFunction } from '../pci/function.js';
import { VirtioDevice, type DeviceHost, type DeviceState } from './device.js';
import { barRead, barWrite, BAR_LAYOUT_SIZE, NOTIFY_OFF_MULTIPLIER, regionsOf } from './memory-bar.js';
import type { DeviceModel } from './model.js';

const H = pciHeader.registers;
const HC = pciHeader.constants;
const VC = virtioPciCap.registers;
const VT = virtioPciCap.constants;
const MSIX = msixCap.registers;
const PCIE = pcieCap.registers;

/** Where the capabilities of a function template landed. */
export interface CapabilityOffsets {
  pcie: number;
  msix: number;
  common: number;
  notify: number;
  isr: number;
  /** 0 when the type has no device-specific configuration (no DEVICE_CFG capability). */
  device: number;
  pciCfg: number;
}

export interface HeaderIdentity {
  vendorId: number;
  deviceId: number;
  revision: number;
  classCode: number;
  subsystemVendorId: number;
  subsystemId: number;
}

/** A function's state: the config dwords that differ from its template, and its device. */
export interface FunctionState {
  bdf: string;
  config: Array<[number, number]>;
  device: DeviceState;
  /** A VF's translator guest view: its config dwords that differ from the guest template. */
  guest?: Array<[number, number]>;
}

/** A function template: config image, capability offsets and BAR placement (shared by VFs). */
export interface FunctionTemplate {
  readonly config: ConfigTemplate;
  readonly caps: CapabilityOffsets;
  readonly layout: CapabilityLayout;
  readonly barIndex: number;
  readonly model: DeviceModel;
}

/**
 * Copies a register table's reset values and masks into a capability at `base` (a VF takes the
 * VF variants where the table has them). Aliases (registers overlapping others on purpose) and
 * the names in `skip` are left out.
 */
export function applyRegisterTable(
  t: ConfigTemplate,
  base: number,
  table: AnyTable,
  vf: boolean,
  skip: readonly string[] = [],
): void {
  for (const [name, reg] of Object.entries(table.registers)) {
    if (reg.alias || skip.includes(name)) continue;
    t.set(base + reg.offset, reg.size, (vf ? reg.vfReset : undefined) ?? reg.reset ?? 0);
    const writeMask = vf ? (reg.vfWriteMask ?? reg.writeMask ?? 0) : (reg.writeMask ?? 0);
    t.setMasks(base + reg.offset, reg.size, writeMask, reg.rw1cMask ?? 0);
  }
}

function barMemoryFlags(): number {
  return HC.BASE_ADDRESS_SPACE_MEMORY.value | HC.BASE_ADDRESS_MEM_TYPE_64.value;
}

/** The 64-bit non-prefetchable memory BAR pair at `index` in a type-0 header or an SR-IOV cap. */
export function placeMemoryBar(t: ConfigTemplate, registerOffset: number, size: number): void {
  t.set(registerOffset, 4, barMemoryFlags());
  t.setMasks(registerOffset, 4, (~(size - 1) & ~0xf) >>> 0);
  t.set(registerOffset + 4, 4, 0);
  t.setMasks(registerOffset + 4, 4, 0xffffffff);
}

function addVirtioCap(
  layout: CapabilityLayout,
  t: ConfigTemplate,
  cfgType: number,
  length: number,
  bar: number,
  offset: number,
  regionLength: number,
  extra?: (base: number) => void,
): number {
  return layout.addStandard(capabilityIds.constants.CAP_ID_VNDR.value, length, (base) => {
    t.set(base + VC.CAP_LEN.offset, VC.CAP_LEN.size, length);
    t.set(base + VC.CFG_TYPE.offset, VC.CFG_TYPE.size, cfgType);
    t.set(base + VC.BAR.offset, VC.BAR.size, bar);
    t.set(base + VC.OFFSET.offset, VC.OFFSET.size, offset);
    t.set(base + VC.LENGTH.offset, VC.LENGTH.size, regionLength);
    extra?.(base);
  });
}

/**
 * The config template of a virtio PCI function (virtio 1.2 §4.1.4): type-0 header, PCI Express
 * endpoint capability, MSI-X, and the virtio vendor capabilities (common, notify, ISR, device,
 * PCI_CFG window) all pointing into one memory BAR. VFs follow the SR-IOV rules (header IDs,
 * BARs and Command.MSE are the PF's business; no INTx).
 */
export function buildFunctionTemplate(
  model: DeviceModel,
  identity: HeaderIdentity,
  vf: boolean,
  barIndex: number,
): FunctionTemplate {
  const t = new ConfigTemplate();
  applyRegisterTable(t, 0, pciHeader, vf);
  const regions = new Map(regionsOf(new VirtioDevice(model, inertHost)).map((r) => [r.name, r]));
  const region = (name: Parameters<typeof regions.get>[0]): { offset: number; length: number } =>
    regions.get(name) ?? { offset: 0, length: 0 };

  if (!vf) {
    t.set(H.VENDOR_ID.offset, H.VENDOR_ID.size, identity.vendorId);
    t.set(H.DEVICE_ID.offset, H.DEVICE_ID.size, identity.deviceId);
    t.set(H.INTERRUPT_PIN.offset, H.INTERRUPT_PIN.size, HC.INTERRUPT_PIN_A.value);
    placeMemoryBar(t, H.BASE_ADDRESS_0.offset + barIndex * 4, BAR_LAYOUT_SIZE);
  }
  t.set(H.REVISION_ID.offset, H.REVISION_ID.size, identity.revision);
  t.set(H.CLASS_PROG.offset, H.CLASS_PROG.size, identity.classCode & 0xff);
  t.set(H.CLASS_DEVICE.offset, H.CLASS_DEVICE.size, identity.classCode >>> 8);
  t.set(H.HEADER_TYPE.offset, H.HEADER_TYPE.size, HC.HEADER_TYPE_NORMAL.value);
  t.set(H.SUBSYSTEM_VENDOR_ID.offset, H.SUBSYSTEM_VENDOR_ID.size, identity.subsystemVendorId);
  t.set(H.SUBSYSTEM_ID.offset, H.SUBSYSTEM_ID.size, identity.subsystemId);

  const layout = new CapabilityLayout(t);
  const pcie = layout.addStandard(capabilityIds.constants.CAP_ID_EXP.value, pcieCap.size ?? 0, (base) =>
    applyRegisterTable(t, base, pcieCap, vf, ['CAP_ID', 'NEXT']),
  );
  const msix = layout.addStandard(capabilityIds.constants.CAP_ID_MSIX.value, msixCap.size ?? 0, (base) => {
    applyRegisterTable(t, base, msixCap, vf, ['CAP_ID', 'NEXT']);
    t.set(base + MSIX.FLAGS.offset, MSIX.FLAGS.size, model.msixVectors - 1);
    t.set(base + MSIX.TABLE.offset, MSIX.TABLE.size, region('MSIX_TABLE').offset | barIndex);
    t.set(base + MSIX.PBA.offset, MSIX.PBA.size, region('MSIX_PBA').offset | barIndex);
  });
  const capLen = VT.CAP_LEN.value;
  const common = addVirtioCap(layout, t, VT.CFG_TYPE_COMMON.value, capLen, barIndex, region('COMMON_CFG').offset, region('COMMON_CFG').length);
  const notify = addVirtioCap(
    layout,
    t,
    VT.CFG_TYPE_NOTIFY.value,
    VT.NOTIFY_CAP_LEN.value,
    barIndex,
    region('NOTIFY').offset,
    region('NOTIFY').length,
    (base) => t.set(base + VC.NOTIFY_OFF_MULTIPLIER.offset, VC.NOTIFY_OFF_MULTIPLIER.size, NOTIFY_OFF_MULTIPLIER),
  );
  const isr = addVirtioCap(layout, t, VT.CFG_TYPE_ISR.value, capLen, barIndex, region('ISR').offset, region('ISR').length);
  // §4.1.4.6: a device-specific configuration capability only for a type that has one (rng has
  // none). A zero-length one would make Linux's modern probe fail ("bad capability len").
  const device =
    region('DEVICE_CFG').length === 0
      ? 0
      : addVirtioCap(
          layout,
          t,
          VT.CFG_TYPE_DEVICE.value,
          capLen,
          barIndex,
          region('DEVICE_CFG').offset,
          region('DEVICE_CFG').length,
        );
  const pciCfg = addVirtioCap(layout, t, VT.CFG_TYPE_PCI.value, VT.PCI_CFG_CAP_LEN.value, 0, 0, 0, (base) => {
    t.setMasks(base + VC.BAR.offset, VC.BAR.size, 0xff);
    t.setMasks(base + VC.OFFSET.offset, VC.OFFSET.size, 0xffffffff);
    t.setMasks(base + VC.LENGTH.offset, VC.LENGTH.size, 0xffffffff);
    t.setMasks(base + VC.PCI_CFG_DATA.offset, VC.PCI_CFG_DATA.size, 0xffffffff);
  });
  return { config: t, caps: { pcie, msix, common, notify, isr, device, pciCfg }, layout, barIndex, model };
}

const inertHost: DeviceHost = {
  bdf: '',
  events: { active: false } as EventBus,
  msixEnabled: () => false,
  msixFunctionMasked: () => false,
  updateIntx: () => undefined,
  identityByte: () => 0,
};

const MSIX_ENABLE = msixCap.constants.FLAGS_ENABLE.value;
const MSIX_MASKALL = msixCap.constants.FLAGS_MASKALL.value;
const FLR = pcieCap.constants.DEVCTL_BCR_FLR.value;

/**
 * A PCI function carrying a virtio device: config side effects (MSI-X enable/mask, FLR, the
 * PCI_CFG access window) and decode of its memory BAR.
 */
export abstract class VirtioPciFunction extends PciFunction implements DeviceHost {
  abstract readonly template: FunctionTemplate;
  abstract readonly device: VirtioDevice;
  abstract readonly events: EventBus;
  abstract identityByte(k: number): number;
  abstract updateIntx(): void;
  /** Whether the function decodes its memory BAR (PF: Command.MSE; VF: the PF's VF MSE). */
  abstract memoryDecodeEnabled(): boolean;
  /** Size of the memory BAR (a VF's is rounded up to the System Page Size). */
  abstract barSize(): number;
  /** Why decode is off, for refusals. */
  protected abstract decodeDisabledReason(): string;

  get policyStrict(): boolean {
    return this.template.model.policy === 'strict';
  }

  private msixFlags(): number {
    return this.config.read(this.template.caps.msix + MSIX.FLAGS.offset, MSIX.FLAGS.size);
  }

  msixEnabled(): boolean {
    return (this.msixFlags() & MSIX_ENABLE) !== 0;
  }

  msixFunctionMasked(): boolean {
    return (this.msixFlags() & MSIX_MASKALL) !== 0;
  }

  private pciCfgDataOffset(): number {
    return this.template.caps.pciCfg + VC.PCI_CFG_DATA.offset;
  }

  private inPciCfgData(offset: number): boolean {
    const data = this.pciCfgDataOffset();
    return offset >= data && offset < data + VC.PCI_CFG_DATA.size;
  }

  override readConfig(offset: number, width: number): number {
    if (this.inPciCfgData(offset)) this.pciCfgWindowRead();
    return this.config.read(offset, width);
  }

  override writeConfig(offset: number, width: number, value: number): void {
    const caps = this.template.caps;
    const msixBefore = this.msixFlags();
    this.config.write(offset, width, value);
    if (this.inPciCfgData(offset)) {
      this.pciCfgWindowWrite();
      return;
    }
    const devctl = caps.pcie + PCIE.DEVCTL.offset;
    if (offset <= devctl + 1 && offset + width > devctl && this.config.read(devctl, PCIE.DEVCTL.size) & FLR) {
      this.functionLevelReset();
      return;
    }
    if (this.msixFlags() !== msixBefore) {
      this.updateIntx();
      this.device.deliverPending();
    }
    this.afterConfigWrite(offset, width);
  }

  /** Subclass side effects of a config write (Command, SR-IOV…). */
  protected afterConfigWrite(_offset: number, _width: number): void {}

  /** PCIe FLR (§6.6.2): config space and device back to reset; Initiate FLR reads 0. */
  functionLevelReset(): void {
    this.config.clear();
    this.device.functionReset();
  }

  private windowTarget(): { bar: number; offset: number; length: number } {
    const base = this.template.caps.pciCfg;
    return {
      bar: this.config.read(base + VC.BAR.offset, VC.BAR.size),
      offset: this.config.read(base + VC.OFFSET.offset, VC.OFFSET.size),
      length: this.config.read(base + VC.LENGTH.offset, VC.LENGTH.size),
    };
  }

  /**
   * virtio 1.2 §4.1.4.9: a read of pci_cfg_data performs a read of cap.length bytes at
   * cap.offset in BAR cap.bar and places it in pci_cfg_data. Invalid windows leave it unchanged.
   */
  private pciCfgWindowRead(): void {
    const w = this.windowTarget();
    if (!this.windowValid(w)) return;
    const value = barRead(this.device, this.msixEnabled(), w.offset, w.length, this.policyStrict);
    this.config.poke(this.pciCfgDataOffset(), w.length, value);
  }

  private pciCfgWindowWrite(): void {
    const w = this.windowTarget();
    if (!this.windowValid(w)) return;
    const value = this.config.read(this.pciCfgDataOffset(), w.length);
    barWrite(this.device, this.msixEnabled(), w.offset, w.length, value, 0, this.policyStrict);
  }

  private windowValid(w: { bar: number; offset: number; length: number }): boolean {
    return (
      w.bar === this.template.barIndex &&
      (w.length === 1 || w.length === 2 || w.length === 4) &&
      w.offset % w.length === 0 &&
      w.offset + w.length <= this.barSize()
    );
  }

  get pristine(): boolean {
    return this.config.overlaySize === 0 && this.device.pristine;
  }

  getState(): FunctionState {
    return { bdf: this.bdf, config: this.config.changedDwords(), device: this.device.getState() };
  }

  setState(state: FunctionState): void {
    this.config.restoreDwords(state.config);
    this.device.setState(state.device);
  }

  /** The memory BARs this function implements, as [index, size]. */
  memoryBars(): Array<{ index: number; size: number }> {
    return [{ index: this.template.barIndex, size: this.barSize() }];
  }

  checkBar(index: number): void {
    const own = this.template.barIndex;
    if (index === own) {
      if (!this.memoryDecodeEnabled()) {
        throw new VmmrError('VMMR_ERR_DECODE_DISABLED', `BAR ${index} is not decoded: ${this.decodeDisabledReason()}`);
      }
      return;
    }
    const why = index === own + 1 ? `it is the upper half of 64-bit BAR ${own}` : 'it is not implemented';
    throw new VmmrError('VMMR_ERR_BAD_SPACE', `${this.bdf} has no BAR ${index}: ${why}`);
  }

  readBar(index: number, offset: number, width: number): number {
    this.checkBar(index);
    return barRead(this.device, this.msixEnabled(), offset, width, this.policyStrict);
  }

  writeBar(index: number, offset: number, width: number, value: number, high: number): void {
    this.checkBar(index);
    barWrite(this.device, this.msixEnabled(), offset, width, value, high, this.policyStrict);
  }
}
