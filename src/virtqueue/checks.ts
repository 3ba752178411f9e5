/**
 * Checks shared by both ring formats while they walk a chain (virtio 1.2 §2.7.5 / §2.8.6
 * "Message Framing", §2.7.4: "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes").
 */
import { hasCoverage } from '../dma/direct.js';
import { DMA_ADDRESS_LIMIT, type DmaSpace } from '../dma/space.js';
import type { DescriptorChain } from './chain.js';
import { VirtqueueError, type DescriptorTable } from './errors.js';

const CHAIN_BYTES_LIMIT = 2 ** 32;

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** [address, address + length) lies in the DMA space (cheap: arithmetic, plus the space's own coverage). */
export function checkRange(
  dma: DmaSpace,
  queue: number,
  descriptor: number,
  table: DescriptorTable,
  what: string,
  address: number,
  length: number,
): void {
  if (length > DMA_ADDRESS_LIMIT - address || (hasCoverage(dma) && !dma.covers(address, length))) {
    throw new VirtqueueError(
      queue,
      descriptor,
      'dma',
      `${what} 0x${address.toString(16)} length ${length} is outside DMA memory`,
      table,
    );
  }
}

/**
 * Adds one buffer to a chain after the per-buffer rules: no readable buffer after a writable
 * one, 2^32 bytes at most, inside DMA memory.
 */
export function addChecked(
  dma: DmaSpace,
  chain: DescriptorChain,
  descriptor: number,
  table: DescriptorTable,
  address: number,
  length: number,
  writable: boolean,
): void {
  const queue = chain.queue;
  if (!writable && chain.writableBuffers > 0) {
    throw new VirtqueueError(
      queue,
      descriptor,
      'order',
      'device-readable descriptor after a device-writable one',
      table,
    );
  }
  if (chain.readable + chain.writable + length > CHAIN_BYTES_LIMIT) {
    throw new VirtqueueError(queue, descriptor, 'chain-bytes', 'chain holds more than 2^32 bytes', table);
  }
  checkRange(dma, queue, descriptor, table, 'buffer', address, length);
  chain.addBuffer(address, length, writable, descriptor, table === 'indirect');
}
