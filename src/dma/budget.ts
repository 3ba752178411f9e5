import { DmaFault } from './space.js';

/**
 * The byte budget that every sparse DMA space of one process draws its pages from
 * (`VMMR_DMA_LIMIT`). One budget object is shared by all spaces it is given to; whoever builds
 * the functions creates it (the core keeps no process-wide state of its own).
 */
export class DmaBudget {
  private usedBytes = 0;

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError(`DMA limit must be a non-negative integer number of bytes, got ${String(limit)}`);
    }
  }

  /** Bytes currently allocated by the spaces sharing this budget. */
  get used(): number {
    return this.usedBytes;
  }

  /**
   * Takes `bytes` for an access at `address` (length `length`), or refuses it with a
   * DmaFault('limit') naming the limit, when the total would pass it.
   */
  reserve(bytes: number, address: number, length: number): void {
    if (this.usedBytes + bytes > this.limit) {
      throw new DmaFault(
        'limit',
        address,
        length,
        `DMA memory limit reached (VMMR_DMA_LIMIT = ${this.limit} bytes, ${this.usedBytes} in use): ` +
          `cannot allocate ${bytes} more bytes for the access at 0x${address.toString(16)} length ${length}`,
      );
    }
    this.usedBytes += bytes;
  }

  /** Returns bytes to the budget (pages freed by a cleared or restored space). */
  release(bytes: number): void {
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
  }
}
