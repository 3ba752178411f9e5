import type { EventBus } from '../base/events.js';
import { ConfigStore } from '../pci/config-space.js';
import type { BackendSettings, DataPathHub } from '../virtio/datapath.js';
import { VirtioDevice } from '../virtio/device.js';
import { VirtioPciFunction, type FunctionTemplate } from '../virtio/pci-function.js';
import type { VirtioPf } from './pf.js';
import { derivedMacByte, derivedSerial } from './identity.js';

/**
 * Hears what a VF does that a layer above it emulates (the translator's guest view: its INTx
 * pin). A VF has at most one observer and knows nothing else of it.
 */
export interface VfObserver {
  /** The ISR or the interrupt mode changed: re-evaluate an emulated INTx pin. */
  updateIntx(): void;
  /** The VF took a Function Level Reset: what the observer emulates of its header resets too. */
  functionReset(): void;
  /** The device set the VF's Bus Master (compat); an emulated Command shows it too. */
  busMasterSet(): void;
  /** The VF goes away: an asserted pin drops. */
  release(): void;
}

/**
 * A transitional MMR VF (docs/device-model.md "Functions", PCIe SR-IOV §9.3): SR-IOV config rules (Vendor/Device ID 0xFFFF,
 * Command.MSE hard-wired 0, no INTx, header BARs 0), revision 0, the modern virtio capabilities
 * and the MMR locator; its legacy block lives at 0x1000 of its memory BAR. A flyweight: the
 * template, model and register tables are the PF's; the VF holds its device state and the config
 * dwords it changed.
 */
export class MmrVf extends VirtioPciFunction {
  readonly kind = 'vf';
  readonly config: ConfigStore;
  readonly device: VirtioDevice;
  observer: VfObserver | undefined;

  constructor(
    readonly pf: VirtioPf,
    readonly index: number,
  ) {
    super();
    this.config = new ConfigStore(pf.vfTemplate.config);
    this.device = new VirtioDevice(pf.vfTemplate.model, this);
  }

  get template(): FunctionTemplate {
    return this.pf.vfTemplate;
  }

  get domain(): number {
    return this.pf.domain;
  }

  get rid(): number {
    return this.pf.vfRid(this.index);
  }

  get events(): EventBus {
    return this.pf.events;
  }

  /** Whether this VF object is still the live VF at its BDF. */
  get live(): boolean {
    return this.pf.vfs[this.index] === this;
  }

  identityByte(k: number): number {
    const mac = this.pf.overrideFor(this.index)?.mac;
    return mac ? mac[k]! : derivedMacByte(this.domain, this.rid, k);
  }

  serial(): string {
    return this.pf.overrideFor(this.index)?.serial ?? derivedSerial(this.domain, this.rid);
  }

  get hub(): DataPathHub {
    return this.pf.hub;
  }

  backendSettings(): BackendSettings {
    return this.pf.vfBackendSettings(this.index);
  }

  updateIntx(): void {
    this.observer?.updateIntx();
  }

  override setBusMaster(): void {
    super.setBusMaster();
    this.observer?.busMasterSet();
  }

  /** PCIe FLR of the VF: its config and device, then the header its observer emulates. */
  override functionLevelReset(): void {
    super.functionLevelReset();
    this.observer?.functionReset();
  }

  memoryDecodeEnabled(): boolean {
    return this.pf.vfMemoryDecodeEnabled();
  }

  protected decodeDisabledReason(): string {
    return `the PF ${this.pf.bdf} has VF MSE clear in its SR-IOV Control register`;
  }

  barSize(): number {
    return this.pf.vfBarSize();
  }

  /** Bus address of this VF's memory BAR: the PF's VF BAR base + index * per-VF size. */
  barAddress(): number {
    return this.pf.vfBarBase() + this.index * this.barSize();
  }
}
