import { VmmrError } from '../base/errors.js';

/**
 * A virtqueue never trusts guest memory: whatever a driver puts in a ring is checked before it
 * is used, and a violation is one of these errors, naming the queue, the descriptor and the rule.
 * The queue stops (it is "broken") until the device is reset; the transport turns the error into
 * DEVICE_NEEDS_RESET and a configuration change (virtio 1.2 §2.1.2, Device Status Field).
 */

/**
 * The rule a driver broke (virtio 1.2 §2.7 Split Virtqueues, §2.8 Packed Virtqueues, and the
 * device chapters for `request`):
 * - `avail-index`: the available index ran more than the queue size ahead of the device;
 * - `head-range` / `next-range`: a head or `next` index outside the descriptor table;
 * - `loop`: a chain revisits a descriptor (more descriptors than the table holds);
 * - `chain-length`: a chain longer than the queue size;
 * - `chain-bytes`: a chain of more than 2^32 bytes;
 * - `indirect-feature`: VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC;
 * - `indirect-nested`: an indirect descriptor inside an indirect table;
 * - `indirect-next`: an indirect descriptor with NEXT set (split) or inside a NEXT list (packed);
 * - `indirect-size`: an indirect table of zero bytes or not a multiple of 16;
 * - `order`: a device-readable descriptor after a device-writable one;
 * - `dma`: a ring or buffer outside DMA memory;
 * - `in-order`: with VIRTIO_F_IN_ORDER, descriptors not used in ring order;
 * - `not-available`: a packed chain continues into a descriptor not marked available;
 * - `alignment`: a ring part not aligned as §2.7 / §2.8 require;
 * - `request`: the buffers do not hold a request of the device type (e.g. no status byte).
 */
export type ChainRule =
  | 'avail-index'
  | 'head-range'
  | 'next-range'
  | 'loop'
  | 'chain-length'
  | 'chain-bytes'
  | 'indirect-feature'
  | 'indirect-nested'
  | 'indirect-next'
  | 'indirect-size'
  | 'order'
  | 'dma'
  | 'in-order'
  | 'not-available'
  | 'alignment'
  | 'request';

/** Where the offending descriptor lives: the queue's own ring, or an indirect table. */
export type DescriptorTable = 'ring' | 'indirect';

export interface VirtqueueErrorInfo {
  queue: number;
  /** Index of the offending descriptor in its table (null: the ring itself, e.g. its index). */
  descriptor: number | null;
  table: DescriptorTable;
  rule: ChainRule;
  /** What was wrong, without the queue/descriptor prefix of `message`. */
  detail: string;
  message: string;
}

export const CHAIN_RULES: readonly ChainRule[] = [
  'avail-index',
  'head-range',
  'next-range',
  'loop',
  'chain-length',
  'chain-bytes',
  'indirect-feature',
  'indirect-nested',
  'indirect-next',
  'indirect-size',
  'order',
  'dma',
  'in-order',
  'not-available',
  'alignment',
  'request',
];

export class VirtqueueError extends Error {
  override readonly name = 'VirtqueueError';
  constructor(
    readonly queue: number,
    readonly descriptor: number | null,
    readonly rule: ChainRule,
    readonly detail: string,
    readonly table: DescriptorTable = 'ring',
  ) {
    const where =
      descriptor === null ? '' : `, ${table === 'indirect' ? 'indirect ' : ''}descriptor ${descriptor}`;
    super(`queue ${queue}${where}: ${rule}: ${detail}`);
  }

  toJSON(): VirtqueueErrorInfo {
    return {
      queue: this.queue,
      descriptor: this.descriptor,
      table: this.table,
      rule: this.rule,
      detail: this.detail,
      message: this.message,
    };
  }
}

export function isVirtqueueError(e: unknown): e is VirtqueueError {
  return e instanceof VirtqueueError;
}

/** Rebuilds an error from its JSON form (queue state restore); a VmmrError when malformed. */
export function errorFromInfo(queue: number, info: VirtqueueErrorInfo): VirtqueueError {
  const ok =
    typeof info === 'object' &&
    info !== null &&
    CHAIN_RULES.includes(info.rule) &&
    (info.descriptor === null || Number.isInteger(info.descriptor)) &&
    (info.table === 'ring' || info.table === 'indirect') &&
    typeof info.detail === 'string';
  if (!ok)
    throw new VmmrError('VMMR_ERR_STATE', `queue ${queue} state: error is not a virtqueue error record`);
  return new VirtqueueError(queue, info.descriptor, info.rule, info.detail, info.table);
}
