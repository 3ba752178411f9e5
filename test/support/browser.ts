/**
 * The browser suites' rig: Debian's Chromium (/usr/bin/chromium, installed by .ci/run) driven by
 * playwright-core, and a vmmr server on a loopback port serving the built dashboard (dist/ui,
 * built by npm ci). A missing browser or missing assets fail the suite with what to do.
 */
import { existsSync } from 'node:fs';
import { expect } from 'vitest';
import { join } from 'node:path';
import { loadConfig } from '../../src/server/config.js';
import { buildApp, type VmmrApp } from '../../src/server/app.js';
import { uiAssetsDir } from '../../src/server/routes/ui.js';
import { DEFAULT_TOPOLOGY, type ResolvedTopology } from '../../src/machine/topology.js';

export { launchChromium } from '../../bench/lib/chromium.js';

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

/** expect.poll with room for a loaded machine: the page redraws after events and fetches. */
export function eventually<T>(read: () => T | Promise<T>): ReturnType<typeof expect.poll<T>> {
  return expect.poll(read, { timeout: 15_000, interval: 50 });
}
