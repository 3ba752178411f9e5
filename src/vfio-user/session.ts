import { DmaFault } from '../dma/space.js';
import { Connection, RoundTripError, type ConnectionHandler, type Message } from './connection.js';
import { DeviceRefusal, type RegionDescription, type VfioUserDevice } from './device.js';
import { DmaTable, type DmaMessenger } from './dma-table.js';
import { IrqTable, irqIndexName, irqInfoFlags } from './irqs.js';
import { errnoName } from './native.js';
import {
  Command,
  ERROR,
  Errno,
  MSG,
  MSG_CONST,
  NO_REPLY,
  PROTO,
  TOO_LARGE,
  TYPE_COMMAND,
  VFIO,
  commandName,
  errorReply,
  getU64,
  newMessage,
  newReply,
  setU64,
  type Header,
} from './protocol.js';

/**
 * The protocol state of one client (qemu docs/interop/vfio-user.rst, one handler per command as
 * libvfio-user's lib/libvfio-user.c has): version negotiation, the DMA table, the interrupt set,
 * and the device behind them. Every client-supplied size, index and offset is checked before
 * use; every refusal is an error reply with an errno (none for a No_reply command) and a log
 * line that names the command, the field and why.
 */

/**
 * Layout of the server's DMA_READ/DMA_WRITE messages. The document has le64 count and data at
 * 16; QEMU 10.2's client (hw/vfio-user/protocol.h VFIOUserDMARW, pci.c) has le32 count and data
 * at 12 of the payload. Requests are the same bytes either way except where the data starts.
 */
export type DmaLayout = 'qemu' | 'spec';

export type LogLevel = 'debug' | 'info' | 'warn';
export type Log = (level: LogLevel, message: string) => void;

export interface SessionOptions {
  readonly dmaLayout: DmaLayout;
  readonly dmaTimeoutMs: number;
  readonly log: Log;
}

/** A refusal: the errno of the error reply and why. `close`: the connection cannot go on. */
class Refusal extends Error {
  constructor(
    readonly errno: number,
    message: string,
    readonly close = false,
  ) {
    super(message);
  }
}

function refuse(errno: number, message: string, close = false): never {
  throw new Refusal(errno, message, close);
}

/** What VERSION settled. */
interface Negotiated {
  readonly minor: number;
  /** Largest count of the server's DMA messages: the client's max_data_xfer_size, at most ours. */
  readonly dmaChunk: number;
  readonly writeMultiple: boolean;
}

/** Descriptors that came with a command; a handler takes them, the rest are closed afterwards. */
class FdBag {
  constructor(private fds: number[]) {}
  take(): number[] {
    const fds = this.fds;
    this.fds = [];
    return fds;
  }
  get size(): number {
    return this.fds.length;
  }
}

type Handler = (session: Session, h: Header, p: Uint8Array, fds: FdBag) => Uint8Array | null;

const FD_COMMANDS: ReadonlySet<number> = new Set([Command.DMA_MAP, Command.DEVICE_SET_IRQS]);
const MIGRATION_COMMANDS = [
  Command.DEVICE_FEATURE,
  Command.MIG_DATA_READ,
  Command.MIG_DATA_WRITE,
  Command.DIRTY_PAGES,
];

const SERVER_MAX_XFER = PROTO.SERVER_MAX_DATA_XFER_SIZE.value;
const PAGE = PROTO.SERVER_PGSIZES.value;
const MAP_READ = VFIO.DMA_MAP_FLAG_READ.value;
const MAP_WRITE = VFIO.DMA_MAP_FLAG_WRITE.value;
const UNMAP_ALL = VFIO.DMA_UNMAP_FLAG_ALL.value;
const UNMAP_UNSUPPORTED = VFIO.DMA_UNMAP_FLAG_GET_DIRTY_BITMAP.value | VFIO.DMA_UNMAP_FLAG_VADDR.value;
const DATA_BOOL = VFIO.IRQ_SET_DATA_BOOL.value;
const MSI_INDEXES: ReadonlySet<number> = new Set([VFIO.MSI_IRQ_INDEX.value, VFIO.MSIX_IRQ_INDEX.value]);
const WRITE_ONE = MSG_CONST.WRITE_ONE_SIZE.value;

function view(p: Uint8Array): DataView {
  return new DataView(p.buffer, p.byteOffset, p.byteLength);
}

function hex(n: number): string {
  return Number.isFinite(n) ? `0x${n.toString(16)}` : '2^53 or more';
}

function closeFds(fds: readonly number[], close: (fd: number) => void): void {
  for (const fd of fds) close(fd);
}

export interface SessionStatus {
  negotiated: boolean;
  commands: number;
  /** Commands received, by name (VFIO_USER_REGION_READ …). */
  byCommand: Record<string, number>;
  refusals: number;
  lastRefusal: string | undefined;
  dmaMaps: number;
  irqFds: number;
  interruptsDelivered: number;
  interruptsDropped: number;
}

export class Session implements ConnectionHandler, DmaMessenger {
  readonly dma: DmaTable;
  readonly irqs: IrqTable;
  private readonly regions: readonly RegionDescription[];
  private negotiated: Negotiated | undefined;
  private connection: Connection | undefined;
  private commands = 0;
  private readonly byCommand = new Map<number, number>();
  private refusals = 0;
  private lastRefusal: string | undefined;

  constructor(
    private readonly device: VfioUserDevice,
    private readonly options: SessionOptions,
    private readonly closeFd: (fd: number) => void,
    private readonly onClosed: (reason: string) => void,
  ) {
    this.regions = device.regions();
    this.dma = new DmaTable(this, PROTO.SERVER_MAX_DMA_MAPS.value);
    this.irqs = new IrqTable(device.irqs());
  }

  /** One handler per command (shared by every session). */
  private static readonly handlers: ReadonlyMap<number, Handler> = new Map<number, Handler>([
    [Command.VERSION, (s, h, p) => s.version(h, p)],
    [Command.DMA_MAP, (s, h, p, f) => s.dmaMap(h, p, f)],
    [Command.DMA_UNMAP, (s, h, p) => s.dmaUnmap(h, p)],
    [Command.DEVICE_GET_INFO, (s, h, p) => s.deviceInfo(h, p)],
    [Command.DEVICE_GET_REGION_INFO, (s, h, p) => s.regionInfo(h, p)],
    [
      Command.DEVICE_GET_REGION_IO_FDS,
      () =>
        refuse(
          Errno.ENOTSUP,
          'region I/O fds (ioeventfd/ioregionfd) are not offered: use REGION_READ/REGION_WRITE',
        ),
    ],
    [Command.DEVICE_GET_IRQ_INFO, (s, h, p) => s.irqInfo(h, p)],
    [Command.DEVICE_SET_IRQS, (s, h, p, f) => s.setIrqs(h, p, f)],
    [Command.REGION_READ, (s, h, p) => s.regionRead(h, p)],
    [Command.REGION_WRITE, (s, h, p) => s.regionWrite(h, p)],
    [
      Command.DMA_READ,
      () => refuse(Errno.EINVAL, 'DMA_READ goes from server to client, never the other way'),
    ],
    [
      Command.DMA_WRITE,
      () => refuse(Errno.EINVAL, 'DMA_WRITE goes from server to client, never the other way'),
    ],
    [Command.DEVICE_RESET, (s, h, p) => s.reset(h, p)],
    [Command.REGION_WRITE_MULTI, (s, h, p) => s.writeMulti(h, p)],
    ...MIGRATION_COMMANDS.map((c): [number, Handler] => [
      c,
      () => refuse(Errno.ENOTSUP, 'migration and dirty-page tracking are not supported'),
    ]),
  ]);

  /** Starts serving `connection` (created with this session as its handler). */
  start(connection: Connection): void {
    this.connection = connection;
    this.device.attach(this.irqs, this.dma, this.irqs);
  }

  status(): SessionStatus {
    return {
      negotiated: this.negotiated !== undefined,
      commands: this.commands,
      byCommand: Object.fromEntries([...this.byCommand].map(([c, n]) => [commandName(c), n])),
      refusals: this.refusals,
      lastRefusal: this.lastRefusal,
      dmaMaps: this.dma.count,
      irqFds: this.irqs.fdCount(),
      interruptsDelivered: this.irqs.delivered,
      interruptsDropped: this.irqs.dropped,
    };
  }

  // ---- ConnectionHandler --------------------------------------------------------------------

  command(message: Message): Uint8Array | null {
    const h = message.header;
    const bag = new FdBag(message.fds);
    this.commands++;
    this.byCommand.set(h.command, (this.byCommand.get(h.command) ?? 0) + 1);
    try {
      if (message.fdsTruncated)
        refuse(
          Errno.EINVAL,
          `more file descriptors came than max_msg_fds (${PROTO.SERVER_MAX_MSG_FDS.value}): the kernel dropped the rest`,
        );
      if (bag.size > 0 && !FD_COMMANDS.has(h.command))
        refuse(Errno.EINVAL, `${bag.size} file descriptor(s) came with a command that takes none`);
      if (!this.negotiated && h.command !== Command.VERSION)
        refuse(Errno.EINVAL, 'VFIO_USER_VERSION must be the first message');
      const handler = Session.handlers.get(h.command) ?? (() => refuse(Errno.ENOSYS, 'no such command'));
      const reply = handler(this, h, message.payload, bag);
      return h.flags & NO_REPLY ? null : reply;
    } catch (e) {
      const { errno, text, close } = this.describe(e);
      this.refusals++;
      this.lastRefusal = `${commandName(h.command)} id ${h.id}: ${text} (${errnoName(-errno)})`;
      this.options.log(
        close || !(e instanceof Refusal || e instanceof DeviceRefusal) ? 'warn' : 'debug',
        this.lastRefusal,
      );
      if (close) {
        this.connection?.send(errorReply(h, errno));
        this.connection?.close(this.lastRefusal);
        return null;
      }
      return h.flags & NO_REPLY ? null : errorReply(h, errno);
    } finally {
      closeFds(bag.take(), this.closeFd);
    }
  }

  private describe(e: unknown): { errno: number; text: string; close: boolean } {
    if (e instanceof Refusal) return { errno: e.errno, text: e.message, close: e.close };
    if (e instanceof DeviceRefusal) return { errno: e.errno, text: e.message, close: false };
    if (e instanceof DmaFault || e instanceof RoundTripError)
      return { errno: Errno.EIO, text: `the device's DMA failed: ${e.message}`, close: false };
    return {
      errno: Errno.EIO,
      text: `internal error: ${e instanceof Error ? e.message : String(e)}`,
      close: false,
    };
  }

  closed(reason: string): void {
    this.dma.clear();
    this.irqs.close();
    this.device.detach();
    this.options.log('info', `client disconnected: ${reason}`);
    this.onClosed(reason);
  }

  note(text: string): void {
    this.options.log('debug', text);
  }

  // ---- commands -----------------------------------------------------------------------------

  private exactly(h: Header, p: Uint8Array, size: number, what: string): DataView {
    if (p.length !== size)
      refuse(
        Errno.EINVAL,
        `payload of ${p.length} bytes: ${commandName(h.command)} takes exactly ${size} (${what})`,
      );
    return view(p);
  }

  /** argsz of a request: at least the fixed reply the server sends. */
  private argsz(v: DataView, offset: number, min: number): void {
    const argsz = v.getUint32(offset, true);
    if (argsz < min) refuse(Errno.EINVAL, `argsz ${argsz} is smaller than the ${min}-byte structure`);
  }

  private version(h: Header, p: Uint8Array): Uint8Array {
    if (this.negotiated) refuse(Errno.EINVAL, 'the version was negotiated already');
    if (p.length < MSG_CONST.VERSION_DATA_OFFSET.value)
      refuse(Errno.EINVAL, `payload of ${p.length} bytes: VERSION needs at least major and minor (4 bytes)`);
    const v = view(p);
    const major = v.getUint16(MSG.VERSION_MAJOR.offset, true);
    const minor = v.getUint16(MSG.VERSION_MINOR.offset, true);
    if (major !== PROTO.VERSION_MAJOR.value)
      refuse(
        Errno.ENOTSUP,
        `protocol major ${major} is not supported (vmmr speaks ${PROTO.VERSION_MAJOR.value}.${PROTO.VERSION_MINOR.value})`,
        true,
      );
    const caps = parseCapabilities(p.subarray(MSG_CONST.VERSION_DATA_OFFSET.value));
    const replyCaps: Record<string, number | boolean> = {};
    if (caps.max_msg_fds !== undefined) replyCaps.max_msg_fds = PROTO.SERVER_MAX_MSG_FDS.value;
    if (caps.max_data_xfer_size !== undefined) replyCaps.max_data_xfer_size = SERVER_MAX_XFER;
    if (caps.pgsizes !== undefined) {
      const common = Number(BigInt(caps.pgsizes) & BigInt(PAGE));
      if (common === 0)
        refuse(
          Errno.EINVAL,
          `pgsizes 0x${caps.pgsizes.toString(16)} has no page size in common with vmmr's 0x${PAGE.toString(16)}`,
        );
      replyCaps.pgsizes = common;
    }
    const maxMaps = Math.min(
      caps.max_dma_maps ?? PROTO.SERVER_MAX_DMA_MAPS.value,
      PROTO.SERVER_MAX_DMA_MAPS.value,
    );
    if (caps.max_dma_maps !== undefined) replyCaps.max_dma_maps = maxMaps;
    if (caps.write_multiple !== undefined) replyCaps.write_multiple = caps.write_multiple;
    this.dma.maxRegions = maxMaps;
    this.negotiated = {
      minor: Math.min(minor, PROTO.VERSION_MINOR.value),
      dmaChunk: Math.min(caps.max_data_xfer_size ?? PROTO.DEFAULT_MAX_DATA_XFER_SIZE.value, SERVER_MAX_XFER),
      writeMultiple: caps.write_multiple === true,
    };
    const json = new TextEncoder().encode(JSON.stringify({ capabilities: replyCaps }));
    const reply = newReply(h, MSG_CONST.VERSION_DATA_OFFSET.value + json.length + 1);
    reply.view.setUint16(16 + MSG.VERSION_MAJOR.offset, major, true);
    reply.view.setUint16(16 + MSG.VERSION_MINOR.offset, this.negotiated.minor, true);
    reply.bytes.set(json, 16 + MSG_CONST.VERSION_DATA_OFFSET.value);
    this.options.log(
      'info',
      `client negotiated protocol ${major}.${this.negotiated.minor}: ${new TextDecoder().decode(json)}`,
    );
    return reply.bytes;
  }

  private dmaMap(h: Header, p: Uint8Array, bag: FdBag): Uint8Array {
    const fds = bag.take();
    try {
      const v = this.exactly(
        h,
        p,
        MSG_CONST.DMA_MAP_PAYLOAD_SIZE.value,
        'argsz, flags, offset, address, size',
      );
      if (fds.length > 1) refuse(Errno.EINVAL, `${fds.length} file descriptors: a DMA map takes at most one`);
      const argsz = v.getUint32(MSG.DMA_MAP_ARGSZ.offset, true);
      if (argsz !== MSG_CONST.DMA_MAP_PAYLOAD_SIZE.value)
        refuse(
          Errno.EINVAL,
          `argsz ${argsz} is not the ${MSG_CONST.DMA_MAP_PAYLOAD_SIZE.value}-byte structure`,
        );
      const flags = v.getUint32(MSG.DMA_MAP_FLAGS.offset, true);
      if (flags & ~(MAP_READ | MAP_WRITE) || !(flags & (MAP_READ | MAP_WRITE))) {
        refuse(
          Errno.EINVAL,
          `flags 0x${flags.toString(16)}: a map is readable (bit 0) and/or writeable (bit 1), nothing else`,
        );
      }
      const offset = getU64(v, MSG.DMA_MAP_OFFSET.offset);
      const address = getU64(v, MSG.DMA_MAP_ADDRESS.offset);
      const size = getU64(v, MSG.DMA_MAP_SIZE.offset);
      const where = `address ${hex(address)} size ${hex(size)}`;
      if (size === 0) refuse(Errno.EINVAL, `${where}: an empty map`);
      if (address + size > 2 ** 53)
        refuse(Errno.EINVAL, `${where}: runs beyond vmmr's DMA address space [0, 2^53)`);
      if (address % PAGE || size % PAGE)
        refuse(Errno.EINVAL, `${where}: not a multiple of the ${PAGE}-byte page (pgsizes)`);
      const fd = fds[0] ?? -1;
      if (fd < 0 && offset !== 0)
        refuse(Errno.EINVAL, `${where}: offset ${hex(offset)} without a file descriptor (it must be 0)`);
      if (fd >= 0 && (offset === TOO_LARGE || offset % PAGE))
        refuse(
          Errno.EINVAL,
          `${where}: file offset ${hex(offset)} is not a multiple of the ${PAGE}-byte page`,
        );
      fds.length = 0;
      let outcome;
      try {
        outcome = this.dma.map({
          address,
          size,
          readable: (flags & MAP_READ) !== 0,
          writable: (flags & MAP_WRITE) !== 0,
          fd,
          fdOffset: offset,
        });
      } catch (e) {
        const code = (e as { code?: string }).code;
        const errno = code && code in Errno ? Errno[code as keyof typeof Errno] : Errno.EIO;
        refuse(errno, `${where}: mmap of the file descriptor failed: ${(e as Error).message}`);
      }
      if (!outcome.ok) refuse(Errno[outcome.errno], `${where}: ${outcome.message}`);
      this.options.log(
        'debug',
        `DMA_MAP ${where} flags 0x${flags.toString(16)}${fd >= 0 ? ` fd offset ${hex(offset)}: mapped` : ': by DMA messages'}`,
      );
      return newReply(h, 0).bytes;
    } finally {
      closeFds(fds, this.closeFd);
    }
  }

  private dmaUnmap(h: Header, p: Uint8Array): Uint8Array {
    const v = this.exactly(h, p, MSG_CONST.DMA_UNMAP_PAYLOAD_SIZE.value, 'argsz, flags, address, size');
    this.argsz(v, MSG.DMA_UNMAP_ARGSZ.offset, MSG_CONST.DMA_UNMAP_PAYLOAD_SIZE.value);
    const flags = v.getUint32(MSG.DMA_UNMAP_FLAGS.offset, true);
    const address = getU64(v, MSG.DMA_UNMAP_ADDRESS.offset);
    const size = getU64(v, MSG.DMA_UNMAP_SIZE.offset);
    if (flags & UNMAP_UNSUPPORTED)
      refuse(
        Errno.ENOTSUP,
        `flags 0x${flags.toString(16)}: dirty bitmaps and vaddr updates are not supported`,
      );
    if (flags & ~UNMAP_ALL) refuse(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`);
    if (flags & UNMAP_ALL) {
      if (address !== 0 || size !== 0)
        refuse(
          Errno.EINVAL,
          `VFIO_DMA_UNMAP_FLAG_ALL with address ${hex(address)} size ${hex(size)} (both must be 0)`,
        );
      this.dma.clear();
    } else if (!this.dma.unmap(address, size)) {
      refuse(
        Errno.ENOENT,
        `address ${hex(address)} size ${hex(size)} is not exactly a map (${this.dma.count} mapped)`,
      );
    }
    this.options.log(
      'debug',
      `DMA_UNMAP ${flags & UNMAP_ALL ? 'all' : `address ${hex(address)} size ${hex(size)}`}`,
    );
    const reply = newReply(h, p.length);
    reply.bytes.set(p, 16);
    return reply.bytes;
  }

  private deviceInfo(h: Header, p: Uint8Array): Uint8Array {
    const v = this.exactly(
      h,
      p,
      MSG_CONST.DEVICE_INFO_PAYLOAD_SIZE.value,
      'argsz, flags, num_regions, num_irqs',
    );
    this.argsz(v, MSG.DEVICE_INFO_ARGSZ.offset, MSG_CONST.DEVICE_INFO_PAYLOAD_SIZE.value);
    const reply = newReply(h, MSG_CONST.DEVICE_INFO_PAYLOAD_SIZE.value);
    const r = reply.view;
    r.setUint32(16 + MSG.DEVICE_INFO_ARGSZ.offset, MSG_CONST.DEVICE_INFO_PAYLOAD_SIZE.value, true);
    r.setUint32(
      16 + MSG.DEVICE_INFO_FLAGS.offset,
      VFIO.DEVICE_FLAGS_RESET.value | VFIO.DEVICE_FLAGS_PCI.value,
      true,
    );
    r.setUint32(16 + MSG.DEVICE_INFO_NUM_REGIONS.offset, this.regions.length, true);
    r.setUint32(16 + MSG.DEVICE_INFO_NUM_IRQS.offset, this.irqs.indexCount, true);
    return reply.bytes;
  }

  private regionInfo(h: Header, p: Uint8Array): Uint8Array {
    const size = MSG_CONST.REGION_INFO_PAYLOAD_SIZE.value;
    const v = this.exactly(h, p, size, 'argsz, flags, index, cap_offset, size, offset');
    this.argsz(v, MSG.REGION_INFO_ARGSZ.offset, size);
    const index = v.getUint32(MSG.REGION_INFO_INDEX.offset, true);
    const region = this.regions[index];
    if (!region) refuse(Errno.EINVAL, `region index ${index} is beyond the ${this.regions.length} regions`);
    const reply = newReply(h, size);
    const r = reply.view;
    const flags =
      region.size === 0
        ? 0
        : (region.readable ? VFIO.REGION_INFO_FLAG_READ.value : 0) |
          (region.writable ? VFIO.REGION_INFO_FLAG_WRITE.value : 0);
    r.setUint32(16 + MSG.REGION_INFO_ARGSZ.offset, size, true);
    r.setUint32(16 + MSG.REGION_INFO_FLAGS.offset, flags, true);
    r.setUint32(16 + MSG.REGION_INFO_INDEX.offset, index, true);
    r.setUint32(16 + MSG.REGION_INFO_CAP_OFFSET.offset, 0, true);
    setU64(r, 16 + MSG.REGION_INFO_SIZE.offset, region.size);
    setU64(r, 16 + MSG.REGION_INFO_OFFSET.offset, 0);
    return reply.bytes;
  }

  private irqInfo(h: Header, p: Uint8Array): Uint8Array {
    const size = MSG_CONST.IRQ_INFO_PAYLOAD_SIZE.value;
    const v = this.exactly(h, p, size, 'argsz, flags, index, count');
    this.argsz(v, MSG.IRQ_INFO_ARGSZ.offset, size);
    const index = v.getUint32(MSG.IRQ_INFO_INDEX.offset, true);
    if (index >= this.irqs.indexCount)
      refuse(Errno.EINVAL, `IRQ index ${index} is beyond the ${this.irqs.indexCount} IRQ indexes`);
    const reply = newReply(h, size);
    const r = reply.view;
    r.setUint32(16 + MSG.IRQ_INFO_ARGSZ.offset, size, true);
    r.setUint32(16 + MSG.IRQ_INFO_FLAGS.offset, irqInfoFlags(index), true);
    r.setUint32(16 + MSG.IRQ_INFO_INDEX.offset, index, true);
    r.setUint32(16 + MSG.IRQ_INFO_COUNT.offset, this.irqs.countOf(index), true);
    return reply.bytes;
  }

  private setIrqs(h: Header, p: Uint8Array, bag: FdBag): Uint8Array {
    const fixed = MSG_CONST.IRQ_SET_DATA_OFFSET.value;
    if (p.length < fixed)
      refuse(
        Errno.EINVAL,
        `payload of ${p.length} bytes: SET_IRQS needs at least ${fixed} (argsz, flags, index, start, count)`,
      );
    const v = view(p);
    const flags = v.getUint32(MSG.IRQ_SET_FLAGS.offset, true);
    const index = v.getUint32(MSG.IRQ_SET_INDEX.offset, true);
    const start = v.getUint32(MSG.IRQ_SET_START.offset, true);
    const count = v.getUint32(MSG.IRQ_SET_COUNT.offset, true);
    const data = (flags & DATA_BOOL) !== 0 ? count : 0;
    if (p.length !== fixed + data) {
      refuse(
        Errno.EINVAL,
        `payload of ${p.length} bytes: ${irqIndexName(index)} start ${start} count ${count} with flags 0x${flags.toString(16)} takes ${fixed + data}`,
      );
    }
    this.argsz(v, MSG.IRQ_SET_ARGSZ.offset, fixed + data);
    const fds = bag.take();
    const outcome = this.irqs.set({
      flags,
      index,
      start,
      count,
      bools: data ? p.slice(fixed) : undefined,
      fds,
    });
    if (outcome.errno !== 0)
      refuse(
        outcome.errno,
        `${irqIndexName(index)} start ${start} count ${count}: ${'message' in outcome ? outcome.message : ''}`,
      );
    if (MSI_INDEXES.has(index)) this.device.irqsChanged(index);
    this.options.log(
      'debug',
      `SET_IRQS ${irqIndexName(index)} flags 0x${flags.toString(16)} start ${start} count ${count}, ${fds.length} eventfd(s)`,
    );
    return newReply(h, 0).bytes;
  }

  /** Checks an access to a region; returns it. */
  private region(index: number, offset: number, count: number, write: boolean): RegionDescription {
    const region = this.regions[index];
    if (!region || region.size === 0)
      refuse(Errno.EINVAL, `region ${index}${region ? ` (${region.name})` : ''} is not implemented`);
    if (write ? !region.writable : !region.readable)
      refuse(Errno.EINVAL, `region ${index} (${region.name}) is not ${write ? 'writable' : 'readable'}`);
    if (count === 0)
      refuse(Errno.EINVAL, `count 0 at offset ${hex(offset)} of region ${index} (${region.name})`);
    if (count > SERVER_MAX_XFER)
      refuse(Errno.E2BIG, `count ${count} is above max_data_xfer_size ${SERVER_MAX_XFER}`);
    if (offset + count > region.size) {
      refuse(
        Errno.EINVAL,
        `offset ${hex(offset)} count ${count} is beyond region ${index} (${region.name}, ${region.size} bytes)`,
      );
    }
    return region;
  }

  private regionRead(h: Header, p: Uint8Array): Uint8Array {
    const v = this.exactly(h, p, MSG_CONST.REGION_ACCESS_DATA_OFFSET.value, 'offset, region, count');
    const offset = getU64(v, MSG.REGION_ACCESS_OFFSET.offset);
    const index = v.getUint32(MSG.REGION_ACCESS_REGION.offset, true);
    const count = v.getUint32(MSG.REGION_ACCESS_COUNT.offset, true);
    this.region(index, offset, count, false);
    const data = MSG_CONST.REGION_ACCESS_DATA_OFFSET.value;
    const reply = newReply(h, data + count);
    reply.bytes.set(p, 16);
    this.device.regionRead(index, offset, reply.bytes.subarray(16 + data));
    return reply.bytes;
  }

  private regionWrite(h: Header, p: Uint8Array): Uint8Array {
    const data = MSG_CONST.REGION_ACCESS_DATA_OFFSET.value;
    if (p.length < data)
      refuse(
        Errno.EINVAL,
        `payload of ${p.length} bytes: REGION_WRITE needs offset, region, count (16 bytes) and the data`,
      );
    const v = view(p);
    const offset = getU64(v, MSG.REGION_ACCESS_OFFSET.offset);
    const index = v.getUint32(MSG.REGION_ACCESS_REGION.offset, true);
    const count = v.getUint32(MSG.REGION_ACCESS_COUNT.offset, true);
    if (p.length !== data + count)
      refuse(Errno.EINVAL, `count ${count} but ${p.length - data} bytes of data`);
    this.region(index, offset, count, true);
    const reply = newReply(h, data);
    reply.bytes.set(p.subarray(0, data), 16);
    this.device.regionWrite(index, offset, p.slice(data));
    return reply.bytes;
  }

  private reset(h: Header, p: Uint8Array): Uint8Array {
    this.exactly(h, p, 0, 'no payload');
    this.device.reset();
    this.options.log('debug', 'DEVICE_RESET');
    return newReply(h, 0).bytes;
  }

  private writeMulti(h: Header, p: Uint8Array): Uint8Array {
    if (!this.negotiated?.writeMultiple)
      refuse(Errno.ENOTSUP, 'write_multiple was not negotiated in VERSION');
    const entries = MSG_CONST.WRITE_MULTI_ENTRIES_OFFSET.value;
    if (p.length < entries)
      refuse(Errno.EINVAL, `payload of ${p.length} bytes: REGION_WRITE_MULTI needs wr_cnt (8 bytes)`);
    const v = view(p.slice());
    const total = getU64(v, MSG.WRITE_MULTI_COUNT.offset);
    if (total === 0 || p.length !== entries + total * WRITE_ONE)
      refuse(
        Errno.EINVAL,
        `wr_cnt ${total} does not match ${p.length - entries} bytes of ${WRITE_ONE}-byte writes`,
      );
    let done = 0;
    try {
      for (; done < total; done++) {
        const at = entries + done * WRITE_ONE;
        const offset = getU64(v, at + MSG.WRITE_ONE_OFFSET.offset);
        const index = v.getUint32(at + MSG.WRITE_ONE_REGION.offset, true);
        const count = v.getUint32(at + MSG.WRITE_ONE_COUNT.offset, true);
        if (count > MSG.WRITE_ONE_DATA.size)
          refuse(
            Errno.EINVAL,
            `write ${done}: count ${count} is above the ${MSG.WRITE_ONE_DATA.size} data bytes of an entry`,
          );
        this.region(index, offset, count, true);
        const from = at + MSG.WRITE_ONE_DATA.offset;
        this.device.regionWrite(index, offset, new Uint8Array(v.buffer, from, count));
      }
    } catch (e) {
      if (done === 0) throw e;
      const { errno, text } = this.describe(e);
      this.refusals++;
      this.lastRefusal = `${commandName(h.command)} id ${h.id}: write ${done} of ${total}: ${text} (${errnoName(-errno)})`;
      this.options.log('debug', `${this.lastRefusal}; ${done} writes completed`);
    }
    const reply = newReply(h, MSG.WRITE_MULTI_COUNT.size);
    setU64(reply.view, 16 + MSG.WRITE_MULTI_COUNT.offset, done);
    return reply.bytes;
  }

  // ---- DmaMessenger: server-to-client DMA_READ / DMA_WRITE ------------------------------------

  private dataOffset(): number {
    return this.options.dmaLayout === 'qemu'
      ? MSG_CONST.QEMU_DMA_ACCESS_DATA_OFFSET.value
      : MSG_CONST.DMA_ACCESS_DATA_OFFSET.value;
  }

  /** The request of one DMA message: address and count (le64; QEMU reads the low le32 of count). */
  private dmaRequest(
    command: number,
    address: number,
    count: number,
    withData: boolean,
  ): { bytes: Uint8Array; view: DataView } {
    const connection = this.connection!;
    const fixed = MSG_CONST.DMA_ACCESS_DATA_OFFSET.value;
    const msg = newMessage(connection.requestId(), command, TYPE_COMMAND, fixed + (withData ? count : 0));
    setU64(msg.view, 16 + MSG.DMA_ACCESS_ADDRESS.offset, address);
    if (this.options.dmaLayout === 'qemu')
      msg.view.setUint32(16 + MSG.QEMU_DMA_ACCESS_COUNT.offset, count, true);
    else setU64(msg.view, 16 + MSG.DMA_ACCESS_COUNT.offset, count);
    return msg;
  }

  private transfer(
    command: number,
    address: number,
    length: number,
    each: (address: number, done: number, n: number) => void,
  ): void {
    const connection = this.connection;
    const op = command === Command.DMA_READ ? 'DMA_READ' : 'DMA_WRITE';
    if (!connection || connection.closed || !this.negotiated) {
      throw new DmaFault(
        'unmapped',
        address,
        length,
        `${op} of ${length} bytes at ${hex(address)}: the client is disconnected`,
      );
    }
    const chunk = this.negotiated.dmaChunk;
    for (let done = 0; done < length; done += chunk)
      each(address + done, done, Math.min(chunk, length - done));
  }

  private roundTrip(request: Uint8Array, op: string, address: number, n: number): Message {
    let reply: Message;
    try {
      reply = this.connection!.roundTrip(request, this.options.dmaTimeoutMs);
    } catch (e) {
      throw new DmaFault(
        'unmapped',
        address,
        n,
        `${op} of ${n} bytes at ${hex(address)}: ${(e as Error).message}`,
      );
    }
    if (reply.header.flags & ERROR) {
      throw new DmaFault(
        'unmapped',
        address,
        n,
        `${op} of ${n} bytes at ${hex(address)}: the client refused it (${errnoName(-reply.header.error)})`,
      );
    }
    return reply;
  }

  dmaRead(address: number, into: Uint8Array, at: number, length: number): void {
    this.transfer(Command.DMA_READ, address, length, (addr, done, n) => {
      const request = this.dmaRequest(Command.DMA_READ, addr, n, false);
      const reply = this.roundTrip(request.bytes, 'DMA_READ', addr, n);
      const dataAt = this.dataOffset();
      const expected = MSG_CONST.DMA_ACCESS_DATA_OFFSET.value + n;
      if (
        reply.payload.length !== expected ||
        getU64(view(reply.payload), MSG.DMA_ACCESS_ADDRESS.offset) !== addr
      ) {
        throw new DmaFault(
          'unmapped',
          addr,
          n,
          `DMA_READ of ${n} bytes at ${hex(addr)}: the reply has ${reply.payload.length} payload bytes (expected ${expected}) or another address`,
        );
      }
      into.set(reply.payload.subarray(dataAt, dataAt + n), at + done);
    });
  }

  dmaWrite(address: number, from: Uint8Array, at: number, length: number): void {
    this.transfer(Command.DMA_WRITE, address, length, (addr, done, n) => {
      const request = this.dmaRequest(Command.DMA_WRITE, addr, n, true);
      request.bytes.set(from.subarray(at + done, at + done + n), 16 + this.dataOffset());
      this.roundTrip(request.bytes, 'DMA_WRITE', addr, n);
    });
  }
}

interface Capabilities {
  max_msg_fds?: number;
  max_data_xfer_size?: number;
  max_dma_maps?: number;
  pgsizes?: number;
  write_multiple?: boolean;
}

/** The version data: optional NUL-terminated UTF-8 JSON {"capabilities": {...}} (document "VFIO_USER_VERSION"). */
function parseCapabilities(data: Uint8Array): Capabilities {
  if (data.length === 0) return {};
  if (data[data.length - 1] !== 0) refuse(Errno.EINVAL, 'the version data is not NUL-terminated');
  let parsed: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(0, data.length - 1));
    if (text.includes('\0')) refuse(Errno.EINVAL, 'the version data has a NUL before its end');
    parsed = JSON.parse(text);
  } catch (e) {
    if (e instanceof Refusal) throw e;
    refuse(Errno.EINVAL, `the version data is not UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    refuse(Errno.EINVAL, 'the version data is not a JSON object');
  const caps = (parsed as { capabilities?: unknown }).capabilities;
  if (caps === undefined) return {};
  if (typeof caps !== 'object' || caps === null || Array.isArray(caps))
    refuse(Errno.EINVAL, '"capabilities" is not an object');
  const c = caps as Record<string, unknown>;
  const out: Capabilities = {};
  const integer = (
    name: 'max_msg_fds' | 'max_data_xfer_size' | 'max_dma_maps' | 'pgsizes',
    min: number,
  ): void => {
    const value = c[name];
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
      refuse(Errno.EINVAL, `capability ${name} ${JSON.stringify(value)} is not an integer >= ${min}`);
    out[name] = value;
  };
  integer('max_msg_fds', 0);
  integer('max_data_xfer_size', 1);
  integer('max_dma_maps', 0);
  integer('pgsizes', 1);
  if (c.write_multiple !== undefined) {
    if (typeof c.write_multiple !== 'boolean')
      refuse(Errno.EINVAL, `capability write_multiple ${JSON.stringify(c.write_multiple)} is not a boolean`);
    out.write_multiple = c.write_multiple;
  }
  for (const name of ['twin_socket', 'migration']) {
    const value = c[name];
    if (value !== undefined && (typeof value !== 'object' || value === null))
      refuse(Errno.EINVAL, `capability ${name} is not an object`);
  }
  return out;
}
