/**
 * What a device back-end sees of the function it serves: the negotiated features, whether the
 * driver uses the legacy interface, its live queues, its device configuration, and the ways to
 * signal (a queue's used buffers, a configuration change, DEVICE_NEEDS_RESET, events). A
 * transport (the virtio register model, a test harness) implements it; device code depends on
 * nothing else, so the same back-end serves a VF, a PF, a translated VF and a unit test.
 */
import type { VirtioTypeName } from '../spec/index.js';
import type { DeviceEvent } from '../base/events.js';
import type { Virtqueue, VirtqueueError } from '../virtqueue/index.js';

/** Negotiated feature bits as two 32-bit halves (bit n of `lo` is feature n, of `hi` n + 32). */
export interface FeatureBits {
  readonly lo: number;
  readonly hi: number;
}

export function hasFeature(features: FeatureBits, bit: number): boolean {
  return bit < 32 ? ((features.lo >>> bit) & 1) === 1 : ((features.hi >>> (bit - 32)) & 1) === 1;
}

export type { DeviceEvent, NetDropReason } from '../base/events.js';

export interface DeviceContext {
  /** Feature bits the driver accepted. */
  readonly features: FeatureBits;
  /** The driver uses the legacy interface (legacy header sizes, guest-native = little-endian). */
  readonly legacy: boolean;
  /** The queue with this index if the driver set it up and enabled it. */
  queue(index: number): Virtqueue | undefined;
  /** Used buffers on `queue` that the driver wants to hear about (suppression already applied). */
  interrupt(queue: number): void;
  /** A little-endian field of the device configuration. */
  readConfig(offset: number, width: 1 | 2 | 4): number;
  /** Device-side change of configuration bytes, without a notification. */
  setConfig(offset: number, bytes: ArrayLike<number>): void;
  /** A configuration change notification (virtio 1.2 §2.5.1 / §4.1.4.5: ISR bit 1 or the config vector). */
  configChanged(): void;
  /** A queue is broken: DEVICE_NEEDS_RESET and a configuration change (virtio 1.2 §2.1.2). */
  needsReset(error: VirtqueueError): void;
  /** Whether anyone listens to events (devices skip building events otherwise). */
  readonly listening: boolean;
  emit(event: DeviceEvent): void;
}

/** A device back-end: the transport calls `notify` after the notifying access has returned. */
export interface DeviceBackend {
  readonly type: VirtioTypeName;
  /** The driver notified queue `queue`; the device processes what is available, in order. */
  notify(queue: number): void;
  /** Device reset (virtio 1.2 §2.4): drops what was in flight; host-side contents stay. */
  reset(): void;
}
