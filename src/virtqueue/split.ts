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
import { DmaFault, type DmaSpace } from '../dma/space.js';
import { virtioRing } from '../spec/index.js';
import { DescriptorChain } from './chain.js';
import { addChecked, checkRange, hex } from './checks.js';
import { errorFromInfo, VirtqueueError, type DescriptorTable } from './errors.js';
import { checkAlignment, DESC_SIZE, validQueueSize, type RingAddresses } from './layout.js';
import {
  checkRunState,
  hexAddress,
  needEvent,
  type QueueInfo,
  type QueueRunState,
  type QueueSetup,
  type RingFeatures,
  type Virtqueue,
} from './queue.js';

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
const D_ADDR = R.DESC_ADDR.offset;
const D_LEN = R.DESC_LEN.offset;
const D_FLAGS = R.DESC_FLAGS.offset;
const D_NEXT = R.DESC_NEXT.offset;

export class SplitQueue implements Virtqueue {
  readonly index: number;
  readonly size: number;
  readonly format = 'split' as const;
  readonly addresses: RingAddresses;
  readonly features: RingFeatures;
  private readonly mask: number;
  private readonly usedEventAt: number;
  private readonly availEventAt: number;
  private lastAvail = 0;
  private usedIdx = 0;
  private signalled = -1;
  private nextHead = 0;
  private requestCount = 0;
  private errorCount = 0;
  private error: VirtqueueError | undefined;
  /** Last avail idx read from the ring (a cache: not state). */
  private shadowAvail = 0;
  private inFlight = 0;
  private unpublished = false;

  /** Throws VirtqueueError('alignment') for misplaced parts, RangeError for an invalid size. */
  constructor(
    private readonly dma: DmaSpace,
    setup: QueueSetup,
    state?: QueueRunState,
  ) {
    if (!validQueueSize('split', setup.size))
      throw new RangeError(`split queue size ${setup.size} is not a power of 2 in 1..32768`);
    checkAlignment(setup.index, 'split', setup.addresses);
    this.index = setup.index;
    this.size = setup.size;
    this.mask = setup.size - 1;
    this.addresses = { ...setup.addresses };
    this.features = { ...setup.features };
    this.usedEventAt = this.addresses.driver + AVAIL_RING + 2 * setup.size;
    this.availEventAt = this.addresses.device + USED_RING + USED_ENTRY * setup.size;
    if (state) this.restore(state);
  }

  get broken(): VirtqueueError | undefined {
    return this.error;
  }

  get requests(): number {
    return this.requestCount;
  }

  private ringError(what: string, e: unknown): never {
    if (e instanceof DmaFault)
      throw this.stop(new VirtqueueError(this.index, null, 'dma', `${what}: ${e.message}`));
    throw e;
  }

  private stop(error: VirtqueueError): VirtqueueError {
    if (!this.error) {
      this.error = error;
      this.errorCount++;
    }
    return error;
  }

  fail(error: VirtqueueError): void {
    this.stop(error);
  }

  /** Reads avail idx and checks it is at most `size` ahead of the chains taken (§2.7.6). */
  private readAvail(): number {
    let idx: number;
    try {
      idx = this.dma.readU16(this.addresses.driver + AVAIL_IDX);
    } catch (e) {
      this.ringError('available ring index', e);
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
        this.ringError('avail_event', e);
      }
      if (this.readAvail() === this.lastAvail) return undefined;
    }
    let head: number;
    try {
      head = this.dma.readU16(this.addresses.driver + AVAIL_RING + 2 * (this.lastAvail & this.mask));
    } catch (e) {
      this.ringError('available ring entry', e);
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
    let chain: DescriptorChain;
    try {
      chain = this.walk(head);
    } catch (e) {
      if (e instanceof VirtqueueError) throw this.stop(e);
      throw e;
    }
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    this.inFlight++;
    return chain;
  }

  /** Follows a chain from `head`, checking every rule before the device sees any buffer. */
  private walk(head: number): DescriptorChain {
    const dma = this.dma;
    const q = this.index;
    const chain = new DescriptorChain(dma, q, head);
    let table = this.addresses.desc;
    let entries = this.size;
    let where: DescriptorTable = 'ring';
    let i = head;
    let seen = 0;
    let buffers = 0;
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
      const at = table + DESC_SIZE * i;
      let address: number;
      let length: number;
      let flags: number;
      let next: number;
      try {
        address = dma.readU64(at + D_ADDR);
        length = dma.readU32(at + D_LEN);
        flags = dma.readU16(at + D_FLAGS);
        next = dma.readU16(at + D_NEXT);
      } catch (e) {
        if (e instanceof DmaFault)
          throw new VirtqueueError(q, i, 'dma', `descriptor at ${hex(at)}: ${e.message}`, where);
        throw e;
      }
      if (where === 'ring') ringDescriptors++;
      if (flags & F_INDIRECT) {
        if (where === 'indirect')
          throw new VirtqueueError(
            q,
            i,
            'indirect-nested',
            'indirect descriptor inside an indirect table',
            where,
          );
        if (!this.features.indirect) {
          throw new VirtqueueError(
            q,
            i,
            'indirect-feature',
            'VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated',
            where,
          );
        }
        if (flags & F_NEXT)
          throw new VirtqueueError(
            q,
            i,
            'indirect-next',
            'VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT',
            where,
          );
        if (length === 0 || length % DESC_SIZE !== 0) {
          throw new VirtqueueError(
            q,
            i,
            'indirect-size',
            `indirect table of ${length} bytes is not a non-zero multiple of ${DESC_SIZE}`,
            where,
          );
        }
        checkRange(dma, q, i, where, 'indirect table', address, length);
        table = address;
        entries = length / DESC_SIZE;
        where = 'indirect';
        i = 0;
        seen = 0;
        continue;
      }
      if (++buffers > this.size) {
        throw new VirtqueueError(
          q,
          i,
          'chain-length',
          `chain longer than the queue size ${this.size}`,
          where,
        );
      }
      addChecked(dma, chain, i, where, address, length, (flags & F_WRITE) !== 0);
      if (!(flags & F_NEXT)) break;
      if (next >= entries) {
        throw new VirtqueueError(
          q,
          i,
          'next-range',
          `next ${next} is outside the ${entries}-entry ${where === 'ring' ? 'descriptor table' : 'indirect table'}`,
          where,
        );
      }
      if (this.features.inOrder) {
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
      i = next;
    }
    if (this.features.inOrder) this.nextHead = (head + ringDescriptors) & this.mask;
    return chain;
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
      this.ringError('used ring entry', e);
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
      this.ringError('used ring index', e);
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
      this.ringError('interrupt suppression', e);
    }
  }

  /** avail idx for NOTIFY_ON_EMPTY (a jump is reported on the next pop, not here). */
  private readAvailQuiet(): number {
    return this.dma.readU16(this.addresses.driver + AVAIL_IDX);
  }

  private restore(raw: QueueRunState): void {
    const state = checkRunState(this.index, 'split', raw);
    this.lastAvail = state.lastAvail;
    this.shadowAvail = state.lastAvail;
    this.usedIdx = state.used;
    this.signalled = state.signalled ?? -1;
    this.nextHead = state.nextHead & this.mask;
    this.requestCount = state.requests;
    this.errorCount = state.errors;
    this.error = state.error ? errorFromInfo(this.index, state.error) : undefined;
  }

  getState(): QueueRunState {
    return {
      format: 'split',
      lastAvail: this.lastAvail,
      used: this.usedIdx,
      signalled: this.signalled < 0 ? null : this.signalled,
      nextHead: this.nextHead,
      requests: this.requestCount,
      errors: this.errorCount,
      error: this.error ? this.error.toJSON() : null,
    };
  }

  info(): QueueInfo {
    return {
      index: this.index,
      size: this.size,
      addresses: {
        desc: hexAddress(this.addresses.desc),
        driver: hexAddress(this.addresses.driver),
        device: hexAddress(this.addresses.device),
      },
      features: { ...this.features },
      ...this.getState(),
    };
  }
}
