/**
 * A simulated virtio-blk driver at the data path level: each request is a chain of a 16-byte
 * header (type, reserved, sector — little-endian, laid out here from the spec), the data split
 * into segments of at most `segmentSize` bytes, and a status byte; the driver notifies, and
 * reads the status and used length back once the device returns the chain.
 */
import { deviceConfigs, virtioBlkReq } from '../spec/index.js';
import { BufferPool, type DmaArena } from './memory.js';
import { openQueue, type RingLayout } from './queues.js';
import type { DriverBuffer, DriverRing } from './rings.js';
import type { DriverTransport } from './transport.js';

const T = deviceConfigs.block.constants;
const Q = virtioBlkReq.registers;
const SECTOR = T.SECTOR_SIZE.value;

export interface BlockDriverOptions {
  arena: DmaArena;
  layout: RingLayout;
  queueSize?: number;
  /** Largest data segment (default 64 KiB, the device's size_max). */
  segmentSize?: number;
  /** Data buffers available for requests in flight. */
  maxTransfer?: number;
  /** Put each request in an indirect table. */
  indirect?: boolean;
}

export interface BlockResult {
  status: number;
  /** Used length the device reported. */
  used: number;
  /** Bytes the device wrote into the data-in buffers (IN, GET_ID). */
  data: Uint8Array;
}

export interface RequestSpec {
  type: number;
  sector?: number;
  /** Device-readable data after the header. */
  out?: Uint8Array;
  /** Device-writable data bytes before the status byte. */
  inLength?: number;
}

export class BlockDriver {
  readonly queue: DriverRing;
  private readonly small: BufferPool;
  private readonly data: DmaArena;
  private readonly segmentSize: number;
  private dataNext: number;
  private readonly dataBase: number;
  private readonly dataSize: number;

  constructor(
    private readonly transport: DriverTransport,
    private readonly options: BlockDriverOptions,
  ) {
    const size = options.queueSize ?? 256;
    this.queue = openQueue(transport, options.arena, 0, size, options.layout);
    this.small = new BufferPool(options.arena, 64, 2 * size + 2);
    this.segmentSize = options.segmentSize ?? 64 * 1024;
    this.dataSize = options.maxTransfer ?? 1 << 20;
    this.dataBase = options.arena.alloc(this.dataSize, 4096);
    this.dataNext = this.dataBase;
    this.data = options.arena;
  }

  private dataRange(length: number): number {
    if (length > this.dataSize)
      throw new RangeError(
        `transfer of ${length} bytes is larger than the driver's ${this.dataSize}-byte data area`,
      );
    if (this.dataNext + length > this.dataBase + this.dataSize) this.dataNext = this.dataBase;
    const at = this.dataNext;
    this.dataNext += length;
    return at;
  }

  private segments(address: number, length: number, writable: boolean): DriverBuffer[] {
    const out: DriverBuffer[] = [];
    for (let done = 0; done < length; done += this.segmentSize) {
      out.push({ address: address + done, length: Math.min(this.segmentSize, length - done), writable });
    }
    return out;
  }

  /** Submits requests as one batch, one notification, and returns their results in order. */
  submit(requests: readonly RequestSpec[]): BlockResult[] {
    const dma = this.transport.dma;
    const pending: Array<{ id: number; header: number; status: number; dataIn: number; inLength: number }> =
      [];
    for (const r of requests) {
      const header = this.small.take();
      const status = this.small.take();
      const hdr = Buffer.alloc(Q.SECTOR.offset + Q.SECTOR.size);
      hdr.writeUInt32LE(r.type, Q.TYPE.offset);
      hdr.writeBigUInt64LE(BigInt(r.sector ?? 0), Q.SECTOR.offset);
      dma.write(header, hdr, 0, hdr.length);
      dma.write(status, Uint8Array.of(0xff), 0, 1);
      const buffers: DriverBuffer[] = [{ address: header, length: hdr.length, writable: false }];
      if (r.out && r.out.length > 0) {
        const at = this.dataRange(r.out.length);
        dma.write(at, r.out, 0, r.out.length);
        buffers.push(...this.segments(at, r.out.length, false));
      }
      const inLength = r.inLength ?? 0;
      const dataIn = inLength > 0 ? this.dataRange(inLength) : 0;
      if (inLength > 0) buffers.push(...this.segments(dataIn, inLength, true));
      buffers.push({ address: status, length: 1, writable: true });
      const id = this.queue.add(
        buffers,
        this.options.indirect ? { indirect: this.data.alloc(16 * buffers.length, 16) } : {},
      );
      pending.push({ id, header, status, dataIn, inLength });
    }
    if (this.queue.kickNeeded()) this.transport.kick(0);
    const used = new Map(this.queue.takeUsed().map((u) => [u.id, u.length]));
    return pending.map((p) => {
      const length = used.get(p.id);
      if (length === undefined) throw new Error(`request ${p.id} was not completed`);
      const st = new Uint8Array(1);
      dma.read(p.status, st, 0, 1);
      const data = new Uint8Array(p.inLength);
      if (p.inLength > 0) dma.read(p.dataIn, data, 0, p.inLength);
      this.small.give(p.header);
      this.small.give(p.status);
      return { status: st[0]!, used: length, data };
    });
  }

  request(spec: RequestSpec): BlockResult {
    return this.submit([spec])[0]!;
  }

  read(sector: number, count: number): BlockResult {
    return this.request({ type: T.T_IN.value, sector, inLength: count * SECTOR });
  }

  write(sector: number, data: Uint8Array): BlockResult {
    return this.request({ type: T.T_OUT.value, sector, out: data });
  }

  flush(): BlockResult {
    return this.request({ type: T.T_FLUSH.value });
  }

  getId(length: number = T.ID_BYTES.value): BlockResult {
    return this.request({ type: T.T_GET_ID.value, inLength: length });
  }

  /** DISCARD (or WRITE_ZEROES) of `ranges` as struct virtio_blk_discard_write_zeroes segments. */
  ranges(
    type: number,
    ranges: ReadonlyArray<{ sector: number; count: number; flags?: number }>,
  ): BlockResult {
    const seg = virtioBlkReq.constants.SEGMENT_SIZE.value;
    const out = Buffer.alloc(seg * ranges.length);
    ranges.forEach((r, k) => {
      out.writeBigUInt64LE(BigInt(r.sector), k * seg + Q.SEGMENT_SECTOR.offset);
      out.writeUInt32LE(r.count, k * seg + Q.SEGMENT_NUM_SECTORS.offset);
      out.writeUInt32LE(r.flags ?? 0, k * seg + Q.SEGMENT_FLAGS.offset);
    });
    return this.request({ type, out });
  }
}
