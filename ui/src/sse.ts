/**
 * GET /api/v1/events read with fetch (EventSource cannot send the Authorization header): the
 * text/event-stream framing of the HTML standard (§9.2 Server-sent events): lines "field: value",
 * an event ends at a blank line, comment lines start with ":".
 */
import { authHeaders, problemOf } from './api.js';

export interface StreamEvent {
  event: string;
  id: string | undefined;
  data: string;
}

export interface EventStream {
  close(): void;
}

/** Splits a chunked event stream into events. */
export class SseParser {
  private buffer = '';
  private event = 'message';
  private id: string | undefined;
  private data: string[] = [];

  constructor(private readonly onEvent: (e: StreamEvent) => void) {}

  push(text: string): void {
    this.buffer += text;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.onEvent({ event: this.event, id: this.id, data: this.data.join('\n') });
      this.event = 'message';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
  }
}

/** Opens the stream; onEvent for each event, onEnd once when it ends (with the reason). */
export function openEvents(
  query: string,
  onEvent: (e: StreamEvent) => void,
  onEnd: (reason: string) => void,
): EventStream {
  const abort = new AbortController();
  const run = async (): Promise<string> => {
    const res = await fetch(`/api/v1/events${query}`, {
      headers: { accept: 'text/event-stream', ...authHeaders() },
      signal: abort.signal,
    });
    if (!res.ok || !res.body) throw await problemOf(res);
    const parser = new SseParser(onEvent);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return 'the server closed the stream';
      parser.push(value);
    }
  };
  run().then(onEnd, (e: unknown) => {
    if (!abort.signal.aborted) onEnd(e instanceof Error ? e.message : String(e));
  });
  return { close: () => abort.abort() };
}
