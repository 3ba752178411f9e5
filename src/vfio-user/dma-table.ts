import { DMA_ADDRESS_LIMIT, DmaFault, type DmaSpace } from '../dma/space.js';
import { native, type MappingHandle } from './native.js';

/**
 * A vfio-user client's DMA maps as the device's DmaSpace (document "VFIO_USER_DMA_MAP",
 * "Client memory access"; libvfio-user lib/dma.c keeps the same sorted table).
 *
 * A region mapped with a file descriptor is mmap'ed shared (read/write as the map's flags say) and
 * reached by plain memory copies; a region without one is reached through the connection's
 * DMA_READ/DMA_WRITE round trips. Lookups are a binary search over regions sorted by address,
 * with the last hit tried first (rings and buffers cluster). An access may span adjacent regions;
 * any byte outside every region, or a write to a region mapped without the writeable flag, is a
 * DmaFault naming the address and what is mapped around it.
 */

/** Completes DMA to a region the client shared without a file descriptor (a round trip each). */
export interface DmaMessenger {
  dmaRead(address: number, into: Uint8Array, at: number, length: number): void;
  dmaWrite(address: number, from: Uint8Array, at: number, length: number): void;
}

export interface DmaMapRequest {
  address: number;
  size: number;
  readable: boolean;
  writable: boolean;
  /** File descriptor to map (the table takes ownership and closes it), or -1. */
  fd: number;
  /** Offset of the region in `fd`. */
  fdOffset: number;
}

/** Largest single mapping window (external ArrayBuffers of Node 20 stop at 4 GiB). */
const WINDOW_SIZE = 2 ** 30;

interface Window {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly buffer: ArrayBuffer;
  readonly handle: MappingHandle;
}

class Region {
  readonly end: number;
  constructor(
    readonly address: number,
    readonly size: number,
    readonly readable: boolean,
    readonly writable: boolean,
    /** Mapped windows of WINDOW_SIZE bytes (the last may be shorter); empty: DMA messages. */
    readonly windows: readonly Window[],
  ) {
    this.end = address + size;
  }

  get mapped(): boolean {
    return this.windows.length > 0;
  }

  describe(): string {
    return `0x${this.address.toString(16)}..0x${(this.end - 1).toString(16)} (${this.mapped ? 'mapped' : 'DMA messages'}${this.writable ? '' : ', read-only'})`;
  }
}

export type MapOutcome = { ok: true } | { ok: false; errno: 'EEXIST' | 'ENOSPC'; message: string };

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export class DmaTable implements DmaSpace {
  private regions: Region[] = [];
  private last: Region | undefined;
  private readonly scratch = new Uint8Array(8);
  private readonly scratchView = new DataView(this.scratch.buffer);

  constructor(
    private readonly messenger: DmaMessenger,
    /** max_dma_maps: set by the version negotiation. */
    public maxRegions: number,
  ) {}

  get count(): number {
    return this.regions.length;
  }

  /** Regions in address order, for status and tests. */
  list(): Array<{ address: number; size: number; mapped: boolean; readable: boolean; writable: boolean }> {
    return this.regions.map((r) => ({
      address: r.address,
      size: r.size,
      mapped: r.mapped,
      readable: r.readable,
      writable: r.writable,
    }));
  }

  /**
   * Adds a region (the caller checked sizes, alignment and flags). A region overlapping another
   * is refused (EEXIST, as the document requires), as is one beyond max_dma_maps (ENOSPC). mmap
   * failures throw with the errno name as `code`. The fd is closed in every case.
   */
  map(req: DmaMapRequest): MapOutcome {
    try {
      const at = this.insertionPoint(req.address);
      const before = this.regions[at - 1];
      const after = this.regions[at];
      const clash =
        before && before.end > req.address
          ? before
          : after && after.address < req.address + req.size
            ? after
            : undefined;
      if (clash) {
        return { ok: false, errno: 'EEXIST', message: `it overlaps the map ${clash.describe()}` };
      }
      if (this.regions.length >= this.maxRegions) {
        return {
          ok: false,
          errno: 'ENOSPC',
          message: `${this.maxRegions} regions are mapped already (max_dma_maps)`,
        };
      }
      const windows = req.fd >= 0 ? mapWindows(req.fd, req.fdOffset, req.size, req.writable) : [];
      const region = new Region(req.address, req.size, req.readable, req.writable, windows);
      this.regions = [...this.regions.slice(0, at), region, ...this.regions.slice(at)];
      return { ok: true };
    } finally {
      if (req.fd >= 0) native.close(req.fd);
    }
  }

  /** Removes the region mapped at exactly `address`/`size`; false when there is none. */
  unmap(address: number, size: number): boolean {
    const index = this.regions.findIndex((r) => r.address === address && r.size === size);
    if (index < 0) return false;
    release(this.regions[index]!);
    this.regions = this.regions.filter((_, i) => i !== index);
    this.last = undefined;
    return true;
  }

  /** Removes every region (VFIO_DMA_UNMAP_FLAG_ALL, disconnection). */
  clear(): void {
    for (const r of this.regions) release(r);
    this.regions = [];
    this.last = undefined;
  }

  /** The region a map at `address` is nearest: first index whose address is >= it. */
  private insertionPoint(address: number): number {
    let lo = 0;
    let hi = this.regions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.regions[mid]!.address < address) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private find(address: number): Region | undefined {
    const last = this.last;
    if (last && address >= last.address && address < last.end) return last;
    const at = this.insertionPoint(address + 1) - 1;
    const r = this.regions[at];
    if (r && address < r.end) {
      this.last = r;
      return r;
    }
    return undefined;
  }

  private fault(op: string, address: number, length: number, at: number, why: string): DmaFault {
    const around =
      this.regions.length === 0
        ? 'the client has mapped nothing'
        : `maps: ${this.regions.map((r) => r.describe()).join(', ')}`;
    return new DmaFault(
      'unmapped',
      address,
      length,
      `DMA ${op} of ${length} bytes at ${hex(address)}: ${hex(at)} ${why} (${around})`,
    );
  }

  private checkAddress(op: string, address: number, length: number): void {
    if (
      !Number.isSafeInteger(address) ||
      address < 0 ||
      !Number.isSafeInteger(length) ||
      length < 0 ||
      address + length > DMA_ADDRESS_LIMIT
    ) {
      throw new DmaFault(
        'address',
        address,
        length,
        `DMA ${op} of ${String(length)} bytes at ${String(address)}: beyond the DMA address space [0, 2^53)`,
      );
    }
  }

  read(address: number, into: Uint8Array, at: number, length: number): void {
    this.checkAddress('read', address, length);
    this.walk('read', address, length, false, (r, offset, done, n) => {
      if (r.mapped) copyOut(r, offset, into, at + done, n);
      else this.messenger.dmaRead(r.address + offset, into, at + done, n);
    });
  }

  write(address: number, from: Uint8Array, at: number, length: number): void {
    this.checkAddress('write', address, length);
    this.walk('write', address, length, true, (r, offset, done, n) => {
      if (r.mapped) copyIn(r, offset, from, at + done, n);
      else this.messenger.dmaWrite(r.address + offset, from, at + done, n);
    });
  }

  /** Visits the regions covering [address, address+length) in order; faults before touching any. */
  private walk(
    op: string,
    address: number,
    length: number,
    write: boolean,
    visit: (r: Region, offset: number, done: number, n: number) => void,
  ): void {
    const parts: Array<[Region, number, number, number]> = [];
    let done = 0;
    while (done < length) {
      const here = address + done;
      const r = this.find(here);
      if (!r) throw this.fault(op, address, length, here, 'is in no DMA map');
      if (write ? !r.writable : !r.readable)
        throw this.fault(
          op,
          address,
          length,
          here,
          `is in a map without the ${write ? 'writeable' : 'readable'} flag`,
        );
      const n = Math.min(length - done, r.end - here);
      parts.push([r, here - r.address, done, n]);
      done += n;
    }
    for (const [r, offset, d, n] of parts) visit(r, offset, d, n);
  }

  /** The mapped window holding a small access, or undefined: the general path then serves or faults. */
  private small(address: number, width: number, write: boolean): { view: DataView; at: number } | undefined {
    if (!Number.isSafeInteger(address) || address < 0) return undefined;
    const r = this.find(address);
    if (!r || !r.mapped || address + width > r.end || (write ? !r.writable : !r.readable)) return undefined;
    const offset = address - r.address;
    const w = r.windows[Math.floor(offset / WINDOW_SIZE)]!;
    const inWindow = offset % WINDOW_SIZE;
    return inWindow + width <= w.bytes.length ? { view: w.view, at: inWindow } : undefined;
  }

  readU16(address: number): number {
    const hit = this.small(address, 2, false);
    if (hit) return hit.view.getUint16(hit.at, true);
    this.read(address, this.scratch, 0, 2);
    return this.scratchView.getUint16(0, true);
  }

  readU32(address: number): number {
    const hit = this.small(address, 4, false);
    if (hit) return hit.view.getUint32(hit.at, true);
    this.read(address, this.scratch, 0, 4);
    return this.scratchView.getUint32(0, true);
  }

  readU64(address: number): number {
    const hit = this.small(address, 8, false);
    const view = hit ? hit.view : this.scratchView;
    const at = hit ? hit.at : 0;
    if (!hit) this.read(address, this.scratch, 0, 8);
    const lo = view.getUint32(at, true);
    const hi = view.getUint32(at + 4, true);
    if (hi >= 0x200000) {
      throw new DmaFault(
        'address',
        address,
        8,
        `DMA read of 8 bytes at ${hex(address)}: value 0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')} is 2^53 or more`,
      );
    }
    return hi * 2 ** 32 + lo;
  }

  writeU16(address: number, value: number): void {
    const hit = this.small(address, 2, true);
    if (hit) return hit.view.setUint16(hit.at, value, true);
    this.scratchView.setUint16(0, value, true);
    this.write(address, this.scratch, 0, 2);
  }

  writeU32(address: number, value: number): void {
    const hit = this.small(address, 4, true);
    if (hit) return hit.view.setUint32(hit.at, value, true);
    this.scratchView.setUint32(0, value, true);
    this.write(address, this.scratch, 0, 4);
  }

  writeU64(address: number, value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new DmaFault(
        'address',
        address,
        8,
        `DMA write of 8 bytes at ${hex(address)}: value ${String(value)} is not an integer in [0, 2^53)`,
      );
    }
    const hit = this.small(address, 8, true);
    const view = hit ? hit.view : this.scratchView;
    const at = hit ? hit.at : 0;
    view.setUint32(at, value % 2 ** 32, true);
    view.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
    if (!hit) this.write(address, this.scratch, 0, 8);
  }
}

function mapWindows(fd: number, fdOffset: number, size: number, writable: boolean): Window[] {
  const windows: Window[] = [];
  try {
    for (let done = 0; done < size; done += WINDOW_SIZE) {
      const length = Math.min(WINDOW_SIZE, size - done);
      const [buffer, handle] = native.mmap(fd, fdOffset + done, length, writable);
      windows.push({ bytes: new Uint8Array(buffer), view: new DataView(buffer), buffer, handle });
    }
    return windows;
  } catch (e) {
    for (const w of windows) native.munmap(w.handle, w.buffer);
    throw e;
  }
}

function release(r: Region): void {
  for (const w of r.windows) native.munmap(w.handle, w.buffer);
}

function copyOut(r: Region, offset: number, into: Uint8Array, at: number, length: number): void {
  let done = 0;
  while (done < length) {
    const w = r.windows[Math.floor((offset + done) / WINDOW_SIZE)]!;
    const start = (offset + done) % WINDOW_SIZE;
    const n = Math.min(length - done, w.bytes.length - start);
    into.set(w.bytes.subarray(start, start + n), at + done);
    done += n;
  }
}

function copyIn(r: Region, offset: number, from: Uint8Array, at: number, length: number): void {
  let done = 0;
  while (done < length) {
    const w = r.windows[Math.floor((offset + done) / WINDOW_SIZE)]!;
    const start = (offset + done) % WINDOW_SIZE;
    const n = Math.min(length - done, w.bytes.length - start);
    w.bytes.set(from.subarray(at + done, at + done + n), start);
    done += n;
  }
}
