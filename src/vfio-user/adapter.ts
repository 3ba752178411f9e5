import { MAX_BLOCK_LENGTH, readBlock, writeBlock } from '../access/block.js';
import { read, write, type AccessTarget, type AccessValue, type Space } from '../access/index.js';
import type { DmaSpace } from '../dma/space.js';
import { isVmmrError, type VmmrErrorCode } from '../base/errors.js';
import type { EventBus, InterruptEvent } from '../base/events.js';
import type { MmrVf } from '../mmr/vf.js';
import { listCapabilities } from '../pci/capabilities.js';
import { capabilityIds, msixCap, msixTableEntry, pciHeader, pcieCap } from '../spec/index.js';
import type { Machine } from '../machine/machine.js';
import type { GuestView } from '../translator/guest-view.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';
import {
  DeviceRefusal,
  type IrqArming,
  type IrqDescription,
  type IrqSink,
  type RegionDescription,
  type VfioUserDevice,
} from './device.js';
import { Errno, VFIO } from './protocol.js';

/**
 * A vmmr function as a vfio-user device, through the one access entry point (src/access) so every
 * region access keeps its width and order and is checked, traced and evented like any other.
 *
 * - `guest`: the translator's view of an MMR VF, the transitional device 1af4:1000+n a legacy
 *   driver binds: config region = `guest-config`, BAR0 = the I/O BAR (`io`), the VF memory BAR
 *   passed through at its own index.
 * - `function`: the PF or the MMR VF as it is: config region = `config`, its memory BAR.
 *
 * Interrupts (docs/vfio-user.md "Interrupts"): the client's DEVICE_SET_IRQS plays the part of the
 * host kernel's vfio-pci programming a physical function's MSI-X table. A vector the client arms
 * with an eventfd is unmasked in the function's own MSI-X table, a vector it disarms is masked
 * again; the function's MSI-X messages then become writes of the vector's eventfd. INTx follows the
 * function's pin (the guest view's emulated pin, or a PF's) through the server's automask protocol.
 */
export type ExportView = 'guest' | 'function';

const H = pciHeader.registers;
const CONFIG_SIZE = pciHeader.constants.CFG_SPACE_EXP_SIZE.value;
const INTX = VFIO.INTX_IRQ_INDEX.value;
const MSIX = VFIO.MSIX_IRQ_INDEX.value;
const ENTRY = msixTableEntry.constants.ENTRY_SIZE.value;
const VECTOR_CTRL = msixTableEntry.registers.VECTOR_CTRL.offset;
const MASKBIT = msixTableEntry.constants.CTRL_MASKBIT.value;

/** errno of an error reply for each refusal of the core (EIO for the rest). */
const ERRNO_BY_CODE: Partial<Record<VmmrErrorCode, number>> = {
  VMMR_ERR_BAD_WIDTH: Errno.EINVAL,
  VMMR_ERR_UNALIGNED: Errno.EINVAL,
  VMMR_ERR_OUT_OF_RANGE: Errno.EINVAL,
  VMMR_ERR_BAD_OFFSET: Errno.EINVAL,
  VMMR_ERR_BAD_VALUE: Errno.EINVAL,
  VMMR_ERR_BAD_SPACE: Errno.EINVAL,
  VMMR_ERR_UNMAPPED: Errno.EINVAL,
  VMMR_ERR_WIDTH_MISMATCH: Errno.EINVAL,
  VMMR_ERR_READ_ONLY: Errno.EACCES,
  VMMR_ERR_WRITE_ONLY: Errno.EACCES,
  // A function that does not decode the access: the master abort of a bus (vfio-pci: EIO).
  VMMR_ERR_DECODE_DISABLED: Errno.EIO,
  VMMR_ERR_IO_DISABLED: Errno.EIO,
  VMMR_ERR_VF_DISABLED: Errno.ENODEV,
  VMMR_ERR_NO_FUNCTION: Errno.ENODEV,
};

function refusal(e: unknown): never {
  if (isVmmrError(e)) throw new DeviceRefusal(ERRNO_BY_CODE[e.code] ?? Errno.EIO, `${e.message} (${e.code})`);
  throw e;
}

type Listener = (event: InterruptEvent) => void;

/** One EventBus subscription routing interrupt events by BDF (for many exports). */
export class InterruptRouter {
  private readonly routes = new Map<string, Listener>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly events: EventBus) {}

  route(bdf: string, listener: Listener): () => void {
    this.routes.set(bdf, listener);
    this.unsubscribe ??= this.events.subscribe((e) => {
      if (e.type === 'interrupt') this.routes.get(e.bdf)?.(e);
    });
    return () => {
      if (this.routes.get(bdf) !== listener) return;
      this.routes.delete(bdf);
      if (this.routes.size === 0) {
        this.unsubscribe?.();
        this.unsubscribe = undefined;
      }
    };
  }
}

interface Place {
  readonly space: Space;
  readonly name: string;
  readonly size: number;
}

function littleEndian(value: AccessValue, into: Uint8Array): void {
  if (typeof value === 'bigint') {
    for (let i = 0; i < into.length; i++) into[i] = Number((value >> BigInt(8 * i)) & 0xffn);
  } else {
    for (let i = 0; i < into.length; i++) into[i] = (value >>> (8 * i)) & 0xff;
  }
}

function fromLittleEndian(data: Uint8Array): AccessValue {
  if (data.length === 8) {
    const lo = data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! * 2 ** 24);
    const hi = data[4]! | (data[5]! << 8) | (data[6]! << 16) | (data[7]! * 2 ** 24);
    return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  }
  let value = 0;
  for (let i = data.length - 1; i >= 0; i--) value = value * 256 + data[i]!;
  return value;
}

export class FunctionDevice implements VfioUserDevice {
  private readonly places = new Map<number, Place>();
  private readonly configSpace: Space;
  private readonly interrupts: readonly IrqDescription[];
  private readonly msixTable: { bar: Space; offset: number } | undefined;
  private sink: IrqSink | undefined;
  private arming: IrqArming | undefined;
  private stopRouting: (() => void) | undefined;
  /** The client's DMA space while one is attached (for the device's data path). */
  dma: DmaSpace | undefined;

  constructor(
    readonly fn: VirtioPciFunction,
    readonly view: ExportView,
    private readonly router: InterruptRouter,
    /** The translator's guest view of the VF, for the guest view's config and I/O spaces. */
    private readonly guest: GuestView | undefined,
  ) {
    if (view === 'guest' && !guest) {
      throw new DeviceRefusal(Errno.EINVAL, `${fn.bdf} is a PF: the guest view exists for MMR VFs only`);
    }
    this.configSpace = view === 'guest' ? 'guest-config' : 'config';
    const bar = fn.template.barIndex;
    const barSpace = `bar${bar}` as Space;
    this.places.set(VFIO.CONFIG_REGION_INDEX.value, {
      space: this.configSpace,
      name: `config space (${view} view)`,
      size: CONFIG_SIZE,
    });
    this.places.set(bar, { space: barSpace, name: `memory BAR${bar}`, size: fn.barSize() });
    if (view === 'guest') {
      this.places.set(VFIO.BAR0_REGION_INDEX.value, {
        space: 'io',
        name: 'I/O BAR0 (guest view)',
        size: guest!.ioLength,
      });
    }
    const caps = listCapabilities({
      read: (offset, width) => Number(read(this.target(this.configSpace), this.configSpace, offset, width)),
    });
    const has = (id: number): number => caps.find((c) => c.kind === 'standard' && c.id === id)?.offset ?? -1;
    const msix = has(capabilityIds.constants.CAP_ID_MSIX.value);
    const msixFlags =
      msix < 0
        ? 0
        : Number(
            read(this.target(this.configSpace), this.configSpace, msix + msixCap.registers.FLAGS.offset, 2),
          );
    const vectors = msix < 0 ? 0 : (msixFlags & msixCap.constants.FLAGS_QSIZE.value) + 1;
    if (msix >= 0) {
      const table = Number(
        read(this.target(this.configSpace), this.configSpace, msix + msixCap.registers.TABLE.offset, 4),
      );
      this.msixTable = {
        bar: `bar${table & msixCap.constants.TABLE_BIR.value}` as Space,
        offset: (table & msixCap.constants.TABLE_OFFSET.value) >>> 0,
      };
    }
    const pin = Number(read(this.target(this.configSpace), this.configSpace, H.INTERRUPT_PIN.offset, 1));
    const pcie = has(capabilityIds.constants.CAP_ID_EXP.value) >= 0;
    this.interrupts = [
      { index: INTX, count: pin !== 0 ? 1 : 0 },
      { index: VFIO.MSI_IRQ_INDEX.value, count: has(capabilityIds.constants.CAP_ID_MSI.value) >= 0 ? 1 : 0 },
      { index: MSIX, count: vectors },
      { index: VFIO.ERR_IRQ_INDEX.value, count: pcie ? 1 : 0 },
      { index: VFIO.REQ_IRQ_INDEX.value, count: 1 },
    ];
  }

  /** What an access to `space` reaches: the guest view for its spaces, else the function. */
  private target(space: Space): AccessTarget {
    return space === 'io' || space === 'guest-config' ? this.guest! : this.fn;
  }

  regions(): readonly RegionDescription[] {
    const out: RegionDescription[] = [];
    for (let index = 0; index < VFIO.NUM_REGIONS.value; index++) {
      const place = this.places.get(index);
      out.push(
        place
          ? { index, size: place.size, readable: true, writable: true, name: place.name }
          : { index, size: 0, readable: false, writable: false, name: 'not implemented' },
      );
    }
    return out;
  }

  irqs(): readonly IrqDescription[] {
    return this.interrupts;
  }

  private place(index: number): Place {
    const place = this.places.get(index);
    if (!place) throw new DeviceRefusal(Errno.EINVAL, `region ${index} is not implemented`);
    return place;
  }

  /** 1, 2, 4, 8 bytes: one access of that width; anything else: block accesses of up to 4096 bytes. */
  regionRead(index: number, offset: number, into: Uint8Array): void {
    const { space } = this.place(index);
    const n = into.length;
    try {
      if (n === 1 || n === 2 || n === 4 || n === 8) {
        littleEndian(read(this.target(space), space, offset, n), into);
        return;
      }
      for (const [at, length] of blocks(offset, n))
        into.set(readBlock(this.target(space), space, at, length), at - offset);
    } catch (e) {
      refusal(e);
    }
  }

  regionWrite(index: number, offset: number, data: Uint8Array): void {
    const { space } = this.place(index);
    const n = data.length;
    try {
      if (n === 1 || n === 2 || n === 4 || n === 8) {
        write(this.target(space), space, offset, n, fromLittleEndian(data));
        return;
      }
      for (const [at, length] of blocks(offset, n))
        writeBlock(this.target(space), space, at, data.subarray(at - offset, at - offset + length));
    } catch (e) {
      refusal(e);
    }
  }

  /**
   * VFIO_USER_DEVICE_RESET as vfio-pci resets a function: a PCIe Function Level Reset (Device
   * Control Initiate FLR, written through the config space like any driver would); the guest view's
   * own header (Command, BARs, Interrupt Line) returns to its reset state as well.
   */
  reset(): void {
    try {
      const caps = listCapabilities({
        read: (offset, width) => Number(read(this.target(this.configSpace), this.configSpace, offset, width)),
      });
      const pcie = caps.find(
        (c) => c.kind === 'standard' && c.id === capabilityIds.constants.CAP_ID_EXP.value,
      );
      if (pcie) {
        const devctl = pcie.offset + pcieCap.registers.DEVCTL.offset;
        const value = Number(read(this.target(this.configSpace), this.configSpace, devctl, 2));
        write(
          this.target(this.configSpace),
          this.configSpace,
          devctl,
          2,
          value | pcieCap.constants.DEVCTL_BCR_FLR.value,
        );
      }
      if (this.view === 'guest') {
        this.guest!.config.clear();
        this.guest!.updateIntx();
      }
      // vfio-pci restores a function's state after its reset, the MSI-X vectors it programmed
      // included: the vectors the client armed are unmasked in the fresh table again.
      this.irqsChanged(MSIX);
    } catch (e) {
      refusal(e);
    }
  }

  attach(sink: IrqSink, dma: DmaSpace, arming: IrqArming): void {
    this.sink = sink;
    this.arming = arming;
    this.dma = dma;
    // The device's DMA goes to the client's maps (shared fds, or DMA_READ/DMA_WRITE messages).
    this.fn.hub.path(this.fn).useDma(dma);
    this.stopRouting = this.router.route(this.fn.bdf, (e) => this.interrupt(e));
    if (this.interrupts[INTX]!.count > 0) sink.level(INTX, 0, this.intxAsserted());
  }

  private intxAsserted(): boolean {
    if (this.guest) return this.guest.intxAsserted;
    const status = Number(read(this.target('config'), 'config', H.STATUS.offset, 2));
    const command = Number(read(this.target('config'), 'config', H.COMMAND.offset, 2));
    return (
      (status & pciHeader.constants.STATUS_INTERRUPT.value) !== 0 &&
      (command & pciHeader.constants.COMMAND_INTX_DISABLE.value) === 0
    );
  }

  private interrupt(e: InterruptEvent): void {
    const sink = this.sink;
    if (!sink) return;
    if (e.mode === 'msix') sink.trigger(MSIX, e.vector);
    else if (e.mode === 'intx' && (e.view === 'guest') === (this.view === 'guest'))
      sink.level(INTX, 0, e.level);
  }

  irqsChanged(index: number): void {
    if (index !== MSIX || !this.msixTable || !this.arming) return;
    for (let v = 0; v < this.interrupts[MSIX]!.count; v++) this.setVectorMask(v, !this.arming.armed(MSIX, v));
  }

  /** Masks or unmasks one entry of the function's MSI-X table, as a host driver would. */
  private setVectorMask(vector: number, masked: boolean): void {
    const table = this.msixTable!;
    const at = table.offset + vector * ENTRY + VECTOR_CTRL;
    try {
      const ctrl = Number(read(this.target(table.bar), table.bar, at, 4));
      const next = masked ? ctrl | MASKBIT : ctrl & ~MASKBIT;
      if (next !== ctrl) write(this.target(table.bar), table.bar, at, 4, next >>> 0);
    } catch (e) {
      // The BAR does not decode (VF MSE clear): the table cannot be programmed now.
      if (!isVmmrError(e)) throw e;
    }
  }

  detach(): void {
    this.stopRouting?.();
    this.stopRouting = undefined;
    this.fn.hub.existing(this.fn)?.useDma(undefined);
    if (this.msixTable) for (let v = 0; v < this.interrupts[MSIX]!.count; v++) this.setVectorMask(v, true);
    this.sink = undefined;
    this.arming = undefined;
    this.dma = undefined;
  }
}

/** [offset, length] pieces of at most MAX_BLOCK_LENGTH bytes, cut at multiples of it. */
function blocks(offset: number, length: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let at = offset; at < offset + length;) {
    const end = Math.min(offset + length, (Math.floor(at / MAX_BLOCK_LENGTH) + 1) * MAX_BLOCK_LENGTH);
    out.push([at, end - at]);
    at = end;
  }
  return out;
}

/** The vfio-user device of `fn` of `machine` in `view` (throws a DeviceRefusal for a guest view of a PF). */
export function exportFunction(
  machine: Machine,
  fn: VirtioPciFunction,
  view: ExportView,
  router: InterruptRouter,
): FunctionDevice {
  const guest = view === 'guest' && fn.kind === 'vf' ? machine.translator.view(fn as MmrVf) : undefined;
  return new FunctionDevice(fn, view, router, guest);
}
