import {
  ariCap,
  barLayout,
  capabilityIds,
  deviceTypes,
  pciHeader,
  sriovCap,
  type VirtioTypeName,
} from '../spec/index.js';
import type { EventBus } from '../base/events.js';
import { ConfigStore } from '../pci/config-space.js';
import { IntxPin } from '../pci/intx.js';
import { applyRegisterTable } from '../pci/registers.js';
import { layoutSriov, SriovCapability, type VfBudget } from '../sriov/capability.js';
import { lastVfRid, vfIndexAt, vfRid } from '../sriov/routing.js';
import { DataPathHub, type BackendSettings } from '../virtio/datapath.js';
import { VirtioDevice } from '../virtio/device.js';
import { BAR_LAYOUT_SIZE } from '../virtio/memory-bar.js';
import { buildModel, type AccessPolicy, type NotifyRoute } from '../virtio/model.js';
import {
  buildFunctionTemplate,
  VirtioPciFunction,
  type FunctionState,
  type FunctionTemplate,
} from '../virtio/pci-function.js';
import { addMmrLocator } from './locator.js';
import { derivedMacByte, derivedSerial, type IdentityOverride } from './identity.js';
import { MmrVf } from './vf.js';

const H = pciHeader.registers;
const HC = pciHeader.constants;
const SC = sriovCap.constants;
const DT = deviceTypes.constants;

/** What a PF is (a topology PF entry, its address parsed and its VF overrides indexed). */
export interface PfDefinition {
  domain: number;
  rid: number;
  type: VirtioTypeName;
  totalVfs: number;
  initialVfs: number;
  firstVfOffset: number;
  vfStride: number;
  queueSize: number;
  policy: AccessPolicy;
  notify: NotifyRoute;
  /** Identity overrides by VF index. */
  overrides: ReadonlyMap<number, IdentityOverride>;
  /** Back-end settings of the PF itself and, by VF index, of VFs that differ from `vfBackend`. */
  backend?: BackendSettings;
  vfBackend?: BackendSettings;
  vfBackends?: ReadonlyMap<number, BackendSettings>;
}

/** Who hears that VFs went away (the machine: their guest views close). */
export type VfRemovalListener = (removed: readonly MmrVf[]) => void;

const NO_SETTINGS: BackendSettings = Object.freeze({});

export const PF_BAR_INDEX = barLayout.constants.PF_BAR_INDEX.value;
export const VF_BAR_INDEX = barLayout.constants.VF_BAR_INDEX.value;

/**
 * A virtio PF (modern device 0x1040+type, revision 1, vmmr decision) with ARI and SR-IOV whose
 * VFs are transitional MMR VFs: the SR-IOV capability (src/sriov) decides when VFs exist; this
 * class creates them at PF + First VF Offset + n × VF Stride and removes them.
 */
export class VirtioPf extends VirtioPciFunction {
  readonly kind = 'pf';
  readonly domain: number;
  readonly rid: number;
  readonly template: FunctionTemplate;
  readonly vfTemplate: FunctionTemplate;
  readonly config: ConfigStore;
  readonly device: VirtioDevice;
  readonly sriovCapability: SriovCapability;
  readonly ari: number;
  /** Offset of the MMR locator in every VF's config space. */
  readonly vfLocator: number;
  vfs: MmrVf[] = [];
  private readonly intx: IntxPin;

  constructor(
    readonly definition: PfDefinition,
    readonly events: EventBus,
    budget: VfBudget,
    private readonly onVfsRemoved: VfRemovalListener = () => undefined,
    readonly hub: DataPathHub = new DataPathHub(),
  ) {
    super();
    const d = definition;
    this.domain = d.domain;
    this.rid = d.rid;
    const info = deviceTypes.types[d.type];
    const common = { queueSize: d.queueSize, policy: d.policy, notifyRoute: d.notify, type: d.type };
    this.template = buildFunctionTemplate(
      buildModel({ ...common, transitional: false }),
      {
        vendorId: DT.VENDOR_ID.value,
        deviceId: info.modernId,
        revision: DT.MODERN_REVISION.value,
        classCode: info.classCode,
        subsystemVendorId: DT.SUBSYSTEM_VENDOR_ID.value,
        // A non-transitional device's Subsystem Device ID is 0x40 or higher (virtio 1.2 §4.1.2.1,
        // docs/device-model.md "Functions"); only transitional functions (the MMR VFs) carry the type id there.
        subsystemId: DT.MODERN_SUBSYSTEM_ID_MIN.value,
      },
      false,
      PF_BAR_INDEX,
    );
    this.ari = this.template.layout.addExtended(
      capabilityIds.constants.EXT_CAP_ID_ARI.value,
      capabilityIds.constants.EXT_CAP_VERSION.value,
      ariCap.constants.SIZEOF.value,
      (base) => applyRegisterTable(this.template.config, base, ariCap, false, ['HEADER']),
    );
    const sriov = {
      rid: d.rid,
      firstVfOffset: d.firstVfOffset,
      vfStride: d.vfStride,
      totalVfs: d.totalVfs,
      initialVfs: d.initialVfs,
      vfDeviceId: info.mmrId,
      vfBarIndex: VF_BAR_INDEX,
      vfBarMinSize: BAR_LAYOUT_SIZE,
    };
    const sriovBase = this.template.layout.addExtended(
      capabilityIds.constants.EXT_CAP_ID_SRIOV.value,
      capabilityIds.constants.EXT_CAP_VERSION.value,
      SC.SIZEOF.value,
      (base) => layoutSriov(this.template.config, base, sriov),
    );
    this.vfTemplate = buildFunctionTemplate(
      buildModel({ ...common, transitional: true }),
      {
        vendorId: 0,
        deviceId: 0,
        revision: DT.TRANSITIONAL_REVISION.value,
        classCode: info.classCode,
        subsystemVendorId: DT.SUBSYSTEM_VENDOR_ID.value,
        subsystemId: info.typeId,
      },
      true,
      VF_BAR_INDEX,
    );
    this.vfTemplate.config.set(H.VENDOR_ID.offset, H.VENDOR_ID.size, 0xffff);
    this.vfTemplate.config.set(H.DEVICE_ID.offset, H.DEVICE_ID.size, 0xffff);
    this.vfLocator = addMmrLocator(this.vfTemplate);
    this.config = new ConfigStore(this.template.config);
    this.sriovCapability = new SriovCapability(this.config, sriovBase, sriov, budget, (enabled) =>
      this.vfEnableEdge(enabled),
    );
    this.device = new VirtioDevice(this.template.model, this);
    this.intx = new IntxPin(this.config, (level) => {
      if (this.events.active) this.events.emit({ type: 'interrupt', bdf: this.bdf, mode: 'intx', level });
    });
  }

  /** Offset of the SR-IOV capability in the PF's config space. */
  get sriov(): number {
    return this.sriovCapability.base;
  }

  get type(): VirtioTypeName {
    return this.definition.type;
  }

  overrideFor(index: number): IdentityOverride | undefined {
    return this.definition.overrides.get(index);
  }

  identityByte(k: number): number {
    return derivedMacByte(this.domain, this.rid, k);
  }

  serial(): string {
    return derivedSerial(this.domain, this.rid);
  }

  backendSettings(): BackendSettings {
    return this.definition.backend ?? NO_SETTINGS;
  }

  /** Back-end settings of VF n. */
  vfBackendSettings(n: number): BackendSettings {
    return this.definition.vfBackends?.get(n) ?? this.definition.vfBackend ?? NO_SETTINGS;
  }

  // ---- SR-IOV ----

  get numVfs(): number {
    return this.sriovCapability.numVfs;
  }

  get vfEnabled(): boolean {
    return this.sriovCapability.vfEnabled;
  }

  vfMemoryDecodeEnabled(): boolean {
    return this.sriovCapability.vfMemoryDecodeEnabled();
  }

  /** Routing ID of VF n (0-based). */
  vfRid(n: number): number {
    return vfRid(this.definition, n);
  }

  /** VF index at a routing ID, or -1 when no VF of this PF (enabled or not) sits there. */
  vfIndexAt(rid: number): number {
    return vfIndexAt(this.definition, rid);
  }

  /** Highest routing ID any VF of this PF can take. */
  lastVfRid(): number {
    return lastVfRid(this.definition);
  }

  vfBarSize(): number {
    return this.sriovCapability.vfBarSize();
  }

  vfBarBase(): number {
    return this.sriovCapability.vfBarBase();
  }

  barSize(): number {
    return BAR_LAYOUT_SIZE;
  }

  memoryDecodeEnabled(): boolean {
    return (this.config.read(H.COMMAND.offset, H.COMMAND.size) & HC.COMMAND_MEMORY.value) !== 0;
  }

  protected decodeDisabledReason(): string {
    return 'Command.Memory Space Enable is clear';
  }

  override writeConfig(offset: number, width: number, value: number): void {
    const sriov = this.sriovCapability;
    const touchesSriov = sriov.touches(offset, width);
    const admitted = touchesSriov ? sriov.admit(offset, width, value, this.policyStrict) : value;
    if (admitted === undefined) return;
    const wasEnabled = sriov.vfEnabled;
    super.writeConfig(offset, width, admitted);
    if (touchesSriov) sriov.afterWrite(offset, width, wasEnabled);
  }

  private createVfs(count: number): MmrVf[] {
    const vfs = new Array<MmrVf>(count);
    for (let n = 0; n < count; n++) vfs[n] = new MmrVf(this, n);
    return vfs;
  }

  private vfEnableEdge(enabled: boolean): void {
    if (enabled) {
      const vfs = this.createVfs(this.numVfs);
      this.vfs = vfs;
      if (this.events.active) {
        const count = vfs.length;
        this.events.emit({
          type: 'vf-enable',
          bdf: this.bdf,
          numVfs: count,
          ...(count > 0 ? { first: vfs[0]!.bdf, last: vfs[count - 1]!.bdf } : {}),
        });
      }
    } else {
      const count = this.removeVfs();
      if (this.events.active) this.events.emit({ type: 'vf-disable', bdf: this.bdf, numVfs: count });
    }
  }

  /** Drops every VF; the listener hears which (their guest views close). Returns how many. */
  removeVfs(): number {
    const removed = this.vfs;
    this.vfs = [];
    if (removed.length > 0) this.onVfsRemoved(removed);
    return removed.length;
  }

  /** A PF FLR also resets its SR-IOV capability: VF Enable clears and the VFs go away. */
  override functionLevelReset(): void {
    super.functionLevelReset();
    this.sriovCapability.alignVfBar();
    const hadVfs = this.removeVfs();
    if (hadVfs > 0 && this.events.active)
      this.events.emit({ type: 'vf-disable', bdf: this.bdf, numVfs: hadVfs });
  }

  /** Restores config and device, then the VFs that VF Enable and NumVFs call for (fresh). */
  override setState(state: FunctionState): void {
    super.setState(state);
    this.sriovCapability.alignVfBar();
    this.vfs = this.createVfs(this.vfEnabled ? this.numVfs : 0);
    this.intx.settle(this.intxPending());
  }

  protected override afterConfigWrite(offset: number, width: number): void {
    if (offset < H.COMMAND.offset + H.COMMAND.size && offset + width > H.COMMAND.offset) this.updateIntx();
  }

  private intxPending(): boolean {
    return this.device.isr !== 0 && !this.msixEnabled();
  }

  /** INTx pin A follows the ISR while MSI-X is disabled. */
  updateIntx(): void {
    this.intx.update(this.intxPending());
  }

  get intxAsserted(): boolean {
    return this.intx.asserted;
  }
}
