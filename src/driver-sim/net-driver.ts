/**
 * A simulated virtio-net driver at the data path level (what Linux virtio_net does with its
 * rings): receive buffers posted on receiveq0, frames sent on transmitq0 after the header
 * (10 bytes legacy, 12 with MRG_RXBUF or VERSION_1), used transmit buffers reclaimed, received
 * frames read back (mergeable ones reassembled from num_buffers buffers), control commands.
 * Header fields are encoded here from the spec layout, independently of the device's code.
 */
import { virtioNetCtrl, virtioNetHdr } from '../spec/index.js';
import { BufferPool, type DmaArena } from './memory.js';
import { openQueue, type RingLayout } from './queues.js';
import type { DriverRing } from './rings.js';
import type { DriverTransport } from './transport.js';

const H = virtioNetHdr.registers;

export interface NetDriverOptions {
  arena: DmaArena;
  layout: RingLayout;
  /** 10 or 12. */
  headerSize: number;
  /** VIRTIO_NET_F_MRG_RXBUF negotiated: a frame may span several receive buffers. */
  mergeable: boolean;
  queueSize?: number;
  rxBufferSize?: number;
  txBufferSize?: number;
  /** Put each transmit chain in an indirect table (header and frame as two buffers). */
  indirectTx?: boolean;
  /** VIRTIO_NET_F_CTRL_VQ: queue 2 is the control queue. */
  control?: boolean;
}

export interface HeaderFields {
  flags?: number;
  gsoType?: number;
  hdrLen?: number;
  gsoSize?: number;
  csumStart?: number;
  csumOffset?: number;
}

export interface ReceivedFrame {
  frame: Uint8Array;
  header: Required<HeaderFields>;
  /** num_buffers from the header (1 for a 10-byte header). */
  numBuffers: number;
  /** Buffers the frame actually took. */
  buffers: number;
}

export class NetDriver {
  readonly rx: DriverRing;
  readonly tx: DriverRing;
  readonly ctrl: DriverRing | undefined;
  private readonly rxPool: BufferPool;
  private readonly txPool: BufferPool;
  private readonly rxById = new Map<number, number>();
  private readonly txById = new Map<number, number[]>();
  private readonly ctrlPool: BufferPool | undefined;
  private readonly headerSize: number;
  private partial:
    { chunks: Uint8Array[]; left: number; header: Required<HeaderFields>; numBuffers: number } | undefined;

  constructor(
    private readonly transport: DriverTransport,
    private readonly options: NetDriverOptions,
  ) {
    const size = options.queueSize ?? 256;
    this.headerSize = options.headerSize;
    this.rx = openQueue(transport, options.arena, 0, size, options.layout);
    this.tx = openQueue(transport, options.arena, 1, size, options.layout);
    this.ctrl = options.control ? openQueue(transport, options.arena, 2, 64, options.layout) : undefined;
    this.rxPool = new BufferPool(options.arena, options.rxBufferSize ?? 2048, size);
    this.txPool = new BufferPool(options.arena, options.txBufferSize ?? 2048, 2 * size);
    this.ctrlPool = options.control ? new BufferPool(options.arena, 4096, 2) : undefined;
    this.refill();
  }

  /** Posts receive buffers until the ring or the pool is full, then notifies. */
  refill(): void {
    let added = 0;
    while (this.rx.free > 0 && this.rxPool.available > 0) {
      const address = this.rxPool.take();
      const id = this.rx.add([{ address, length: this.rxPool.slotSize, writable: true }]);
      this.rxById.set(id, address);
      added++;
    }
    if (added > 0 && this.rx.kickNeeded()) this.transport.kick(0);
  }

  private headerBytes(h: HeaderFields): Buffer {
    const b = Buffer.alloc(this.headerSize);
    b.writeUInt8(h.flags ?? 0, H.FLAGS.offset);
    b.writeUInt8(h.gsoType ?? 0, H.GSO_TYPE.offset);
    b.writeUInt16LE(h.hdrLen ?? 0, H.HDR_LEN.offset);
    b.writeUInt16LE(h.gsoSize ?? 0, H.GSO_SIZE.offset);
    b.writeUInt16LE(h.csumStart ?? 0, H.CSUM_START.offset);
    b.writeUInt16LE(h.csumOffset ?? 0, H.CSUM_OFFSET.offset);
    return b;
  }

  /** Reclaims transmit buffers the device has used. */
  reclaim(): number {
    const used = this.tx.takeUsed();
    for (const u of used) {
      for (const a of this.txById.get(u.id) ?? []) this.txPool.give(a);
      this.txById.delete(u.id);
    }
    return used.length;
  }

  /** Queues frames for transmission (header + frame in one buffer, or two in an indirect table) and kicks once. */
  send(frames: readonly Uint8Array[], header: HeaderFields = {}): void {
    const hdr = this.headerBytes(header);
    const dma = this.transport.dma;
    for (const frame of frames) {
      if (this.tx.free < 1 || this.txPool.available < 3) {
        if (this.tx.kickNeeded()) this.transport.kick(1);
        this.reclaim();
      }
      const a = this.txPool.take();
      let id: number;
      if (this.options.indirectTx) {
        const table = this.txPool.take();
        dma.write(a, hdr, 0, hdr.length);
        const f = this.txPool.take();
        dma.write(f, frame, 0, frame.length);
        id = this.tx.add(
          [
            { address: a, length: hdr.length, writable: false },
            { address: f, length: frame.length, writable: false },
          ],
          { indirect: table },
        );
        this.txById.set(id, [a, table, f]);
      } else {
        dma.write(a, hdr, 0, hdr.length);
        dma.write(a + hdr.length, frame, 0, frame.length);
        id = this.tx.add([{ address: a, length: hdr.length + frame.length, writable: false }]);
        this.txById.set(id, [a]);
      }
    }
    if (this.tx.kickNeeded()) this.transport.kick(1);
    this.reclaim();
  }

  /** Frames the device delivered since the last call; their buffers are posted again. */
  receive(): ReceivedFrame[] {
    const out: ReceivedFrame[] = [];
    const dma = this.transport.dma;
    for (const u of this.rx.takeUsed()) {
      const address = this.rxById.get(u.id)!;
      this.rxById.delete(u.id);
      const bytes = new Uint8Array(u.length);
      dma.read(address, bytes, 0, u.length);
      this.rxPool.give(address);
      if (!this.partial) {
        const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
        const header = {
          flags: b.readUInt8(H.FLAGS.offset),
          gsoType: b.readUInt8(H.GSO_TYPE.offset),
          hdrLen: b.readUInt16LE(H.HDR_LEN.offset),
          gsoSize: b.readUInt16LE(H.GSO_SIZE.offset),
          csumStart: b.readUInt16LE(H.CSUM_START.offset),
          csumOffset: b.readUInt16LE(H.CSUM_OFFSET.offset),
        };
        const numBuffers =
          this.headerSize >= H.NUM_BUFFERS.offset + 2 ? b.readUInt16LE(H.NUM_BUFFERS.offset) : 1;
        this.partial = {
          chunks: [bytes.subarray(this.headerSize)],
          left: numBuffers - 1,
          header,
          numBuffers,
        };
      } else {
        this.partial.chunks.push(bytes);
        this.partial.left--;
      }
      if (this.partial.left <= 0) {
        const p = this.partial;
        this.partial = undefined;
        out.push({
          frame: Buffer.concat(p.chunks),
          header: p.header,
          numBuffers: p.numBuffers,
          buffers: p.chunks.length,
        });
      }
    }
    this.refill();
    return out;
  }

  /** Sends one control command and returns the ack (the device answers within the kick). */
  command(cls: number, cmd: number, data: Uint8Array = new Uint8Array(0)): number {
    if (!this.ctrl || !this.ctrlPool) throw new Error('the control queue was not set up');
    const dma = this.transport.dma;
    const a = this.ctrlPool.take();
    const ackAt = this.ctrlPool.take();
    dma.write(a, Uint8Array.of(cls, cmd), 0, 2);
    dma.write(a + 2, data, 0, data.length);
    dma.write(ackAt, Uint8Array.of(0xff), 0, 1);
    this.ctrl.add([
      { address: a, length: 2 + data.length, writable: false },
      { address: ackAt, length: virtioNetCtrl.constants.ACK_SIZE.value, writable: true },
    ]);
    if (this.ctrl.kickNeeded()) this.transport.kick(2);
    const used = this.ctrl.takeUsed();
    const ack = new Uint8Array(1);
    dma.read(ackAt, ack, 0, 1);
    this.ctrlPool.give(a);
    this.ctrlPool.give(ackAt);
    if (used.length !== 1) throw new Error(`control command not completed (${used.length} used entries)`);
    return ack[0]!;
  }
}
