/**
 * The driver side of virtqueues, for tests and benchmarks (in the manner of rust-vmm's mock
 * driver): lays out split rings (legacy from a PFN, or modern at three addresses) and packed
 * rings in a DmaSpace, makes buffers available (direct chains or one indirect table), decides
 * whether to notify from the device's suppression fields, reads used entries back and applies
 * interrupt suppression from the driver side. It follows the driver rules of virtio 1.2 §2.7
 * and §2.8 (and what Linux drivers/virtio/virtio_ring.c does), so a device that gets them
 * wrong shows it. Raw writers let tests build the broken rings a driver must never build.
 */
import type { DmaSpace } from '../dma/space.js';
import { virtioRing } from '../spec/index.js';
import { availBytes, DESC_SIZE, legacyLayout, usedBytes, type RingAddresses } from '../virtqueue/layout.js';
import { needEvent, type RingFeatures } from '../virtqueue/queue.js';

const R = virtioRing.registers;
const C = virtioRing.constants;
const F_NEXT = C.DESC_F_NEXT.value;
const F_WRITE = C.DESC_F_WRITE.value;
const F_INDIRECT = C.DESC_F_INDIRECT.value;
const AVAIL_BIT = 1 << C.PACKED_DESC_F_AVAIL.value;
const USED_BIT = 1 << C.PACKED_DESC_F_USED.value;
const WRAP_SHIFT = C.PACKED_EVENT_F_WRAP_CTR.value;

/** One buffer of a chain the driver makes available. */
export interface DriverBuffer {
  address: number;
  length: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE). */
  writable: boolean;
}

export interface UsedEntry {
  /** Split: head descriptor; packed: buffer id. */
  id: number;
  length: number;
}

export interface AddOptions {
  /** Put the buffers in an indirect table at this address (16 bytes per buffer). */
  indirect?: number;
}

/** What every driver ring offers, whatever its format. */
export interface DriverRing {
  readonly size: number;
  readonly addresses: RingAddresses;
  /** Descriptors (split) or ring slots (packed) still free. */
  readonly free: number;
  /** Makes a chain available; returns its id (split: head descriptor; packed: buffer id). */
  add(buffers: readonly DriverBuffer[], options?: AddOptions): number;
  /** Whether the device wants a notification for what was added since the last call. */
  kickNeeded(): boolean;
  /** Used entries the device wrote since the last call, freeing their descriptors. */
  takeUsed(): UsedEntry[];
  /** Asks the device not to interrupt (true) or to interrupt again (false). */
  suppressInterrupts(on: boolean): void;
  /** VIRTIO_F_EVENT_IDX: interrupt only once `count` more chains have been used. */
  interruptAfter(count: number): void;
}

function zero(dma: DmaSpace, address: number, length: number): void {
  dma.write(address, new Uint8Array(length), 0, length);
}

function writeDescriptor(dma: DmaSpace, at: number, b: DriverBuffer, flags: number, next: number): void {
  dma.writeU64(at + R.DESC_ADDR.offset, b.address);
  dma.writeU32(at + R.DESC_LEN.offset, b.length);
  dma.writeU16(at + R.DESC_FLAGS.offset, flags);
  dma.writeU16(at + R.DESC_NEXT.offset, next);
}

/** Writes an indirect table of `buffers` chained in order (index i → i + 1). */
function writeIndirectTable(dma: DmaSpace, table: number, buffers: readonly DriverBuffer[]): void {
  buffers.forEach((b, i) => {
    const last = i === buffers.length - 1;
    writeDescriptor(
      dma,
      table + DESC_SIZE * i,
      b,
      (b.writable ? F_WRITE : 0) | (last ? 0 : F_NEXT),
      last ? 0 : i + 1,
    );
  });
}

/** Bytes a split ring needs at its three addresses. */
export function splitRingParts(size: number): { desc: number; driver: number; device: number } {
  return { desc: DESC_SIZE * size, driver: availBytes(size), device: usedBytes(size) };
}

export class SplitRingDriver implements DriverRing {
  readonly addresses: RingAddresses;
  private readonly freeList: number[] = [];
  private readonly chains = new Map<number, number[]>();
  private availIdx = 0;
  private kickedAt = 0;
  private usedSeen = 0;
  private nextInOrder = 0;
  private inOrderFree: number;

  constructor(
    private readonly dma: DmaSpace,
    readonly size: number,
    addresses: RingAddresses,
    private readonly features: RingFeatures,
  ) {
    this.addresses = { ...addresses };
    const parts = splitRingParts(size);
    zero(dma, addresses.desc, parts.desc);
    zero(dma, addresses.driver, parts.driver);
    zero(dma, addresses.device, parts.device);
    for (let i = size - 1; i >= 0; i--) this.freeList.push(i);
    this.inOrderFree = size;
  }

  /** A legacy ring at QUEUE_PFN `pfn` (virtio 1.2 §2.7.2: 4096-byte alignment). */
  static legacy(dma: DmaSpace, pfn: number, size: number, features: RingFeatures): SplitRingDriver {
    return new SplitRingDriver(dma, size, legacyLayout(pfn, size), features);
  }

  get free(): number {
    return this.features.inOrder ? this.inOrderFree : this.freeList.length;
  }

  private takeDescriptor(): number {
    if (this.features.inOrder) {
      const i = this.nextInOrder;
      this.nextInOrder = (i + 1) % this.size;
      this.inOrderFree--;
      return i;
    }
    return this.freeList.pop()!;
  }

  add(buffers: readonly DriverBuffer[], options: AddOptions = {}): number {
    const direct = options.indirect === undefined ? buffers : [];
    const needed = options.indirect === undefined ? buffers.length : 1;
    if (needed === 0) throw new RangeError('a chain needs at least one buffer');
    if (needed > this.free) throw new RangeError(`no room: ${needed} descriptors needed, ${this.free} free`);
    const used: number[] = [];
    for (let k = 0; k < needed; k++) used.push(this.takeDescriptor());
    const table = this.addresses.desc;
    if (options.indirect !== undefined) {
      writeIndirectTable(this.dma, options.indirect, buffers);
      writeDescriptor(
        this.dma,
        table + DESC_SIZE * used[0]!,
        { address: options.indirect, length: DESC_SIZE * buffers.length, writable: false },
        F_INDIRECT,
        0,
      );
    } else {
      direct.forEach((b, k) => {
        const last = k === direct.length - 1;
        writeDescriptor(
          this.dma,
          table + DESC_SIZE * used[k]!,
          b,
          (b.writable ? F_WRITE : 0) | (last ? 0 : F_NEXT),
          last ? 0 : used[k + 1]!,
        );
      });
    }
    const head = used[0]!;
    this.chains.set(head, used);
    this.putAvail(head);
    return head;
  }

  /** Raw: puts `head` in the next available ring slot and publishes the index (any value, for broken rings). */
  putAvail(head: number): void {
    this.dma.writeU16(this.addresses.driver + R.AVAIL_RING.offset + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dma.writeU16(this.addresses.driver + R.AVAIL_IDX.offset, this.availIdx);
  }

  /** Raw: writes descriptor `index` of the table as given. */
  writeRaw(index: number, address: number, length: number, flags: number, next: number): void {
    writeDescriptor(
      this.dma,
      this.addresses.desc + DESC_SIZE * index,
      { address, length, writable: false },
      flags,
      next,
    );
  }

  /** Raw: sets avail idx to any value (e.g. far ahead of the device). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.dma.writeU16(this.addresses.driver + R.AVAIL_IDX.offset, this.availIdx);
  }

  kickNeeded(): boolean {
    const old = this.kickedAt;
    const next = this.availIdx;
    this.kickedAt = next;
    if (old === next) return false;
    if (this.features.eventIdx) {
      const availEvent = this.dma.readU16(
        this.addresses.device + R.USED_RING.offset + C.USED_ENTRY.value * this.size,
      );
      return needEvent(availEvent, next, old);
    }
    return (this.dma.readU16(this.addresses.device + R.USED_FLAGS.offset) & C.USED_F_NO_NOTIFY.value) === 0;
  }

  takeUsed(): UsedEntry[] {
    const out: UsedEntry[] = [];
    const usedIdx = this.dma.readU16(this.addresses.device + R.USED_IDX.offset);
    while (this.usedSeen !== usedIdx) {
      const at =
        this.addresses.device + R.USED_RING.offset + C.USED_ENTRY.value * (this.usedSeen % this.size);
      const id = this.dma.readU32(at + R.USED_ELEM_ID.offset);
      const length = this.dma.readU32(at + R.USED_ELEM_LEN.offset);
      const descriptors = this.chains.get(id);
      if (!descriptors) throw new Error(`device returned descriptor ${id}, which heads no chain in flight`);
      this.chains.delete(id);
      if (this.features.inOrder) this.inOrderFree += descriptors.length;
      else this.freeList.push(...descriptors);
      out.push({ id, length });
      this.usedSeen = (this.usedSeen + 1) & 0xffff;
    }
    return out;
  }

  suppressInterrupts(on: boolean): void {
    if (this.features.eventIdx) {
      // With EVENT_IDX the flags are not used (§2.7.7.1); push used_event far away instead.
      this.dma.writeU16(this.usedEventAt(), on ? (this.usedSeen - 1) & 0xffff : this.usedSeen);
    } else {
      this.dma.writeU16(this.addresses.driver + R.AVAIL_FLAGS.offset, on ? C.AVAIL_F_NO_INTERRUPT.value : 0);
    }
  }

  interruptAfter(count: number): void {
    this.dma.writeU16(this.usedEventAt(), (this.usedSeen + count - 1) & 0xffff);
  }

  private usedEventAt(): number {
    return this.addresses.driver + R.AVAIL_RING.offset + C.AVAIL_ENTRY.value * this.size;
  }
}

export class PackedRingDriver implements DriverRing {
  readonly addresses: RingAddresses;
  private nextAvail = 0;
  private availWrap = 1;
  private nextUsed = 0;
  private usedWrap = 1;
  private freeSlots: number;
  private readonly freeIds: number[] = [];
  private readonly slotsById = new Map<number, number>();
  private addedSinceKick = 0;

  constructor(
    private readonly dma: DmaSpace,
    readonly size: number,
    addresses: RingAddresses,
    private readonly features: RingFeatures,
  ) {
    this.addresses = { ...addresses };
    zero(dma, addresses.desc, DESC_SIZE * size);
    zero(dma, addresses.driver, C.PACKED_EVENT_SIZE.value);
    zero(dma, addresses.device, C.PACKED_EVENT_SIZE.value);
    for (let i = size - 1; i >= 0; i--) this.freeIds.push(i);
    this.freeSlots = size;
  }

  get free(): number {
    return this.freeSlots;
  }

  private flagsFor(b: { writable: boolean }, more: boolean, extra = 0): number {
    const wrapBits = this.availWrap ? AVAIL_BIT : USED_BIT;
    return (b.writable ? F_WRITE : 0) | (more ? F_NEXT : 0) | extra | wrapBits;
  }

  add(buffers: readonly DriverBuffer[], options: AddOptions = {}): number {
    const ring: Array<{ address: number; length: number; writable: boolean; extra: number }> =
      options.indirect === undefined
        ? buffers.map((b) => ({ ...b, extra: 0 }))
        : [
            {
              address: options.indirect,
              length: DESC_SIZE * buffers.length,
              writable: false,
              extra: F_INDIRECT,
            },
          ];
    if (ring.length === 0) throw new RangeError('a chain needs at least one buffer');
    if (ring.length > this.freeSlots || this.freeIds.length === 0)
      throw new RangeError(`no room: ${ring.length} slots needed, ${this.freeSlots} free`);
    if (options.indirect !== undefined) {
      buffers.forEach((b, i) => {
        const at = options.indirect! + DESC_SIZE * i;
        this.dma.writeU64(at + R.PACKED_DESC_ADDR.offset, b.address);
        this.dma.writeU32(at + R.PACKED_DESC_LEN.offset, b.length);
        this.dma.writeU16(at + R.PACKED_DESC_ID.offset, 0);
        this.dma.writeU16(at + R.PACKED_DESC_FLAGS.offset, b.writable ? F_WRITE : 0);
      });
    }
    const id = this.freeIds.pop()!;
    const headPosition = this.nextAvail;
    let headFlags = 0;
    ring.forEach((b, k) => {
      const at = this.addresses.desc + DESC_SIZE * this.nextAvail;
      const flags = this.flagsFor(b, k < ring.length - 1, b.extra);
      this.dma.writeU64(at + R.PACKED_DESC_ADDR.offset, b.address);
      this.dma.writeU32(at + R.PACKED_DESC_LEN.offset, b.length);
      this.dma.writeU16(at + R.PACKED_DESC_ID.offset, id);
      // The head's flags are written last, once the rest of the list is in place (§2.8.6).
      if (k === 0) headFlags = flags;
      else this.dma.writeU16(at + R.PACKED_DESC_FLAGS.offset, flags);
      if (++this.nextAvail === this.size) {
        this.nextAvail = 0;
        this.availWrap ^= 1;
      }
    });
    this.dma.writeU16(this.addresses.desc + DESC_SIZE * headPosition + R.PACKED_DESC_FLAGS.offset, headFlags);
    this.slotsById.set(id, ring.length);
    this.freeSlots -= ring.length;
    this.addedSinceKick += ring.length;
    return id;
  }

  kickNeeded(): boolean {
    const added = this.addedSinceKick;
    this.addedSinceKick = 0;
    if (added === 0) return false;
    const offWrap = this.dma.readU16(this.addresses.device + R.PACKED_EVENT_OFF_WRAP.offset);
    const flags = this.dma.readU16(this.addresses.device + R.PACKED_EVENT_FLAGS.offset) & 3;
    if (flags === C.PACKED_EVENT_FLAG_DISABLE.value) return false;
    if (flags !== C.PACKED_EVENT_FLAG_DESC.value || !this.features.eventIdx) return true;
    let event = offWrap & ((1 << WRAP_SHIFT) - 1);
    if (offWrap >> WRAP_SHIFT !== this.availWrap) event -= this.size;
    return needEvent(event & 0xffff, this.nextAvail, (this.nextAvail - added) & 0xffff);
  }

  takeUsed(): UsedEntry[] {
    const out: UsedEntry[] = [];
    for (;;) {
      const at = this.addresses.desc + DESC_SIZE * this.nextUsed;
      const flags = this.dma.readU16(at + R.PACKED_DESC_FLAGS.offset);
      const avail = (flags & AVAIL_BIT) !== 0 ? 1 : 0;
      const used = (flags & USED_BIT) !== 0 ? 1 : 0;
      if (avail !== used || used !== this.usedWrap) break;
      const id = this.dma.readU16(at + R.PACKED_DESC_ID.offset);
      const length = this.dma.readU32(at + R.PACKED_DESC_LEN.offset);
      const slots = this.slotsById.get(id);
      if (slots === undefined) throw new Error(`device returned buffer id ${id}, which is not in flight`);
      this.slotsById.delete(id);
      this.freeIds.push(id);
      this.freeSlots += slots;
      this.nextUsed += slots;
      if (this.nextUsed >= this.size) {
        this.nextUsed -= this.size;
        this.usedWrap ^= 1;
      }
      out.push({ id, length });
    }
    return out;
  }

  suppressInterrupts(on: boolean): void {
    this.dma.writeU16(
      this.addresses.driver + R.PACKED_EVENT_FLAGS.offset,
      on ? C.PACKED_EVENT_FLAG_DISABLE.value : C.PACKED_EVENT_FLAG_ENABLE.value,
    );
  }

  /** Descriptor event at the used position `count` chains of one slot each from now. */
  interruptAfter(count: number): void {
    let position = this.nextUsed + count - 1;
    let wrap = this.usedWrap;
    while (position >= this.size) {
      position -= this.size;
      wrap ^= 1;
    }
    this.dma.writeU16(
      this.addresses.driver + R.PACKED_EVENT_OFF_WRAP.offset,
      position | (wrap << WRAP_SHIFT),
    );
    this.dma.writeU16(this.addresses.driver + R.PACKED_EVENT_FLAGS.offset, C.PACKED_EVENT_FLAG_DESC.value);
  }

  /** Raw: writes the descriptor at ring `position` as given (flags included). */
  writeRaw(position: number, address: number, length: number, id: number, flags: number): void {
    const at = this.addresses.desc + DESC_SIZE * position;
    this.dma.writeU64(at + R.PACKED_DESC_ADDR.offset, address);
    this.dma.writeU32(at + R.PACKED_DESC_LEN.offset, length);
    this.dma.writeU16(at + R.PACKED_DESC_ID.offset, id);
    this.dma.writeU16(at + R.PACKED_DESC_FLAGS.offset, flags);
  }

  /** The AVAIL/USED bits that mark a descriptor available in the current pass. */
  get availableBits(): number {
    return this.availWrap ? AVAIL_BIT : USED_BIT;
  }
}
