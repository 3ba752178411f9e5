/**
 * Where the parts of a virtqueue lie in DMA memory.
 *
 * Split virtqueue (virtio 1.2 §2.7, "Split Virtqueues"; <linux/virtio_ring.h> vring_init):
 *
 *   desc   16 × size           struct vring_desc[size]              alignment 16
 *   avail  4 + 2 × size + 2    flags, idx, ring[size], used_event   alignment 2
 *   used   4 + 8 × size + 2    flags, idx, ring[size], avail_event  alignment 4
 *
 * Legacy layout (§2.7.2, "Legacy Interfaces: A Note on Virtqueue Layout"): desc at
 * QUEUE_PFN << 12, avail right after it, used at the next 4096-byte boundary.
 *
 * Packed virtqueue (§2.8): a ring of 16 × size bytes (alignment 16) and two 4-byte event
 * suppression structures (alignment 4): the driver area (driver → device: used buffer
 * notifications) and the device area (device → driver: available buffer notifications).
 */
import { legacy, virtioRing } from '../spec/index.js';
import { VirtqueueError } from './errors.js';

const R = virtioRing.constants;

export const DESC_SIZE = R.DESC_SIZE.value;
export const VIRTQUEUE_MAX_SIZE = R.VIRTQUEUE_MAX_SIZE.value;

export type RingFormat = 'split' | 'packed';

/** Addresses of a queue's three parts: descriptor table/ring, driver area, device area. */
export interface RingAddresses {
  desc: number;
  driver: number;
  device: number;
}

export function availBytes(size: number): number {
  return R.AVAIL_HEADER.value + R.AVAIL_ENTRY.value * size + R.EVENT_SIZE.value;
}

export function usedBytes(size: number): number {
  return R.USED_HEADER.value + R.USED_ENTRY.value * size + R.EVENT_SIZE.value;
}

function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** Bytes of a legacy split ring (Linux `vring_size(size, align)`). */
export function legacyRingBytes(size: number, align: number = legacy.constants.VRING_ALIGN.value): number {
  return alignUp(DESC_SIZE * size + availBytes(size), align) + usedBytes(size);
}

/** The legacy split layout for QUEUE_PFN `pfn` (4096-byte pages, VRING_ALIGN 4096). */
export function legacyLayout(pfn: number, size: number): RingAddresses {
  const desc = pfn * 2 ** legacy.constants.QUEUE_ADDR_SHIFT.value;
  const driver = desc + DESC_SIZE * size;
  const device = alignUp(driver + availBytes(size), legacy.constants.VRING_ALIGN.value);
  return { desc, driver, device };
}

/** Whether a queue size is valid for the format (§2.6: split sizes are powers of 2, ≤ 32768). */
export function validQueueSize(format: RingFormat, size: number): boolean {
  if (!Number.isInteger(size) || size < 1 || size > VIRTQUEUE_MAX_SIZE) return false;
  return format === 'packed' || (size & (size - 1)) === 0;
}

/**
 * Checks the alignment of each part (§2.7 / §2.8 "Driver Requirements: Virtqueues"): a
 * VirtqueueError('alignment') naming the part otherwise.
 */
export function checkAlignment(queue: number, format: RingFormat, at: RingAddresses): void {
  const rules: Array<[keyof RingAddresses, string, number]> =
    format === 'split'
      ? [
          ['desc', 'descriptor table', R.DESC_ALIGN.value],
          ['driver', 'available ring', R.AVAIL_ALIGN.value],
          ['device', 'used ring', R.USED_ALIGN.value],
        ]
      : [
          ['desc', 'descriptor ring', R.PACKED_DESC_ALIGN.value],
          ['driver', 'driver event suppression', R.PACKED_EVENT_ALIGN.value],
          ['device', 'device event suppression', R.PACKED_EVENT_ALIGN.value],
        ];
  for (const [part, name, align] of rules) {
    if (at[part] % align !== 0) {
      throw new VirtqueueError(
        queue,
        null,
        'alignment',
        `${name} at 0x${at[part].toString(16)} is not ${align}-byte aligned`,
      );
    }
  }
}
