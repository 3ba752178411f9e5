/**
 * Ring placement for simulated drivers: a legacy driver allocates one 4096-aligned region and
 * hands the device its page frame number (virtio 1.2 §2.7.2, legacy layout); a modern driver
 * places the three parts separately at their alignments (§2.7 / §2.8).
 */
import { legacyLayout, legacyRingBytes, type RingAddresses } from '../virtqueue/index.js';
import type { DmaArena } from './memory.js';
import { PackedRingDriver, SplitRingDriver, splitRingParts, type DriverRing } from './rings.js';
import type { DriverTransport } from './transport.js';

export type RingLayout = 'legacy' | 'modern';

/** Allocates, programs and returns the driver side of queue `index`. */
export function openQueue(
  transport: DriverTransport,
  arena: DmaArena,
  index: number,
  size: number,
  layout: RingLayout,
): DriverRing {
  const dma = transport.dma;
  let addresses: RingAddresses;
  if (transport.format === 'packed') {
    addresses = { desc: arena.alloc(16 * size, 16), driver: arena.alloc(4, 4), device: arena.alloc(4, 4) };
  } else if (layout === 'legacy') {
    addresses = legacyLayout(arena.allocPages(legacyRingBytes(size)), size);
  } else {
    const parts = splitRingParts(size);
    addresses = {
      desc: arena.alloc(parts.desc, 16),
      driver: arena.alloc(parts.driver, 2),
      device: arena.alloc(parts.device, 4),
    };
  }
  const ring =
    transport.format === 'packed'
      ? new PackedRingDriver(dma, size, addresses, transport.features)
      : new SplitRingDriver(dma, size, addresses, transport.features);
  transport.setupQueue(index, size, addresses);
  return ring;
}
