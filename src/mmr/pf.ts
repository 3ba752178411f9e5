import { ariCap, deviceTypes, pciHeader, sriovCap, type VirtioTypeName } from '../spec/index.js';
import { VmmrError } from '../base/errors.js';
import type { EventBus } from '../base/events.js';
import { ConfigStore } from '../pci/config-space.js';
import { capabilityIds } from '../spec/index.js';
import { addMmrLocator } from './locator.js';
import { derivedMacByte, derivedSerial, type IdentityOverride } from './identity.js';
import { MmrVf } from './vf.js';
import { VirtioDevice } from '../virtio/device.js';
import { BAR_LAYOUT_SIZE } from '../virtio/memory-bar.js';
import { buildModel } from '../virtio/model.js';
import type { ResolvedPf } from '../machine/topology.js';
import {
  applyRegisterTable,
  buildFunctionTemplate,
  placeMemoryBar,
  VirtioPciFunction,
  type FunctionState,
  type FunctionTemplate,
} from '../virtio/pci-function.js';
import { barLayout } from '../spec/index.js';

const H = pciHeader.registers;
const HC = pciHeader.constants;
const S = sriovCap.registers;
const SC = sriovCap.constants;
const DT = deviceTypes.constants;

/** A topology PF entry with its address parsed and its VF overrides indexed. */
export interface PfDefinition extends Omit<ResolvedPf, 'bdf' | 'vfs'> {
  domain: number;
  rid: number;
  /** Identity overrides by VF index. */
  overrides: ReadonlyMap<number, IdentityOverride>;
}

/** Process-wide limits a PF consults when VFs are enabled. */
export interface VfBudget {
  /** How many more VFs may be enabled in this process. */
  available(): number;
}

export const PF_BAR_INDEX = barLayout.constants.PF_BAR_INDEX.value;
export const VF_BAR_INDEX = barLayout.constants.VF_BAR_INDEX.value;
const PAGE_SHIFT_BASE = SC.PAGE_SHIFT_BASE.value;
// Read on every VF access (decode enable, BAR size): resolved once rather than by name per call.
const CTRL_OFFSET = S.CTRL.offset;
const CTRL_SIZE = S.CTRL.size;
const CTRL_VFE = SC.CTRL_VFE.value;
const CTRL_MSE = SC.CTRL_MSE.value;
const SYS_PGSIZE_OFFSET = S.SYS_PGSIZE.offset;
const SYS_PGSIZE_SIZE = S.SYS_PGSIZE.size;

/**
 * A virtio PF (modern device 0x1040+type, revision 1, vmmr decision) with ARI and SR-IOV
 * (PCIe §9.3.3, as QEMU hw/pci/pcie_sriov.c): VF Enable creates NumVFs MMR VFs at
 * PF + First VF Offset + n * VF Stride, clearing it removes them; NumVFs is read-only while VF
 * Enable is set and refused above TotalVFs; VF BARs size through the capability in units of the
 * System Page Size; VF MSE gates VF BAR decode.
 */
export class VirtioPf extends VirtioPciFunction {
  readonly kind = 'pf';
  readonly domain: number;
  readonly rid: number;
  readonly template: FunctionTemplate;
  readonly vfTemplate: FunctionTemplate;
  readonly config: ConfigStore;
  readonly device: VirtioDevice;
  readonly sriov: number;
  readonly ari: number;
  vfs: MmrVf[] = [];
  private intxLevel = false;
  /** The last System Page Size value seen and the per-VF BAR size it gives (vfBarSize memo). */
  private pageSizeBits = -1;
  private pageBarSize = 0;

  constructor(
    readonly definition: PfDefinition,
    readonly events: EventBus,
    private readonly budget: VfBudget,
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
        // spec §2); only transitional functions (the MMR VFs) carry the type id there.
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
    this.sriov = this.template.layout.addExtended(
      capabilityIds.constants.EXT_CAP_ID_SRIOV.value,
      capabilityIds.constants.EXT_CAP_VERSION.value,
      SC.SIZEOF.value,
      (base) => this.initSriov(base, info.mmrId),
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
    this.device = new VirtioDevice(this.template.model, this);
  }

  /** Offset of the MMR locator in every VF's config space. */
  readonly vfLocator: number;

  private initSriov(base: number, vfDeviceId: number): void {
    const t = this.template.config;
    const d = this.definition;
    applyRegisterTable(t, base, sriovCap, false, ['HEADER']);
    t.set(base + S.INITIAL_VF.offset, S.INITIAL_VF.size, d.initialVfs);
    t.set(base + S.TOTAL_VF.offset, S.TOTAL_VF.size, d.totalVfs);
    t.set(base + S.FUNC_LINK.offset, S.FUNC_LINK.size, this.rid & 0xff);
    t.set(base + S.VF_OFFSET.offset, S.VF_OFFSET.size, d.firstVfOffset);
    t.set(base + S.VF_STRIDE.offset, S.VF_STRIDE.size, d.vfStride);
    t.set(base + S.VF_DID.offset, S.VF_DID.size, vfDeviceId);
    t.set(base + S.SUP_PGSIZE.offset, S.SUP_PGSIZE.size, SC.SUP_PGSIZE_DEFAULT.value);
    t.set(base + S.SYS_PGSIZE.offset, S.SYS_PGSIZE.size, SC.SYS_PGSIZE_DEFAULT.value);
    placeMemoryBar(t, base + S.BAR0.offset + VF_BAR_INDEX * 4, this.vfBarSizeFor(SC.SYS_PGSIZE_DEFAULT.value));
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

  // ---- SR-IOV registers ----

  private sriovRead(reg: keyof typeof S): number {
    return this.config.read(this.sriov + S[reg].offset, S[reg].size);
  }

  get numVfs(): number {
    return this.sriovRead('NUM_VF');
  }

  get vfEnabled(): boolean {
    return (this.config.read(this.sriov + CTRL_OFFSET, CTRL_SIZE) & CTRL_VFE) !== 0;
  }

  vfMemoryDecodeEnabled(): boolean {
    const ctrl = this.config.read(this.sriov + CTRL_OFFSET, CTRL_SIZE);
    return (ctrl & CTRL_VFE) !== 0 && (ctrl & CTRL_MSE) !== 0;
  }

  /** Routing ID of VF n (0-based): PF + First VF Offset + n * VF Stride. */
  vfRid(n: number): number {
    return this.rid + this.definition.firstVfOffset + n * this.definition.vfStride;
  }

  /** VF index at a routing ID, or -1 when no VF of this PF (enabled or not) sits there. */
  vfIndexAt(rid: number): number {
    const d = this.definition;
    const delta = rid - this.rid - d.firstVfOffset;
    if (delta < 0 || d.totalVfs === 0) return -1;
    if (d.vfStride === 0) return delta === 0 ? 0 : -1;
    if (delta % d.vfStride !== 0) return -1;
    const n = delta / d.vfStride;
    return n < d.totalVfs ? n : -1;
  }

  /** Per-VF BAR size: the layout rounded up to the System Page Size (2^(12+n) for bit n). */
  private vfBarSizeFor(sysPageSizeBits: number): number {
    const page = 2 ** (PAGE_SHIFT_BASE + Math.max(0, 31 - Math.clz32(sysPageSizeBits)));
    return Math.max(BAR_LAYOUT_SIZE, page);
  }

  vfBarSize(): number {
    const bits = this.config.read(this.sriov + SYS_PGSIZE_OFFSET, SYS_PGSIZE_SIZE);
    if (bits !== this.pageSizeBits) {
      this.pageBarSize = this.vfBarSizeFor(bits);
      this.pageSizeBits = bits;
    }
    return this.pageBarSize;
  }

  /** Base of VF BAR (from the SR-IOV capability's 64-bit VF BAR pair). */
  vfBarBase(): number {
    const reg = this.sriov + S.BAR0.offset + VF_BAR_INDEX * 4;
    const low = this.config.read(reg, 4) & ~0xf;
    return (low >>> 0) + this.config.read(reg + 4, 4) * 2 ** 32;
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

  private overlaps(offset: number, width: number, reg: { offset: number; size: number }, base = 0): boolean {
    return offset < base + reg.offset + reg.size && offset + width > base + reg.offset;
  }

  override writeConfig(offset: number, width: number, value: number): void {
    if (!this.sriovWriteAllowed(offset, width, value)) return;
    const wasEnabled = this.vfEnabled;
    super.writeConfig(offset, width, value);
    if (this.overlaps(offset, width, S.SYS_PGSIZE, this.sriov)) this.syncVfBarMask();
    if (this.overlaps(offset, width, S.CTRL, this.sriov)) this.vfEnableEdge(wasEnabled);
  }

  /** Value a write would leave in an SR-IOV register, for checks made before the write. */
  private written(offset: number, width: number, value: number, reg: keyof typeof S): number {
    const r = S[reg];
    const at = this.sriov + r.offset;
    let result = this.config.read(at, r.size);
    for (let i = 0; i < r.size; i++) {
      const byteOffset = at + i;
      if (byteOffset < offset || byteOffset >= offset + width) continue;
      const byte = Math.floor(value / 2 ** (8 * (byteOffset - offset))) & 0xff;
      result = (result & ~(0xff << (8 * i))) | (byte << (8 * i));
    }
    return result >>> 0;
  }

  private refuse(code: 'VMMR_ERR_SRIOV_STATE' | 'VMMR_ERR_SRIOV_RANGE' | 'VMMR_ERR_BAD_VALUE', register: string, why: string): never {
    throw new VmmrError(code, `SR-IOV ${register}: ${why}`, { register: `SR-IOV ${register}` });
  }

  /**
   * Checks a write touching the SR-IOV capability before it lands. Strict refuses what real
   * hardware would not take; compat drops the write silently (QEMU makes NumVFs read-only while
   * VF Enable is set).
   */
  private sriovWriteAllowed(offset: number, width: number, value: number): boolean {
    if (offset + width <= this.sriov || offset >= this.sriov + SC.SIZEOF.value) return true;
    const strict = this.policyStrict;
    if (this.overlaps(offset, width, S.NUM_VF, this.sriov)) {
      const next = this.written(offset, width, value, 'NUM_VF');
      if (next !== this.numVfs) {
        if (this.vfEnabled) {
          if (strict) this.refuse('VMMR_ERR_SRIOV_STATE', 'NumVFs', 'read-only while VF Enable is set; clear VF Enable first');
          return false;
        }
        if (next > this.definition.totalVfs) {
          if (strict) {
            this.refuse('VMMR_ERR_SRIOV_RANGE', 'NumVFs', `${next} exceeds TotalVFs ${this.definition.totalVfs}`);
          }
          return false;
        }
      }
    }
    if (this.overlaps(offset, width, S.SYS_PGSIZE, this.sriov)) {
      const next = this.written(offset, width, value, 'SYS_PGSIZE');
      if (next !== this.sriovRead('SYS_PGSIZE')) {
        const supported = this.sriovRead('SUP_PGSIZE');
        const single = next !== 0 && (next & (next - 1)) === 0;
        if (this.vfEnabled) {
          if (strict) this.refuse('VMMR_ERR_SRIOV_STATE', 'System Page Size', 'cannot change while VF Enable is set');
          return false;
        }
        if (!single || (next & supported) === 0) {
          if (strict) {
            this.refuse(
              'VMMR_ERR_BAD_VALUE',
              'System Page Size',
              `0x${next.toString(16)} is not one page size out of Supported Page Sizes 0x${supported.toString(16)}`,
            );
          }
          return false;
        }
      }
    }
    if (this.overlaps(offset, width, S.CTRL, this.sriov)) {
      const next = this.written(offset, width, value, 'CTRL');
      const enabling = (next & SC.CTRL_VFE.value) !== 0 && !this.vfEnabled;
      if (enabling && this.numVfs > this.budget.available()) {
        throw new VmmrError(
          'VMMR_ERR_LIMIT',
          `SR-IOV VF Enable: ${this.numVfs} VFs exceed the process limit (${this.budget.available()} more may be enabled)`,
          { register: 'SR-IOV Control' },
        );
      }
    }
    return true;
  }

  private vfEnableEdge(wasEnabled: boolean): void {
    const enabled = this.vfEnabled;
    if (enabled === wasEnabled) return;
    if (enabled) {
      const count = this.numVfs;
      const vfs = new Array<MmrVf>(count);
      for (let n = 0; n < count; n++) vfs[n] = new MmrVf(this, n);
      this.vfs = vfs;
      if (this.events.active) {
        const last = vfs[count - 1];
        this.events.emit({
          type: 'vf-enable',
          bdf: this.bdf,
          numVfs: count,
          ...(count > 0 ? { first: vfs[0]!.bdf, last: last!.bdf } : {}),
        });
      }
    } else {
      const count = this.removeVfs();
      if (this.events.active) this.events.emit({ type: 'vf-disable', bdf: this.bdf, numVfs: count });
    }
  }

  /** Drops every VF; an emulated INTx a guest view had asserted is deasserted first. Returns how many. */
  removeVfs(): number {
    const removed = this.vfs;
    this.vfs = [];
    for (const vf of removed) vf.intxSink?.release();
    return removed.length;
  }

  /**
   * The VF BAR's writable address bits follow the per-VF size (System Page Size). Address bits
   * below a larger size become hard-wired 0, so they are cleared in the register as well:
   * otherwise a stale bit could never be written away and the VF BARs would be misaligned.
   */
  private syncVfBarMask(): void {
    const vfBar = this.sriov + S.BAR0.offset + VF_BAR_INDEX * 4;
    const mask = (~(this.vfBarSize() - 1) & ~0xf) >>> 0;
    this.template.config.setMasks(vfBar, 4, mask);
    const value = this.config.read(vfBar, 4);
    const aligned = (value & (mask | 0xf)) >>> 0;
    if (aligned !== value) this.config.poke(vfBar, 4, aligned);
  }

  /** A PF FLR also resets its SR-IOV capability: VF Enable clears and the VFs go away. */
  override functionLevelReset(): void {
    super.functionLevelReset();
    this.syncVfBarMask();
    const hadVfs = this.removeVfs();
    if (hadVfs > 0 && this.events.active) this.events.emit({ type: 'vf-disable', bdf: this.bdf, numVfs: hadVfs });
  }

  /** Restores config and device, then the VFs that VF Enable and NumVFs call for (fresh). */
  override setState(state: FunctionState): void {
    super.setState(state);
    this.syncVfBarMask();
    const count = this.vfEnabled ? this.numVfs : 0;
    const vfs = new Array<MmrVf>(count);
    for (let n = 0; n < count; n++) vfs[n] = new MmrVf(this, n);
    this.vfs = vfs;
    const command = this.config.read(H.COMMAND.offset, H.COMMAND.size);
    this.intxLevel =
      this.device.isr !== 0 && !this.msixEnabled() && (command & HC.COMMAND_INTX_DISABLE.value) === 0;
  }

  protected override afterConfigWrite(offset: number, width: number): void {
    if (this.overlaps(offset, width, H.COMMAND)) this.updateIntx();
  }

  /**
   * INTx (PCI 3.0 §6.2.2): Status.Interrupt reflects a pending interrupt (ISR non-zero while
   * MSI-X is disabled); the pin is asserted unless Command.Interrupt Disable is set.
   */
  updateIntx(): void {
    const pending = this.device.isr !== 0 && !this.msixEnabled();
    const status = this.config.read(H.STATUS.offset, H.STATUS.size);
    const bit = HC.STATUS_INTERRUPT.value;
    const nextStatus = pending ? status | bit : status & ~bit;
    if (nextStatus !== status) this.config.poke(H.STATUS.offset, H.STATUS.size, nextStatus);
    const command = this.config.read(H.COMMAND.offset, H.COMMAND.size);
    const level = pending && (command & HC.COMMAND_INTX_DISABLE.value) === 0;
    if (level !== this.intxLevel) {
      this.intxLevel = level;
      if (this.events.active) this.events.emit({ type: 'interrupt', bdf: this.bdf, mode: 'intx', level });
    }
  }

  get intxAsserted(): boolean {
    return this.intxLevel;
  }

  /** Highest routing ID any VF of this PF can take. */
  lastVfRid(): number {
    return this.definition.totalVfs === 0 ? this.rid : this.vfRid(this.definition.totalVfs - 1);
  }
}
