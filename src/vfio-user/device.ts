import type { DmaSpace } from '../dma/space.js';

/**
 * What a vfio-user server exports: one PCI function as the client sees it through VFIO
 * (<linux/vfio.h> regions and interrupt indexes). The server owns the socket, the protocol, the
 * client's DMA maps and interrupt eventfds; the device owns everything behind the regions.
 */

/** One VFIO region (index = VFIO_PCI_*_REGION_INDEX). A size of 0 means the region is absent. */
export interface RegionDescription {
  readonly index: number;
  readonly size: number;
  readonly readable: boolean;
  readonly writable: boolean;
  /** What the region is, for messages (e.g. "I/O BAR0 (guest view)"). */
  readonly name: string;
}

/** The interrupts of one VFIO IRQ index (VFIO_PCI_*_IRQ_INDEX): how many sub-indexes it has. */
export interface IrqDescription {
  readonly index: number;
  readonly count: number;
}

/** How a device raises interrupts; the server delivers them through the client's eventfds. */
export interface IrqSink {
  /** An edge interrupt: an MSI-X vector, an MSI vector, ERR or REQ. */
  trigger(index: number, subindex: number): void;
  /** The level of a level-triggered interrupt (INTx). */
  level(index: number, subindex: number, asserted: boolean): void;
}

/**
 * The client's view of the vectors it armed: the server calls `irqsChanged` after every
 * DEVICE_SET_IRQS that changed which sub-indexes of `index` have an eventfd, so the device can do
 * what the host kernel's vfio-pci does for a physical device (program and unmask, or mask, the
 * entries of its own MSI-X table).
 */
export interface IrqArming {
  armed(index: number, subindex: number): boolean;
}

/** A refusal of the device, with the errno the error reply carries. */
export class DeviceRefusal extends Error {
  override readonly name = 'DeviceRefusal';
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

export interface VfioUserDevice {
  /** Every region index 0..VFIO_PCI_NUM_REGIONS-1, in order. */
  regions(): readonly RegionDescription[];
  /** Every IRQ index 0..VFIO_PCI_NUM_IRQS-1, in order. */
  irqs(): readonly IrqDescription[];
  /**
   * Reads `into.length` bytes at `offset` of region `index` (checked by the server to lie inside
   * the region). 1, 2, 4 or 8 bytes are one access of that width; other lengths a block access.
   * Throws a DeviceRefusal (or any error: EIO) to refuse.
   */
  regionRead(index: number, offset: number, into: Uint8Array): void;
  /** Writes `data` at `offset` of region `index`; same rules. `data` is only valid during the call. */
  regionWrite(index: number, offset: number, data: Uint8Array): void;
  /** VFIO_USER_DEVICE_RESET. */
  reset(): void;
  /** A client connected: interrupts go to `sink`, DMA through `dma`, until `detach`. */
  attach(sink: IrqSink, dma: DmaSpace, arming: IrqArming): void;
  /** The client changed which sub-indexes of `index` are armed (see IrqArming). */
  irqsChanged(index: number): void;
  /** The client is gone; the device keeps its state (document "Client Disconnection"). */
  detach(): void;
}
