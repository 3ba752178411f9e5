/**
 * ui section: the dashboard (/ui) in Debian's Chromium driven by playwright-core, against a vmmr
 * server in this process on 127.0.0.1 (one net PF with TotalVFs 60,000).
 *
 * - Topology: time from asking for the tree (GET /api/v1/pfs) to the frame after its rows are
 *   drawn, with 60,000 VFs enabled ÷ with 1,000 (the baseline, same page, same rounds): the tree
 *   draws only the rows on screen, so the ratio should stay near 1. Also the first load of the
 *   page with 60,000 VFs, from navigation to the tree drawn.
 * - Timeline: bursts of QUEUE_NOTIFY writes to a VF's legacy block (POST /api/v1/access, 2,048
 *   operations each: one notify event per write) until EVENTS events were emitted; events per
 *   second the page displays (from the first request to the timeline having drawn them all) ÷
 *   events per second the server emitted them (first request to last answer), and whether the
 *   server dropped the stream (its queue filled because the page read too slowly).
 *
 * `node dist/bench/ui.js` prints the section; --json prints it as one JSON line (for run.ts).
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { buildApp, type VmmrApp } from '../src/server/app.js';
import { loadConfig } from '../src/server/config.js';
import { uiAssetsDir } from '../src/server/routes/ui.js';
import { launchChromium } from './lib/chromium.js';
import { LEGACY_BLOCK, SCALE_PF_BDF, scaleTopology, VF_BAR_SPACE } from './lib/machine.js';
import { median, now } from './lib/measure.js';
import { formatSection, type Section } from './lib/results.js';
import { runIfScript } from './lib/script.js';
import { existsSync } from 'node:fs';
import { legacy } from '../src/spec/index.js';

const TOTAL_VFS = 60_000;
const BASELINE_VFS = 1_000;
const ROUNDS = 5;
const EVENTS = 65_536;
const BURST = 2_048;
/** Topology render with 60,000 VFs ÷ with 1,000: at most this (the tree is drawn by visible rows). */
export const TOPOLOGY_GOAL = 2;
/** Events displayed per second ÷ emitted per second: at least this (the page keeps up). */
export const TIMELINE_GOAL = 0.5;

interface Dashboard {
  app: VmmrApp;
  origin: string;
}

async function startServer(): Promise<Dashboard> {
  if (!existsSync(join(uiAssetsDir(), 'index.html')))
    throw new Error('dist/ui is missing: run npm run build');
  const config = loadConfig({ VMMR_MAX_VFS: String(TOTAL_VFS) });
  const app = await buildApp({ config, topology: scaleTopology(TOTAL_VFS), logger: false });
  return { app, origin: await app.listen({ host: '127.0.0.1', port: 0 }) };
}

async function setNumVfs(d: Dashboard, n: number): Promise<void> {
  for (const numVfs of [0, n]) {
    const res = await d.app.inject({
      method: 'PUT',
      url: `/api/v1/pfs/${SCALE_PF_BDF}/sriov?limit=1`,
      payload: { numVfs },
    });
    if (res.statusCode !== 200) throw new Error(`NumVFs ${numVfs}: ${res.statusCode} ${res.body}`);
  }
}

/** Page-side expressions (run in the browser: the dashboard exposes window.vmmrDashboard). */
const IN_PAGE = {
  /** Milliseconds from refresh() to the frame after the rows are drawn. */
  topologyMs: `(async () => {
    const t0 = performance.now();
    await window.vmmrDashboard.topology.refresh();
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - t0;
  })()`,
  rowCount: 'window.vmmrDashboard.topology.rowCount',
  shown: 'window.vmmrDashboard.timeline.shown',
  live: "document.getElementById('timeline-state')?.textContent === 'live'",
  rendered: "performance.getEntriesByName('vmmr:topology:rendered').length > 0",
  firstLoad: "performance.getEntriesByName('vmmr:topology:rendered')[0].startTime",
  shownOrDropped: (target: number): string =>
    `window.vmmrDashboard.timeline.shown >= ${target} || ` +
    "(document.getElementById('timeline-state')?.textContent ?? '').startsWith('dropped')",
};

const topologyMs = (page: Page): Promise<number> => page.evaluate<number>(IN_PAGE.topologyMs);

async function measureTopology(
  d: Dashboard,
  page: Page,
): Promise<{ base: number[]; full: number[]; firstLoad: number }> {
  const base: number[] = [];
  const full: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    await setNumVfs(d, BASELINE_VFS);
    base.push(await topologyMs(page));
    await setNumVfs(d, TOTAL_VFS);
    full.push(await topologyMs(page));
  }
  const rows = await page.evaluate<number>(IN_PAGE.rowCount);
  if (rows !== TOTAL_VFS + 1) throw new Error(`the tree has ${rows} rows, expected ${TOTAL_VFS + 1}`);
  await page.reload();
  await page.waitForFunction(IN_PAGE.rendered);
  const firstLoad = await page.evaluate<number>(IN_PAGE.firstLoad);
  return { base, full, firstLoad };
}

const shownOf = (page: Page): Promise<number> => page.evaluate<number>(IN_PAGE.shown);

/** One round: EVENTS notify events emitted in bursts; [emitted/s, displayed/s, dropped]. */
async function timelineRound(d: Dashboard, page: Page): Promise<[number, number, boolean]> {
  const start = await shownOf(page);
  const offset = LEGACY_BLOCK + legacy.registers.QUEUE_NOTIFY.offset;
  const ops = Array.from({ length: BURST }, () => ({ op: 'write', offset, width: 2, value: 0 }));
  const payload = JSON.stringify({ bdf: '0000:01:00.1', space: VF_BAR_SPACE, ops });
  const t0 = now();
  for (let sent = 0; sent < EVENTS; sent += BURST) {
    const res = await fetch(`${d.origin}/api/v1/access`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: payload,
    });
    if (res.status !== 200) throw new Error(`batch: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  }
  const emitted = now() - t0;
  await page.waitForFunction(IN_PAGE.shownOrDropped(start + EVENTS), undefined, {
    polling: 50,
    timeout: 120_000,
  });
  const displayed = now() - t0;
  const dropped = (await shownOf(page)) < start + EVENTS;
  return [EVENTS / (emitted / 1000), EVENTS / (displayed / 1000), dropped];
}

export async function runUi(): Promise<Section> {
  const started = now();
  const d = await startServer();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(`${d.origin}/ui/`);
    await page.waitForFunction(IN_PAGE.live);
    const topo = await measureTopology(d, page);
    await page.waitForFunction(IN_PAGE.live);
    const rounds: Array<[number, number, boolean]> = [];
    for (let r = 0; r < ROUNDS; r++) rounds.push(await timelineRound(d, page));
    const topoRatio = median(topo.full.map((f, i) => f / topo.base[i]!));
    const flowRatio = median(rounds.map(([e, s]) => s / e));
    const dropped = rounds.filter((r) => r[2]).length;
    return {
      id: 'ui',
      title: 'Dashboard in Chromium: topology render and event timeline',
      baseline: `topology with ${BASELINE_VFS.toLocaleString('en-US')} VFs; events/s the server emitted`,
      rows: [
        {
          case: `topology refresh, ${BASELINE_VFS.toLocaleString('en-US')} VFs`,
          ms: median(topo.base),
          'ratio to baseline': 1,
        },
        {
          case: `topology refresh, ${TOTAL_VFS.toLocaleString('en-US')} VFs`,
          ms: median(topo.full),
          'ratio to baseline': topoRatio,
        },
        {
          case: `first page load to tree drawn, ${TOTAL_VFS.toLocaleString('en-US')} VFs`,
          ms: topo.firstLoad,
          'ratio to baseline': null,
        },
        {
          case: 'events emitted by the server, per s',
          ms: null,
          'ratio to baseline': 1,
          'events/s': median(rounds.map((r) => r[0])),
        },
        {
          case: 'events displayed by the timeline, per s',
          ms: null,
          'ratio to baseline': flowRatio,
          'events/s': median(rounds.map((r) => r[1])),
        },
      ],
      targets: [
        {
          name: 'topology render 60,000 ÷ 1,000 VFs',
          goal: `<= ${TOPOLOGY_GOAL}`,
          value: topoRatio,
          met: topoRatio <= TOPOLOGY_GOAL,
        },
        {
          name: 'timeline displayed ÷ emitted events/s, no stream dropped',
          goal: `>= ${TIMELINE_GOAL}, 0 dropped`,
          value: flowRatio,
          met: flowRatio >= TIMELINE_GOAL && dropped === 0,
        },
      ],
      notes: [
        `${ROUNDS} rounds; ${EVENTS.toLocaleString('en-US')} events per timeline round in bursts of ${BURST}; streams dropped: ${dropped}`,
      ],
      raw: { topology: topo, timeline: rounds },
      seconds: (now() - started) / 1000,
    };
  } finally {
    await browser.close();
    await d.app.close();
  }
}

runIfScript(import.meta.url, 'ui bench', async (argv) => {
  const section = await runUi();
  process.stdout.write(
    argv.includes('--json') ? `${JSON.stringify(section)}\n` : `${formatSection(section)}\n`,
  );
});
