/**
 * The request loop every device shares: take each available chain, let the device handle it,
 * return it with the length written, then ask the queue whether the driver wants an interrupt.
 * A broken chain stops the queue and reaches the transport as DEVICE_NEEDS_RESET; other queues
 * and other functions carry on.
 */
import {
  isVirtqueueError,
  type DescriptorChain,
  type Virtqueue,
  type VirtqueueError,
} from '../virtqueue/index.js';
import type { DeviceContext } from './context.js';

/** What a handler returns: the used length, or HOLD to keep the chain (returned later). */
export const HOLD = -1;

/** Reports a broken queue: stops it, DEVICE_NEEDS_RESET, event. */
export function reportBroken(ctx: DeviceContext, queue: Virtqueue, error: VirtqueueError): void {
  queue.fail(error);
  ctx.needsReset(error);
  if (ctx.listening) ctx.emit({ type: 'queue-error', error: error.toJSON() });
}

/** After the device returned chains on its own (received frames): interrupt if the driver wants one. */
export function signalUsed(ctx: DeviceContext, queue: Virtqueue): void {
  try {
    if (queue.needsInterrupt()) ctx.interrupt(queue.index);
  } catch (e) {
    if (!isVirtqueueError(e)) throw e;
    reportBroken(ctx, queue, e);
  }
}

/**
 * Serves every chain available on queue `index` (while `more()` holds, when given: a device
 * that fills receive buffers takes them only while it has data). `handle` returns the used
 * length (or HOLD); it may throw a VirtqueueError (e.g. rule `request`) for a chain that holds no
 * valid request.
 */
export function serveQueue(
  ctx: DeviceContext,
  index: number,
  handle: (chain: DescriptorChain) => number,
  more: () => boolean = () => true,
): void {
  const queue = ctx.queue(index);
  if (!queue || queue.broken) return;
  let returned = 0;
  try {
    for (let chain = more() ? queue.pop() : undefined; chain; chain = more() ? queue.pop() : undefined) {
      const length = handle(chain);
      if (length === HOLD) continue;
      queue.push(chain, length);
      returned++;
    }
  } catch (e) {
    if (!isVirtqueueError(e)) throw e;
    reportBroken(ctx, queue, e);
  }
  if (returned > 0) signalUsed(ctx, queue);
}
