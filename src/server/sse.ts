/**
 * Server-Sent Events for GET /api/v1/events.
 *
 * Each stream numbers the events it delivers 1, 2, 3… (`id:` and `seq` in the data): the
 * numbering is per stream and dense — every event that passes the stream's filter gets the next
 * number, none is skipped. Memory is bounded: events wait in a per-stream queue of at most
 * `queueLimit` entries until the socket takes them; a stream whose queue is full (the client
 * reads too slowly, or one batch produced more events than the queue holds) is dropped: it gets
 * a final `event: dropped` and is closed. Other control events end a stream cleanly with a final
 * `event: end` (`reason`: "function-removed" when the filtered function goes away, "shutdown").
 * Control events carry no `id:`, so ids stay dense. A comment line every `keepaliveMs` keeps
 * proxies from closing an idle stream.
 */
import type { ServerResponse } from 'node:http';
import { isVmmrError } from '../base/errors.js';
import type { VmmrEvent, VmmrEventType } from '../base/events.js';
import type { MmrVf } from '../mmr/vf.js';
import type { Emulator, EmulatorListener, TopologyChange } from '../machine/emulator.js';

export interface EventFilter {
  /** Only events of this function (long-form BDF). */
  bdf?: string;
  /** For a VF filter: its PF, whose vf-disable ends the stream. */
  parentPf?: string;
  types?: ReadonlySet<VmmrEventType>;
}

export interface SseOptions {
  queueLimit: number;
  keepaliveMs: number;
  /** Called when a stream is dropped for falling behind. */
  onDrop?: () => void;
}

/** Grace period for a stream that was ended but whose client does not read the end. */
const END_GRACE_MS = 5000;

export class SseHub {
  private readonly streams = new Set<SseStream>();

  constructor(
    private readonly emulator: Emulator,
    readonly options: SseOptions,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  open(res: ServerResponse, filter: EventFilter): SseStream {
    const stream = new SseStream(res, filter, this.emulator, this.options, () => this.streams.delete(stream));
    this.streams.add(stream);
    return stream;
  }

  /** Ends every stream with `event: end` (server shutdown). */
  closeAll(reason: string): void {
    for (const stream of [...this.streams]) stream.end(reason);
  }
}

export class SseStream implements EmulatorListener {
  private seq = 0;
  /** seq of the last event handed to the socket. */
  private written = 0;
  private queue: string[] = [];
  private scheduled = false;
  private waitingDrain = false;
  private closed = false;
  private readonly unsubscribe: () => void;
  private readonly keepalive: NodeJS.Timeout;

  constructor(
    private readonly res: ServerResponse,
    private readonly filter: EventFilter,
    private readonly emulator: Emulator,
    private readonly options: SseOptions,
    private readonly onClose: () => void,
  ) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // (light-my-request's socket, used by app.inject, has no setNoDelay)
    if (typeof res.socket?.setNoDelay === 'function') res.socket.setNoDelay(true);
    res.write(': vmmr events\n\n');
    this.unsubscribe = emulator.subscribe(this);
    this.keepalive = setInterval(() => {
      if (!this.waitingDrain && this.queue.length === 0 && !this.closed) res.write(': keepalive\n\n');
    }, options.keepaliveMs);
    this.keepalive.unref();
    res.on('close', () => this.cleanup());
  }

  /** Called synchronously from inside the core: only format and queue here. */
  event(event: VmmrEvent): void {
    if (this.closed) return;
    const f = this.filter;
    if (f.bdf !== undefined && event.bdf !== f.bdf) {
      if (event.type === 'vf-disable' && event.bdf === f.parentPf) this.endIfGone();
      return;
    }
    if (f.types && !f.types.has(event.type)) return;
    if (this.queue.length >= this.options.queueLimit) {
      this.drop();
      return;
    }
    const seq = ++this.seq;
    this.queue.push(`id: ${seq}\nevent: ${event.type}\ndata: ${JSON.stringify({ seq, ...event })}\n\n`);
    this.schedule();
  }

  topology(_change: TopologyChange): void {
    if (!this.closed && this.filter.bdf !== undefined) this.endIfGone();
  }

  /** Ends the stream when its filtered function is no longer live. */
  private endIfGone(): void {
    const bdf = this.filter.bdf!;
    let detail: string | undefined;
    try {
      const fn = this.emulator.machine.find(bdf);
      if (fn.kind === 'vf' && !(fn as MmrVf).live) detail = `${bdf} is no longer enabled`;
    } catch (e) {
      detail = isVmmrError(e) ? e.message : String(e);
    }
    if (detail !== undefined) this.end('function-removed', { bdf, detail });
  }

  private schedule(): void {
    if (this.scheduled || this.waitingDrain) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.closed || this.waitingDrain || this.queue.length === 0) return;
    const chunk = this.queue.length === 1 ? this.queue[0]! : this.queue.join('');
    this.queue = [];
    this.written = this.seq;
    if (!this.res.write(chunk)) {
      this.waitingDrain = true;
      this.res.once('drain', () => {
        this.waitingDrain = false;
        this.flush();
      });
    }
  }

  private finish(final: string, keepQueue: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.keepalive);
    const pending = keepQueue ? this.queue.join('') : '';
    this.queue = [];
    this.onClose();
    this.res.end(pending + final);
    const timer = setTimeout(() => this.res.destroy(), END_GRACE_MS);
    timer.unref();
    this.res.once('close', () => clearTimeout(timer));
  }

  /**
   * A slow subscriber: the queued events are discarded, a final `dropped` event goes out. Its
   * lastSeq is the last event written to the stream: everything after it is lost.
   */
  private drop(): void {
    const data = { reason: 'slow-subscriber', queueLimit: this.options.queueLimit, lastSeq: this.written };
    this.options.onDrop?.();
    this.finish(`event: dropped\ndata: ${JSON.stringify(data)}\n\n`, false);
  }

  /** Ends cleanly: queued events first, then `event: end`. */
  end(reason: string, extra: Record<string, unknown> = {}): void {
    const data = { reason, lastSeq: this.seq, ...extra };
    this.finish(`event: end\ndata: ${JSON.stringify(data)}\n\n`, true);
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.keepalive);
    this.queue = [];
    this.onClose();
  }
}
