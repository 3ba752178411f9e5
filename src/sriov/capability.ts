import { sriovCap } from '../spec/index.js';
import { VmmrError } from '../base/errors.js';
import type { ConfigStore, ConfigTemplate } from '../pci/config-space.js';
import { applyRegisterTable, placeMemoryBar } from '../pci/registers.js';
import type { VfRouting } from './routing.js';

const S = sriovCap.registers;
const SC = sriovCap.constants;
const PAGE_SHIFT_BASE = SC.PAGE_SHIFT_BASE.value;
// Read on every VF access (decode enable, BAR size): resolved once rather than by name per call.
const CTRL_OFFSET = S.CTRL.offset;
const CTRL_SIZE = S.CTRL.size;
const CTRL_VFE = SC.CTRL_VFE.value;
const CTRL_MSE = SC.CTRL_MSE.value;
const SYS_PGSIZE_OFFSET = S.SYS_PGSIZE.offset;
const SYS_PGSIZE_SIZE = S.SYS_PGSIZE.size;

/** What the SR-IOV capability of a PF advertises. */
export interface SriovParameters extends VfRouting {
  readonly initialVfs: number;
  readonly vfDeviceId: number;
  /** The memory BAR every VF implements (index into VF BAR0..5) and its size before page rounding. */
  readonly vfBarIndex: number;
  readonly vfBarMinSize: number;
}

/** Process-wide limits a PF consults when VFs are enabled. */
export interface VfBudget {
  /** How many more VFs may be enabled in this process. */
  available(): number;
}

/** Per-VF BAR size: the BAR rounded up to the System Page Size (2^(12+n) for bit n). */
function vfBarSizeFor(minSize: number, sysPageSizeBits: number): number {
  const page = 2 ** (PAGE_SHIFT_BASE + Math.max(0, 31 - Math.clz32(sysPageSizeBits)));
  return Math.max(minSize, page);
}

/** Lays the SR-IOV capability's registers out at `base` of a PF's template. */
export function layoutSriov(t: ConfigTemplate, base: number, p: SriovParameters): void {
  applyRegisterTable(t, base, sriovCap, false, ['HEADER']);
  t.set(base + S.INITIAL_VF.offset, S.INITIAL_VF.size, p.initialVfs);
  t.set(base + S.TOTAL_VF.offset, S.TOTAL_VF.size, p.totalVfs);
  t.set(base + S.FUNC_LINK.offset, S.FUNC_LINK.size, p.rid & 0xff);
  t.set(base + S.VF_OFFSET.offset, S.VF_OFFSET.size, p.firstVfOffset);
  t.set(base + S.VF_STRIDE.offset, S.VF_STRIDE.size, p.vfStride);
  t.set(base + S.VF_DID.offset, S.VF_DID.size, p.vfDeviceId);
  t.set(base + S.SUP_PGSIZE.offset, S.SUP_PGSIZE.size, SC.SUP_PGSIZE_DEFAULT.value);
  t.set(base + S.SYS_PGSIZE.offset, S.SYS_PGSIZE.size, SC.SYS_PGSIZE_DEFAULT.value);
  placeMemoryBar(
    t,
    base + S.BAR0.offset + p.vfBarIndex * 4,
    vfBarSizeFor(p.vfBarMinSize, SC.SYS_PGSIZE_DEFAULT.value),
  );
}

function overlaps(offset: number, width: number, at: number, size: number): boolean {
  return offset < at + size && offset + width > at;
}

/**
 * The SR-IOV capability of a PF (PCIe §9.3.3; behaviour as QEMU 10.1 hw/pci/pcie_sriov.c): NumVFs
 * is read-only while VF Enable is set and above TotalVFs refused (strict) or stored with VF Enable
 * then not taking (compat); System Page Size takes one
 * supported size while VF Enable is clear and sets the per-VF BAR size; VF MSE gates VF BAR
 * decode; the VF Enable edge is reported to the PF, which creates or removes its VFs. Generic:
 * it knows nothing of virtio.
 */
export class SriovCapability {
  /** The last System Page Size value seen and the per-VF BAR size it gives (vfBarSize memo). */
  private pageSizeBits = -1;
  private pageBarSize = 0;
  private readonly vfBarRegister: number;

  constructor(
    private readonly config: ConfigStore,
    readonly base: number,
    readonly parameters: SriovParameters,
    private readonly budget: VfBudget,
    private readonly onVfEnable: (enabled: boolean) => void,
  ) {
    this.vfBarRegister = base + S.BAR0.offset + parameters.vfBarIndex * 4;
  }

  private register(reg: { offset: number; size: number }): number {
    return this.config.read(this.base + reg.offset, reg.size);
  }

  get numVfs(): number {
    return this.register(S.NUM_VF);
  }

  get vfEnabled(): boolean {
    return (this.config.read(this.base + CTRL_OFFSET, CTRL_SIZE) & CTRL_VFE) !== 0;
  }

  vfMemoryDecodeEnabled(): boolean {
    const ctrl = this.config.read(this.base + CTRL_OFFSET, CTRL_SIZE);
    return (ctrl & CTRL_VFE) !== 0 && (ctrl & CTRL_MSE) !== 0;
  }

  vfBarSize(): number {
    const bits = this.config.read(this.base + SYS_PGSIZE_OFFSET, SYS_PGSIZE_SIZE);
    if (bits !== this.pageSizeBits) {
      this.pageBarSize = vfBarSizeFor(this.parameters.vfBarMinSize, bits);
      this.pageSizeBits = bits;
    }
    return this.pageBarSize;
  }

  /** Base of the VF BAR (the capability's 64-bit VF BAR pair). */
  vfBarBase(): number {
    const low = this.config.read(this.vfBarRegister, 4) & ~0xf;
    return (low >>> 0) + this.config.read(this.vfBarRegister + 4, 4) * 2 ** 32;
  }

  /** Whether a config write touches the capability. */
  touches(offset: number, width: number): boolean {
    return overlaps(offset, width, this.base, SC.SIZEOF.value);
  }

  /** Value a write would leave in a register, for checks made before the write. */
  private written(
    offset: number,
    width: number,
    value: number,
    reg: { offset: number; size: number },
  ): number {
    const at = this.base + reg.offset;
    let result = this.config.read(at, reg.size);
    for (let i = 0; i < reg.size; i++) {
      const byteOffset = at + i;
      if (byteOffset < offset || byteOffset >= offset + width) continue;
      const byte = Math.floor(value / 2 ** (8 * (byteOffset - offset))) & 0xff;
      result = (result & ~(0xff << (8 * i))) | (byte << (8 * i));
    }
    return result >>> 0;
  }

  private refuse(
    code: 'VMMR_ERR_SRIOV_STATE' | 'VMMR_ERR_SRIOV_RANGE' | 'VMMR_ERR_BAD_VALUE',
    register: string,
    why: string,
  ): never {
    throw new VmmrError(code, `SR-IOV ${register}: ${why}`, { register: `SR-IOV ${register}` });
  }

  private touchesRegister(offset: number, width: number, reg: { offset: number; size: number }): boolean {
    return overlaps(offset, width, this.base + reg.offset, reg.size);
  }

  /**
   * Checks a write touching the capability before it lands and returns the value to write, or
   * undefined to drop it. Strict refuses what real hardware would not take; compat follows QEMU
   * 10.1 hw/pci/pcie_sriov.c (consume_config): NumVFs is read-only while VF Enable is set, takes
   * any value while it is clear, and VF Enable does not take while NumVFs exceeds TotalVFs. A VF
   * Enable beyond the process budget is refused under both.
   */
  admit(offset: number, width: number, value: number, strict: boolean): number | undefined {
    if (this.touchesRegister(offset, width, S.NUM_VF) && !this.admitsNumVfs(offset, width, value, strict)) {
      return undefined;
    }
    if (
      this.touchesRegister(offset, width, S.SYS_PGSIZE) &&
      !this.admitsPageSize(offset, width, value, strict)
    ) {
      return undefined;
    }
    if (this.touchesRegister(offset, width, S.CTRL)) return this.admitControl(offset, width, value, strict);
    return value;
  }

  private admitsNumVfs(offset: number, width: number, value: number, strict: boolean): boolean {
    const next = this.written(offset, width, value, S.NUM_VF);
    if (next === this.numVfs) return true;
    if (this.vfEnabled) {
      if (strict)
        this.refuse(
          'VMMR_ERR_SRIOV_STATE',
          'NumVFs',
          'read-only while VF Enable is set; clear VF Enable first',
        );
      return false;
    }
    if (strict && next > this.parameters.totalVfs)
      this.refuse('VMMR_ERR_SRIOV_RANGE', 'NumVFs', `${next} exceeds TotalVFs ${this.parameters.totalVfs}`);
    return true;
  }

  private admitsPageSize(offset: number, width: number, value: number, strict: boolean): boolean {
    const next = this.written(offset, width, value, S.SYS_PGSIZE);
    if (next === this.register(S.SYS_PGSIZE)) return true;
    const supported = this.register(S.SUP_PGSIZE);
    const single = next !== 0 && (next & (next - 1)) === 0;
    if (this.vfEnabled) {
      if (strict)
        this.refuse('VMMR_ERR_SRIOV_STATE', 'System Page Size', 'cannot change while VF Enable is set');
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
    return true;
  }

  /** A Control write: VF Enable with NumVFs above TotalVFs (compat only, strict never stores such a NumVFs) loses its VF Enable bit. */
  private admitControl(offset: number, width: number, value: number, strict: boolean): number {
    const next = this.written(offset, width, value, S.CTRL);
    if ((next & CTRL_VFE) === 0 || this.vfEnabled) return value;
    if (this.numVfs > this.parameters.totalVfs) {
      if (strict)
        this.refuse(
          'VMMR_ERR_SRIOV_RANGE',
          'Control',
          `VF Enable with NumVFs ${this.numVfs} above TotalVFs ${this.parameters.totalVfs}`,
        );
      const vfeBit = CTRL_VFE * 2 ** (8 * (this.base + CTRL_OFFSET - offset));
      return value - vfeBit;
    }
    if (this.numVfs > this.budget.available()) {
      throw new VmmrError(
        'VMMR_ERR_LIMIT',
        `SR-IOV VF Enable: ${this.numVfs} VFs exceed the process limit (${this.budget.available()} more may be enabled)`,
        { register: 'SR-IOV Control' },
      );
    }
    return value;
  }

  /** After a write that `admit` let through: VF BAR alignment, then the VF Enable edge. */
  afterWrite(offset: number, width: number, wasEnabled: boolean): void {
    if (overlaps(offset, width, this.vfBarRegister, 4) || this.touchesRegister(offset, width, S.SYS_PGSIZE)) {
      this.alignVfBar();
    }
    if (this.touchesRegister(offset, width, S.CTRL) && this.vfEnabled !== wasEnabled)
      this.onVfEnable(this.vfEnabled);
  }

  /**
   * The VF BAR's address bits below the per-VF size are hard-wired 0: the template's write mask
   * covers the smallest size, and a larger System Page Size clears the bits in between here
   * (otherwise the VF BARs would be misaligned and the sizing probe would lie).
   */
  alignVfBar(): void {
    const mask = (~(this.vfBarSize() - 1) & ~0xf) >>> 0;
    const value = this.config.read(this.vfBarRegister, 4);
    const aligned = (value & (mask | 0xf)) >>> 0;
    if (aligned !== value) this.config.poke(this.vfBarRegister, 4, aligned);
  }
}
