/** A real listening server (port 0) and undici clients: JSON calls and an SSE reader. */
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';
import { request } from 'undici';
import { loadConfig } from '../../src/server/config.js';
import { buildApp, type BuildAppOptions, type VmmrApp } from '../../src/server/app.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';

export interface TestServer {
  app: VmmrApp;
  url: string;
}

const servers: VmmrApp[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((a) => a.close()));
});

export async function startTestServer(
  env: Record<string, string> = {},
  options: Partial<BuildAppOptions> = {},
): Promise<TestServer> {
  const app = await buildApp({
    config: loadConfig(env),
    topology: DEFAULT_TOPOLOGY,
    logger: false,
    ...options,
  });
  servers.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}` };
}

export interface JsonAnswer<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

/** One JSON request; the answer body parsed (problem documents included). */
export async function api<T = Record<string, unknown>>(
  base: string,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<JsonAnswer<T>> {
  const res = await request(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    body: (text === '' ? undefined : JSON.parse(text)) as T,
  };
}

/** The body of a 2xx JSON answer; throws with the problem otherwise. */
export async function apiOk<T = Record<string, unknown>>(
  base: string,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<T> {
  const res = await api<T>(base, method, path, body);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
  json: Record<string, unknown>;
}

/** Reads a text/event-stream response as it arrives. */
export class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  status = 0;
  contentType = '';
  ended = false;
  private buffer = '';
  private waiters: Array<() => void> = [];
  private readonly abort = new AbortController();
  private done: Promise<void> = Promise.resolve();

  static async open(url: string): Promise<SseReader> {
    const reader = new SseReader();
    const res = await request(url, { headers: { accept: 'text/event-stream' }, signal: reader.abort.signal });
    reader.status = res.statusCode;
    reader.contentType = String(res.headers['content-type']);
    reader.done = (async () => {
      try {
        for await (const chunk of res.body) reader.feed((chunk as Buffer).toString('utf8'));
      } catch {
        // aborted by close()
      }
      reader.ended = true;
      reader.wake();
    })();
    return reader;
  }

  private feed(text: string): void {
    this.buffer += text;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event: Partial<SseEvent> = { event: 'message', data: '' };
      let hasField = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments.push(line.slice(1).trim());
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        hasField = true;
        if (field === 'id') event.id = value;
        else if (field === 'event') event.event = value;
        else if (field === 'data') event.data = event.data ? `${event.data}\n${value}` : value;
      }
      if (hasField)
        this.events.push({
          ...(event as SseEvent),
          json: event.data ? (JSON.parse(event.data) as Record<string, unknown>) : {},
        });
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves once `predicate` holds (checked on every chunk); rejects after `ms`. */
  async waitFor(predicate: (r: SseReader) => boolean, ms = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + ms;
    while (!predicate(this)) {
      if (this.ended)
        throw new Error(
          `stream ended before ${what}; events: ${JSON.stringify(this.events.map((e) => e.event))}`,
        );
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for ${what}; events: ${JSON.stringify(this.events.map((e) => e.event))}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async waitForEnd(ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('stream did not end');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  of(type: string): SseEvent[] {
    return this.events.filter((e) => e.event === type);
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}
