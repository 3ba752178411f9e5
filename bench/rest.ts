/**
 * REST section: one register read per request, GET /api/v1/functions/{bdf}/bars/2/0x100c?width=2
 * (the legacy QUEUE_NUM of a VF: no side effect), against a bare fastify route answering a
 * constant JSON object of the same shape.
 *
 * Both servers run in child processes started the same way (bench/server.ts: same node, same
 * fastify, logger off, 127.0.0.1), the load generator (autocannon, 16 connections) in this
 * process: on two cores, one core serves while the other generates. The two are measured
 * alternately, round by round (vmmr first in even rounds, bare first in odd ones); the ratio is
 * the median of the per-round ratios. Besides requests per second, the servers' CPU time per
 * request is reported: it does not depend on which side of the connection was the bottleneck.
 *
 * `node dist/bench/rest.js` prints the section; --json prints it as one JSON line (for run.ts);
 * --profile DIR runs both servers under `node --cpu-prof` and leaves their profiles in DIR.
 */
import { runIfScript } from './lib/script.js';
import { resolve } from 'node:path';
import { runLoad, type LoadResult } from './lib/load.js';
import { median, now } from './lib/measure.js';
import { formatSection, type Row, type Section } from './lib/results.js';
import {
  BARE_ANSWER,
  benchHttp,
  enableBenchVfs,
  QUEUE_NUM,
  SINGLE_READ_PATH,
  startServerChild,
  type ServerHandle,
} from './lib/servers.js';

export interface RestOptions {
  rounds: number;
  connections: number;
  /** Load before the first round, per server. */
  firstWarmupMs: number;
  warmupMs: number;
  measureMs: number;
  profileDir?: string;
}

export const REST_DEFAULTS: RestOptions = {
  rounds: 4,
  connections: 16,
  firstWarmupMs: 1500,
  warmupMs: 300,
  measureMs: 1500,
};

/** vmmr req/s ÷ bare fastify req/s. */
export const REST_RATIO_GOAL = 0.7;

/** Both answers must be the same JSON text: the comparison is then about the work, not the bytes. */
async function checkAnswers(vmmr: ServerHandle, bare: ServerHandle): Promise<string> {
  const a = await benchHttp(vmmr, 'GET', SINGLE_READ_PATH);
  const b = await benchHttp(bare, 'GET', SINGLE_READ_PATH);
  if (a !== JSON.stringify(BARE_ANSWER) || b !== a) {
    throw new Error(`the answers differ: vmmr ${a}, bare ${b}, expected ${JSON.stringify(BARE_ANSWER)}`);
  }
  return a;
}

function load(server: ServerHandle, o: RestOptions, warmupMs: number): Promise<LoadResult> {
  return runLoad({
    server,
    path: SINGLE_READ_PATH,
    connections: o.connections,
    warmupMs,
    measureMs: o.measureMs,
  });
}

export async function runRest(o: RestOptions = REST_DEFAULTS): Promise<Section> {
  const started = now();
  const vmmr = await startServerChild('vmmr', o.profileDir ? { profileDir: o.profileDir } : {});
  const bare = await startServerChild('bare', o.profileDir ? { profileDir: o.profileDir } : {});
  try {
    await enableBenchVfs(vmmr);
    const answer = await checkAnswers(vmmr, bare);
    await load(vmmr, o, o.firstWarmupMs);
    await load(bare, o, o.firstWarmupMs);
    const runs: Record<'vmmr' | 'bare', LoadResult[]> = { vmmr: [], bare: [] };
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? [vmmr, bare] : [bare, vmmr];
      for (const server of order)
        runs[server.kind as 'vmmr' | 'bare'].push(await load(server, o, o.warmupMs));
    }
    const ratios = runs.vmmr.map((v, i) => v.rps / runs.bare[i]!.rps);
    const cpuRatios = runs.vmmr.map((v, i) => runs.bare[i]!.serverCpuUs / v.serverCpuUs);
    const ratio = median(ratios);
    const cpuRatio = median(cpuRatios);
    const summary = (name: string, list: readonly LoadResult[]): Row => ({
      server: name,
      'req/s': Math.round(median(list.map((r) => r.rps))),
      'p50 ms': median(list.map((r) => r.p50Ms)),
      'p99 ms': median(list.map((r) => r.p99Ms)),
      'server CPU µs/req': median(list.map((r) => r.serverCpuUs)),
      'server core busy %': 100 * median(list.map((r) => r.serverCpuShare)),
    });
    return {
      id: 'rest',
      title: `REST single access: GET …/bars/2/0x${QUEUE_NUM.toString(16)}?width=2 on a VF, ${o.connections} connections`,
      baseline:
        'a bare fastify route (same fastify, logger off, same URL template, constant JSON of the same shape), ' +
        'in its own child process like vmmr, measured alternately with it in the same run',
      rows: [
        summary('vmmr (startServer, logger off)', runs.vmmr),
        summary('bare fastify, constant answer', runs.bare),
      ],
      targets: [
        {
          name: 'req/s vmmr ÷ bare fastify (median of per-round ratios)',
          goal: `>= ${REST_RATIO_GOAL}`,
          value: ratio,
          met: ratio >= REST_RATIO_GOAL,
        },
        {
          name: 'server CPU per request, bare ÷ vmmr (independent of the load generator)',
          goal: `>= ${REST_RATIO_GOAL}`,
          value: cpuRatio,
          met: cpuRatio >= REST_RATIO_GOAL,
        },
      ],
      notes: [
        `both answer ${answer} (${answer.length} bytes of JSON)`,
        `load: autocannon in the parent process, ${o.connections} connections, no pipelining; servers in child processes (one core each way)`,
        `${o.rounds} alternating rounds of ${o.measureMs} ms per server after ${o.warmupMs} ms of warm-up load; medians; latency at microsecond resolution from each response`,
        'server CPU: user + system time of the server process over the measurement window ÷ requests answered',
      ],
      raw: { vmmr: runs.vmmr, bare: runs.bare, ratios, cpuRatios },
      seconds: (now() - started) / 1000,
    };
  } finally {
    await Promise.allSettled([vmmr.stop(), bare.stop()]);
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const profileAt = argv.indexOf('--profile');
  const profileDir = profileAt >= 0 ? resolve(argv[profileAt + 1] ?? '.') : undefined;
  const section = await runRest({ ...REST_DEFAULTS, ...(profileDir ? { profileDir } : {}) });
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(section)}\n`);
  else process.stdout.write(`${formatSection(section)}\n`);
}

runIfScript(import.meta.url, 'rest', main);
