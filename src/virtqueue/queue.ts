/**
 * What the device side of every virtqueue offers, whatever its format (split §2.7 or packed
 * §2.8), the state it keeps across notifications, and the ring features negotiated for it.
 */
import { VmmrError } from '../base/errors.js';
import { features } from '../spec/index.js';
import type { DescriptorChain } from './chain.js';
import type { VirtqueueError, VirtqueueErrorInfo } from './errors.js';
import type { RingAddresses, RingFormat } from './layout.js';

const F = features.common.constants;

/** The transport features that change how a ring is processed (virtio 1.2 §6, Reserved Feature Bits). */
export interface RingFeatures {
  /** VIRTIO_F_INDIRECT_DESC (28): indirect descriptor tables. */
  indirect: boolean;
  /** VIRTIO_F_EVENT_IDX (29): used_event / avail_event (split), descriptor events (packed). */
  eventIdx: boolean;
  /** VIRTIO_F_IN_ORDER (35): buffers used in the order they were made available. */
  inOrder: boolean;
  /** VIRTIO_F_NOTIFY_ON_EMPTY (24, legacy): interrupt when the ring runs empty, suppressed or not. */
  notifyOnEmpty: boolean;
}

function bit(lo: number, hi: number, n: number): boolean {
  return n < 32 ? ((lo >>> n) & 1) === 1 : ((hi >>> (n - 32)) & 1) === 1;
}

/** The ring features and format of a driver's negotiated feature bits (two 32-bit halves). */
export function ringFeatures(lo: number, hi: number): RingFeatures & { format: RingFormat } {
  return {
    indirect: bit(lo, hi, F.RING_INDIRECT_DESC.value),
    eventIdx: bit(lo, hi, F.RING_EVENT_IDX.value),
    inOrder: bit(lo, hi, F.IN_ORDER.value),
    notifyOnEmpty: bit(lo, hi, F.NOTIFY_ON_EMPTY.value),
    format: bit(lo, hi, F.RING_PACKED.value) ? 'packed' : 'split',
  };
}

/** Everything a queue needs from the transport: where it is and how it was negotiated. */
export interface QueueSetup {
  /** Queue index (errors and used entries name it). */
  index: number;
  /** Queue size (split: a power of 2; packed: any) up to 32768. */
  size: number;
  format: RingFormat;
  addresses: RingAddresses;
  features: RingFeatures;
}

/**
 * What the device keeps across notifications, small and JSON-safe. Split: free-running 16-bit
 * indices. Packed: ring position | wrap counter << 15 (as Linux encodes event offsets).
 */
export interface QueueRunState {
  format: RingFormat;
  /** Split: the avail index up to which chains were taken; packed: next available position. */
  lastAvail: number;
  /** Split: the used index; packed: next used position. */
  used: number;
  /** The `used` value when the device last decided about an interrupt (null: never). */
  signalled: number | null;
  /** Split with VIRTIO_F_IN_ORDER: the descriptor the next chain must start at. */
  nextHead: number;
  /** Chains completed. */
  requests: number;
  /** Chains refused as broken (at most 1: a broken queue stops). */
  errors: number;
  error: VirtqueueErrorInfo | null;
}

/** A queue as the API shows it. */
export interface QueueInfo extends QueueRunState {
  index: number;
  size: number;
  addresses: { desc: string; driver: string; device: string };
  features: RingFeatures;
}

export interface Virtqueue {
  readonly index: number;
  readonly size: number;
  readonly format: RingFormat;
  /** The error that stopped the queue, if any. */
  readonly broken: VirtqueueError | undefined;
  /** Whether a chain is available (a broken queue has none). Throws like `pop`. */
  hasAvailable(): boolean;
  /**
   * The next available chain, checked whole, or undefined when there is none. A broken chain
   * throws its VirtqueueError and stops the queue.
   */
  pop(): DescriptorChain | undefined;
  /** Gives back the chains last popped, newest last, unused (e.g. a frame that did not fit). */
  unpop(chains: readonly DescriptorChain[]): void;
  /** Returns a chain to the driver with `length` bytes written (default: `chain.written`). */
  push(chain: DescriptorChain, length?: number): void;
  /** Returns several chains of one request together (e.g. a frame in mergeable buffers). */
  pushAll(chains: readonly DescriptorChain[], lengths?: readonly number[]): void;
  /** Makes pushed entries visible to the driver (split: the used index). */
  flush(): void;
  /** After a batch: whether the driver wants an interrupt now (event suppression applied). */
  needsInterrupt(): boolean;
  /** Stops the queue with `error` (a device found the request broken). */
  fail(error: VirtqueueError): void;
  getState(): QueueRunState;
  info(): QueueInfo;
}

/** Linux `vring_need_event`: whether moving from `old` to `next` crossed `event` (16-bit). */
export function needEvent(event: number, next: number, old: number): boolean {
  return ((next - event - 1) & 0xffff) < ((next - old) & 0xffff);
}

export function hexAddress(n: number): string {
  return `0x${n.toString(16)}`;
}

/** A run state checked field by field before a queue takes it (VmmrError VMMR_ERR_STATE otherwise). */
export function checkRunState(queue: number, format: RingFormat, state: QueueRunState): QueueRunState {
  const bad = (what: string): never => {
    throw new VmmrError('VMMR_ERR_STATE', `queue ${queue} state: ${what}`);
  };
  if (typeof state !== 'object' || state === null) bad('not an object');
  if (state.format !== format) bad(`format ${String(state.format)}, expected ${format}`);
  const u16 = (n: unknown, what: string): number =>
    Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffff
      ? (n as number)
      : bad(`${what} ${String(n)} is not a 16-bit value`);
  const count = (n: unknown, what: string): number =>
    Number.isSafeInteger(n) && (n as number) >= 0
      ? (n as number)
      : bad(`${what} ${String(n)} is not a count`);
  return {
    format,
    lastAvail: u16(state.lastAvail, 'lastAvail'),
    used: u16(state.used, 'used'),
    signalled: state.signalled === null ? null : u16(state.signalled, 'signalled'),
    nextHead: u16(state.nextHead, 'nextHead'),
    requests: count(state.requests, 'requests'),
    errors: count(state.errors, 'errors'),
    error: state.error ?? null,
  };
}
