/**
 * `vmmr events`: follows the service's event stream (server-sent events), one line per
 * event, `SEQ TYPE BDF key=value...`, or one JSON object per line with --json. Ctrl-C
 * (SIGINT) ends it cleanly with exit code 0; so does --count N after N events.
 *
 *   12 vf-enable 0000:01:00.0 numVfs=4 first=0000:01:00.1 last=0000:01:00.4
 *   13 notify 0000:01:00.1 queue=0 via=notify-region
 *
 * The service ends a stream cleanly with an `end` event (the function watched with --bdf
 * went away, or the service shuts down): the reason goes to stderr, exit 0. It drops a
 * client that falls behind with a final `dropped` event: exit 1, as when the connection
 * closes without either.
 */
import type { Command } from 'commander';
import { EVENT_TYPES } from '../base/events.js';
import { addClientOptions, API_PREFIX, ApiClient, type ClientOptions } from './client.js';
import type { CliIo } from './context.js';
import { UsageError } from './errors.js';
import { bdfArgument, countArgument, jsonLine } from './format.js';

export interface EventsOptions extends ClientOptions {
  bdf?: string;
  types?: string;
  count?: string;
}

/** Control events that end a stream: `end` (clean) and `dropped` (this client fell behind). */
export const END_EVENTS: readonly string[] = ['end', 'dropped'];

export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** Incremental parser of a text/event-stream (WHATWG HTML §9.2.6): feed chunks, get messages. */
export class SseParser {
  private buffer = '';
  private id: string | undefined;
  private event = '';
  private data: string[] = [];
  private hasData = false;

  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const nl = this.buffer.search(/\r\n|\r|\n/);
      if (nl < 0) break;
      const eol = this.buffer.startsWith('\r\n', nl) ? 2 : 1;
      // A lone \r at the end of a chunk may be the first half of \r\n: wait for more.
      if (this.buffer[nl] === '\r' && eol === 1 && nl === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + eol);
      const message = this.line(line);
      if (message) out.push(message);
    }
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') {
      if (!this.hasData) {
        this.event = '';
        return undefined;
      }
      const message: SseMessage = {
        ...(this.id !== undefined ? { id: this.id } : {}),
        event: this.event || 'message',
        data: this.data.join('\n'),
      };
      this.event = '';
      this.data = [];
      this.hasData = false;
      return message;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') {
      this.data.push(value);
      this.hasData = true;
    } else if (field === 'id' && !value.includes('\0')) this.id = value;
    return undefined;
  }
}

function detailValue(value: unknown): string {
  if (typeof value === 'string') return /\s/.test(value) || value === '' ? JSON.stringify(value) : value;
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value);
}

/** An event's data as an object (non-JSON data is kept under `data`). */
export function eventData(message: SseMessage): Record<string, unknown> {
  try {
    const parsed = JSON.parse(message.data) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
    return { data: parsed };
  } catch {
    return message.data === '' ? {} : { data: message.data };
  }
}

/** "SEQ TYPE BDF key=value ..." */
export function formatEvent(message: SseMessage): string {
  const data = eventData(message);
  const seq = message.id ?? (data.seq !== undefined ? String(data.seq) : '-');
  const type =
    message.event !== 'message' ? message.event : typeof data.type === 'string' ? data.type : 'message';
  const bdf = typeof data.bdf === 'string' ? data.bdf : '-';
  const details = Object.entries(data)
    .filter(([k]) => k !== 'seq' && k !== 'type' && k !== 'bdf')
    .map(([k, v]) => `${k}=${detailValue(v)}`);
  return [seq, type, bdf, ...details].join(' ');
}

export function eventJson(message: SseMessage): Record<string, unknown> {
  const data = eventData(message);
  const seq =
    message.id !== undefined && /^\d+$/.test(message.id) ? Number(message.id) : (message.id ?? data.seq);
  return { ...data, seq, type: message.event !== 'message' ? message.event : (data.type ?? 'message') };
}

function parseTypes(text: string): string[] {
  const types = text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const unknown = types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
  if (unknown.length > 0) {
    throw new UsageError(
      `--types: unknown event type ${unknown.join(', ')}: expected ${EVENT_TYPES.join(', ')}`,
    );
  }
  if (types.length === 0) throw new UsageError('--types: expected a comma-separated list of event types');
  return types;
}

/** Follows the stream until SIGINT / io.signal, --count events, or the service ends it. */
export async function followEvents(opts: EventsOptions, io: CliIo): Promise<void> {
  const bdf = opts.bdf === undefined ? undefined : bdfArgument(opts.bdf, '--bdf');
  const types = opts.types === undefined ? undefined : parseTypes(opts.types);
  const limit = opts.count === undefined ? undefined : countArgument(opts.count, '--count', 2 ** 31);
  if (limit === 0) return;

  const client = ApiClient.from(opts, io);
  const stop = new AbortController();
  let interrupted = false;
  const interrupt = (): void => {
    interrupted = true;
    stop.abort();
  };
  process.once('SIGINT', interrupt);
  io.signal?.addEventListener('abort', interrupt, { once: true });
  if (io.signal?.aborted) interrupt();

  let seen = 0;
  let ended: SseMessage | undefined;
  try {
    const body = await client.stream(
      `${API_PREFIX}/events`,
      { ...(bdf ? { bdf } : {}), ...(types ? { types: types.join(',') } : {}) },
      stop.signal,
    );
    const parser = new SseParser();
    body.setEncoding('utf8');
    try {
      for await (const chunk of body as AsyncIterable<string>) {
        for (const message of parser.push(chunk)) {
          if (END_EVENTS.includes(message.event)) {
            ended = message;
            break;
          }
          io.stdout(opts.json ? jsonLine(eventJson(message)) : `${formatEvent(message)}\n`);
          if (limit !== undefined && ++seen >= limit) break;
        }
        if (ended || (limit !== undefined && seen >= limit)) break;
      }
    } finally {
      body.destroy();
    }
  } catch (err) {
    if (!interrupted) throw err;
  } finally {
    process.off('SIGINT', interrupt);
    io.signal?.removeEventListener('abort', interrupt);
    stop.abort();
    await client.close();
  }
  if (ended) {
    const data = eventData(ended);
    const why = [data.reason, data.detail].filter((x) => typeof x === 'string' && x !== '').join(': ');
    const last = data.lastSeq !== undefined ? ` after event ${String(data.lastSeq)}` : '';
    if (ended.event === 'dropped')
      throw new Error(`the service dropped this event stream${last}${why ? `: ${why}` : ''}`);
    io.stderr(`vmmr: the service ended the event stream${last}${why ? `: ${why}` : ''}\n`);
    return;
  }
  if (!interrupted && (limit === undefined || seen < limit)) {
    throw new Error(`the service at ${client.url} closed the event stream`);
  }
}

export function registerEventsCommand(program: Command, io: CliIo): void {
  addClientOptions(
    program
      .command('events')
      .description('follow the event stream, one line per event (SEQ TYPE BDF details); Ctrl-C stops')
      .option('--bdf <bdf>', 'only events of this function')
      .option('--types <list>', `only these types, comma-separated: ${EVENT_TYPES.join(',')}`)
      .option('-n, --count <n>', 'exit after N events'),
  ).action(async (opts: EventsOptions) => {
    await followEvents(opts, io);
  });
}
