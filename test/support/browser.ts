/**
 * The browser suites' rig: Debian's Chromium (/usr/bin/chromium, installed by .ci/run) driven by
 * playwright-core, and a vmmr server on a loopback port serving the built dashboard (dist/ui,
 * built by npm ci). A missing browser or missing assets fail the suite with what to do.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { loadConfig } from '../../src/server/config.js';
import { buildApp, type VmmrApp } from '../../src/server/app.js';
import { uiAssetsDir } from '../../src/server/routes/ui.js';
import { DEFAULT_TOPOLOGY, type ResolvedTopology } from '../../src/machine/topology.js';

export const CHROMIUM = '/usr/bin/chromium';

/** The flags this machine's closed network needs (no background connections, no sandbox as root). */
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the browser suites need Debian's chromium (apt-get install chromium)`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
}

export interface Dashboard {
  app: VmmrApp;
  /** http://127.0.0.1:<port> */
  origin: string;
  close(): Promise<void>;
}

/** A vmmr server on a free loopback port with the dashboard's assets. */
export async function startDashboard(
  env: Record<string, string> = {},
  topology: ResolvedTopology = DEFAULT_TOPOLOGY,
): Promise<Dashboard> {
  const index = join(uiAssetsDir(), 'index.html');
  if (!existsSync(index))
    throw new Error(`${index} is missing: npm run build:ui builds the dashboard (npm ci does)`);
  const app = await buildApp({ config: loadConfig(env), topology, logger: false });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, origin: address, close: () => app.close() };
}

/** Where the suites save their screenshots (shown in docs/dashboard.md and the README). */
export const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'docs', 'images');
