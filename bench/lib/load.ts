/**
 * Load generation for the HTTP sections: autocannon's programmatic API in this process, against
 * a server in a child process. autocannon keeps latencies in whole milliseconds; the figures
 * here come from its per-response event instead (microsecond resolution), counted only inside
 * a measurement window that starts after a warm-up, so connection set-up and the first
 * requests are not part of them. The server's CPU time over the same window gives its cost per
 * request independently of whether the server or the load generator was the bottleneck.
 */
import autocannon from 'autocannon';
import { setTimeout as sleep } from 'node:timers/promises';
import { now, quantile } from './measure.js';
import type { ServerHandle } from './servers.js';

export interface LoadOptions {
  server: ServerHandle;
  /** Path and query, e.g. "/api/v1/functions/0000:01:00.1/bars/2/0x100c?width=2". */
  path: string;
  method?: 'GET' | 'POST';
  body?: string;
  connections: number;
  /** Load before the window opens (JIT, connection set-up). */
  warmupMs: number;
  /** Length of the measurement window. */
  measureMs: number;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  /** Requests completed per second inside the window. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU time (user + system) per request inside the window, microseconds. */
  serverCpuUs: number;
  /** Share of one core the server used inside the window. */
  serverCpuShare: number;
}

/** Runs one load and returns the figures of its measurement window; throws on any non-2xx or error. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  let counting = false;
  let bad = 0;
  const headers: Record<string, string> = o.body === undefined ? {} : { 'content-type': 'application/json' };
  let finish!: (r: autocannon.Result) => void;
  let fail!: (e: Error) => void;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const instance = autocannon(
    {
      url: `${o.server.url}${o.path}`,
      method: o.method ?? 'GET',
      headers,
      ...(o.body === undefined ? {} : { body: o.body }),
      connections: o.connections,
      // Stopped by hand when the window closes; a short sampling interval makes stop() prompt.
      duration: 3600,
      sampleInt: 50,
      timeout: 30,
    },
    (err, result) => (err ? fail(err) : finish(result)),
  );
  instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
    if (statusCode < 200 || statusCode >= 300) bad++;
    if (counting) latencies.push(responseTimeMs);
  });
  await sleep(o.warmupMs);
  const cpu0 = await o.server.cpuMicros();
  counting = true;
  const t0 = now();
  await sleep(o.measureMs);
  counting = false;
  const t1 = now();
  const cpu1 = await o.server.cpuMicros();
  instance.stop();
  const result = await done;
  if (bad > 0 || result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(
      `${o.method ?? 'GET'} ${o.path}: ${bad} non-2xx answers, ${result.errors} errors, ${result.timeouts} timeouts`,
    );
  }
  const seconds = (t1 - t0) / 1000;
  const requests = latencies.length;
  return {
    requests,
    seconds,
    rps: requests / seconds,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    serverCpuUs: (cpu1 - cpu0) / Math.max(requests, 1),
    serverCpuShare: (cpu1 - cpu0) / 1e6 / seconds,
  };
}
