/**
 * What split (virtio 1.2 §2.7) and packed (§2.8) queues share: their identity, the counters
 * and the error that stops them, DMA faults on ring structures turned into VirtqueueError('dma'),
 * the descriptor reader and the INDIRECT rules (§2.7.5.3.1, §2.8.7), and the API view.
 */
import { DmaFault, type DmaSpace } from '../dma/space.js';
import { virtioRing } from '../spec/index.js';
import { DescriptorChain } from './chain.js';
import { hex } from './checks.js';
import { errorFromInfo, VirtqueueError, type DescriptorTable } from './errors.js';
import { checkAlignment, DESC_SIZE, validQueueSize, type RingAddresses, type RingFormat } from './layout.js';
import {
  checkRunState,
  hexAddress,
  type QueueInfo,
  type QueueRunState,
  type QueueSetup,
  type RingFeatures,
} from './queue.js';

const R = virtioRing.registers;

/**
 * One descriptor as read from a table. `link` is the split format's `next` and the packed
 * format's buffer `id`; where it and `flags` sit differs per format.
 */
export interface RawDescriptor {
  address: number;
  length: number;
  flags: number;
  link: number;
}

/** Offsets of a format's 16-bit descriptor words. */
export interface DescriptorWords {
  flags: number;
  link: number;
}

export abstract class RingQueue {
  readonly index: number;
  readonly size: number;
  abstract readonly format: RingFormat;
  readonly addresses: RingAddresses;
  readonly features: RingFeatures;
  protected requestCount = 0;
  protected errorCount = 0;
  protected error: VirtqueueError | undefined;
  /** Reused by `readDescriptor` (one descriptor at a time). */
  protected readonly descriptor: RawDescriptor = { address: 0, length: 0, flags: 0, link: 0 };

  /** Throws VirtqueueError('alignment') for misplaced parts, RangeError for an invalid size. */
  constructor(
    protected readonly dma: DmaSpace,
    format: RingFormat,
    private readonly words: DescriptorWords,
    setup: QueueSetup,
  ) {
    if (!validQueueSize(format, setup.size)) {
      const allowed = format === 'split' ? 'a power of 2 in 1..32768' : 'in 1..32768';
      throw new RangeError(`${format} queue size ${setup.size} is not ${allowed}`);
    }
    checkAlignment(setup.index, format, setup.addresses);
    this.index = setup.index;
    this.size = setup.size;
    this.addresses = { ...setup.addresses };
    this.features = { ...setup.features };
  }

  get broken(): VirtqueueError | undefined {
    return this.error;
  }

  get requests(): number {
    return this.requestCount;
  }

  protected stop(error: VirtqueueError): VirtqueueError {
    if (!this.error) {
      this.error = error;
      this.errorCount++;
    }
    return error;
  }

  fail(error: VirtqueueError): void {
    this.stop(error);
  }

  /** A DMA fault on a ring structure stops the queue; anything else is rethrown. */
  protected ringError(what: string, descriptor: number | null, e: unknown): never {
    if (e instanceof DmaFault)
      throw this.stop(new VirtqueueError(this.index, descriptor, 'dma', `${what}: ${e.message}`));
    throw e;
  }

  /** Walks a chain (`walk` checks every rule); a broken chain stops the queue. */
  protected take(walk: () => DescriptorChain): DescriptorChain {
    try {
      return walk();
    } catch (e) {
      if (e instanceof VirtqueueError) throw this.stop(e);
      throw e;
    }
  }

  /** Reads descriptor `i` of the table at `table` into `this.descriptor`. */
  protected readDescriptor(table: number, i: number, where: DescriptorTable): RawDescriptor {
    const at = table + DESC_SIZE * i;
    const d = this.descriptor;
    try {
      d.flags = this.dma.readU16(at + this.words.flags);
      d.address = this.dma.readU64(at + R.DESC_ADDR.offset);
      d.length = this.dma.readU32(at + R.DESC_LEN.offset);
      d.link = this.dma.readU16(at + this.words.link);
    } catch (e) {
      if (e instanceof DmaFault)
        throw new VirtqueueError(this.index, i, 'dma', `descriptor at ${hex(at)}: ${e.message}`, where);
      throw e;
    }
    return d;
  }

  /**
   * The rules every INDIRECT descriptor meets: VIRTIO_F_INDIRECT_DESC negotiated and a table
   * that is a non-zero multiple of 16 bytes. Returns the table's entries.
   */
  protected indirectEntries(descriptor: number, where: DescriptorTable, length: number): number {
    const q = this.index;
    if (!this.features.indirect) {
      throw new VirtqueueError(
        q,
        descriptor,
        'indirect-feature',
        'VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated',
        where,
      );
    }
    if (length === 0 || length % DESC_SIZE !== 0) {
      throw new VirtqueueError(
        q,
        descriptor,
        'indirect-size',
        `indirect table of ${length} bytes is not a non-zero multiple of ${DESC_SIZE}`,
        where,
      );
    }
    return length / DESC_SIZE;
  }

  protected newChain(head: number): DescriptorChain {
    return new DescriptorChain(this.dma, this.index, head);
  }

  /** Counters and error of a checked run state (the format-specific indices are the caller's). */
  protected restoreCommon(raw: QueueRunState): QueueRunState {
    const state = checkRunState(this.index, this.format, raw);
    this.requestCount = state.requests;
    this.errorCount = state.errors;
    this.error = state.error ? errorFromInfo(this.index, state.error) : undefined;
    return state;
  }

  /** The counters and error part of the run state. */
  protected commonState(): Pick<QueueRunState, 'requests' | 'errors' | 'error'> {
    return {
      requests: this.requestCount,
      errors: this.errorCount,
      error: this.error ? this.error.toJSON() : null,
    };
  }

  abstract getState(): QueueRunState;

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
