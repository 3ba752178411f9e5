/**
 * A function's DMA address space, as its device sees it behind an IOMMU: what the device reads
 * and writes when it processes rings and buffers. Device code knows only this interface; the
 * backing is a transport's business (vmmr's own sparse RAM, or a vfio-user client's shared
 * mappings and DMA_READ/DMA_WRITE messages).
 *
 * Addresses are bus addresses of 64-bit descriptors, held as exact JS numbers: a space covers
 * [0, 2^53) (vmmr decision: exact integers without BigInt on the hot path; 8 PiB is beyond any
 * guest's memory). An address at or above 2^53, or a range running past it, is a DmaFault like
 * any other address outside the space. Multi-byte values are little-endian (virtio rings are
 * little-endian for modern drivers and guest-native — little-endian here — for legacy ones).
 *
 * Every method is synchronous: a backing that needs a round trip (a DMA message) completes it
 * before returning, as libvfio-user's vfu_dma_read does.
 */
export interface DmaSpace {
  /** Copies `length` bytes at `address` into `into[at..at+length)`. */
  read(address: number, into: Uint8Array, at: number, length: number): void;
  /** Copies `from[at..at+length)` to `address`. */
  write(address: number, from: Uint8Array, at: number, length: number): void;
  readU16(address: number): number;
  readU32(address: number): number;
  /** A 64-bit little-endian value; a DmaFault when it is 2^53 or more (see above). */
  readU64(address: number): number;
  writeU16(address: number, value: number): void;
  writeU32(address: number, value: number): void;
  writeU64(address: number, value: number): void;
}

/** Highest address + 1 a DMA space can hold (addresses are exact JS numbers). */
export const DMA_ADDRESS_LIMIT = 2 ** 53;

/** Why a DMA access failed: outside the space, or the space is full (VMMR_DMA_LIMIT). */
export type DmaFaultReason = 'unmapped' | 'limit' | 'address';

/**
 * A DMA access the space cannot serve. Devices turn it into their own error handling (a broken
 * request, DEVICE_NEEDS_RESET); transports that expose DMA directly map it to their refusals.
 */
export class DmaFault extends Error {
  override readonly name = 'DmaFault';
  constructor(
    readonly reason: DmaFaultReason,
    readonly address: number,
    readonly length: number,
    message: string,
  ) {
    super(message);
  }
}
