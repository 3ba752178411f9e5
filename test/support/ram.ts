/**
 * A small DMA space for the tests (src/dma/space.ts interface): sparse 4 KiB pages from address
 * 0 up to `size`, with optional unmapped holes, and at most `maxPages` pages allocated (the next
 * one is a DmaFault with reason `limit`). It stands in for whatever memory the service wires.
 */
import { DmaFault, type DmaSpace } from '../../src/dma/space.js';

const PAGE = 4096;

export class TestRam implements DmaSpace {
  readonly pages = new Map<number, Uint8Array>();

  constructor(
    readonly size: number,
    readonly holes: ReadonlyArray<readonly [number, number]> = [],
    readonly maxPages = Number.POSITIVE_INFINITY,
  ) {}

  private check(address: number, length: number): void {
    const end = address + length;
    if (end > this.size || this.holes.some(([a, b]) => address < b && end > a)) {
      throw new DmaFault('unmapped', address, length, `0x${address.toString(16)}+${length} is not mapped`);
    }
  }

  private page(index: number, allocate: boolean): Uint8Array | undefined {
    let p = this.pages.get(index);
    if (!p && allocate) {
      if (this.pages.size >= this.maxPages)
        throw new DmaFault('limit', index * PAGE, PAGE, 'the test RAM is full');
      p = new Uint8Array(PAGE);
      this.pages.set(index, p);
    }
    return p;
  }

  read(address: number, into: Uint8Array, at: number, length: number): void {
    this.check(address, length);
    for (let i = 0; i < length; i++) {
      const a = address + i;
      into[at + i] = this.page(Math.floor(a / PAGE), false)?.[a % PAGE] ?? 0;
    }
  }

  write(address: number, from: Uint8Array, at: number, length: number): void {
    this.check(address, length);
    for (let i = 0; i < length; i++) {
      const a = address + i;
      this.page(Math.floor(a / PAGE), true)![a % PAGE] = from[at + i]!;
    }
  }

  private readLe(address: number, n: number): number {
    const b = new Uint8Array(n);
    this.read(address, b, 0, n);
    let v = 0;
    for (let i = n - 1; i >= 0; i--) v = v * 256 + b[i]!;
    return v;
  }

  private writeLe(address: number, n: number, value: number): void {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
    this.write(address, b, 0, n);
  }

  readU16(address: number): number {
    return this.readLe(address, 2);
  }
  readU32(address: number): number {
    return this.readLe(address, 4);
  }
  readU64(address: number): number {
    return this.readLe(address, 8);
  }
  writeU16(address: number, value: number): void {
    this.writeLe(address, 2, value);
  }
  writeU32(address: number, value: number): void {
    this.writeLe(address, 4, value);
  }
  writeU64(address: number, value: number): void {
    this.writeLe(address, 8, value);
  }
}
