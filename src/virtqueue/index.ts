/**
 * Virtqueues over a DMA space, transport-free: split and packed rings, descriptor chains,
 * event suppression, and the errors a broken chain is reported with.
 */
import type { DmaSpace } from '../dma/space.js';
import { PackedQueue } from './packed.js';
import type { QueueRunState, QueueSetup, Virtqueue } from './queue.js';
import { SplitQueue } from './split.js';

export { DescriptorChain, type ChainBuffer } from './chain.js';
export {
  CHAIN_RULES,
  isVirtqueueError,
  VirtqueueError,
  type ChainRule,
  type DescriptorTable,
  type VirtqueueErrorInfo,
} from './errors.js';
export * from './layout.js';
export {
  needEvent,
  ringFeatures,
  type QueueInfo,
  type QueueRunState,
  type QueueSetup,
  type RingFeatures,
  type Virtqueue,
} from './queue.js';
export { PackedQueue } from './packed.js';
export { SplitQueue } from './split.js';

/**
 * The device side of a queue. Throws VirtqueueError('alignment') when a part is misplaced, a
 * RangeError for a size the format does not allow, a VmmrError for a malformed state.
 */
export function createQueue(dma: DmaSpace, setup: QueueSetup, state?: QueueRunState): Virtqueue {
  return setup.format === 'packed' ? new PackedQueue(dma, setup, state) : new SplitQueue(dma, setup, state);
}
