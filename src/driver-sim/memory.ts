/**
 * Guest memory management for simulated drivers: a bump allocator for rings and tables, and a
 * pool of fixed-size buffers that a driver takes and gives back as requests complete.
 */

/** Hands out aligned, non-overlapping ranges of [base, base + size). */
export class DmaArena {
  private next: number;

  constructor(
    readonly base: number,
    readonly size: number,
  ) {
    this.next = base;
  }

  alloc(length: number, align = 16): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + length > this.base + this.size) {
      throw new RangeError(
        `guest memory arena full: ${length} bytes at alignment ${align} do not fit in [0x${this.base.toString(16)}, +0x${this.size.toString(16)})`,
      );
    }
    this.next = at + length;
    return at;
  }

  /** Allocates and returns the page frame number of a 4096-aligned range (legacy QUEUE_PFN). */
  allocPages(length: number): number {
    return this.alloc(length, 4096) / 4096;
  }
}

/** `count` buffers of `slotSize` bytes from an arena, taken and returned by address. */
export class BufferPool {
  private readonly freeSlots: number[] = [];

  constructor(
    arena: DmaArena,
    readonly slotSize: number,
    readonly count: number,
    align = 64,
  ) {
    const base = arena.alloc(slotSize * count, align);
    for (let i = count - 1; i >= 0; i--) this.freeSlots.push(base + i * slotSize);
  }

  get available(): number {
    return this.freeSlots.length;
  }

  take(): number {
    const at = this.freeSlots.pop();
    if (at === undefined)
      throw new RangeError(`buffer pool of ${this.count} × ${this.slotSize} bytes is empty`);
    return at;
  }

  give(address: number): void {
    this.freeSlots.push(address);
  }
}
