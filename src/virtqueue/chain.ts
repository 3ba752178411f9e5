/**
 * One descriptor chain taken from a virtqueue: the buffers of one request, device-readable ones
 * first (virtio 1.2 §2.7.4 / §2.8.4 "Message Framing"). The device reads the readable bytes as one
 * gathered stream and writes the writable bytes through a scatter writer; neither can reach
 * outside the chain's buffers (a device asking for more is a RangeError: a device bug, never a
 * guest's). A DMA fault while touching a buffer becomes a VirtqueueError('dma') naming the
 * descriptor the buffer came from.
 *
 * Zero-copy: when the DMA space offers views (DmaDirect) and the bytes asked for lie in one
 * buffer and one backing piece, `gather` and `writableView` hand out views into guest memory.
 */
import { hasDirect, type DmaDirect } from '../dma/direct.js';
import { DmaFault, type DmaSpace } from '../dma/space.js';
import { datapath } from '../spec/index.js';
import { VirtqueueError } from './errors.js';

/** One buffer of a chain, for inspection. */
export interface ChainBuffer {
  address: number;
  length: number;
  writable: boolean;
  /** Index of the descriptor that described it, in its table. */
  descriptor: number;
  indirect: boolean;
}

const FIELDS = 4;
/** Without direct access, copies go page by page. */
const PAGE_SIZE = datapath.constants.PAGE_SIZE.value;

export class DescriptorChain {
  /** address, length, descriptor index, indirect (1/0) per buffer; readable buffers first. */
  private readonly seg: number[] = [];
  private readableBuffers = 0;
  private readonly direct: (DmaSpace & DmaDirect) | undefined;
  private scratch: Uint8Array | undefined;
  /** Total device-readable bytes. */
  readable = 0;
  /** Total device-writable bytes. */
  writable = 0;
  /** Bytes written from the start of the writable part (the used length the device reports). */
  written = 0;
  /** Ring descriptors the chain occupies (packed rings advance the used position by this). */
  slots = 1;

  constructor(
    private readonly dma: DmaSpace,
    /** Queue index (for errors). */
    readonly queue: number,
    /** Split: head descriptor index; packed: buffer id (set once the walk reaches it). What the used entry reports. */
    public head: number,
  ) {
    this.direct = hasDirect(dma) ? dma : undefined;
  }

  /** Called by the queue while walking the descriptors (order and bounds are checked there). */
  addBuffer(address: number, length: number, writable: boolean, descriptor: number, indirect: boolean): void {
    this.seg.push(address, length, descriptor, indirect ? 1 : 0);
    if (writable) this.writable += length;
    else {
      this.readable += length;
      this.readableBuffers++;
    }
  }

  get bufferCount(): number {
    return this.seg.length / FIELDS;
  }

  get writableBuffers(): number {
    return this.bufferCount - this.readableBuffers;
  }

  buffers(): ChainBuffer[] {
    const out: ChainBuffer[] = [];
    for (let i = 0; i < this.seg.length; i += FIELDS) {
      out.push({
        address: this.seg[i]!,
        length: this.seg[i + 1]!,
        writable: i / FIELDS >= this.readableBuffers,
        descriptor: this.seg[i + 2]!,
        indirect: this.seg[i + 3] === 1,
      });
    }
    return out;
  }

  private dmaError(e: unknown, segment: number): never {
    if (e instanceof DmaFault) {
      const base = segment * FIELDS;
      throw new VirtqueueError(
        this.queue,
        this.seg[base + 2]!,
        'dma',
        `buffer 0x${this.seg[base]!.toString(16)} length ${this.seg[base + 1]}: ${e.message}`,
        this.seg[base + 3] === 1 ? 'indirect' : 'ring',
      );
    }
    throw e;
  }

  private static outOfRange(what: string, offset: number, length: number, total: number): never {
    throw new RangeError(
      `chain ${what} range [${offset}, ${offset + length}) beyond its ${total} ${what} bytes`,
    );
  }

  /**
   * How many buffers of the readable (or writable) part [offset, offset + length) touches, and
   * the largest piece of it inside one buffer (checks against seg_max / size_max).
   */
  segments(
    part: 'readable' | 'writable',
    offset: number,
    length: number,
  ): { count: number; largest: number } {
    const first = part === 'readable' ? 0 : this.readableBuffers;
    const last = part === 'readable' ? this.readableBuffers : this.bufferCount;
    let count = 0;
    let largest = 0;
    let base = 0;
    for (let s = first; s < last && base < offset + length; s++) {
      const len = this.seg[s * FIELDS + 1]!;
      const from = Math.max(offset, base);
      const to = Math.min(offset + length, base + len);
      if (to > from) {
        count++;
        largest = Math.max(largest, to - from);
      }
      base += len;
    }
    return { count, largest };
  }

  /**
   * Visits the part of buffers `first`.. that covers bytes [offset, offset + length) of that
   * part: `visit(address, position, n)` per buffer piece, `position` counting from `offset`.
   * A DMA fault inside `visit` names the buffer's descriptor.
   */
  private eachBuffer(
    first: number,
    offset: number,
    length: number,
    visit: (address: number, position: number, n: number) => void,
  ): void {
    let base = 0;
    let position = 0;
    for (let s = first; position < length; s++) {
      const len = this.seg[s * FIELDS + 1]!;
      if (offset < base + len) {
        const n = Math.min(base + len - offset, length - position);
        try {
          visit(this.seg[s * FIELDS]! + offset - base, position, n);
        } catch (e) {
          this.dmaError(e, s);
        }
        position += n;
        offset += n;
      }
      base += len;
    }
  }

  /**
   * The buffer among `first`..`last` that holds all of [offset, offset + length) of their part,
   * as [segment, address], or undefined when the bytes cross buffers.
   */
  private within(first: number, last: number, offset: number, length: number): [number, number] | undefined {
    let base = 0;
    for (let s = first; s < last; s++) {
      const len = this.seg[s * FIELDS + 1]!;
      if (offset >= base && offset + length <= base + len) return [s, this.seg[s * FIELDS]! + offset - base];
      base += len;
      if (base > offset) return undefined;
    }
    return undefined;
  }

  /**
   * Splits `n` bytes of guest memory at `address` into pieces of contiguous backing memory,
   * `visit(view, at, m, done)`; without direct access into page-sized copies (`copyIn` fills a
   * copy before, `copyOut` stores it after the visit).
   */
  private backingPieces(
    address: number,
    n: number,
    writable: boolean,
    visit: (view: Uint8Array, at: number, m: number, done: number) => void,
  ): void {
    for (let done = 0; done < n;) {
      const a = address + done;
      const backing = this.direct?.backing(a, writable, n - done);
      if (backing) {
        visit(backing.view, backing.offset, backing.length, done);
        done += backing.length;
        continue;
      }
      const m = Math.min(n - done, PAGE_SIZE - (a % PAGE_SIZE));
      const copy = new Uint8Array(m);
      if (!writable) this.dma.read(a, copy, 0, m);
      visit(copy, 0, m, done);
      if (writable) this.dma.write(a, copy, 0, m);
      done += m;
    }
  }

  private checkPart(part: 'readable' | 'writable', offset: number, length: number): void {
    const total = part === 'readable' ? this.readable : this.writable;
    if (!(offset >= 0 && length >= 0 && offset + length <= total)) {
      DescriptorChain.outOfRange(part, offset, length, total);
    }
  }

  // ---- device-readable part ---------------------------------------------------------------

  /** Copies readable bytes [offset, offset + length) into `into[at..]`. */
  copyTo(offset: number, into: Uint8Array, at: number, length: number): void {
    this.checkPart('readable', offset, length);
    this.eachBuffer(0, offset, length, (address, position, n) =>
      this.dma.read(address, into, at + position, n),
    );
  }

  /**
   * Readable bytes [offset, offset + length): a view into guest memory when they lie in one
   * buffer of one backing piece, else a copy. Guest memory may change: copy what must be kept.
   */
  gather(offset = 0, length = this.readable - offset): Uint8Array {
    const found =
      this.direct && offset >= 0 && length >= 0
        ? this.within(0, this.readableBuffers, offset, length)
        : undefined;
    if (found) {
      try {
        const view = this.direct?.readView(found[1], length);
        if (view) return view;
      } catch (e) {
        this.dmaError(e, found[0]);
      }
    }
    const out = new Uint8Array(length);
    this.copyTo(offset, out, 0, length);
    return out;
  }

  /**
   * Hands readable bytes [offset, offset + length) to `sink` in pieces of contiguous backing
   * memory: `sink(bytes, at, n, position)` gets `n` bytes at `bytes[at..]`, straight from
   * guest memory where the space allows (else a copy); `position` counts from `offset`.
   */
  readPieces(
    offset: number,
    length: number,
    sink: (bytes: Uint8Array, at: number, n: number, position: number) => void,
  ): void {
    this.checkPart('readable', offset, length);
    this.eachBuffer(0, offset, length, (address, position, n) =>
      this.backingPieces(address, n, false, (view, at, m, done) => sink(view, at, m, position + done)),
    );
  }

  /** A little-endian value of `width` bytes at readable `offset`. */
  readUint(offset: number, width: 1 | 2 | 4): number {
    const len0 = this.readableBuffers > 0 ? this.seg[1]! : 0;
    if (width !== 1 && offset >= 0 && offset + width <= len0) {
      try {
        return width === 2
          ? this.dma.readU16(this.seg[0]! + offset)
          : this.dma.readU32(this.seg[0]! + offset);
      } catch (e) {
        this.dmaError(e, 0);
      }
    }
    const bytes = (this.scratch ??= new Uint8Array(8));
    this.copyTo(offset, bytes, 0, width);
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + bytes[i]!;
    return v;
  }

  /** A little-endian 64-bit value at readable `offset` (exact below 2^53, else a RangeError). */
  readU64(offset: number): number {
    const lo = this.readUint(offset, 4);
    const hi = this.readUint(offset + 4, 4);
    if (hi >= 2 ** 21) throw new RangeError(`64-bit field at readable offset ${offset} is 2^53 or more`);
    return hi * 2 ** 32 + lo;
  }

  // ---- device-writable part ---------------------------------------------------------------

  private writeRange(
    offset: number,
    length: number,
    apply: (address: number, position: number, n: number) => void,
  ): void {
    this.checkPart('writable', offset, length);
    this.eachBuffer(this.readableBuffers, offset, length, apply);
    if (offset + length > this.written) this.written = offset + length;
  }

  /** Writes `from[at..at+length)` at writable `offset`, across buffers as needed. */
  scatter(offset: number, from: Uint8Array, at: number, length: number): void {
    this.writeRange(offset, length, (address, k, n) => this.dma.write(address, from, at + k, n));
  }

  /**
   * Lets `fill` write writable bytes [offset, offset + length) in pieces of contiguous backing
   * memory: `fill(into, at, n, position)` writes `n` bytes at `into[at..]`, straight into
   * guest memory where the space allows (else through a copy); `position` counts from `offset`.
   */
  writePieces(
    offset: number,
    length: number,
    fill: (into: Uint8Array, at: number, n: number, position: number) => void,
  ): void {
    this.writeRange(offset, length, (address, position, n) =>
      this.backingPieces(address, n, true, (view, at, m, done) => fill(view, at, m, position + done)),
    );
  }

  /** Fills writable [offset, offset + length) with `value`. */
  fill(offset: number, length: number, value: number): void {
    let chunk: Uint8Array | undefined;
    this.writeRange(offset, length, (address, _k, n) => {
      if (!chunk || chunk.length < n) chunk = new Uint8Array(n).fill(value);
      this.dma.write(address, chunk, 0, n);
    });
  }

  /** Writes a little-endian value of `width` bytes at writable `offset`. */
  writeUint(offset: number, width: 1 | 2 | 4, value: number): void {
    const found = this.within(this.readableBuffers, this.bufferCount, offset, width);
    if (found) {
      const [s, address] = found;
      let stored = true;
      try {
        if (width === 2) this.dma.writeU16(address, value);
        else if (width === 4) this.dma.writeU32(address, value);
        else {
          const backing = this.direct?.backing(address, true, 1);
          if (backing) backing.view[backing.offset] = value;
          else stored = false;
        }
      } catch (e) {
        this.dmaError(e, s);
      }
      if (stored) {
        if (offset + width > this.written) this.written = offset + width;
        return;
      }
    }
    const bytes = (this.scratch ??= new Uint8Array(8));
    for (let i = 0; i < width; i++) bytes[i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
    this.scatter(offset, bytes, 0, width);
  }

  /**
   * A writable view of [offset, offset + length) when it lies in one buffer and one backing
   * piece (counted as written), else undefined (use `scatter`).
   */
  writableView(offset: number, length: number): Uint8Array | undefined {
    if (!this.direct || !(offset >= 0 && length >= 0 && offset + length <= this.writable)) return undefined;
    const found = this.within(this.readableBuffers, this.bufferCount, offset, length);
    if (!found) return undefined;
    let view: Uint8Array | undefined;
    try {
      view = this.direct.writeView(found[1], length);
    } catch (e) {
      this.dmaError(e, found[0]);
    }
    if (view && offset + length > this.written) this.written = offset + length;
    return view;
  }
}
