import type { DmaSpace } from './space.js';

/**
 * Zero-copy access a DmaSpace backing may offer in addition to the copying interface: vmmr's
 * sparse RAM does, and so can a transport whose guest memory is a shared mapping. Device code
 * asks for a view and falls back to `read`/`write` when it gets none.
 */
/** Where a run of guest bytes lives in the backing: `view[offset .. offset + length)`. */
export interface DmaBacking {
  view: Uint8Array;
  offset: number;
  length: number;
}

export interface DmaDirect {
  /**
   * The longest run of backing memory that starts at `address` and is contiguous, up to
   * `length` bytes (allocated when `forWrite`); undefined when `address` is not backed (reads:
   * zeros). The result is a scratch object, valid until the next call. Copying to and from it
   * takes one copy per run instead of one per page.
   */
  backing(address: number, forWrite: boolean, length: number): DmaBacking | undefined;
  /**
   * The bytes of [address, address + length) as a view into the backing, when they lie in one
   * backed piece (for sparse RAM: one page already written). Valid until the space is cleared
   * or restored. `undefined` when there is no such piece (read through `read` instead).
   */
  readView(address: number, length: number): Uint8Array | undefined;
  /**
   * A writable view of [address, address + length), allocating the backing if needed, when the
   * range lies in one piece; `undefined` otherwise. Refuses like `write` (DmaFault).
   */
  writeView(address: number, length: number): Uint8Array | undefined;
}

/** Whether the space can answer whole ranges without probing: [address, address + length) is backed. */
export interface DmaCoverage {
  covers(address: number, length: number): boolean;
}

export function hasDirect(space: DmaSpace): space is DmaSpace & DmaDirect {
  return typeof (space as Partial<DmaDirect>).readView === 'function';
}

export function hasCoverage(space: DmaSpace): space is DmaSpace & DmaCoverage {
  return typeof (space as Partial<DmaCoverage>).covers === 'function';
}
