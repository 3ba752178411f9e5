/**
 * virtio-9p back-end (virtio 9P transport: requestq 0; device config tag_len + tag): each chain
 * carries one T-message (device-readable) and room for its R-message (device-writable). The
 * device answers the handshake so a client can mount and unmount, and refuses the rest cleanly:
 *
 *   Tversion  -> Rversion (msize = min(asked, MSIZE_MAX); "9P2000.L", else "unknown")
 *   Tattach   -> Rattach (the root: a directory qid)
 *   Tflush    -> Rflush;  Tclunk -> Rclunk
 *   any other -> Rlerror(EOPNOTSUPP); a message whose size field disagrees -> Rlerror(EPROTO)
 *
 * Messages are size[4] type[1] tag[2] ..., little-endian (9P2000.L). A chain without room for an
 * Rlerror (11 bytes) cannot be answered and breaks the queue.
 */
import { virtio9pMessages } from '../spec/index.js';
import { VirtqueueError, type DescriptorChain } from '../virtqueue/index.js';
import type { DeviceBackend, DeviceContext } from './context.js';
import { serveQueue } from './serve.js';

const M = virtio9pMessages.constants;
const HEADER = M.HEADER_SIZE.value;
const RLERROR_SIZE = HEADER + 4;
const VERSION = '9P2000.L';

class Writer {
  private readonly parts: number[] = [];

  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }

  u16(v: number): this {
    return this.u8(v).u8(v >>> 8);
  }

  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }

  u64(v: number): this {
    return this.u32(v % 2 ** 32).u32(Math.floor(v / 2 ** 32));
  }

  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.u16(b.length);
    for (const x of b) this.u8(x);
    return this;
  }

  /** The message with its size field. */
  message(type: number, tag: number): Uint8Array {
    const body = this.parts;
    const out = new Uint8Array(HEADER + body.length);
    const size = out.length;
    out.set([
      size & 0xff,
      (size >>> 8) & 0xff,
      (size >>> 16) & 0xff,
      size >>> 24,
      type,
      tag & 0xff,
      tag >>> 8,
    ]);
    out.set(body, HEADER);
    return out;
  }
}

export class P9Device implements DeviceBackend {
  readonly type = '9p' as const;
  messages = 0;
  refused = 0;

  constructor(private readonly ctx: DeviceContext) {}

  notify(queue: number): void {
    if (queue === 0) serveQueue(this.ctx, 0, (c) => this.message(c));
  }

  reset(): void {
    // No fids are kept.
  }

  private message(chain: DescriptorChain): number {
    if (chain.writable < RLERROR_SIZE) {
      throw new VirtqueueError(
        chain.queue,
        chain.head,
        'request',
        `9P reply buffer of ${chain.writable} bytes cannot hold even an Rlerror (${RLERROR_SIZE} bytes)`,
      );
    }
    this.messages++;
    const t = chain.gather().slice();
    const tag = t.length >= HEADER ? t[5]! | (t[6]! << 8) : M.NOTAG.value;
    const size = t.length >= 4 ? (t[0]! | (t[1]! << 8) | (t[2]! << 16) | (t[3]! << 24)) >>> 0 : 0;
    const reply =
      size < HEADER || size > t.length
        ? this.error(tag, M.EPROTO.value)
        : this.answer(t.subarray(0, size), tag);
    const out = reply.length <= chain.writable ? reply : this.error(tag, M.EPROTO.value);
    chain.scatter(0, out, 0, out.length);
    return out.length;
  }

  private error(tag: number, errno: number): Uint8Array {
    this.refused++;
    return new Writer().u32(errno).message(M.RLERROR.value, tag);
  }

  private answer(t: Uint8Array, tag: number): Uint8Array {
    const type = t[4]!;
    const u16 = (at: number) => t[at]! | (t[at + 1]! << 8);
    const u32 = (at: number) => (t[at]! | (t[at + 1]! << 8) | (t[at + 2]! << 16) | (t[at + 3]! << 24)) >>> 0;
    switch (type) {
      case M.TVERSION.value: {
        if (t.length < HEADER + 6) return this.error(tag, M.EPROTO.value);
        const msize = u32(HEADER);
        const len = u16(HEADER + 4);
        if (HEADER + 6 + len > t.length) return this.error(tag, M.EPROTO.value);
        const asked = Buffer.from(t.subarray(HEADER + 6, HEADER + 6 + len)).toString('utf8');
        const version = asked.startsWith(VERSION) && msize >= M.MSIZE_MIN.value ? VERSION : 'unknown';
        return new Writer()
          .u32(Math.min(msize, M.MSIZE_MAX.value))
          .str(version)
          .message(M.RVERSION.value, tag);
      }
      case M.TATTACH.value:
        return new Writer().u8(M.QTDIR.value).u32(0).u64(1).message(M.RATTACH.value, tag);
      case M.TFLUSH.value:
        return new Writer().message(M.RFLUSH.value, tag);
      case M.TCLUNK.value:
        return new Writer().message(M.RCLUNK.value, tag);
      default:
        return this.error(tag, M.EOPNOTSUPP.value);
    }
  }
}
