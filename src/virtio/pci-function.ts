import { capabilityIds, msixCap, pciHeader, pcieCap, virtioPciCap } from '../spec/index.js';
import { VmmrError } from '../base/errors.js';
import type { EventBus } from '../base/events.js';
import { CapabilityLayout } from '../pci/capabilities.js';
import { applyRegisterTable, placeMemoryBar } from '../pci/registers.js';
import { ConfigTemplate } from '../pci/config-space.js';
import { PciFunction } from '../pci/function.js';
import { hex64 } from '../base/hex.js';
import { MsixTable, type MsixFunction, type MsixMessage, type MsixState } from '../pci/msix.js';
import type { ConfigChange } from '../pci/config-space.js';
import type { DmaSpaceState } from '../dma/sparse-ram.js';
import type { QueueRunState } from '../virtqueue/index.js';
import type { VirtioDevice, DeviceHost, DeviceState } from './device.js';
import { capacitySectors } from './backends.js';
import type { BackendSettings, DataPathFunction, DataPathHub } from './datapath.js';
import { BarDecoder, BAR_LAYOUT_SIZE, NOTIFY_OFF_MULTIPLIER, type BarTarget } from './memory-bar.js';
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

/** A function's state by name: the config dwords that differ from its template, its device, its MSI-X table. */
export interface FunctionState {
  bdf: string;
  config: ConfigChange[];
  device: DeviceState;
  /** null while the table is as reset (every vector masked, nothing pending). */
  msix: MsixState | null;
  /** A VF's translator guest view: its config dwords that differ from the guest template. */
  guest?: ConfigChange[];
  /** The function's DMA memory: only pages holding a non-zero byte (absent: untouched). */
  dma?: DmaSpaceState;
  /** The device's run state of each queue it used (null for the others; absent: none used). */
  queues?: (QueueRunState | null)[];
}

/** A function template: config image, capability offsets and BAR placement (shared by VFs). */
export interface FunctionTemplate {
  readonly config: ConfigTemplate;
  readonly caps: CapabilityOffsets;
  readonly layout: CapabilityLayout;
  readonly barIndex: number;
  readonly model: DeviceModel;
  readonly bar: BarDecoder;
  /** The MSI-X capability's behaviour, shared by the template's functions. */
  readonly msix: MsixTable;
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
  const bar = new BarDecoder(model);
  const region = (name: Parameters<BarDecoder['region']>[0]): { offset: number; length: number } =>
    bar.region(name) ?? { offset: 0, length: 0 };

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
  const common = addVirtioCap(
    layout,
    t,
    VT.CFG_TYPE_COMMON.value,
    capLen,
    barIndex,
    region('COMMON_CFG').offset,
    region('COMMON_CFG').length,
  );
  const notify = addVirtioCap(
    layout,
    t,
    VT.CFG_TYPE_NOTIFY.value,
    VT.NOTIFY_CAP_LEN.value,
    barIndex,
    region('NOTIFY').offset,
    region('NOTIFY').length,
    (base) =>
      t.set(base + VC.NOTIFY_OFF_MULTIPLIER.offset, VC.NOTIFY_OFF_MULTIPLIER.size, NOTIFY_OFF_MULTIPLIER),
  );
  const isr = addVirtioCap(
    layout,
    t,
    VT.CFG_TYPE_ISR.value,
    capLen,
    barIndex,
    region('ISR').offset,
    region('ISR').length,
  );
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
  return {
    config: t,
    caps: { pcie, msix, common, notify, isr, device, pciCfg },
    msix: new MsixTable(model.msixVectors, msix),
    layout,
    barIndex,
    model,
    bar,
  };
}

const FLR = pcieCap.constants.DEVCTL_BCR_FLR.value;

/**
 * A PCI function carrying a virtio device: config side effects (MSI-X enable/mask, FLR, the
 * PCI_CFG access window) and decode of its memory BAR.
 */
export abstract class VirtioPciFunction
  extends PciFunction
  implements DeviceHost, MsixFunction, BarTarget, DataPathFunction
{
  abstract readonly template: FunctionTemplate;
  abstract readonly device: VirtioDevice;
  /** The machine's data path (DMA spaces, back-ends, the notification scheduler). */
  abstract readonly hub: DataPathHub;
  abstract serial(): string;
  abstract backendSettings(): BackendSettings;
  /** This function's MSI-X table and PBA; undefined while at reset (see MsixTable). */
  msixSlots: Uint32Array | undefined = undefined;
  abstract readonly events: EventBus;
  abstract identityByte(k: number): number;
  abstract updateIntx(): void;
  /** Whether the function decodes its memory BAR (PF: Command.MSE; VF: the PF's VF MSE). */
  abstract memoryDecodeEnabled(): boolean;
  /** Size of the memory BAR (a VF's is rounded up to the System Page Size). */
  abstract barSize(): number;
  /** Why decode is off, for refusals. */
  protected abstract decodeDisabledReason(): string;

  busMasterEnabled(): boolean {
    return (this.config.read(H.COMMAND.offset, H.COMMAND.size) & HC.COMMAND_MASTER.value) !== 0;
  }

  capacitySectors(): number {
    return capacitySectors(this.backendSettings());
  }

  queueNotified(queue: number): void {
    this.hub.notify(this, queue);
  }

  deviceReset(): void {
    this.hub.reset(this);
  }

  driverReady(): void {
    this.hub.resume(this);
  }

  get policyStrict(): boolean {
    return this.template.model.policy === 'strict';
  }

  private msixFlags(): number {
    return this.config.read(this.template.caps.msix + MSIX.FLAGS.offset, MSIX.FLAGS.size);
  }

  msixEnabled(): boolean {
    return this.template.msix.enabled(this);
  }

  msixFunctionMasked(): boolean {
    return this.template.msix.functionMasked(this);
  }

  signalMsix(vector: number): void {
    this.template.msix.signal(this, vector);
  }

  readMsixTable(offset: number): number {
    return this.template.msix.readTable(this, offset);
  }

  writeMsixTable(offset: number, value: number): void {
    this.template.msix.writeTable(this, offset, value);
  }

  readMsixPba(offset: number): number {
    return this.template.msix.readPba(this, offset);
  }

  deliver(message: MsixMessage): void {
    if (!this.events.active) return;
    this.events.emit({
      type: 'interrupt',
      bdf: this.bdf,
      mode: 'msix',
      vector: message.vector,
      address: hex64(message.addressLow, message.addressHigh),
      data: message.data,
    });
  }

  pending(vector: number): void {
    if (this.events.active)
      this.events.emit({ type: 'interrupt', bdf: this.bdf, mode: 'msix-pending', vector });
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
      this.template.msix.deliverPending(this);
    }
    if (offset < H.COMMAND.offset + H.COMMAND.size && offset + width > H.COMMAND.offset)
      this.hub.resume(this);
    this.afterConfigWrite(offset, width);
    if (
      !this.policyStrict &&
      offset <= H.COMMAND.offset &&
      offset + width > H.COMMAND.offset &&
      !this.busMaster()
    )
      this.device.busMasterOff();
  }

  private busMaster(): boolean {
    return (this.config.read(H.COMMAND.offset, H.COMMAND.size) & HC.COMMAND_MASTER.value) !== 0;
  }

  /** Compat: QEMU sets Bus Master when a legacy driver writes STATUS ACKNOWLEDGE | DRIVER. */
  setBusMaster(): void {
    const command = this.config.read(H.COMMAND.offset, H.COMMAND.size);
    this.config.write(H.COMMAND.offset, H.COMMAND.size, command | HC.COMMAND_MASTER.value);
  }

  /** Subclass side effects of a config write (Command, SR-IOV…). */
  protected afterConfigWrite(_offset: number, _width: number): void {}

  /** PCIe FLR (§6.6.2): config space and device back to reset; Initiate FLR reads 0. */
  functionLevelReset(): void {
    this.config.clear();
    this.msixSlots = undefined;
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
    const value = this.template.bar.read(this, w.offset, w.length, this.policyStrict);
    this.config.poke(this.pciCfgDataOffset(), w.length, value);
  }

  private pciCfgWindowWrite(): void {
    const w = this.windowTarget();
    if (!this.windowValid(w)) return;
    const value = this.config.read(this.pciCfgDataOffset(), w.length);
    this.template.bar.write(this, w.offset, w.length, value, this.policyStrict);
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
    return this.config.overlaySize === 0 && this.device.pristine && this.msixSlots === undefined;
  }

  getState(): FunctionState {
    return {
      bdf: this.bdf,
      config: this.config.changes(),
      device: this.device.getState(),
      msix: this.template.msix.getState(this),
    };
  }

  setState(state: FunctionState): void {
    this.config.restoreChanges(state.config);
    this.device.setState(state.device);
    this.msixSlots = this.template.msix.restore(state.msix);
  }

  /** The memory BARs this function implements, as [index, size]. */
  memoryBars(): Array<{ index: number; size: number }> {
    return [{ index: this.template.barIndex, size: this.barSize() }];
  }

  checkBar(index: number): void {
    const own = this.template.barIndex;
    if (index === own) {
      if (!this.memoryDecodeEnabled()) {
        throw new VmmrError(
          'VMMR_ERR_DECODE_DISABLED',
          `BAR ${index} is not decoded: ${this.decodeDisabledReason()}`,
        );
      }
      return;
    }
    const why = index === own + 1 ? `it is the upper half of 64-bit BAR ${own}` : 'it is not implemented';
    throw new VmmrError('VMMR_ERR_BAD_SPACE', `${this.bdf} has no BAR ${index}: ${why}`);
  }

  readBar(index: number, offset: number, width: number): number {
    this.checkBar(index);
    return this.template.bar.read(this, offset, width, this.policyStrict);
  }

  readBar64(index: number, offset: number): bigint {
    this.checkBar(index);
    return this.template.bar.read64(this, offset, this.policyStrict);
  }

  writeBar(index: number, offset: number, width: number, value: number): void {
    this.checkBar(index);
    this.template.bar.write(this, offset, width, value, this.policyStrict);
  }

  writeBar64(index: number, offset: number, low: number, high: number): void {
    this.checkBar(index);
    this.template.bar.write64(this, offset, low, high, this.policyStrict);
  }
}
