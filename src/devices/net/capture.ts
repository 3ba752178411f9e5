/**
 * The frames a function transmitted, kept in a bounded ring (the newest `maxFrames` frames and
 * at most `maxBytes` of frame bytes; older ones are forgotten first) and written out as a
 * classic pcap file (tcpdump.org pcap-savefile(5): magic 0xa1b2c3d4, version 2.4, linktype 1
 * Ethernet), which tcpdump -r and tshark -r read. The virtio-net header is not part of a frame:
 * its checksum and GSO fields are kept beside it in each record.
 *
 * Frame bytes live in one arena that grows by doubling up to `maxBytes` and then wraps; nothing
 * is allocated per frame. A function that never transmits allocates nothing.
 */
import { pcap } from '../../spec/index.js';
import type { NetHeader } from './header.js';

const P = pcap.constants;
const FILE_HEADER = P.FILE_HEADER_SIZE.value;
const RECORD_HEADER = P.RECORD_HEADER_SIZE.value;
const SNAPLEN = P.SNAPLEN.value;
const INITIAL_ARENA = 64 * 1024;

export interface CapturedFrame {
  seq: number;
  /** Microseconds since the epoch. */
  time: number;
  queue: number;
  /** Bytes on the wire (may exceed `data.length` when the frame was cut at the snap length). */
  length: number;
  header: NetHeader;
  data: Uint8Array;
}

export class CaptureRing {
  private arena: Uint8Array | undefined;
  private write = 0;
  private head = 0;
  private count = 0;
  private nextSeq = 0;
  private readonly start: Uint32Array;
  private readonly kept: Uint32Array;
  private readonly wire: Uint32Array;
  private readonly time: Float64Array;
  private readonly meta: Uint16Array;
  static readonly META = 7;

  constructor(
    readonly maxFrames: number,
    readonly maxBytes: number,
  ) {
    this.start = new Uint32Array(maxFrames);
    this.kept = new Uint32Array(maxFrames);
    this.wire = new Uint32Array(maxFrames);
    this.time = new Float64Array(maxFrames);
    this.meta = new Uint16Array(maxFrames * CaptureRing.META);
  }

  /** Frames in the ring. */
  get size(): number {
    return this.count;
  }

  /** Frames captured since the ring was made (sequence number of the next one). */
  get total(): number {
    return this.nextSeq;
  }

  private evictOldest(): void {
    this.head = (this.head + 1) % this.maxFrames;
    this.count--;
  }

  /** The arena the bytes of `reserve`d frames go to (valid until the next `reserve`). */
  get buffer(): Uint8Array {
    return this.arena!;
  }

  /** Frame bytes kept for the last `reserve`d frame (less than its length when cut). */
  lastKept = 0;

  /**
   * Reserves room for a frame of `length` bytes on the wire, preceded by `prefix` bytes the
   * caller may copy along (the virtio-net header, read in the same copy), and returns where the
   * prefix goes in `buffer`; the (possibly cut, see `lastKept`) frame bytes follow it. The
   * caller copies them in, then records the header with `setHeader`, before the next call.
   */
  reserve(prefix: number, length: number, time: number, queue: number): number {
    const kept = Math.min(length, SNAPLEN, Math.max(0, this.maxBytes - prefix));
    const need = prefix + kept;
    let arena = this.arena;
    if (!arena || (this.write + need > arena.length && arena.length < this.maxBytes)) {
      let size = arena?.length ?? Math.min(INITIAL_ARENA, this.maxBytes);
      while (size < this.write + need && size < this.maxBytes) size = Math.min(size * 2, this.maxBytes);
      const grown = new Uint8Array(Math.max(size, need));
      if (arena) grown.set(arena);
      arena = this.arena = grown;
    }
    if (this.write + need > arena.length) this.write = 0;
    const from = this.write;
    const to = from + need;
    while (this.count > 0) {
      const s = this.start[this.head]!;
      const e = s + this.kept[this.head]!;
      if (this.count < this.maxFrames && !(s < to && e > from)) break;
      this.evictOldest();
    }
    const slot = (this.head + this.count) % this.maxFrames;
    this.start[slot] = from + prefix;
    this.kept[slot] = kept;
    this.wire[slot] = length;
    this.time[slot] = time;
    this.meta[slot * CaptureRing.META] = queue;
    this.count++;
    this.nextSeq++;
    this.write = to;
    this.lastKept = kept;
    return from;
  }

  /** The virtio-net header fields of the last reserved frame. */
  setHeader(header: NetHeader): void {
    const m = ((this.head + this.count - 1) % this.maxFrames) * CaptureRing.META;
    this.meta[m + 1] = header.flags;
    this.meta[m + 2] = header.gsoType;
    this.meta[m + 3] = header.hdrLen;
    this.meta[m + 4] = header.gsoSize;
    this.meta[m + 5] = header.csumStart;
    this.meta[m + 6] = header.csumOffset;
  }

  /** The frames in the ring, oldest first (copies). */
  frames(): CapturedFrame[] {
    const out: CapturedFrame[] = [];
    const first = this.nextSeq - this.count;
    for (let k = 0; k < this.count; k++) {
      const slot = (this.head + k) % this.maxFrames;
      const m = slot * CaptureRing.META;
      const s = this.start[slot]!;
      out.push({
        seq: first + k,
        time: this.time[slot]!,
        queue: this.meta[m]!,
        length: this.wire[slot]!,
        header: {
          flags: this.meta[m + 1]!,
          gsoType: this.meta[m + 2]!,
          hdrLen: this.meta[m + 3]!,
          gsoSize: this.meta[m + 4]!,
          csumStart: this.meta[m + 5]!,
          csumOffset: this.meta[m + 6]!,
        },
        data: this.arena!.slice(s, s + this.kept[slot]!),
      });
    }
    return out;
  }

  clear(): void {
    this.arena = undefined;
    this.write = 0;
    this.head = 0;
    this.count = 0;
  }

  /** The ring as a classic pcap file. */
  toPcap(): Buffer {
    return writePcap(this.frames());
  }
}

/** A classic little-endian pcap file of `frames` (microsecond timestamps, Ethernet). */
export function writePcap(frames: readonly Pick<CapturedFrame, 'time' | 'length' | 'data'>[]): Buffer {
  const R = pcap.registers;
  const total = FILE_HEADER + frames.reduce((n, f) => n + RECORD_HEADER + f.data.length, 0);
  const out = Buffer.alloc(total);
  out.writeUInt32LE(P.MAGIC.value, R.MAGIC.offset);
  out.writeUInt16LE(P.VERSION_MAJOR.value, R.VERSION_MAJOR.offset);
  out.writeUInt16LE(P.VERSION_MINOR.value, R.VERSION_MINOR.offset);
  out.writeInt32LE(0, R.THISZONE.offset);
  out.writeUInt32LE(0, R.SIGFIGS.offset);
  out.writeUInt32LE(SNAPLEN, R.SNAPLEN.offset);
  out.writeUInt32LE(P.LINKTYPE_ETHERNET.value, R.LINKTYPE.offset);
  let at = FILE_HEADER;
  for (const f of frames) {
    const seconds = Math.floor(f.time / 1e6);
    out.writeUInt32LE(seconds >>> 0, at + R.TS_SEC.offset);
    out.writeUInt32LE(Math.floor(f.time - seconds * 1e6), at + R.TS_USEC.offset);
    out.writeUInt32LE(f.data.length, at + R.INCL_LEN.offset);
    out.writeUInt32LE(f.length, at + R.ORIG_LEN.offset);
    out.set(f.data, at + RECORD_HEADER);
    at += RECORD_HEADER + f.data.length;
  }
  return out;
}
