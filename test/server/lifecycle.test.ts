/**
 * Lifecycle races: VFs are disabled (PUT /api/v1/pfs/{bdf}/sriov {numVfs: 0}) while clients
 * access them and event streams follow them. Accesses to a removed VF get a clear 404/410
 * problem+json (or, inside a batch, an ok: false result with the code); streams following a
 * removed VF end cleanly with a final `event: end`; nothing answers 5xx. Re-enabled VFs are fresh:
 * byte-for-byte what the same VF was before anybody touched it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'undici';
import { formatBdf } from '../../src/pci/bdf.js';
import {
  call,
  expectProblem,
  pool,
  setNumVfs,
  start,
  type Answer,
  type Started,
} from '../support/robustness/server.js';
import { checkDense, openSse, seqsOf, type SseClient } from '../support/robustness/sse.js';

const LONG = process.env.FUZZ_LONG === '1';
const CYCLES = LONG ? 50 : 4;
const HAMMERS = 16;
const PF = '0000:01:00.0';
const VFS = 8;
const vfs = Array.from({ length: VFS }, (_, n) => formatBdf(0, 0x100 + 1 + n));

const stats = { requests: 0, removals: 0, reEnables: 0, gone: 0, streamsEnded: 0, fiveHundreds: 0 };
let srv: Started;
let http: Pool;

beforeAll(async () => {
  srv = await start();
  http = pool(srv.url, 32);
});

afterAll(async () => {
  await http?.close();
  await srv?.close();
  console.log(
    `lifecycle: ${stats.removals} VF removals in ${CYCLES} disable/enable cycles under ${HAMMERS} clients, ${stats.requests} requests, ` +
      `${stats.gone} answered "gone" (404/410), ${stats.streamsEnded} streams ended cleanly, ${stats.fiveHundreds} 5xx`,
  );
});

/** Everything observable of a function without side effects: description and config dump. */
async function observe(bdf: string): Promise<string> {
  const d = await call(http, 'GET', `/api/v1/functions/${bdf}`);
  const c = await call(http, 'GET', `/api/v1/functions/${bdf}/config`);
  expect(d.status, d.text).toBe(200);
  expect(c.status, c.text).toBe(200);
  return `${d.text}\n${c.text}`;
}

function check(a: Answer, what: string): void {
  stats.requests++;
  if (a.status >= 500) stats.fiveHundreds++;
  expect(a.status, `${what}: ${a.text.slice(0, 300)}`).toBeLessThan(500);
  if (a.status >= 400) {
    const { code } = expectProblem(a, what);
    if (code === 'VMMR_ERR_VF_DISABLED' || code === 'VMMR_ERR_NO_FUNCTION') stats.gone++;
  } else if (what.startsWith('batch')) {
    for (const r of (a.json as { results: Array<{ ok: boolean; error?: { code: string } }> }).results) {
      if (!r.ok) {
        expect(r.error?.code).toMatch(/^VMMR_ERR_/);
        if (r.error?.code === 'VMMR_ERR_VF_DISABLED') stats.gone++;
      }
    }
  }
}

/** One random access a client makes to a VF. */
async function poke(i: number): Promise<void> {
  const bdf = vfs[i % VFS]!;
  switch (i % 6) {
    case 0:
      check(await call(http, 'GET', `/api/v1/functions/${bdf}/config/0x4?width=2`), `read ${bdf}`);
      break;
    case 1:
      check(
        await call(http, 'PUT', `/api/v1/functions/${bdf}/bars/2/0x16`, { width: 2, value: i % 3 }),
        `write ${bdf}`,
      );
      break;
    case 2:
      check(
        await call(http, 'POST', '/api/v1/access', {
          ops: [
            { bdf, space: 'bar2', op: 'write', offset: 0x2008, width: 4, value: i },
            { bdf, space: 'bar2', op: 'read', offset: 0x2008, width: 4 },
            { bdf: vfs[(i + 1) % VFS], space: 'config', op: 'read', offset: 0, width: 4 },
          ],
          onError: 'continue',
        }),
        `batch ${bdf}`,
      );
      break;
    case 3:
      check(
        await call(http, 'POST', `/api/v1/functions/${bdf}/interrupt`, { config: true }),
        `interrupt ${bdf}`,
      );
      break;
    case 4:
      check(
        await call(http, 'PUT', `/api/v1/functions/${bdf}/guest/config/4`, { width: 2, value: 1 }),
        `guest ${bdf}`,
      );
      break;
    default:
      check(await call(http, 'GET', `/api/v1/functions/${bdf}`), `describe ${bdf}`);
  }
}

describe('VF removal under load', () => {
  it('removal races end in clean refusals and clean stream ends; re-enabled VFs are fresh', async () => {
    expect((await setNumVfs(http, PF, VFS)).status).toBe(200);
    const pristine = new Map<string, string>();
    for (const bdf of vfs) pristine.set(bdf, await observe(bdf));
    const all = await openSse(srv.url, '/api/v1/events');
    const pfStream = await openSse(srv.url, `/api/v1/events?bdf=${PF}`);

    let hammering = true;
    let paused = false;
    let counter = 0;
    const hammers = Array.from({ length: HAMMERS }, async (_, h) => {
      while (hammering) {
        if (paused) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        await poke(counter++ * HAMMERS + h);
      }
    });
    // Hammers run (and touch the VFs) while each cycle's streams are opened and VFs removed.
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const followers: SseClient[] = [];
      followers.push(...(await Promise.all(vfs.map((bdf) => openSse(srv.url, `/api/v1/events?bdf=${bdf}`)))));
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
      const off = await setNumVfs(http, PF, 0);
      check(off, 'disable');
      expect(off.status).toBe(200);
      stats.removals += VFS;
      for (const [k, f] of followers.entries()) {
        // The stream ends by itself: last event `end`, reason function-removed; ids stay dense.
        await f.closed;
        const last = f.events[f.events.length - 1];
        expect(last?.event, `stream of ${vfs[k]}`).toBe('end');
        expect(last?.data.reason).toBe('function-removed');
        expect(last?.data.lastSeq).toBe(seqsOf(f.events).length);
        expect(checkDense(seqsOf(f.events))).toBeNull();
        for (const e of f.events) if (e.id !== undefined) expect(e.data.bdf).toBe(vfs[k]);
        stats.streamsEnded++;
      }
      // Accesses to removed VFs: 410, problem+json.
      for (const bdf of vfs) {
        const a = await call(http, 'GET', `/api/v1/functions/${bdf}/config/0?width=4`);
        check(a, `removed ${bdf}`);
        expect(expectProblem(a, `removed ${bdf}`, [410]).code).toBe('VMMR_ERR_VF_DISABLED');
      }
      // Re-enable with the clients paused: the VFs must be exactly as never touched.
      paused = true;
      await new Promise((r) => setTimeout(r, 30));
      expect((await setNumVfs(http, PF, VFS)).status).toBe(200);
      stats.reEnables++;
      for (const bdf of vfs) expect(await observe(bdf), `${bdf} after re-enable`).toBe(pristine.get(bdf));
      paused = false;
    }
    hammering = false;
    await Promise.all(hammers);

    // The long-lived streams saw every VF removal and are still open, with dense ids.
    expect(all.isClosed()).toBe(false);
    expect(pfStream.isClosed()).toBe(false);
    await all.waitFor((ev) => ev.filter((e) => e.event === 'vf-disable').length >= CYCLES, 5000);
    expect(all.events.filter((e) => e.event === 'vf-disable').length).toBe(CYCLES);
    // Opened after the first enable: it saw each cycle's re-enable.
    expect(pfStream.events.filter((e) => e.event === 'vf-enable').length).toBe(CYCLES);
    expect(checkDense(seqsOf(all.events))).toBeNull();
    expect(checkDense(seqsOf(pfStream.events))).toBeNull();
    all.close();
    pfStream.close();
    expect(stats.fiveHundreds).toBe(0);
    expect((await call(http, 'GET', '/healthz')).status).toBe(200);
  }, 120_000);

  it('removing a PF under load: its VFs answer 404, their streams end, a re-added PF is fresh', async () => {
    const pfDef = { bdf: '0000:40:00.0', type: 'block', totalVfs: 4 };
    const pfVfs = [1, 2, 3].map((n) => formatBdf(0, 0x4000 + n));
    expect((await call(http, 'POST', '/api/v1/pfs', pfDef)).status).toBe(201);
    expect((await setNumVfs(http, pfDef.bdf, 3)).status).toBe(200);
    const pristine = await Promise.all(pfVfs.map((b) => observe(b)));
    const followers = await Promise.all(
      [...pfVfs, pfDef.bdf].map((b) => openSse(srv.url, `/api/v1/events?bdf=${b}`)),
    );
    let running = true;
    const clients = Array.from({ length: 8 }, async (_, c) => {
      for (let i = 0; running; i++) {
        const bdf = pfVfs[(c + i) % pfVfs.length]!;
        check(
          await call(http, 'PUT', `/api/v1/functions/${bdf}/bars/2/0x2008`, { width: 4, value: i }),
          `write ${bdf}`,
        );
        check(
          await call(http, 'POST', `/api/v1/functions/${bdf}/interrupt`, { config: true }),
          `interrupt ${bdf}`,
        );
      }
    });
    await new Promise((r) => setTimeout(r, 50));
    const del = await call(http, 'DELETE', `/api/v1/pfs/${pfDef.bdf}`);
    expect(del.status, del.text).toBe(204);
    stats.removals += 4;
    for (const f of followers) {
      await f.closed;
      expect(f.events[f.events.length - 1]?.event).toBe('end');
      expect(checkDense(seqsOf(f.events))).toBeNull();
      stats.streamsEnded++;
    }
    running = false;
    await Promise.all(clients);
    for (const bdf of [...pfVfs, pfDef.bdf]) {
      const a = await call(http, 'GET', `/api/v1/functions/${bdf}/config/0?width=4`);
      check(a, `removed ${bdf}`);
      expect(expectProblem(a, `removed ${bdf}`, [404]).code).toBe('VMMR_ERR_NO_FUNCTION');
    }
    expect((await call(http, 'POST', '/api/v1/pfs', pfDef)).status).toBe(201);
    expect((await setNumVfs(http, pfDef.bdf, 3)).status).toBe(200);
    expect(await Promise.all(pfVfs.map((b) => observe(b)))).toEqual(pristine);
    expect(stats.fiveHundreds).toBe(0);
  });

  it('a restore or reset that removes a followed VF ends its stream too', async () => {
    expect((await setNumVfs(http, PF, 0)).status).toBe(200);
    expect((await setNumVfs(http, PF, 2)).status).toBe(200);
    const f = await openSse(srv.url, `/api/v1/events?bdf=${vfs[1]}`);
    const reset = await call(http, 'POST', '/api/v1/reset');
    expect(reset.status, reset.text).toBe(200);
    await f.closed;
    expect(f.events[f.events.length - 1]?.event).toBe('end');
    stats.streamsEnded++;
    const gone = await call(http, 'GET', `/api/v1/functions/${vfs[1]}`);
    expect(expectProblem(gone, 'after reset', [404, 410]).code).toMatch(/VMMR_ERR_(VF_DISABLED|NO_FUNCTION)/);
  });
});
