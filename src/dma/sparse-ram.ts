/**
 * vmmr's own DMA memory: a sparse RAM address space. Pages of 4 KiB are allocated on first write
 * (reads of untouched pages give zeros) from a byte budget shared by every space of the process
 * (VMMR_DMA_LIMIT). An untouched space holds no page map at all, so the tens of thousands of
 * functions that are never driven cost a few words each.
 *
 * Accesses inside one page take a fast path (the last page used is cached: rings and buffers
 * are mostly accessed in runs); longer ones walk the pages. Pages that one write (or one
 * `backing` request) allocates together form one contiguous run of up to RUN_PAGES_MAX pages,
 * so that a large transfer is one copy, not one per page; a run's pages are zeroed, not freed,
 * by `zero` (their memory goes when the space is cleared). Multi-byte values are little-endian.
 */
import { VmmrError } from '../base/errors.js';
import { datapath } from '../spec/index.js';
import type { DmaBudget } from './budget.js';
import type { DmaBacking, DmaCoverage, DmaDirect } from './direct.js';
import { DMA_ADDRESS_LIMIT, DmaFault, type DmaSpace } from './space.js';

const PAGE_SIZE = datapath.constants.PAGE_SIZE.value;
const RUN_PAGES_MAX = datapath.constants.RUN_PAGES_MAX.value;
const TWO_32 = 2 ** 32;
const HIGH_WORD_LIMIT = DMA_ADDRESS_LIMIT / TWO_32;

export interface SparseRamOptions {
  /** Budget the pages are taken from; without one the space is bounded only by its size. */
  budget?: DmaBudget;
  /** Addressable bytes, [0, size); default the whole 2^53 bus address range. */
  size?: number;
}

/** A space's contents: the pages that hold a non-zero byte, base64 each, keyed by hex address. */
export interface DmaSpaceState {
  pageSize: number;
  pages: Record<string, string>;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function stateError(message: string): VmmrError {
  return new VmmrError('VMMR_ERR_STATE', `DMA state: ${message}`);
}

/** Pages allocated together: `view` spans `count` pages from page index `first`. */
interface Run {
  view: Uint8Array;
  first: number;
}

export class SparseRam implements DmaSpace, DmaDirect, DmaCoverage {
  readonly size: number;
  private readonly budget: DmaBudget | undefined;
  private pages: Map<number, Uint8Array> | undefined;
  /** The run of every page allocated as part of one (absent: a page of its own). */
  private runs: Map<number, Run> | undefined;
  /** Scratch result of `backing` (made on first use: an untouched space stays a few words). */
  private found: DmaBacking | undefined;
  private lastIndex = -1;
  private lastPage: Uint8Array | undefined;

  constructor(options: SparseRamOptions = {}) {
    const size = options.size ?? DMA_ADDRESS_LIMIT;
    if (!Number.isInteger(size) || size < 0 || size > DMA_ADDRESS_LIMIT) {
      throw new RangeError(`DMA space size must be an integer in [0, 2^53], got ${String(size)}`);
    }
    this.size = size;
    this.budget = options.budget;
  }

  /** Pages allocated so far. */
  get touchedPages(): number {
    return this.pages?.size ?? 0;
  }

  /** Bytes allocated so far (what the space takes from its budget). */
  get allocatedBytes(): number {
    return this.touchedPages * PAGE_SIZE;
  }

  /** Whether [address, address + length) is inside the space (no fault would be raised). */
  covers(address: number, length: number): boolean {
    return (
      Number.isSafeInteger(address) &&
      Number.isSafeInteger(length) &&
      address >= 0 &&
      length >= 0 &&
      address <= this.size &&
      length <= this.size - address
    );
  }

  // ---- range checks -------------------------------------------------------------------------

  /** Integer bounds compared by subtraction: `address + length` may round at 2^53. */
  private check(address: number, length: number): void {
    if (
      address >= 0 &&
      length >= 0 &&
      address <= this.size &&
      length <= this.size - address &&
      Math.floor(address) === address &&
      Math.floor(length) === length
    ) {
      return;
    }
    this.refuse(address, length);
  }

  private refuse(address: number, length: number): never {
    if (!Number.isSafeInteger(address) || address < 0) {
      throw new DmaFault(
        'address',
        address,
        length,
        `DMA address ${String(address)} is not a bus address (an integer in [0, 2^53))`,
      );
    }
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new DmaFault(
        'address',
        address,
        length,
        `DMA length ${String(length)} at ${hex(address)} is not a byte count`,
      );
    }
    if (length > DMA_ADDRESS_LIMIT - address) {
      throw new DmaFault(
        'address',
        address,
        length,
        `DMA range ${hex(address)} length ${length} runs past 2^53, the highest bus address vmmr represents`,
      );
    }
    throw new DmaFault(
      'unmapped',
      address,
      length,
      `DMA range ${hex(address)} length ${length} is outside the DMA space [0, ${hex(this.size)})`,
    );
  }

  private static checkBuffer(buffer: Uint8Array, at: number, length: number): void {
    if (!(at >= 0 && at % 1 === 0 && at + length <= buffer.length)) {
      throw new RangeError(`buffer range [${at}, ${at + length}) outside a buffer of ${buffer.length} bytes`);
    }
  }

  // ---- pages --------------------------------------------------------------------------------

  private page(index: number): Uint8Array | undefined {
    if (index === this.lastIndex) return this.lastPage;
    const page = this.pages?.get(index);
    if (page) {
      this.lastIndex = index;
      this.lastPage = page;
    }
    return page;
  }

  private pageForWrite(index: number, address: number, length: number): Uint8Array {
    const existing = this.page(index);
    if (existing) return existing;
    this.budget?.reserve(PAGE_SIZE, address, length);
    const page = new Uint8Array(PAGE_SIZE);
    (this.pages ??= new Map()).set(index, page);
    this.lastIndex = index;
    this.lastPage = page;
    return page;
  }

  /** Allocates the missing pages of [first, last], consecutive missing ones as runs. */
  private allocateMissing(first: number, last: number, address: number, length: number): void {
    const pages = (this.pages ??= new Map());
    for (let i = first; i <= last;) {
      if (pages.has(i)) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j <= last && j - i < RUN_PAGES_MAX && !pages.has(j)) j++;
      const count = j - i;
      this.budget?.reserve(count * PAGE_SIZE, address, length);
      if (count === 1) pages.set(i, new Uint8Array(PAGE_SIZE));
      else {
        const run: Run = { view: new Uint8Array(count * PAGE_SIZE), first: i };
        const runs = (this.runs ??= new Map());
        for (let k = 0; k < count; k++) {
          pages.set(i + k, run.view.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE));
          runs.set(i + k, run);
        }
      }
      i = j;
    }
  }

  /** Contiguous backing at `address` (page-aligned run or single page), up to `length` bytes. */
  private locate(address: number, length: number): DmaBacking | undefined {
    const index = Math.floor(address / PAGE_SIZE);
    const run = this.runs?.get(index);
    const page = run ? undefined : this.page(index);
    if (!run && !page) return undefined;
    const found = (this.found ??= { view: (run?.view ?? page)!, offset: 0, length: 0 });
    if (run) {
      found.view = run.view;
      found.offset = address - run.first * PAGE_SIZE;
    } else {
      found.view = page!;
      found.offset = address - index * PAGE_SIZE;
    }
    found.length = Math.min(length, found.view.length - found.offset);
    return found;
  }

  // ---- DmaSpace -----------------------------------------------------------------------------

  read(address: number, into: Uint8Array, at: number, length: number): void {
    this.check(address, length);
    SparseRam.checkBuffer(into, at, length);
    let done = 0;
    while (done < length) {
      const a = address + done;
      const piece = this.locate(a, length - done);
      if (!piece) {
        const n = Math.min(PAGE_SIZE - (a % PAGE_SIZE), length - done);
        into.fill(0, at + done, at + done + n);
        done += n;
        continue;
      }
      const { view, offset, length: n } = piece;
      if (offset === 0 && n === view.length) into.set(view, at + done);
      else into.set(view.subarray(offset, offset + n), at + done);
      done += n;
    }
  }

  write(address: number, from: Uint8Array, at: number, length: number): void {
    this.check(address, length);
    SparseRam.checkBuffer(from, at, length);
    if (length === 0) return;
    const first = Math.floor(address / PAGE_SIZE);
    const last = Math.floor((address + length - 1) / PAGE_SIZE);
    if (last > first) this.allocateMissing(first, last, address, length);
    let done = 0;
    while (done < length) {
      const a = address + done;
      const piece = this.locate(a, length - done) ?? this.locateNew(a, length - done);
      const { view, offset, length: n } = piece;
      if (at + done === 0 && n === from.length) view.set(from, offset);
      else view.set(from.subarray(at + done, at + done + n), offset);
      done += n;
    }
  }

  private locateNew(address: number, length: number): DmaBacking {
    this.pageForWrite(Math.floor(address / PAGE_SIZE), address, length);
    return this.locate(address, length)!;
  }

  /** Fills [address, address + length) with `value` (zeroing skips pages never written). */
  fill(address: number, length: number, value: number): void {
    this.check(address, length);
    let index = Math.floor(address / PAGE_SIZE);
    let offset = address - index * PAGE_SIZE;
    let done = 0;
    while (done < length) {
      const n = Math.min(PAGE_SIZE - offset, length - done);
      const page = value === 0 ? this.page(index) : this.pageForWrite(index, address + done, length - done);
      page?.fill(value, offset, offset + n);
      done += n;
      index++;
      offset = 0;
    }
  }

  readU8(address: number): number {
    this.check(address, 1);
    const index = Math.floor(address / PAGE_SIZE);
    return this.page(index)?.[address - index * PAGE_SIZE] ?? 0;
  }

  readU16(address: number): number {
    this.check(address, 2);
    const index = Math.floor(address / PAGE_SIZE);
    const o = address - index * PAGE_SIZE;
    if (o <= PAGE_SIZE - 2) {
      const p = this.page(index);
      return p ? p[o]! | (p[o + 1]! << 8) : 0;
    }
    return this.readU8(address) | (this.readU8(address + 1) << 8);
  }

  readU32(address: number): number {
    this.check(address, 4);
    const index = Math.floor(address / PAGE_SIZE);
    const o = address - index * PAGE_SIZE;
    if (o <= PAGE_SIZE - 4) {
      const p = this.page(index);
      return p ? (p[o]! | (p[o + 1]! << 8) | (p[o + 2]! << 16) | (p[o + 3]! << 24)) >>> 0 : 0;
    }
    return (this.readU16(address) | (this.readU16(address + 2) << 16)) >>> 0;
  }

  readU64(address: number): number {
    this.check(address, 8);
    const lo = this.readU32(address);
    const hi = this.readU32(address + 4);
    if (hi >= HIGH_WORD_LIMIT) {
      throw new DmaFault(
        'address',
        address,
        8,
        `64-bit value at ${hex(address)} is 0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}, ` +
          'at or above 2^53, the highest bus address vmmr represents',
      );
    }
    return hi * TWO_32 + lo;
  }

  writeU8(address: number, value: number): void {
    this.check(address, 1);
    const index = Math.floor(address / PAGE_SIZE);
    this.pageForWrite(index, address, 1)[address - index * PAGE_SIZE] = value;
  }

  writeU16(address: number, value: number): void {
    this.check(address, 2);
    const index = Math.floor(address / PAGE_SIZE);
    const o = address - index * PAGE_SIZE;
    if (o <= PAGE_SIZE - 2) {
      const p = this.pageForWrite(index, address, 2);
      p[o] = value;
      p[o + 1] = value >>> 8;
      return;
    }
    this.writeU8(address, value);
    this.writeU8(address + 1, value >>> 8);
  }

  writeU32(address: number, value: number): void {
    this.check(address, 4);
    const index = Math.floor(address / PAGE_SIZE);
    const o = address - index * PAGE_SIZE;
    if (o <= PAGE_SIZE - 4) {
      const p = this.pageForWrite(index, address, 4);
      p[o] = value;
      p[o + 1] = value >>> 8;
      p[o + 2] = value >>> 16;
      p[o + 3] = value >>> 24;
      return;
    }
    this.writeU16(address, value & 0xffff);
    this.writeU16(address + 2, value >>> 16);
  }

  writeU64(address: number, value: number): void {
    this.check(address, 8);
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`64-bit DMA value ${String(value)} is not an integer in [0, 2^53)`);
    }
    const hi = Math.floor(value / TWO_32);
    this.writeU32(address, value - hi * TWO_32);
    this.writeU32(address + 4, hi);
  }

  /**
   * Zeroes [address, address + length), giving whole pages back to the budget (a discarded
   * range of a RAM disk costs nothing afterwards).
   */
  zero(address: number, length: number): void {
    this.check(address, length);
    let index = Math.floor(address / PAGE_SIZE);
    let offset = address - index * PAGE_SIZE;
    let done = 0;
    while (done < length) {
      const n = Math.min(PAGE_SIZE - offset, length - done);
      const page = this.page(index);
      if (page && n === PAGE_SIZE && !this.runs?.has(index)) {
        this.pages!.delete(index);
        this.budget?.release(PAGE_SIZE);
        if (this.lastIndex === index) {
          this.lastIndex = -1;
          this.lastPage = undefined;
        }
      } else page?.fill(0, offset, offset + n);
      done += n;
      index++;
      offset = 0;
    }
  }

  // ---- DmaDirect ----------------------------------------------------------------------------

  backing(address: number, forWrite: boolean, length: number): DmaBacking | undefined {
    this.check(address, 1);
    const wanted = Math.max(1, Math.min(length, this.size - address));
    const found = this.locate(address, wanted);
    if (!forWrite || (found && found.length === wanted)) return found;
    // Allocate what is missing after the contiguous piece (or from `address`), then look again.
    const from = found ? address + found.length : address;
    this.allocateMissing(
      Math.floor(from / PAGE_SIZE),
      Math.floor((address + wanted - 1) / PAGE_SIZE),
      address,
      wanted,
    );
    return this.locate(address, wanted);
  }

  readView(address: number, length: number): Uint8Array | undefined {
    this.check(address, length);
    const index = Math.floor(address / PAGE_SIZE);
    const o = address - index * PAGE_SIZE;
    if (o + length > PAGE_SIZE) return undefined;
    return this.page(index)?.subarray(o, o + length);
  }

  writeView(address: number, length: number): Uint8Array | undefined {
    this.check(address, length);
    const index = Math.floor(address / PAGE_SIZE);
    const o = address - index * PAGE_SIZE;
    if (o + length > PAGE_SIZE) return undefined;
    return this.pageForWrite(index, address, length).subarray(o, o + length);
  }

  // ---- lifecycle and state ------------------------------------------------------------------

  /** Drops every page and returns its bytes to the budget. */
  clear(): void {
    this.budget?.release(this.allocatedBytes);
    this.pages = undefined;
    this.runs = undefined;
    this.lastIndex = -1;
    this.lastPage = undefined;
  }

  /** The pages holding a non-zero byte (all-zero pages read the same when absent). */
  getState(): DmaSpaceState {
    const pages: Record<string, string> = {};
    if (this.pages) {
      const indexes = [...this.pages.keys()].sort((a, b) => a - b);
      for (const index of indexes) {
        const page = this.pages.get(index)!;
        if (page.every((b) => b === 0)) continue;
        pages[hex(index * PAGE_SIZE)] = Buffer.from(page.buffer, page.byteOffset, PAGE_SIZE).toString(
          'base64',
        );
      }
    }
    return { pageSize: PAGE_SIZE, pages };
  }

  /** Replaces the contents with `state` (checked whole before anything changes). */
  setState(state: DmaSpaceState): void {
    if (typeof state !== 'object' || state === null) throw stateError('not an object');
    if (state.pageSize !== PAGE_SIZE)
      throw stateError(`pageSize ${String(state.pageSize)}, expected ${PAGE_SIZE}`);
    if (typeof state.pages !== 'object' || state.pages === null || Array.isArray(state.pages)) {
      throw stateError('pages is not an object of hex address to base64 page');
    }
    const next = new Map<number, Uint8Array>();
    for (const [key, value] of Object.entries(state.pages)) {
      if (!/^0x[0-9a-f]{1,14}$/.test(key))
        throw stateError(`page key ${JSON.stringify(key)} is not a lower-case hex address`);
      const address = Number.parseInt(key.slice(2), 16);
      if (address % PAGE_SIZE !== 0) throw stateError(`page ${key} is not ${PAGE_SIZE}-byte aligned`);
      if (!this.covers(address, PAGE_SIZE))
        throw stateError(`page ${key} lies outside the DMA space [0, ${hex(this.size)})`);
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value))
        throw stateError(`page ${key} is not base64`);
      const bytes = Buffer.from(value, 'base64');
      if (bytes.length !== PAGE_SIZE)
        throw stateError(`page ${key} holds ${bytes.length} bytes, expected ${PAGE_SIZE}`);
      next.set(address / PAGE_SIZE, new Uint8Array(bytes));
    }
    const delta = (next.size - this.touchedPages) * PAGE_SIZE;
    if (delta > 0 && this.budget) {
      try {
        this.budget.reserve(delta, 0, next.size * PAGE_SIZE);
      } catch (e) {
        throw new VmmrError('VMMR_ERR_LIMIT', `DMA state: ${(e as Error).message}`);
      }
    } else if (delta < 0) {
      this.budget?.release(-delta);
    }
    this.pages = next.size > 0 ? next : undefined;
    this.runs = undefined;
    this.lastIndex = -1;
    this.lastPage = undefined;
  }
}
