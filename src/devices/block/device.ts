/**
 * virtio-blk back-end (virtio 1.2 §5.2, Block Device).
 *
 * A request (§5.2.6) is one chain: struct virtio_blk_outhdr { le32 type; le32 ioprio; le64
 * sector; } (device-readable), the data (device-readable for OUT, device-writable for IN), and
 * one device-writable status byte, the chain's last writable byte. Sectors are 512 bytes
 * whatever blk_size says. A chain without room for the header or the status byte holds no
 * request: it breaks the queue (DEVICE_NEEDS_RESET), as QEMU does ("virtio-blk missing headers").
 *
 * Status: OK; IOERR for a range past the capacity, a data length that is not a whole number of
 * sectors, a write to a read-only disk (§5.2.6.2), more data segments than seg_max or a segment
 * larger than size_max (when negotiated), a failed back-end call and an injected error; UNSUPP
 * for unknown types and for DISCARD / WRITE_ZEROES when not negotiated or with reserved flags.
 *
 * Used length: the bytes written from the start of the writable part — data and status for a
 * successful IN or GET_ID, the status byte alone for requests without data in, 0 when an IN
 * request fails (only the status byte, at the end, is written; §2.7.8 allows an underestimate).
 */
import { deviceConfigs, features, virtioBlkReq } from '../../spec/index.js';
import { VirtqueueError, type DescriptorChain } from '../../virtqueue/index.js';
import { hasFeature, type DeviceBackend, type DeviceContext } from '../context.js';
import { serveQueue } from '../serve.js';
import type { BlockBackend } from './backend.js';

const B = deviceConfigs.block.constants;
const CFG = deviceConfigs.block.registers;
const F = features.byType.block.constants;
const Q = virtioBlkReq.registers;
const QC = virtioBlkReq.constants;
const SECTOR = B.SECTOR_SIZE.value;
const OUTHDR = B.OUTHDR_SIZE.value;
const STATUS_SIZE = QC.STATUS_SIZE.value;
const SEGMENT = QC.SEGMENT_SIZE.value;

export type InjectedOp = 'read' | 'write' | 'all';

export interface BlockOptions {
  backend: BlockBackend;
  /** GET_ID answer: up to 20 bytes, NUL-padded (§5.2.6.1). */
  serial: string;
}

export interface BlockStats {
  reads: number;
  writes: number;
  flushes: number;
  getIds: number;
  discards: number;
  writeZeroes: number;
  unsupported: number;
  ioErrors: number;
  injectedErrors: number;
  bytesRead: number;
  bytesWritten: number;
}

interface Injection {
  first: number;
  end: number;
  op: InjectedOp;
}

class RequestFailed extends Error {
  constructor(readonly status: number) {
    super('request failed');
  }
}

export class BlockDevice implements DeviceBackend {
  readonly type = 'block' as const;
  readonly backend: BlockBackend;
  private readonly serial: Uint8Array;
  private injections: Injection[] = [];
  readonly stats: BlockStats = {
    reads: 0,
    writes: 0,
    flushes: 0,
    getIds: 0,
    discards: 0,
    writeZeroes: 0,
    unsupported: 0,
    ioErrors: 0,
    injectedErrors: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };

  constructor(
    private readonly ctx: DeviceContext,
    options: BlockOptions,
  ) {
    this.backend = options.backend;
    const id = Buffer.from(options.serial, 'latin1');
    if (id.length > B.ID_BYTES.value)
      throw new RangeError(
        `block serial ${JSON.stringify(options.serial)} is longer than ${B.ID_BYTES.value} bytes`,
      );
    this.serial = new Uint8Array(B.ID_BYTES.value);
    this.serial.set(id);
  }

  private has(bit: number): boolean {
    return hasFeature(this.ctx.features, bit);
  }

  /** Request queues: 1, or num_queues with VIRTIO_BLK_F_MQ. */
  get queueCount(): number {
    return this.has(F.MQ.value) ? Math.max(1, this.ctx.readConfig(CFG.NUM_QUEUES.offset, 2)) : 1;
  }

  notify(queue: number): void {
    if (queue < this.queueCount) serveQueue(this.ctx, queue, (c) => this.request(c));
  }

  reset(): void {
    // Requests complete before their chain is returned: nothing is in flight.
  }

  /** Makes requests touching sectors [first, first + count) fail with IOERR. */
  injectErrors(first: number, count: number, op: InjectedOp = 'all'): void {
    this.injections.push({ first, end: first + count, op });
  }

  clearErrors(): void {
    this.injections = [];
  }

  get injectedRanges(): Array<{ first: number; count: number; op: InjectedOp }> {
    return this.injections.map((i) => ({ first: i.first, count: i.end - i.first, op: i.op }));
  }

  private fail(status: number): never {
    throw new RequestFailed(status);
  }

  private checkRange(sector: number, bytes: number, op: 'read' | 'write'): void {
    const sectors = bytes / SECTOR;
    if (bytes % SECTOR !== 0 || sector > this.backend.sectors || sectors > this.backend.sectors - sector)
      this.fail(B.S_IOERR.value);
    for (const i of this.injections) {
      if ((i.op === 'all' || i.op === op) && sector < i.end && sector + Math.max(1, sectors) > i.first) {
        this.stats.injectedErrors++;
        this.fail(B.S_IOERR.value);
      }
    }
  }

  private checkSegments(
    chain: DescriptorChain,
    part: 'readable' | 'writable',
    offset: number,
    length: number,
  ): void {
    const { count, largest } = chain.segments(part, offset, length);
    if (this.has(F.SEG_MAX.value) && count > this.ctx.readConfig(CFG.SEG_MAX.offset, 4))
      this.fail(B.S_IOERR.value);
    if (this.has(F.SIZE_MAX.value) && largest > this.ctx.readConfig(CFG.SIZE_MAX.offset, 4))
      this.fail(B.S_IOERR.value);
  }

  private backendCall(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof RequestFailed || e instanceof VirtqueueError) throw e;
      this.fail(B.S_IOERR.value);
    }
  }

  private request(chain: DescriptorChain): number {
    if (chain.readable < OUTHDR || chain.writable < STATUS_SIZE) {
      throw new VirtqueueError(
        chain.queue,
        chain.head,
        'request',
        `virtio-blk request needs a ${OUTHDR}-byte header (device-readable) and a status byte (device-writable); ` +
          `the chain has ${chain.readable} and ${chain.writable}`,
      );
    }
    const type = chain.readUint(Q.TYPE.offset, 4);
    const sectorLo = chain.readUint(Q.SECTOR.offset, 4);
    const sectorHi = chain.readUint(Q.SECTOR.offset + 4, 4);
    const sector = sectorHi >= 2 ** 21 ? Number.MAX_SAFE_INTEGER : sectorHi * 2 ** 32 + sectorLo;
    const dataIn = chain.writable - STATUS_SIZE;
    const dataOut = chain.readable - OUTHDR;
    let status: number = B.S_OK.value;
    // Written from the start of the writable part: the status byte alone only if it is first.
    const statusOnly = dataIn === 0 ? STATUS_SIZE : 0;
    let used = statusOnly;
    let length = 0;
    try {
      switch (type) {
        case B.T_IN.value:
          length = dataIn;
          this.readData(chain, sector, dataIn);
          used = chain.writable;
          break;
        case B.T_OUT.value:
          length = dataOut;
          this.writeData(chain, sector, dataOut);
          break;
        case B.T_FLUSH.value:
          this.stats.flushes++;
          this.backendCall(() => this.backend.flush());
          break;
        case B.T_GET_ID.value:
          this.getId(chain, dataIn);
          used = chain.writable;
          break;
        case B.T_DISCARD.value:
        case B.T_WRITE_ZEROES.value:
          this.ranges(chain, type, dataOut);
          break;
        default:
          this.stats.unsupported++;
          status = B.S_UNSUPP.value;
      }
    } catch (e) {
      if (!(e instanceof RequestFailed)) throw e;
      status = e.status;
      if (status === B.S_IOERR.value) this.stats.ioErrors++;
      else this.stats.unsupported++;
      used = statusOnly;
    }
    chain.writeUint(dataIn, 1, status);
    if (this.ctx.listening)
      this.ctx.emit({
        type: 'block-request',
        request: type,
        sector: Math.min(sector, Number.MAX_SAFE_INTEGER),
        length,
        status,
      });
    return used;
  }

  /** VIRTIO_BLK_T_IN: sectors into the writable buffers before the status byte. */
  private readData(chain: DescriptorChain, sector: number, dataIn: number): void {
    this.stats.reads++;
    this.checkRange(sector, dataIn, 'read');
    this.checkSegments(chain, 'writable', 0, dataIn);
    const base = sector * SECTOR;
    this.backendCall(() =>
      chain.writePieces(0, dataIn, (into, at, n, position) =>
        this.backend.read(base + position, into, at, n),
      ),
    );
    this.stats.bytesRead += dataIn;
  }

  /** VIRTIO_BLK_T_OUT: the readable bytes after the header onto the disk. */
  private writeData(chain: DescriptorChain, sector: number, dataOut: number): void {
    this.stats.writes++;
    if (this.backend.readOnly) this.fail(B.S_IOERR.value);
    this.checkRange(sector, dataOut, 'write');
    this.checkSegments(chain, 'readable', OUTHDR, dataOut);
    const base = sector * SECTOR;
    this.backendCall(() =>
      chain.readPieces(OUTHDR, dataOut, (bytes, at, n, position) =>
        this.backend.write(base + position, bytes, at, n),
      ),
    );
    this.stats.bytesWritten += dataOut;
    this.stabilize();
  }

  /** VIRTIO_BLK_T_GET_ID: the serial, zero-padded to the buffer (at most 20 bytes, §5.2.6). */
  private getId(chain: DescriptorChain, dataIn: number): void {
    this.stats.getIds++;
    const n = Math.min(dataIn, B.ID_BYTES.value);
    chain.scatter(0, this.serial, 0, n);
    if (dataIn > n) chain.fill(n, dataIn - n, 0);
  }

  /** DISCARD and WRITE_ZEROES (§5.2.6: segments of struct virtio_blk_discard_write_zeroes). */
  private ranges(chain: DescriptorChain, type: number, dataOut: number): void {
    const discard = type === B.T_DISCARD.value;
    if (!this.has(discard ? F.DISCARD.value : F.WRITE_ZEROES.value)) this.fail(B.S_UNSUPP.value);
    if (discard) this.stats.discards++;
    else this.stats.writeZeroes++;
    if (this.backend.readOnly) this.fail(B.S_IOERR.value);
    const count = dataOut / SEGMENT;
    const maxSeg = discard ? QC.MAX_DISCARD_SEG.value : QC.MAX_WRITE_ZEROES_SEG.value;
    const maxSectors = discard ? QC.MAX_DISCARD_SECTORS.value : QC.MAX_WRITE_ZEROES_SECTORS.value;
    if (count < 1 || dataOut % SEGMENT !== 0 || count > maxSeg) this.fail(B.S_IOERR.value);
    const segments: Array<[number, number]> = [];
    for (let k = 0; k < count; k++) {
      const at = OUTHDR + k * SEGMENT;
      const lo = chain.readUint(at + Q.SEGMENT_SECTOR.offset, 4);
      const hi = chain.readUint(at + Q.SEGMENT_SECTOR.offset + 4, 4);
      const sectors = chain.readUint(at + Q.SEGMENT_NUM_SECTORS.offset, 4);
      const flags = chain.readUint(at + Q.SEGMENT_FLAGS.offset, 4);
      const reserved = discard ? 0xffff_ffff : QC.SEGMENT_FLAGS_RESERVED.value;
      if ((flags & reserved) !== 0) this.fail(B.S_UNSUPP.value);
      if (sectors > maxSectors) this.fail(B.S_IOERR.value);
      const sector = hi >= 2 ** 21 ? Number.MAX_SAFE_INTEGER : hi * 2 ** 32 + lo;
      this.checkRange(sector, sectors * SECTOR, 'write');
      segments.push([sector * SECTOR, sectors * SECTOR]);
    }
    for (const [offset, length] of segments) {
      this.backendCall(() =>
        discard ? this.backend.discard(offset, length) : this.backend.writeZeroes(offset, length),
      );
    }
    this.stabilize();
  }

  /**
   * Write-through when §5.2.6.2 requires completed writes to be stable: neither CONFIG_WCE nor
   * FLUSH negotiated (FLUSH is offered), or CONFIG_WCE negotiated with writeback 0.
   */
  private stabilize(): void {
    const wce = this.has(F.CONFIG_WCE.value);
    const writeThrough = wce ? this.ctx.readConfig(CFG.WRITEBACK.offset, 1) === 0 : !this.has(F.FLUSH.value);
    if (writeThrough) this.backendCall(() => this.backend.flush());
  }
}
