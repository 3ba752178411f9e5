/**
 * The device side of a packed virtqueue (virtio 1.2 §2.8, "Packed Virtqueues"):
 *
 *   descriptor ring   struct pvirtq_desc { le64 addr; le32 len; le16 id; le16 flags; }[size]
 *   driver area       struct pvirtq_event_suppress { le16 desc; le16 flags; }  (driver → device)
 *   device area       struct pvirtq_event_suppress                             (device → driver)
 *
 * A descriptor is available when its AVAIL bit equals the device's available wrap counter and
 * its USED bit differs (§2.8.1); both counters start at 1 and flip at each pass over the ring.
 * A chain is a list linked by NEXT in ring order whose last descriptor carries the buffer id
 * (§2.8.6); an INDIRECT descriptor stands alone and points at a table of len / 16 descriptors in
 * which only WRITE counts (§2.8.7: other flags and the id are reserved and ignored). The device
 * writes one used descriptor per chain at its next used position (id, len, AVAIL = USED = used
 * wrap counter) and skips as many positions as the chain took. Interrupts follow the driver
 * event suppression structure (ENABLE, DISABLE, or DESC with VIRTIO_F_EVENT_IDX, §2.8.10); the
 * device area stays at ENABLE (zero, as the driver initialises it): the device always wants
 * notifications, it processes each one completely.
 */
import type { DmaSpace } from '../dma/space.js';
import { VmmrError } from '../base/errors.js';
import { virtioRing } from '../spec/index.js';
import type { DescriptorChain } from './chain.js';
import { addChecked, checkRange, hex } from './checks.js';
import { VirtqueueError } from './errors.js';
import { DESC_SIZE } from './layout.js';
import { needEvent, type QueueRunState, type QueueSetup, type Virtqueue } from './queue.js';
import { RingQueue } from './ring-queue.js';

const R = virtioRing.registers;
const C = virtioRing.constants;
const F_NEXT = C.DESC_F_NEXT.value;
const F_WRITE = C.DESC_F_WRITE.value;
const F_INDIRECT = C.DESC_F_INDIRECT.value;
const AVAIL_BIT = C.PACKED_DESC_F_AVAIL.value;
const USED_BIT = C.PACKED_DESC_F_USED.value;
const WRAP_BIT = C.PACKED_EVENT_F_WRAP_CTR.value;
const OFF_MASK = (1 << WRAP_BIT) - 1;
const D_LEN = R.PACKED_DESC_LEN.offset;
const D_ID = R.PACKED_DESC_ID.offset;
const D_FLAGS = R.PACKED_DESC_FLAGS.offset;
const WORDS = { flags: D_FLAGS, link: D_ID };
const EV_OFF_WRAP = R.PACKED_EVENT_OFF_WRAP.offset;
const EV_FLAGS = R.PACKED_EVENT_FLAGS.offset;
const EVENT_FLAG_MASK = 3;

function isAvailable(flags: number, wrap: number): boolean {
  return ((flags >> AVAIL_BIT) & 1) === wrap && ((flags >> USED_BIT) & 1) !== wrap;
}

export class PackedQueue extends RingQueue implements Virtqueue {
  readonly format = 'packed' as const;
  private nextAvail = 0;
  private availWrap = 1;
  private nextUsed = 0;
  private usedWrap = 1;
  /** next used position | wrap << 15 at the last interrupt decision; -1: none yet. */
  private signalled = -1;

  constructor(dma: DmaSpace, setup: QueueSetup, state?: QueueRunState) {
    super(dma, 'packed', WORDS, setup);
    if (state) this.restore(state);
  }

  private flagsAt(position: number): number {
    try {
      return this.dma.readU16(this.addresses.desc + DESC_SIZE * position + D_FLAGS);
    } catch (e) {
      this.ringError(`descriptor at ${hex(this.addresses.desc + DESC_SIZE * position)}`, position, e);
    }
  }

  hasAvailable(): boolean {
    if (this.error) return false;
    return isAvailable(this.flagsAt(this.nextAvail), this.availWrap);
  }

  pop(): DescriptorChain | undefined {
    if (this.error) return undefined;
    if (!isAvailable(this.flagsAt(this.nextAvail), this.availWrap)) return undefined;
    return this.take(() => this.walk());
  }

  private walk(): DescriptorChain {
    const q = this.index;
    const chain = this.newChain(0);
    let position = this.nextAvail;
    let wrap = this.availWrap;
    let count = 0;
    let id = 0;
    for (;;) {
      const { address, length, flags, link } = this.readDescriptor(this.addresses.desc, position, 'ring');
      id = link;
      if (count > 0 && !isAvailable(flags, wrap)) {
        throw new VirtqueueError(
          q,
          position,
          'not-available',
          'chain continues (NEXT) into a descriptor the driver has not made available',
        );
      }
      if (++count > this.size)
        throw new VirtqueueError(
          q,
          position,
          'chain-length',
          `chain longer than the queue size ${this.size}`,
        );
      if (flags & F_INDIRECT) {
        if (count > 1 || flags & F_NEXT) {
          throw new VirtqueueError(
            q,
            position,
            'indirect-next',
            'indirect descriptor in a list linked by VIRTQ_DESC_F_NEXT',
          );
        }
        this.walkIndirect(chain, position, address, length);
      } else {
        addChecked(this.dma, chain, position, 'ring', address, length, (flags & F_WRITE) !== 0);
      }
      if (++position === this.size) {
        position = 0;
        wrap ^= 1;
      }
      if (!(flags & F_NEXT) || flags & F_INDIRECT) break;
    }
    chain.head = id;
    chain.slots = count;
    this.nextAvail = position;
    this.availWrap = wrap;
    return chain;
  }

  /** The table of an INDIRECT descriptor at ring `position` (§2.8.7: only WRITE counts there). */
  private walkIndirect(chain: DescriptorChain, position: number, table: number, length: number): void {
    const entries = this.indirectEntries(position, 'ring', length);
    if (entries > this.size) {
      throw new VirtqueueError(
        this.index,
        position,
        'chain-length',
        `indirect table of ${entries} descriptors is longer than the queue size ${this.size}`,
      );
    }
    checkRange(this.dma, this.index, position, 'ring', 'indirect table', table, length);
    for (let j = 0; j < entries; j++) {
      const d = this.readDescriptor(table, j, 'indirect');
      addChecked(this.dma, chain, j, 'indirect', d.address, d.length, (d.flags & F_WRITE) !== 0);
    }
  }

  unpop(chains: readonly DescriptorChain[]): void {
    let slots = 0;
    for (const c of chains) slots += c.slots;
    let position = this.nextAvail - slots;
    if (position < 0) {
      position += this.size;
      this.availWrap ^= 1;
    }
    this.nextAvail = position;
  }

  private writeUsed(
    position: number,
    wrap: number,
    chain: DescriptorChain,
    length: number,
    withFlags: boolean,
  ): void {
    const at = this.addresses.desc + DESC_SIZE * position;
    try {
      this.dma.writeU32(at + D_LEN, length);
      this.dma.writeU16(at + D_ID, chain.head);
      if (withFlags) this.dma.writeU16(at + D_FLAGS, wrap ? (1 << AVAIL_BIT) | (1 << USED_BIT) : 0);
    } catch (e) {
      this.ringError(`used descriptor at ${hex(at)}`, position, e);
    }
  }

  private advanceUsed(slots: number): void {
    this.nextUsed += slots;
    if (this.nextUsed >= this.size) {
      this.nextUsed -= this.size;
      this.usedWrap ^= 1;
    }
    this.requestCount++;
  }

  push(chain: DescriptorChain, length: number = chain.written): void {
    this.writeUsed(this.nextUsed, this.usedWrap, chain, length, true);
    this.advanceUsed(chain.slots);
  }

  /** The first chain's descriptor is marked used last (§2.8.9 "Multi-buffer requests"). */
  pushAll(chains: readonly DescriptorChain[], lengths?: readonly number[]): void {
    if (chains.length === 0) return;
    const firstPosition = this.nextUsed;
    const firstWrap = this.usedWrap;
    chains.forEach((c, k) => {
      this.writeUsed(this.nextUsed, this.usedWrap, c, lengths?.[k] ?? c.written, k > 0);
      this.advanceUsed(c.slots);
    });
    const at = this.addresses.desc + DESC_SIZE * firstPosition + D_FLAGS;
    try {
      this.dma.writeU16(at, firstWrap ? (1 << AVAIL_BIT) | (1 << USED_BIT) : 0);
    } catch (e) {
      this.ringError(`used descriptor at ${hex(at)}`, firstPosition, e);
    }
  }

  flush(): void {
    // Used descriptors are visible as soon as their flags are written.
  }

  needsInterrupt(): boolean {
    const now = this.nextUsed | (this.usedWrap << WRAP_BIT);
    if (this.signalled === now) return false;
    const before = this.signalled;
    this.signalled = now;
    let offWrap: number;
    let flags: number;
    try {
      offWrap = this.dma.readU16(this.addresses.driver + EV_OFF_WRAP);
      flags = this.dma.readU16(this.addresses.driver + EV_FLAGS) & EVENT_FLAG_MASK;
    } catch (e) {
      this.ringError('driver event suppression', null, e);
    }
    if (flags === C.PACKED_EVENT_FLAG_DISABLE.value) return false;
    if (flags !== C.PACKED_EVENT_FLAG_DESC.value || !this.features.eventIdx || before < 0) return true;
    // Descriptors used since the last decision, across at most one wrap (Linux
    // virtqueue_kick_prepare_packed applies the same arithmetic on the driver side).
    const beforePos = before & OFF_MASK;
    const used =
      before >> WRAP_BIT === this.usedWrap
        ? this.nextUsed - beforePos
        : this.nextUsed + this.size - beforePos;
    if (used >= this.size) return true;
    let event = offWrap & OFF_MASK;
    if (offWrap >> WRAP_BIT !== this.usedWrap) event -= this.size;
    return needEvent(event & 0xffff, this.nextUsed, (this.nextUsed - used) & 0xffff);
  }

  private restore(raw: QueueRunState): void {
    const state = this.restoreCommon(raw);
    const position = (n: number, what: string): number => {
      if ((n & OFF_MASK) >= this.size) {
        throw new VmmrError(
          'VMMR_ERR_STATE',
          `queue ${this.index} state: ${what} position ${n & OFF_MASK} is outside the ${this.size}-entry ring`,
        );
      }
      return n;
    };
    this.nextAvail = position(state.lastAvail, 'lastAvail') & OFF_MASK;
    this.availWrap = state.lastAvail >> WRAP_BIT;
    this.nextUsed = position(state.used, 'used') & OFF_MASK;
    this.usedWrap = state.used >> WRAP_BIT;
    this.signalled = state.signalled ?? -1;
  }

  getState(): QueueRunState {
    return {
      format: 'packed',
      lastAvail: this.nextAvail | (this.availWrap << WRAP_BIT),
      used: this.nextUsed | (this.usedWrap << WRAP_BIT),
      signalled: this.signalled < 0 ? null : this.signalled,
      nextHead: 0,
      ...this.commonState(),
    };
  }
}
