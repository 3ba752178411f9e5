/**
 * Many clients at once (undici Pool, 32 connections) against a real server:
 * - every batch is atomic: a batch selects a queue, writes its address, then reads both back —
 *   another client's batch on the same VF in between would show up as a foreign queue or tag;
 * - per-VF write slots (an MSI-X Message Data dword owned by one client) end exactly at the last
 *   value their owner wrote: no lost or stray write;
 * - a device-side counter (config generation, +1 per config-change interrupt) ends at the sum of
 *   the interrupts raised, and every SSE subscriber sees each of those events exactly once, with
 *   sequence numbers 1, 2, 3… without gap or repeat.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'undici';
import { formatBdf } from '../../src/pci/bdf.js';
import { call, pool, setNumVfs, start, type Started } from '../support/robustness/server.js';
import { checkDense, openSse, seqsOf, type SseClient } from '../support/robustness/sse.js';

const LONG = process.env.FUZZ_LONG === '1';
const CLIENTS = 32;
const ROUNDS = LONG ? 400 : 40;
const PF = '0000:01:00.0';
const VFS = 8;
/** VF n (0-based) of PF 01:00.0: routing ID PF + First VF Offset (1) + n. */
const vf = (n: number): string => formatBdf(0, 0x100 + 1 + n);

// Registers (net VF, BAR 2): common cfg queue_select and queue_desc, MSI-X table.
const QUEUE_SELECT = 0x16;
const QUEUE_DESC = 0x20;
const msixData = (vector: number): number => 0x2000 + vector * 16 + 8;
const NET_QUEUES = 3;

const stats = { requests: 0, operations: 0, interrupts: 0, events: 0 };
let srv: Started;
let http: Pool;

beforeAll(async () => {
  srv = await start();
  http = pool(srv.url, CLIENTS);
  expect((await setNumVfs(http, PF, VFS)).status).toBe(200);
});

afterAll(async () => {
  await http?.close();
  await srv?.close();
  console.log(
    `concurrency: ${CLIENTS} clients, ${stats.requests} requests, ${stats.operations} operations, ` +
      `${stats.interrupts} interrupts, ${stats.events} events checked; 0 lost or duplicated`,
  );
});

interface BatchAnswer {
  results: Array<{ ok: boolean; value?: string; error?: { code: string } }>;
}

async function batch(ops: unknown[]): Promise<BatchAnswer> {
  stats.requests++;
  stats.operations += ops.length;
  const a = await call(http, 'POST', '/api/v1/access', { ops });
  expect(a.status, a.text.slice(0, 300)).toBe(200);
  return a.json as BatchAnswer;
}

describe('concurrent clients', () => {
  it('batches are atomic, owned slots end at their last write, counters at the sum', async () => {
    const bdfs = Array.from({ length: VFS }, (_, n) => vf(n));
    // Subscribers: everything; one VF only; config-change events only.
    const subs: Array<{ name: string; client: SseClient; accepts: (bdf: string, type: string) => boolean }> =
      [
        { name: 'all', client: await openSse(srv.url, '/api/v1/events'), accepts: () => true },
        {
          name: `bdf=${bdfs[1]}`,
          client: await openSse(srv.url, `/api/v1/events?bdf=${bdfs[1]}`),
          accepts: (b) => b === bdfs[1],
        },
        {
          name: 'types=config-change',
          client: await openSse(srv.url, '/api/v1/events?types=config-change'),
          accepts: (_b, t) => t === 'config-change',
        },
      ];
    const interrupts = new Map<string, number>(bdfs.map((b) => [b, 0]));
    const lastWritten = new Map<string, number>();
    const mismatches: string[] = [];

    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        // Half the clients share VF 0 (same registers, different queues); the others spread out.
        const target = c % 2 === 0 ? bdfs[0]! : bdfs[c % VFS]!;
        const queue = c % NET_QUEUES;
        // Owned slot: MSI-X vector (c >> 3) Message Data of VF (c % VFS): one owner per slot.
        const slotVf = bdfs[c % VFS]!;
        const slot = msixData(c >> 3);
        for (let r = 1; r <= ROUNDS; r++) {
          const tag = ((c << 16) | r) >>> 0;
          const ans = await batch([
            { bdf: target, space: 'bar2', op: 'write', offset: QUEUE_SELECT, width: 2, value: queue },
            { bdf: target, space: 'bar2', op: 'write', offset: QUEUE_DESC, width: 4, value: tag },
            { bdf: target, space: 'bar2', op: 'read', offset: QUEUE_SELECT, width: 2 },
            { bdf: target, space: 'bar2', op: 'read', offset: QUEUE_DESC, width: 4 },
            { bdf: slotVf, space: 'bar2', op: 'write', offset: slot, width: 4, value: r },
            { bdf: slotVf, space: 'bar2', op: 'read', offset: slot, width: 4 },
          ]);
          const [, , sel, desc, , own] = ans.results;
          if (Number(sel?.value) !== queue || Number(desc?.value) !== tag || Number(own?.value) !== r) {
            mismatches.push(`client ${c} round ${r}: ${JSON.stringify(ans.results)}`);
          }
          lastWritten.set(`${slotVf}@${slot}`, r);
          if (r % 4 === 0) {
            const bdf = bdfs[(c + r) % VFS]!;
            stats.requests++;
            const a = await call(http, 'POST', `/api/v1/functions/${bdf}/interrupt`, { config: true });
            expect(a.status, a.text).toBe(200);
            interrupts.set(bdf, interrupts.get(bdf)! + 1);
            stats.interrupts++;
          }
        }
      }),
    );
    expect(mismatches.slice(0, 5)).toEqual([]);

    // Owned slots: exactly the owner's last write.
    for (const [key, r] of lastWritten) {
      const [bdf, off] = key.split('@');
      const a = await call(http, 'GET', `/api/v1/functions/${bdf}/bars/2/${off}?width=4`);
      expect(Number((a.json as { value: string }).value), key).toBe(r);
    }
    // Device counter: config generation = interrupts raised (mod 256), per VF.
    for (const [bdf, n] of interrupts) {
      const a = await call(http, 'GET', `/api/v1/functions/${bdf}/bars/2/0x15?width=1`);
      expect(Number((a.json as { value: string }).value), `${bdf} config generation`).toBe(n % 256);
    }
    // Subscribers: every config-change once, dense sequence numbers.
    const total = stats.interrupts;
    for (const s of subs) {
      const expected = [...interrupts]
        .filter(([b]) => s.accepts(b, 'config-change'))
        .reduce((n, [, k]) => n + k, 0);
      const got = (): number => s.client.events.filter((e) => e.event === 'config-change').length;
      await s.client.waitFor(() => got() >= expected, 10_000);
      expect(got(), `${s.name}: config-change events`).toBe(expected);
      expect(checkDense(seqsOf(s.client.events)), s.name).toBeNull();
      for (const e of s.client.events)
        expect(
          s.accepts(String(e.data.bdf), e.event),
          `${s.name} got ${e.event} of ${String(e.data.bdf)}`,
        ).toBe(true);
      const perVf = new Map<string, number[]>();
      for (const e of s.client.events.filter((x) => x.event === 'config-change')) {
        const list = perVf.get(String(e.data.bdf)) ?? [];
        list.push(Number(e.data.generation));
        perVf.set(String(e.data.bdf), list);
      }
      // Each VF's generations arrive in order, each exactly once.
      for (const [bdf, gens] of perVf) {
        expect(gens, `${s.name} ${bdf}`).toEqual(gens.map((_, i) => (i + 1) % 256));
      }
      stats.events += s.client.events.length;
      s.client.close();
    }
    expect(total).toBeGreaterThan(0);
  }, 120_000);
});
