/**
 * The dashboard's data-path views in Chromium: frames a DriverSim net driver transmits on a VF
 * are listed (summary line, hex on click), the pcap the page offers for download is the one
 * the API serves (and tcpdump reads the frames from it), queue and net counters, a frame
 * injected from the page, and the block request counters of a block VF.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hexDump } from '../../ui/src/frames.js';
import {
  eventually,
  launchChromium,
  SCREENSHOTS,
  startDashboard,
  type Dashboard,
} from '../support/browser.js';
import { arp, ethernet, icmpEcho, ip, ipv4, mac, tcpdumpPackets } from '../support/frames.js';
import { blockDriverOn, netDriverOn } from '../support/wired.js';

const NET_PF = '0000:01:00.0';
const NET_VF = '0000:01:00.1';
const BLK_PF = '0000:81:00.0';
const BLK_VF = '0000:81:00.1';
const TX_QUEUE = 1;

const A = mac('02:00:00:00:01:01');
const FRAMES = [
  ethernet(
    mac('ff:ff:ff:ff:ff:ff'),
    A,
    0x0806,
    arp(1, A, ip('10.0.0.1'), mac('00:00:00:00:00:00'), ip('10.0.0.2')),
  ),
  ethernet(
    mac('02:00:00:00:01:02'),
    A,
    0x0800,
    ipv4(ip('10.0.0.1'), ip('10.0.0.2'), 1, icmpEcho(8, 9, 1, Buffer.alloc(56, 0x5a))),
  ),
];

let browser: Browser;
let d: Dashboard;
let page: Page;

async function put(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${d.origin}${path}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status, path).toBe(200);
}

beforeAll(async () => {
  browser = await launchChromium();
  d = await startDashboard();
  await put(`/api/v1/pfs/${NET_PF}/sriov`, { numVfs: 2 });
  await put(`/api/v1/pfs/${BLK_PF}/sriov`, { numVfs: 1 });
  page = await browser.newPage({ viewport: { width: 1600, height: 1400 }, acceptDownloads: true });
});
afterAll(async () => {
  await page?.close();
  await browser?.close();
  await d?.close();
});

describe('dashboard: data path of a net VF', () => {
  it('lists the frames DriverSim sent, with their bytes on click, and counts them', async () => {
    const machine = d.app.vmmr.emulator.machine;
    const { driver } = netDriverOn(machine, NET_VF, { via: 'legacy-io', names: [] });
    driver.send(FRAMES);
    await page.goto(`${d.origin}/ui/#/function/${NET_VF}`);
    const frames = page.locator('#frames button.frame');
    await eventually(() => frames.count()).toBe(2);
    expect(await frames.nth(0).textContent()).toBe(
      '#0 02:00:00:00:01:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.2 tell 10.0.0.1',
    );
    expect(await frames.nth(1).textContent()).toContain(
      '10.0.0.1 > 10.0.0.2: ICMP echo request, id 9, seq 1, length 64',
    );
    await frames.nth(1).click();
    expect(await frames.nth(1).getAttribute('aria-expanded')).toBe('true');
    expect(await page.locator('#frames pre.hex').textContent()).toBe(hexDump(FRAMES[1]!));
    expect(await page.locator(`#dp-queues [data-queue-requests="${TX_QUEUE}"]`).textContent()).toBe('2');
    expect(await page.locator('#net-counters [data-counter="txFrames"]').textContent()).toBe('2');
    expect(await page.locator('#net-counters [data-counter="txBytes"]').textContent()).toBe(
      String(FRAMES[0]!.length + FRAMES[1]!.length),
    );
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-traffic.png'), fullPage: true });
  });

  it('the pcap it offers is the one the API serves; tcpdump reads exactly the frames sent', async () => {
    const served = Buffer.from(
      await (await fetch(`${d.origin}/api/v1/functions/${NET_VF}/net/capture.pcap`)).arrayBuffer(),
    );
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('#pcap-download').click(),
    ]);
    expect(download.suggestedFilename()).toBe('0000-01-00.1.pcap');
    const file = readFileSync((await download.path())!);
    expect(file.equals(served)).toBe(true);
    const packets = tcpdumpPackets(file);
    expect(packets.map((p) => p.toString('hex'))).toEqual(FRAMES.map((f) => f.toString('hex')));
  });

  it('injects a received frame from the page (net rx), answered as the API words it', async () => {
    await page.locator('#rx-frame').fill(FRAMES[0]!.toString('hex'));
    await page.getByRole('button', { name: 'Inject (net rx)' }).click();
    await eventually(() => page.locator('#rx-outcome').textContent()).toMatch(/^(delivered|queued)$/);
    const state = (await (await fetch(`${d.origin}/api/v1/functions/${NET_VF}/net`)).json()) as {
      stats: { rxFrames: number };
      pendingRx: number;
    };
    expect(state.stats.rxFrames + state.pendingRx).toBe(1);
    // A frame shorter than an Ethernet header: refused by the device as a runt.
    await page.locator('#rx-frame').fill('0102');
    await page.getByRole('button', { name: 'Inject (net rx)' }).click();
    await eventually(() => page.locator('#rx-outcome').textContent()).toBe('dropped');
    await eventually(() => page.locator('#net-counters [data-counter="rxDropped.runt"]').textContent()).toBe(
      '1',
    );
  });
});

describe('dashboard: block counters of a block VF', () => {
  it('counts the reads and writes a DriverSim block driver made', async () => {
    const machine = d.app.vmmr.emulator.machine;
    const { driver } = blockDriverOn(machine, BLK_VF, { via: 'legacy-io', names: [] });
    expect(driver.write(0, Buffer.alloc(4096, 0x11)).status).toBe(0);
    expect(driver.read(0, 8).status).toBe(0);
    expect(driver.read(8, 8).status).toBe(0);
    await page.goto(`${d.origin}/ui/#/function/${BLK_VF}`);
    const counter = (name: string) => page.locator(`#block-counters [data-counter="${name}"]`).textContent();
    await eventually(() => counter('writes')).toBe('1');
    expect(await counter('reads')).toBe('2');
    expect(await counter('bytesWritten')).toBe('4096');
    expect(await counter('bytesRead')).toBe('8192');
  });
});
