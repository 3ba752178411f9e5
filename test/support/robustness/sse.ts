/** A minimal Server-Sent Events client (undici; no reconnection). */
import { Agent, request } from 'undici';

export interface SseEvent {
  id?: string;
  event: string;
  data: Record<string, unknown>;
}

export interface SseClient {
  events: SseEvent[];
  /** Resolves when the stream ended (server closed it, or close() was called). */
  closed: Promise<void>;
  isClosed(): boolean;
  close(): void;
  /** Waits until `predicate` holds for the events received so far (false on close or timeout). */
  waitFor(predicate: (events: SseEvent[]) => boolean, timeoutMs?: number): Promise<boolean>;
}

/** Each stream gets its own connection: streams never share a socket with other requests. */
const agent = new Agent({ connections: null, pipelining: 0 });

/** Opens GET <path> as an event stream; resolves once the 200 headers arrived (subscription live). */
export async function openSse(
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<SseClient> {
  const res = await request(`${url}${path}`, {
    dispatcher: agent,
    headers: { accept: 'text/event-stream', ...headers },
    bodyTimeout: 0,
  });
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    throw new Error(`event stream refused: ${res.statusCode} ${text.slice(0, 300)}`);
  }
  const events: SseEvent[] = [];
  const waiters = new Set<() => void>();
  let closed = false;
  let buffer = '';
  const notify = (): void => {
    for (const w of [...waiters]) w();
  };
  const closedPromise = (async () => {
    try {
      for await (const chunk of res.body) {
        buffer += (chunk as Buffer).toString('utf8');
        let at: number;
        while ((at = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const ev: SseEvent = { event: 'message', data: {} };
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) ev.id = line.slice(4);
            else if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) {
            ev.data = JSON.parse(data) as Record<string, unknown>;
            events.push(ev);
          }
        }
        notify();
      }
    } catch {
      // destroyed by close(), or the connection was cut
    } finally {
      closed = true;
      notify();
    }
  })();
  return {
    events,
    closed: closedPromise,
    isClosed: () => closed,
    close: () => res.body.destroy(),
    waitFor: (predicate, timeoutMs = 10_000) =>
      new Promise((resolveWait) => {
        const finish = (ok: boolean): void => {
          clearTimeout(timer);
          waiters.delete(check);
          resolveWait(ok);
        };
        const check = (): void => {
          if (predicate(events)) finish(true);
          else if (closed) finish(false);
        };
        const timer = setTimeout(() => finish(predicate(events)), timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}

/** Sequence numbers of a stream's device events (control events carry none). */
export function seqsOf(events: SseEvent[]): number[] {
  return events.filter((e) => e.id !== undefined).map((e) => Number(e.data.seq));
}

/** Null when 1, 2, 3… without gap or repeat; else what is wrong. */
export function checkDense(seqs: number[]): string | null {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== i + 1) return `position ${i}: seq ${seqs[i]} (expected ${i + 1})`;
  }
  return null;
}
