import { errnoName, native, POLLIN, POLLOUT, READABLE, WRITABLE, type WatchHandle } from './native.js';
import {
  Errno,
  HEADER_SIZE,
  TYPE_COMMAND,
  TYPE_MASK,
  TYPE_REPLY,
  commandName,
  errorReply,
  readHeader,
  type Header,
} from './protocol.js';

/**
 * One client connection: a non-blocking Unix stream socket read and written by the native addon
 * on Node's event loop (document "Socket", "Command Concurrency").
 *
 * Framing: every message is a 16-byte header whose size field covers the whole message; a size
 * below 16 or above the configured maximum cannot be framed, so it gets an error reply and the
 * connection is closed. Messages are handled in the order they arrive.
 *
 * File descriptors: the kernel hands out SCM_RIGHTS descriptors with the read that reaches the
 * sendmsg(2) that carried them, and a read never continues past such a send (unix(7)); a client
 * sends each message with one sendmsg (QEMU hw/vfio-user/proxy.c vfio_user_send_qio). So the
 * descriptors of one read belong to the message that holds the read's last byte. Descriptors a
 * message does not take are closed.
 *
 * Output: replies go out at once; what the socket does not take waits in the connection's own
 * queue (the watcher then also waits for writability). Above the high-water mark the connection
 * stops reading until the client has drained its replies, so a client that never reads holds at
 * most that much memory and delays no one else.
 *
 * Synchronous round trips (server-to-client DMA_READ/DMA_WRITE): `roundTrip` sends a request and
 * blocks the process in poll(2) until the matching reply arrives or the time-out passes (as
 * libvfio-user's vfu_dma_read waits); commands that arrive meanwhile are queued (bounded) and
 * handled, in order, right after the command during which the round trip happened.
 */
export interface Message {
  readonly header: Header;
  /** The bytes after the header: a view into the receive buffer, valid until the handler calls code that may round-trip. */
  readonly payload: Uint8Array;
  /** Descriptors that came with the message; the handler owns them. */
  readonly fds: number[];
  /** More descriptors came than a message may carry: the kernel closed the rest. */
  readonly fdsTruncated: boolean;
}

export interface ConnectionHandler {
  /** A command: returns its reply, or null for none. */
  command(message: Message): Uint8Array | null;
  /** The connection is closed (reason for logs); called once. */
  closed(reason: string): void;
  /** Something the connection dropped or refused on its own (for logs). */
  note(text: string): void;
}

export interface ConnectionLimits {
  /** Largest message accepted (header included). */
  readonly maxMessageSize: number;
  /** Most descriptors accepted with one message. */
  readonly maxFds: number;
  /** Most commands queued during a round trip. */
  readonly maxPending: number;
  /** Queued reply bytes above which reading pauses. */
  readonly outputHighWater: number;
}

export class RoundTripError extends Error {
  override readonly name = 'RoundTripError';
}

const RECEIVE_CHUNK = 4096;
/** recv calls per readiness callback before yielding to the other connections. */
const READS_PER_TURN = 8;

interface FdBatch {
  /** Stream position of the last byte of the read that brought the descriptors. */
  readonly last: number;
  readonly fds: number[];
  readonly truncated: boolean;
}

export class Connection {
  private rx = new Uint8Array(RECEIVE_CHUNK);
  private rxStart = 0;
  private rxEnd = 0;
  /** Stream position of rx[0]. */
  private rxBase = 0;
  private readonly fdsOut: Int32Array;
  private batches: FdBatch[] = [];
  private out: Uint8Array[] = [];
  private outBytes = 0;
  private readonly watcher: WatchHandle;
  private events = READABLE;
  private handling = false;
  private paused = false;
  private deferred: Message[] = [];
  private deferScheduled = false;
  private isClosed = false;
  private nextRequestId = 0;

  constructor(
    private readonly fd: number,
    private readonly handler: ConnectionHandler,
    private readonly limits: ConnectionLimits,
  ) {
    this.fdsOut = new Int32Array(2 + limits.maxFds);
    this.watcher = native.watch(fd, READABLE, (status, ready) => this.onReady(status, ready));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Bytes of replies waiting for the socket. */
  get queuedBytes(): number {
    return this.outBytes;
  }

  /** Sends a message (queued behind earlier ones). */
  send(bytes: Uint8Array): void {
    if (this.isClosed) return;
    this.out.push(bytes);
    this.outBytes += bytes.length;
    this.flush();
  }

  close(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    native.unwatch(this.watcher);
    native.close(this.fd);
    for (const b of this.batches) closeAll(b.fds);
    for (const m of this.deferred) closeAll(m.fds);
    this.batches = [];
    this.deferred = [];
    this.out = [];
    this.outBytes = 0;
    this.handler.closed(reason);
  }

  // ---- input --------------------------------------------------------------------------------

  private onReady(status: number, ready: number): void {
    if (this.isClosed) return;
    if (status < 0) {
      this.close(`socket error (${errnoName(status)})`);
      return;
    }
    if (ready & WRITABLE) this.flush();
    if (!(ready & READABLE) || this.paused) return;
    for (let turn = 0; turn < READS_PER_TURN && !this.isClosed && !this.paused; turn++) {
      const got = this.receive();
      if (got === 0) {
        this.processAll();
        this.close('the client closed the connection');
        return;
      }
      if (got < 0) return;
      this.processAll();
    }
  }

  /** One recv into the buffer: bytes read, 0 at end of stream, -1 when nothing is there (or an error closed the connection). */
  private receive(): number {
    this.makeRoom();
    const n = native.recv(this.fd, this.rx.subarray(this.rxEnd), this.fdsOut);
    if (n < 0) {
      if (n !== -Errno.EAGAIN) this.close(`recv failed (${errnoName(n)})`);
      return -1;
    }
    const count = this.fdsOut[0]!;
    if (count > 0 || this.fdsOut[1] === 1) {
      const fds = Array.from(this.fdsOut.subarray(2, 2 + count));
      this.batches.push({
        last: this.rxBase + this.rxEnd + Math.max(n, 1) - 1,
        fds,
        truncated: this.fdsOut[1] === 1,
      });
    }
    this.rxEnd += n;
    return n;
  }

  /** Room after the data for one more chunk, and for the whole message in progress once its header is in. */
  private makeRoom(): void {
    let pending = this.rxEnd - this.rxStart;
    if (pending === 0 && this.rxStart > 0) {
      this.rxBase += this.rxStart;
      this.rxStart = this.rxEnd = 0;
      if (this.rx.length > RECEIVE_CHUNK) this.rx = new Uint8Array(RECEIVE_CHUNK);
      pending = 0;
    }
    let needed = pending + RECEIVE_CHUNK;
    if (pending >= HEADER_SIZE) needed = Math.max(needed, readHeader(this.rx, this.rxStart).size);
    if (this.rx.length - this.rxStart >= needed) return;
    if (this.rx.length >= needed) this.rx.copyWithin(0, this.rxStart, this.rxEnd);
    else {
      const next = new Uint8Array(needed);
      next.set(this.rx.subarray(this.rxStart, this.rxEnd), 0);
      this.rx = next;
    }
    this.rxBase += this.rxStart;
    this.rxStart = 0;
    this.rxEnd = pending;
  }

  /** The next complete message in the buffer, or undefined; closes the connection on a size it cannot frame. */
  private nextMessage(copy: boolean): Message | undefined {
    const pending = this.rxEnd - this.rxStart;
    if (pending < HEADER_SIZE) return undefined;
    const header = readHeader(this.rx, this.rxStart);
    if (header.size < HEADER_SIZE || header.size > this.limits.maxMessageSize) {
      const why =
        header.size < HEADER_SIZE
          ? 'smaller than the 16-byte header'
          : `larger than the ${this.limits.maxMessageSize} bytes a message may have`;
      this.sendBeforeClose(errorReply(header, header.size < HEADER_SIZE ? Errno.EINVAL : Errno.E2BIG));
      this.close(
        `${commandName(header.command)} id ${header.id}: message size ${header.size} is ${why}: the stream cannot be framed any more`,
      );
      return undefined;
    }
    if (pending < header.size) return undefined;
    const start = this.rxBase + this.rxStart;
    const end = start + header.size;
    const payload = this.rx.subarray(this.rxStart + HEADER_SIZE, this.rxStart + header.size);
    this.rxStart += header.size;
    const fds: number[] = [];
    let truncated = false;
    while (this.batches.length > 0 && this.batches[0]!.last < end) {
      const batch = this.batches.shift()!;
      if (batch.last < start) closeAll(batch.fds);
      else {
        fds.push(...batch.fds);
        truncated ||= batch.truncated;
      }
    }
    return { header, payload: copy ? payload.slice() : payload, fds, fdsTruncated: truncated };
  }

  /** Handles the queued commands, then every complete message in the buffer. */
  private processAll(): void {
    if (this.handling) return;
    this.handling = true;
    try {
      while (!this.isClosed) {
        const message = this.deferred.shift() ?? this.nextMessage(false);
        if (!message) break;
        this.dispatch(message);
        if (this.paused) break;
      }
    } finally {
      this.handling = false;
    }
  }

  private dispatch(message: Message): void {
    const type = message.header.flags & TYPE_MASK;
    if (type === TYPE_REPLY) {
      closeAll(message.fds);
      this.handler.note(
        `${commandName(message.header.command)} id ${message.header.id}: a reply to no request of the server's: dropped`,
      );
      return;
    }
    if (type !== TYPE_COMMAND) {
      closeAll(message.fds);
      this.handler.note(
        `${commandName(message.header.command)} id ${message.header.id}: message type ${type} is neither command (0) nor reply (1): EINVAL`,
      );
      this.send(errorReply(message.header, Errno.EINVAL));
      return;
    }
    const reply = this.handler.command(message);
    if (reply) this.send(reply);
  }

  // ---- output -------------------------------------------------------------------------------

  private flush(): void {
    while (this.out.length > 0 && !this.isClosed) {
      const head = this.out[0]!;
      const n = native.send(this.fd, head, null);
      if (n === -Errno.EAGAIN) break;
      if (n < 0) {
        this.close(`send failed (${errnoName(n)})`);
        return;
      }
      this.outBytes -= n;
      if (n === head.length) this.out.shift();
      else this.out[0] = head.subarray(n);
    }
    if (!this.isClosed) this.updateEvents();
  }

  /**
   * Waits for writability while replies are queued; stops reading above the high-water mark and
   * resumes below half of it (then handles what was left in the buffer).
   */
  private updateEvents(): void {
    const high = this.limits.outputHighWater;
    if (this.paused && this.outBytes <= high / 2) {
      this.paused = false;
      if (this.rxEnd > this.rxStart || this.deferred.length > 0) this.scheduleProcessing();
    } else if (!this.paused && this.outBytes > high) this.paused = true;
    this.setEvents((this.out.length > 0 ? WRITABLE : 0) | (this.paused ? 0 : READABLE));
  }

  /** Pushes the queue and `last` out without waiting (an error reply before a close). */
  private sendBeforeClose(last: Uint8Array): void {
    for (const m of [...this.out, last]) native.send(this.fd, m, null);
    this.out = [];
    this.outBytes = 0;
  }

  private setEvents(events: number): void {
    if (events === this.events || this.isClosed) return;
    this.events = events;
    native.setEvents(this.watcher, events);
  }

  private scheduleProcessing(): void {
    if (this.deferScheduled) return;
    this.deferScheduled = true;
    setImmediate(() => {
      this.deferScheduled = false;
      if (!this.isClosed) this.processAll();
    });
  }

  // ---- synchronous round trips --------------------------------------------------------------

  /** A request id of the server's own (16 bits, wrapping). */
  requestId(): number {
    const id = this.nextRequestId;
    this.nextRequestId = (id + 1) & 0xffff;
    return id;
  }

  /**
   * Sends `request` and waits (blocking) for the reply with its id and command. Commands arriving
   * meanwhile are queued; other replies are dropped. Throws a RoundTripError on time-out (the
   * connection is then closed: the client is stuck), when the connection closes, or when too many
   * commands queue up.
   */
  roundTrip(request: Uint8Array, timeoutMs: number): Message {
    if (this.isClosed) throw new RoundTripError('the connection is closed');
    const want = readHeader(request, 0);
    const deadline = Date.now() + timeoutMs;
    this.out.push(request);
    this.outBytes += request.length;
    while (this.out.length > 0) {
      this.flush();
      if (this.isClosed) throw new RoundTripError('the connection closed while sending the request');
      if (this.out.length > 0) this.wait(POLLOUT, deadline, want);
    }
    for (;;) {
      const message = this.nextMessage(true);
      if (this.isClosed) throw new RoundTripError('the connection closed while waiting for the reply');
      if (!message) {
        this.wait(POLLIN, deadline, want);
        const got = this.receive();
        if (got === 0) {
          this.close('the client closed the connection during a DMA round trip');
          throw new RoundTripError('the client closed the connection before replying');
        }
        if (this.isClosed) throw new RoundTripError('the connection failed while waiting for the reply');
        continue;
      }
      const type = message.header.flags & TYPE_MASK;
      if (type === TYPE_REPLY && message.header.id === want.id && message.header.command === want.command) {
        closeAll(message.fds);
        if (!this.handling) this.scheduleProcessing();
        return message;
      }
      if (type === TYPE_REPLY) {
        closeAll(message.fds);
        this.handler.note(
          `${commandName(message.header.command)} id ${message.header.id}: a reply to no pending request: dropped`,
        );
        continue;
      }
      this.deferred.push(message);
      if (this.deferred.length > this.limits.maxPending) {
        this.close(`more than ${this.limits.maxPending} commands queued during a DMA round trip`);
        throw new RoundTripError('too many commands queued while waiting for the reply');
      }
    }
  }

  private wait(events: number, deadline: number, want: Header): void {
    const left = deadline - Date.now();
    const r = left > 0 ? native.poll(this.fd, events, left) : 0;
    if (r === 0) {
      this.close(`no reply to ${commandName(want.command)} id ${want.id} in time: the client is stuck`);
      throw new RoundTripError(`no reply within the time-out`);
    }
    if (r < 0) {
      this.close(`poll failed (${errnoName(r)})`);
      throw new RoundTripError(`poll failed (${errnoName(r)})`);
    }
  }
}

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) native.close(fd);
}
