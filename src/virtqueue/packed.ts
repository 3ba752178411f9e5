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
import { DmaFault, type DmaSpace } from '../dma/space.js';
import { VmmrError } from '../base/errors.js';
import { virtioRing } from '../spec/index.js';
import { DescriptorChain } from './chain.js';
import { addChecked, checkRange, hex } from './checks.js';
import { errorFromInfo, VirtqueueError } from './errors.js';
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
const AVAIL_BIT = C.PACKED_DESC_F_AVAIL.value;
const USED_BIT = C.PACKED_DESC_F_USED.value;
const WRAP_BIT = C.PACKED_EVENT_F_WRAP_CTR.value;
const OFF_MASK = (1 << WRAP_BIT) - 1;
const D_ADDR = R.PACKED_DESC_ADDR.offset;
const D_LEN = R.PACKED_DESC_LEN.offset;
const D_ID = R.PACKED_DESC_ID.offset;
const D_FLAGS = R.PACKED_DESC_FLAGS.offset;
const EV_OFF_WRAP = R.PACKED_EVENT_OFF_WRAP.offset;
const EV_FLAGS = R.PACKED_EVENT_FLAGS.offset;
const EVENT_FLAG_MASK = 3;

function isAvailable(flags: number, wrap: number): boolean {
  return ((flags >> AVAIL_BIT) & 1) === wrap && ((flags >> USED_BIT) & 1) !== wrap;
}

export class PackedQueue implements Virtqueue {
  readonly index: number;
  readonly size: number;
  readonly format = 'packed' as const;
  readonly addresses: RingAddresses;
  readonly features: RingFeatures;
  private nextAvail = 0;
  private availWrap = 1;
  private nextUsed = 0;
  private usedWrap = 1;
  /** next used position | wrap << 15 at the last interrupt decision; -1: none yet. */
  private signalled = -1;
  private requestCount = 0;
  private errorCount = 0;
  private error: VirtqueueError | undefined;

  constructor(
    private readonly dma: DmaSpace,
    setup: QueueSetup,
    state?: QueueRunState,
  ) {
    if (!validQueueSize('packed', setup.size))
      throw new RangeError(`packed queue size ${setup.size} is not in 1..32768`);
    checkAlignment(setup.index, 'packed', setup.addresses);
    this.index = setup.index;
    this.size = setup.size;
    this.addresses = { ...setup.addresses };
    this.features = { ...setup.features };
    if (state) this.restore(state);
  }

  get broken(): VirtqueueError | undefined {
    return this.error;
  }

  get requests(): number {
    return this.requestCount;
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

  private ringError(what: string, descriptor: number | null, e: unknown): never {
    if (e instanceof DmaFault)
      throw this.stop(new VirtqueueError(this.index, descriptor, 'dma', `${what}: ${e.message}`));
    throw e;
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
    try {
      return this.walk();
    } catch (e) {
      if (e instanceof VirtqueueError) throw this.stop(e);
      throw e;
    }
  }

  private walk(): DescriptorChain {
    const dma = this.dma;
    const q = this.index;
    const chain = new DescriptorChain(dma, q, 0);
    let position = this.nextAvail;
    let wrap = this.availWrap;
    let count = 0;
    let id = 0;
    for (;;) {
      const at = this.addresses.desc + DESC_SIZE * position;
      let address: number;
      let length: number;
      let flags: number;
      try {
        flags = dma.readU16(at + D_FLAGS);
        address = dma.readU64(at + D_ADDR);
        length = dma.readU32(at + D_LEN);
        id = dma.readU16(at + D_ID);
      } catch (e) {
        if (e instanceof DmaFault)
          throw new VirtqueueError(q, position, 'dma', `descriptor at ${hex(at)}: ${e.message}`);
        throw e;
      }
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
        if (!this.features.indirect) {
          throw new VirtqueueError(
            q,
            position,
            'indirect-feature',
            'VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated',
          );
        }
        if (count > 1 || flags & F_NEXT) {
          throw new VirtqueueError(
            q,
            position,
            'indirect-next',
            'indirect descriptor in a list linked by VIRTQ_DESC_F_NEXT',
          );
        }
        if (length === 0 || length % DESC_SIZE !== 0) {
          throw new VirtqueueError(
            q,
            position,
            'indirect-size',
            `indirect table of ${length} bytes is not a non-zero multiple of ${DESC_SIZE}`,
          );
        }
        const entries = length / DESC_SIZE;
        if (entries > this.size) {
          throw new VirtqueueError(
            q,
            position,
            'chain-length',
            `indirect table of ${entries} descriptors is longer than the queue size ${this.size}`,
          );
        }
        checkRange(dma, q, position, 'ring', 'indirect table', address, length);
        this.walkIndirect(chain, address, entries);
      } else {
        addChecked(dma, chain, position, 'ring', address, length, (flags & F_WRITE) !== 0);
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

  private walkIndirect(chain: DescriptorChain, table: number, entries: number): void {
    const dma = this.dma;
    for (let j = 0; j < entries; j++) {
      const at = table + DESC_SIZE * j;
      let address: number;
      let length: number;
      let flags: number;
      try {
        address = dma.readU64(at + D_ADDR);
        length = dma.readU32(at + D_LEN);
        flags = dma.readU16(at + D_FLAGS);
      } catch (e) {
        if (e instanceof DmaFault)
          throw new VirtqueueError(
            this.index,
            j,
            'dma',
            `descriptor at ${hex(at)}: ${e.message}`,
            'indirect',
          );
        throw e;
      }
      addChecked(dma, chain, j, 'indirect', address, length, (flags & F_WRITE) !== 0);
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
    const state = checkRunState(this.index, 'packed', raw);
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
    this.requestCount = state.requests;
    this.errorCount = state.errors;
    this.error = state.error ? errorFromInfo(this.index, state.error) : undefined;
  }

  getState(): QueueRunState {
    return {
      format: 'packed',
      lastAvail: this.nextAvail | (this.availWrap << WRAP_BIT),
      used: this.nextUsed | (this.usedWrap << WRAP_BIT),
      signalled: this.signalled < 0 ? null : this.signalled,
      nextHead: 0,
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
