/**
 * The dashboard in a real browser (Debian's Chromium via playwright-core) against a real vmmr
 * server on loopback: SR-IOV from the page, a VF opened from the keyboard, a guest I/O write made
 * over REST seen in the STATUS bits and the timeline, the token flow. Screenshots of the main
 * views go to docs/images/.
 */
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  launchChromium,
  SCREENSHOTS,
  startDashboard,
  type Dashboard,
} from '../support/browser.js';

const PF = '0000:01:00.0';
const VF = '0000:01:00.1';

let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

async function rest(
  d: Dashboard,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  return fetch(`${d.origin}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function setNumVfs(page: Page, pf: string, n: number): Promise<void> {
  const form = page.locator(`form.numvfs[data-pf="${pf}"]`);
  await form.getByLabel(`NumVFs of ${pf}`).fill(String(n));
  await form.getByRole('button', { name: 'Set' }).click();
}

describe('dashboard: SR-IOV, a VF, its STATUS bits and the timeline', () => {
  let d: Dashboard;
  let page: Page;

  beforeAll(async () => {
    d = await startDashboard();
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(`${d.origin}/ui/`);
  });
  afterAll(async () => {
    await page?.close();
    await d?.close();
  });

  it('enables 4 VFs from the page; the tree lists them like vmmr ls', async () => {
    await setNumVfs(page, PF, 4);
    const tree = page.getByRole('tree');
    await eventually(() => tree.getByRole('treeitem').count()).toBe(2 + 4);
    const pf = (await (await rest(d, 'GET', `/api/v1/pfs/${PF}`)).json()) as {
      numVfs: number;
      vfEnabled: boolean;
      totalVfs: number;
    };
    expect(pf).toMatchObject({ numVfs: 4, vfEnabled: true });
    await eventually(() => page.locator(`section.pf[aria-label="PF ${PF}"] .sriov`).textContent()).toBe(
      `[SR-IOV: 4/${pf.totalVfs} VFs, NumVFs 4, VF Enable 1, VF MSE 1]`,
    );
    for (const bdf of ['0000:01:00.1', '0000:01:00.2', '0000:01:00.3', '0000:01:00.4'])
      await eventually(() => tree.locator(`[data-bdf="${bdf}"]`).count()).toBe(1);
  });

  it('a nonzero NumVFs over a nonzero one is refused, shown as the API words it', async () => {
    const api = await rest(d, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 2 });
    expect(api.status).toBe(409);
    const problem = (await api.json()) as { code: string; detail: string };
    await setNumVfs(page, PF, 2);
    const output = page.locator(`form.numvfs[data-pf="${PF}"] output`);
    await eventually(() => output.textContent()).toBe(`${problem.code}: ${problem.detail}`);
  });

  it('opens a VF from the keyboard; a guest I/O write over REST shows in STATUS and the timeline', async () => {
    const tree = page.getByRole('tree');
    await tree.focus();
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await eventually(() => page.locator('#function-title').textContent()).toBe(`${VF} — net VF`);
    expect(await page.locator('#status-bits li[data-set="true"]').count()).toBe(0);

    expect(
      (await rest(d, 'PUT', `/api/v1/functions/${VF}/guest/config/0x04`, { width: 2, value: 1 })).status,
    ).toBe(200);
    expect(
      (await rest(d, 'PUT', `/api/v1/functions/${VF}/guest/io/0x12`, { width: 1, value: 3 })).status,
    ).toBe(200);

    const set = page.locator('#status-bits li[data-set="true"]');
    await eventually(() => set.allTextContents()).toEqual(['ACKNOWLEDGE+', 'DRIVER+']);
    await eventually(() => page.locator('#legacy-registers [data-register="STATUS"]').textContent()).toBe(
      '0x03',
    );
    const event = page.locator(`#timeline-list li[data-type="status"][data-bdf="${VF}"]`).first();
    await eventually(() => event.textContent()).toContain('0x00 -> 0x03');
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-vf.png') });
  });

  it('the timeline filters by type, pauses and clears', async () => {
    const list = page.locator('#timeline-list li');
    await page.locator('#type-status').uncheck();
    expect(await page.locator('#timeline-list li[data-type="status"]').count()).toBe(0);
    await page.locator('#type-status').check();
    await eventually(() => page.locator('#timeline-list li[data-type="status"]').count()).toBeGreaterThan(0);
    await page.locator('#timeline-pause').click();
    const before = await list.count();
    expect((await rest(d, 'POST', `/api/v1/functions/${VF}/interrupt`, { config: true })).status).toBe(200);
    await eventually(() => page.locator('#timeline-state').textContent()).toMatch(/^paused, \d+ waiting$/);
    expect(await list.count()).toBe(before);
    await page.locator('#timeline-pause').click();
    await eventually(() => page.locator('#timeline-list li[data-type="config-change"]').count()).toBe(1);
    await page.locator('#timeline-clear').click();
    expect(await list.count()).toBe(0);
  });

  it('device-side buttons: a config-change interrupt bumps the config generation', async () => {
    await page.locator('#irq-config-button').click();
    await eventually(() => page.locator('#device-outcome').textContent()).toMatch(
      /config generation 2, events: .*config-change/,
    );
  });

  it('reads in the dark scheme', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await page.evaluate<string>('getComputedStyle(document.body).backgroundColor');
    expect(bg).toBe('rgb(22, 24, 28)');
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
    expect(await page.evaluate<string>('getComputedStyle(document.body).backgroundColor')).toBe(
      'rgb(255, 255, 255)',
    );
  });
});

describe('dashboard: the token flow', () => {
  const TOKEN = 'dashboard-secret';
  let d: Dashboard;

  beforeAll(async () => {
    d = await startDashboard({ VMMR_TOKEN: TOKEN });
  });
  afterAll(async () => {
    await d?.close();
  });

  it('the assets are public; the API refusal is shown until the token is given; the tab keeps it', async () => {
    expect((await rest(d, 'GET', '/ui/')).status).toBe(200);
    const refused = (await (await rest(d, 'GET', '/api/v1/pfs')).json()) as { detail: string };
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${d.origin}/ui/`);
    await eventually(() => page.locator('#auth-state').textContent()).toBe(
      `VMMR_ERR_UNAUTHORIZED: ${refused.detail}`,
    );

    await page.getByLabel('API token').fill('not-it');
    await page.getByRole('button', { name: 'Use token' }).click();
    const wrong = (await (await rest(d, 'GET', '/api/v1/pfs', undefined, 'not-it')).json()) as {
      detail: string;
    };
    await eventually(() => page.locator('#auth-state').textContent()).toBe(
      `VMMR_ERR_UNAUTHORIZED: ${wrong.detail}`,
    );

    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Use token' }).click();
    await eventually(() => page.getByRole('treeitem').count()).toBe(2);
    expect(await page.locator('#auth-state').textContent()).toBe('');
    expect(await page.evaluate(() => sessionStorage.getItem('vmmr.token'))).toBe(TOKEN);

    await page.reload();
    await eventually(() => page.getByRole('treeitem').count()).toBe(2);
    const other = await context.newPage();
    await other.goto(`${d.origin}/ui/`);
    expect(await other.evaluate(() => sessionStorage.getItem('vmmr.token'))).toBeNull();
    await context.close();
  });
});
