/**
 * The device side of a split virtqueue (virtio 1.2 §2.7, "Split Virtqueues"):
 *
 *   descriptor table  struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; }[size]
 *   available ring    le16 flags; le16 idx; le16 ring[size]; le16 used_event;   (driver area)
 *   used ring         le16 flags; le16 idx; { le32 id; le32 len; }[size]; le16 avail_event; (device area)
 *
 * Chains (§2.7.5, §2.7.5.3 Indirect Descriptors): NEXT links within a table; zero or more direct
 * descriptors may be followed by one INDIRECT descriptor whose table holds the rest of the chain.
 * Event suppression (§2.7.7, §2.7.10): AVAIL_F_NO_INTERRUPT, or used_event / avail_event with
 * VIRTIO_F_EVENT_IDX; VIRTIO_F_NOTIFY_ON_EMPTY (legacy) interrupts whenever the ring runs empty.
 * VIRTIO_F_IN_ORDER (§2.7.4 and §2.7.5.3): the driver uses descriptors in ring order, which is
 * checked; the device uses buffers in order and writes one used entry per chain.
 */
import type { DmaSpace } from '../dma/space.js';
import { virtioRing } from '../spec/index.js';
import type { DescriptorChain } from './chain.js';
import { addChecked, checkRange } from './checks.js';
import { VirtqueueError, type DescriptorTable } from './errors.js';
import { needEvent, type QueueRunState, type QueueSetup, type Virtqueue } from './queue.js';
import { RingQueue } from './ring-queue.js';

const R = virtioRing.registers;
const C = virtioRing.constants;
const F_NEXT = C.DESC_F_NEXT.value;
const F_WRITE = C.DESC_F_WRITE.value;
const F_INDIRECT = C.DESC_F_INDIRECT.value;
const AVAIL_IDX = R.AVAIL_IDX.offset;
const AVAIL_RING = R.AVAIL_RING.offset;
const USED_IDX = R.USED_IDX.offset;
const USED_RING = R.USED_RING.offset;
const USED_ENTRY = C.USED_ENTRY.value;
const ELEM_ID = R.USED_ELEM_ID.offset;
const ELEM_LEN = R.USED_ELEM_LEN.offset;
const WORDS = { flags: R.DESC_FLAGS.offset, link: R.DESC_NEXT.offset };

export class SplitQueue extends RingQueue implements Virtqueue {
  readonly format = 'split' as const;
  private readonly mask: number;
  private readonly usedEventAt: number;
  private readonly availEventAt: number;
  private lastAvail = 0;
  private usedIdx = 0;
  private signalled = -1;
  private nextHead = 0;
  /** Last avail idx read from the ring (a cache: not state). */
  private shadowAvail = 0;
  private inFlight = 0;
  private unpublished = false;

  /** Throws VirtqueueError('alignment') for misplaced parts, RangeError for an invalid size. */
  constructor(dma: DmaSpace, setup: QueueSetup, state?: QueueRunState) {
    super(dma, 'split', WORDS, setup);
    this.mask = setup.size - 1;
    this.usedEventAt = this.addresses.driver + AVAIL_RING + 2 * setup.size;
    this.availEventAt = this.addresses.device + USED_RING + USED_ENTRY * setup.size;
    if (state) this.restore(state);
  }

  /** Reads avail idx and checks it is at most `size` ahead of the chains taken (§2.7.6). */
  private readAvail(): number {
    let idx: number;
    try {
      idx = this.dma.readU16(this.addresses.driver + AVAIL_IDX);
    } catch (e) {
      this.ringError('available ring index', null, e);
    }
    const ahead = (idx - this.lastAvail) & 0xffff;
    if (ahead > this.size) {
      throw this.stop(
        new VirtqueueError(
          this.index,
          null,
          'avail-index',
          `available index ${idx} is ${ahead} entries ahead of the device (last ${this.lastAvail}), more than the queue size ${this.size}`,
        ),
      );
    }
    this.shadowAvail = idx;
    return idx;
  }

  hasAvailable(): boolean {
    if (this.error) return false;
    return this.lastAvail !== this.shadowAvail || this.readAvail() !== this.lastAvail;
  }

  pop(): DescriptorChain | undefined {
    if (this.error) return undefined;
    if (this.lastAvail === this.shadowAvail && this.readAvail() === this.lastAvail) {
      if (!this.features.eventIdx) return undefined;
      // Ask for a notification at the next buffer, then look again: the driver may have added
      // one before it could see avail_event (§2.7.10).
      try {
        this.dma.writeU16(this.availEventAt, this.lastAvail);
      } catch (e) {
        this.ringError('avail_event', null, e);
      }
      if (this.readAvail() === this.lastAvail) return undefined;
    }
    let head: number;
    try {
      head = this.dma.readU16(this.addresses.driver + AVAIL_RING + 2 * (this.lastAvail & this.mask));
    } catch (e) {
      this.ringError('available ring entry', null, e);
    }
    if (head >= this.size) {
      throw this.stop(
        new VirtqueueError(
          this.index,
          head,
          'head-range',
          `available ring entry ${this.lastAvail & this.mask} names descriptor ${head} of a ${this.size}-entry table`,
        ),
      );
    }
    if (this.features.inOrder && head !== this.nextHead) {
      throw this.stop(
        new VirtqueueError(
          this.index,
          head,
          'in-order',
          `chain starts at descriptor ${head}, VIRTIO_F_IN_ORDER requires ${this.nextHead}`,
        ),
      );
    }
    const chain = this.take(() => this.walk(head));
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    this.inFlight++;
    return chain;
  }

  /** Follows a chain from `head`, checking every rule before the device sees any buffer. */
  private walk(head: number): DescriptorChain {
    const q = this.index;
    const chain = this.newChain(head);
    let table = this.addresses.desc;
    let entries = this.size;
    let where: DescriptorTable = 'ring';
    let i = head;
    let seen = 0;
    let ringDescriptors = 0;
    for (;;) {
      if (++seen > entries) {
        throw new VirtqueueError(
          q,
          i,
          'loop',
          `chain from descriptor ${head} revisits a descriptor (more than the ${entries} entries of its table)`,
          where,
        );
      }
      const { address, length, flags, link: next } = this.readDescriptor(table, i, where);
      if (where === 'ring') ringDescriptors++;
      if (flags & F_INDIRECT) {
        entries = this.enterIndirect(i, where, flags, address, length);
        table = address;
        where = 'indirect';
        i = 0;
        seen = 0;
        continue;
      }
      if (chain.bufferCount >= this.size) {
        throw new VirtqueueError(
          q,
          i,
          'chain-length',
          `chain longer than the queue size ${this.size}`,
          where,
        );
      }
      addChecked(this.dma, chain, i, where, address, length, (flags & F_WRITE) !== 0);
      if (!(flags & F_NEXT)) break;
      this.checkNext(i, where, next, entries);
      i = next;
    }
    if (this.features.inOrder) this.nextHead = (head + ringDescriptors) & this.mask;
    return chain;
  }

  /** An INDIRECT descriptor of the ring (§2.7.5.3.1): returns its table's entries. */
  private enterIndirect(
    i: number,
    where: DescriptorTable,
    flags: number,
    address: number,
    length: number,
  ): number {
    const q = this.index;
    if (where === 'indirect')
      throw new VirtqueueError(
        q,
        i,
        'indirect-nested',
        'indirect descriptor inside an indirect table',
        where,
      );
    const entries = this.indirectEntries(i, where, length);
    if (flags & F_NEXT)
      throw new VirtqueueError(
        q,
        i,
        'indirect-next',
        'VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT',
        where,
      );
    checkRange(this.dma, q, i, where, 'indirect table', address, length);
    return entries;
  }

  /** `next` stays inside its table and, with VIRTIO_F_IN_ORDER, follows `i` (§2.7.5.3, §2.7.4). */
  private checkNext(i: number, where: DescriptorTable, next: number, entries: number): void {
    const q = this.index;
    if (next >= entries) {
      throw new VirtqueueError(
        q,
        i,
        'next-range',
        `next ${next} is outside the ${entries}-entry ${where === 'ring' ? 'descriptor table' : 'indirect table'}`,
        where,
      );
    }
    if (!this.features.inOrder) return;
    const expected = where === 'ring' ? (i + 1) & this.mask : i + 1;
    if (next !== expected) {
      throw new VirtqueueError(
        q,
        i,
        'in-order',
        `next ${next}, VIRTIO_F_IN_ORDER requires ${expected}`,
        where,
      );
    }
  }

  unpop(chains: readonly DescriptorChain[]): void {
    if (chains.length === 0) return;
    this.lastAvail = (this.lastAvail - chains.length) & 0xffff;
    this.inFlight -= chains.length;
    if (this.features.inOrder) this.nextHead = chains[0]!.head;
  }

  push(chain: DescriptorChain, length: number = chain.written): void {
    const entry = this.addresses.device + USED_RING + USED_ENTRY * (this.usedIdx & this.mask);
    try {
      this.dma.writeU32(entry + ELEM_ID, chain.head);
      this.dma.writeU32(entry + ELEM_LEN, length);
    } catch (e) {
      this.ringError('used ring entry', null, e);
    }
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.unpublished = true;
    this.requestCount++;
    if (this.inFlight > 0) this.inFlight--;
  }

  pushAll(chains: readonly DescriptorChain[], lengths?: readonly number[]): void {
    chains.forEach((c, k) => this.push(c, lengths?.[k] ?? c.written));
    this.flush();
  }

  flush(): void {
    if (!this.unpublished) return;
    try {
      this.dma.writeU16(this.addresses.device + USED_IDX, this.usedIdx);
    } catch (e) {
      this.ringError('used ring index', null, e);
    }
    this.unpublished = false;
  }

  needsInterrupt(): boolean {
    this.flush();
    if (this.signalled === this.usedIdx) return false;
    const old = this.signalled;
    this.signalled = this.usedIdx;
    try {
      if (this.features.notifyOnEmpty && this.inFlight === 0 && this.readAvailQuiet() === this.lastAvail)
        return true;
      if (!this.features.eventIdx) {
        return (
          (this.dma.readU16(this.addresses.driver + R.AVAIL_FLAGS.offset) & C.AVAIL_F_NO_INTERRUPT.value) ===
          0
        );
      }
      return old < 0 || needEvent(this.dma.readU16(this.usedEventAt), this.usedIdx, old);
    } catch (e) {
      this.ringError('interrupt suppression', null, e);
    }
  }

  /** avail idx for NOTIFY_ON_EMPTY (a jump is reported on the next pop, not here). */
  private readAvailQuiet(): number {
    return this.dma.readU16(this.addresses.driver + AVAIL_IDX);
  }

  private restore(raw: QueueRunState): void {
    const state = this.restoreCommon(raw);
    this.lastAvail = state.lastAvail;
    this.shadowAvail = state.lastAvail;
    this.usedIdx = state.used;
    this.signalled = state.signalled ?? -1;
    this.nextHead = state.nextHead & this.mask;
  }

  getState(): QueueRunState {
    return {
      format: 'split',
      lastAvail: this.lastAvail,
      used: this.usedIdx,
      signalled: this.signalled < 0 ? null : this.signalled,
      nextHead: this.nextHead,
      ...this.commonState(),
    };
  }
}
