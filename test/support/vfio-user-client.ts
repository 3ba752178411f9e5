/**
 * A vfio-user client of the tests' own, written from qemu docs/interop/vfio-user.rst alone: every
 * command number, flag and payload offset below is typed in from the document (and QEMU 10.2's
 * hw/vfio-user/protocol.h where they differ), not taken from vmmr's tables, so it checks the
 * server against the document rather than against itself.
 *
 * By default it reads its socket on the event loop. With `dma`, a worker thread reads it instead
 * and answers the server's DMA_READ/DMA_WRITE from a SharedArrayBuffer "guest memory": the server
 * blocks the process while it waits for those replies, so the answer must come from another thread.
 */
import { Worker } from 'node:worker_threads';
import { native, READABLE, type WatchHandle } from '../../src/vfio-user/native.js';

export const CMD = {
  VERSION: 1,
  DMA_MAP: 2,
  DMA_UNMAP: 3,
  DEVICE_GET_INFO: 4,
  DEVICE_GET_REGION_INFO: 5,
  DEVICE_GET_REGION_IO_FDS: 6,
  DEVICE_GET_IRQ_INFO: 7,
  DEVICE_SET_IRQS: 8,
  REGION_READ: 9,
  REGION_WRITE: 10,
  DMA_READ: 11,
  DMA_WRITE: 12,
  DEVICE_RESET: 13,
  REGION_WRITE_MULTI: 15,
  DEVICE_FEATURE: 16,
} as const;

/** Header flags (document "Header"). */
export const REPLY = 0x1;
export const NO_REPLY = 0x10;
export const ERROR = 0x20;

/** <linux/vfio.h> values the tests use (also written out here, not imported). */
export const VFIO = {
  REGION_CONFIG: 7,
  IRQ_INTX: 0,
  IRQ_MSI: 1,
  IRQ_MSIX: 2,
  IRQ_ERR: 3,
  IRQ_REQ: 4,
  DATA_NONE: 1,
  DATA_BOOL: 2,
  DATA_EVENTFD: 4,
  ACTION_MASK: 8,
  ACTION_UNMASK: 16,
  ACTION_TRIGGER: 32,
  MAP_READ: 1,
  MAP_WRITE: 2,
  UNMAP_ALL: 2,
} as const;

export interface Reply {
  id: number;
  command: number;
  flags: number;
  error: number;
  size: number;
  payload: Uint8Array;
  fds: number[];
}

export class ErrorReply extends Error {
  constructor(readonly reply: Reply) {
    super(`error reply to command ${reply.command}: errno ${reply.error}`);
  }
}

export interface DmaRequestSeen {
  command: number;
  address: number;
  count: number;
}

export interface DmaResponderOptions {
  /** The client's "guest memory" behind DMA_READ/DMA_WRITE. */
  memory: SharedArrayBuffer;
  /** Bus address of memory[0]. */
  base: number;
  layout: 'qemu' | 'spec';
  /** Answer DMA requests at all (false: a client that never answers them). */
  answer?: boolean;
}

const ADDON = new URL('../../src/vfio-user/native/build/Release/vmmr_vfio_user.node', import.meta.url)
  .pathname;

/** The worker: reads the socket, answers DMA requests, hands every other message to the main thread. */
const RESPONDER = `
const { parentPort, workerData } = require('node:worker_threads');
const native = require(workerData.addon);
const { fd, base, layout, answer } = workerData;
const mem = new Uint8Array(workerData.memory);
const stop = new Int32Array(workerData.stop);
let buf = new Uint8Array(1 << 21), start = 0, end = 0;
const fdsOut = new Int32Array(20);
function u64(v, at) { return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32; }
function reply(h, payload, error) {
  const out = new Uint8Array(16 + (error ? 0 : payload.length));
  const v = new DataView(out.buffer);
  v.setUint16(0, h.id, true); v.setUint16(2, h.command, true); v.setUint32(4, out.length, true);
  v.setUint32(8, error ? 0x21 : 0x1, true); v.setUint32(12, error || 0, true);
  if (!error) out.set(payload, 16);
  native.send(fd, out, null);
}
function serve(h, p) {
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const address = u64(v, 0);
  const count = layout === 'qemu' ? v.getUint32(8, true) : u64(v, 8);
  parentPort.postMessage({ dma: { command: h.command, address, count } });
  if (!answer) return;
  const inside = address >= base && address + count <= base + mem.length;
  if (h.command === 11) {
    if (!inside) return reply(h, null, 14);
    const at = layout === 'qemu' ? 12 : 16;
    const out = new Uint8Array(16 + count);
    out.set(p.subarray(0, layout === 'qemu' ? 12 : 16), 0);
    out.set(mem.subarray(address - base, address - base + count), at);
    return reply(h, out, 0);
  }
  const at = layout === 'qemu' ? 12 : 16;
  if (!inside || p.length < 16 + count) return reply(h, null, 14);
  mem.set(p.subarray(at, at + count), address - base);
  return reply(h, layout === 'qemu' ? new Uint8Array(0) : p.subarray(0, 12), 0);
}
while (Atomics.load(stop, 0) === 0) {
  if (native.poll(fd, 1, 20) <= 0) continue;
  if (end === buf.length) { const n = new Uint8Array(buf.length * 2); n.set(buf.subarray(start, end)); end -= start; start = 0; buf = n; }
  const n = native.recv(fd, buf.subarray(end), fdsOut);
  if (n === -11) continue;
  if (n <= 0) { parentPort.postMessage({ eof: true }); break; }
  const fds = Array.from(fdsOut.subarray(2, 2 + fdsOut[0]));
  end += n;
  for (;;) {
    if (end - start < 16) break;
    const v = new DataView(buf.buffer, start, 16);
    const h = { id: v.getUint16(0, true), command: v.getUint16(2, true), size: v.getUint32(4, true), flags: v.getUint32(8, true), error: v.getUint32(12, true) };
    if (h.size < 16 || end - start < h.size) break;
    const p = buf.slice(start + 16, start + h.size);
    start += h.size;
    if ((h.flags & 0xf) === 0 && (h.command === 11 || h.command === 12)) serve(h, p);
    else parentPort.postMessage({ header: h, payload: p, fds: fds.splice(0) });
  }
  if (start === end) start = end = 0;
}
`;

export class TestClient {
  private rx = new Uint8Array(1 << 16);
  private rxStart = 0;
  private rxEnd = 0;
  private readonly fdsOut = new Int32Array(34);
  private readonly pending = new Map<number, (r: Reply) => void>();
  private nextId = 1;
  private watcher: WatchHandle | undefined;
  private worker: Worker | undefined;
  private readonly stop = new Int32Array(new SharedArrayBuffer(4));
  private fdOpen = true;
  /** Messages that answer no request of ours, in arrival order. */
  readonly unsolicited: Reply[] = [];
  /** Every DMA request the worker saw (with `dma`). */
  readonly dmaRequests: DmaRequestSeen[] = [];
  private eofSeen = false;
  private readonly eofWaiters: Array<() => void> = [];

  private constructor(
    readonly fd: number,
    dma: DmaResponderOptions | undefined,
  ) {
    if (dma) {
      this.worker = new Worker(RESPONDER, {
        eval: true,
        workerData: {
          fd,
          addon: ADDON,
          memory: dma.memory,
          base: dma.base,
          layout: dma.layout,
          answer: dma.answer ?? true,
          stop: this.stop.buffer,
        },
      });
      this.worker.on(
        'message',
        (m: {
          eof?: boolean;
          dma?: DmaRequestSeen;
          header?: Omit<Reply, 'payload' | 'fds'>;
          payload?: Uint8Array;
          fds?: number[];
        }) => {
          if (m.eof) this.sawEof();
          else if (m.dma) this.dmaRequests.push(m.dma);
          else if (m.header) this.deliver({ ...m.header, payload: m.payload!, fds: m.fds ?? [] });
        },
      );
    } else {
      this.watcher = native.watch(fd, READABLE, () => this.onReadable());
    }
  }

  static connect(path: string, dma?: DmaResponderOptions): TestClient {
    return new TestClient(native.connect(path), dma);
  }

  private sawEof(): void {
    this.eofSeen = true;
    for (const w of this.eofWaiters.splice(0)) w();
  }

  /** Resolves when the server has closed the connection. */
  eof(): Promise<void> {
    return this.eofSeen ? Promise.resolve() : new Promise((resolve) => this.eofWaiters.push(resolve));
  }

  get closedByServer(): boolean {
    return this.eofSeen;
  }

  private onReadable(): void {
    for (;;) {
      if (this.rxEnd === this.rx.length) {
        const next = new Uint8Array(this.rx.length * 2);
        next.set(this.rx.subarray(this.rxStart, this.rxEnd));
        this.rxEnd -= this.rxStart;
        this.rxStart = 0;
        this.rx = next;
      }
      const n = native.recv(this.fd, this.rx.subarray(this.rxEnd), this.fdsOut);
      if (n === -11) return;
      if (n <= 0) {
        if (this.watcher) native.unwatch(this.watcher);
        this.watcher = undefined;
        this.sawEof();
        return;
      }
      const fds = Array.from(this.fdsOut.subarray(2, 2 + this.fdsOut[0]!));
      this.rxEnd += n;
      for (;;) {
        if (this.rxEnd - this.rxStart < 16) break;
        const v = new DataView(this.rx.buffer, this.rxStart, 16);
        const size = v.getUint32(4, true);
        if (size < 16 || this.rxEnd - this.rxStart < size) break;
        const header = {
          id: v.getUint16(0, true),
          command: v.getUint16(2, true),
          size,
          flags: v.getUint32(8, true),
          error: v.getUint32(12, true),
        };
        const payload = this.rx.slice(this.rxStart + 16, this.rxStart + size);
        this.rxStart += size;
        this.deliver({ ...header, payload, fds: fds.splice(0) });
      }
      if (this.rxStart === this.rxEnd) this.rxStart = this.rxEnd = 0;
    }
  }

  private deliver(r: Reply): void {
    const waiter = (r.flags & 0xf) === REPLY ? this.pending.get(r.id) : undefined;
    if (waiter) {
      this.pending.delete(r.id);
      waiter(r);
    } else this.unsolicited.push(r);
  }

  /** Sends bytes exactly as given (fuzzing, malformed messages). */
  raw(bytes: Uint8Array, fds?: readonly number[]): void {
    const n = native.send(this.fd, bytes, fds && fds.length ? Int32Array.from(fds) : null);
    if (n !== bytes.length) throw new Error(`send returned ${n} for ${bytes.length} bytes`);
  }

  /** A message with the header filled in as the document says. */
  static message(
    id: number,
    command: number,
    payload: Uint8Array,
    flags = 0,
    sizeOverride?: number,
  ): Uint8Array {
    const bytes = new Uint8Array(16 + payload.length);
    const v = new DataView(bytes.buffer);
    v.setUint16(0, id, true);
    v.setUint16(2, command, true);
    v.setUint32(4, sizeOverride ?? bytes.length, true);
    v.setUint32(8, flags, true);
    v.setUint32(12, 0, true);
    bytes.set(payload, 16);
    return bytes;
  }

  /** Sends a command and resolves with its reply (error replies included). */
  request(
    command: number,
    payload: Uint8Array = new Uint8Array(0),
    options: { fds?: readonly number[]; flags?: number } = {},
  ): Promise<Reply> {
    const id = this.nextId++ & 0xffff;
    const reply = new Promise<Reply>((resolve) => this.pending.set(id, resolve));
    this.raw(TestClient.message(id, command, payload, options.flags ?? 0), options.fds);
    return reply;
  }

  /** The reply, or an ErrorReply thrown for an error reply. */
  async ok(
    command: number,
    payload?: Uint8Array,
    options?: { fds?: readonly number[]; flags?: number },
  ): Promise<Reply> {
    const r = await this.request(command, payload, options);
    if (r.flags & ERROR) throw new ErrorReply(r);
    return r;
  }

  /** A command with No_reply set (nothing comes back). */
  post(command: number, payload: Uint8Array): void {
    this.raw(TestClient.message(this.nextId++ & 0xffff, command, payload, NO_REPLY));
  }

  // ---- typed commands -----------------------------------------------------------------------

  /** VERSION with `caps` as the version data (null: no version data at all). */
  version(caps: object | null = QEMU_CAPS, major = 0, minor = 0): Promise<Reply> {
    const json = caps === null ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(caps) + '\0');
    const p = new Uint8Array(4 + json.length);
    const v = new DataView(p.buffer);
    v.setUint16(0, major, true);
    v.setUint16(2, minor, true);
    p.set(json, 4);
    return this.request(CMD.VERSION, p);
  }

  async regionRead(region: number, offset: number, count: number): Promise<Uint8Array> {
    const r = await this.ok(CMD.REGION_READ, regionAccess(offset, region, count));
    return r.payload.subarray(16);
  }

  regionWrite(region: number, offset: number, data: Uint8Array, posted = false): Promise<Reply> | undefined {
    const p = new Uint8Array(16 + data.length);
    p.set(regionAccess(offset, region, data.length), 0);
    p.set(data, 16);
    if (posted) {
      this.post(CMD.REGION_WRITE, p);
      return undefined;
    }
    return this.ok(CMD.REGION_WRITE, p);
  }

  setIrqs(
    index: number,
    start: number,
    count: number,
    flags: number,
    options: { fds?: readonly number[]; bools?: readonly number[] } = {},
  ): Promise<Reply> {
    const p = new Uint8Array(20 + (options.bools?.length ?? 0));
    const v = new DataView(p.buffer);
    v.setUint32(0, p.length, true);
    v.setUint32(4, flags, true);
    v.setUint32(8, index, true);
    v.setUint32(12, start, true);
    v.setUint32(16, count, true);
    options.bools?.forEach((b, i) => (p[20 + i] = b));
    return this.request(CMD.DEVICE_SET_IRQS, p, { fds: options.fds });
  }

  dmaMap(address: number, size: number, flags: number, fd?: number, offset = 0): Promise<Reply> {
    const p = new Uint8Array(32);
    const v = new DataView(p.buffer);
    v.setUint32(0, 32, true);
    v.setUint32(4, flags, true);
    setU64(v, 8, offset);
    setU64(v, 16, address);
    setU64(v, 24, size);
    return this.request(CMD.DMA_MAP, p, { fds: fd === undefined ? [] : [fd] });
  }

  dmaUnmap(address: number, size: number, flags = 0): Promise<Reply> {
    const p = new Uint8Array(24);
    const v = new DataView(p.buffer);
    v.setUint32(0, 24, true);
    v.setUint32(4, flags, true);
    setU64(v, 8, address);
    setU64(v, 16, size);
    return this.request(CMD.DMA_UNMAP, p);
  }

  close(): void {
    if (this.watcher) native.unwatch(this.watcher);
    this.watcher = undefined;
    Atomics.store(this.stop, 0, 1);
    if (this.fdOpen) {
      this.fdOpen = false;
      if (this.worker) {
        // The worker polls in 20 ms steps: close the socket once it has stopped.
        void this.worker.terminate().then(() => native.close(this.fd));
      } else native.close(this.fd);
    }
  }

  /** Closes and waits until the worker (if any) has let go of the socket. */
  async closeAndWait(): Promise<void> {
    if (this.watcher) native.unwatch(this.watcher);
    this.watcher = undefined;
    Atomics.store(this.stop, 0, 1);
    if (!this.fdOpen) return;
    this.fdOpen = false;
    if (this.worker) await this.worker.terminate();
    native.close(this.fd);
  }
}

/** The capabilities QEMU 10.2 sends (hw/vfio-user/proxy.c caps_json). */
export const QEMU_CAPS = {
  capabilities: {
    migration: { pgsize: 4096, max_bitmap_size: 268435456 },
    max_msg_fds: 16,
    max_data_xfer_size: 1048576,
    pgsizes: 4096,
    max_dma_maps: 65535,
    write_multiple: true,
  },
};

export function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % 2 ** 32, true);
  v.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}

export function getU64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

export function dv(p: Uint8Array): DataView {
  return new DataView(p.buffer, p.byteOffset, p.byteLength);
}

/** The 16-byte REGION_READ/REGION_WRITE request head: le64 offset, le32 region, le32 count. */
export function regionAccess(offset: number, region: number, count: number): Uint8Array {
  const p = new Uint8Array(16);
  const v = new DataView(p.buffer);
  setU64(v, 0, offset);
  v.setUint32(8, region, true);
  v.setUint32(12, count, true);
  return p;
}

/** Little-endian value of bytes. */
export function le(bytes: Uint8Array): number {
  let value = 0;
  for (let i = bytes.length - 1; i >= 0; i--) value = value * 256 + bytes[i]!;
  return value;
}

export function leBytes(value: number, width: number): Uint8Array {
  const out = new Uint8Array(width);
  for (let i = 0; i < width; i++) out[i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  return out;
}
