/**
 * Start-up glue of the qtest listeners (src/qtest): started with the HTTP service when
 * VMMR_QTEST_SOCKET or VMMR_QTEST_PORT is set, closed with it.
 */
import type { Config } from './config.js';
import { startQtestServer, type QtestServer } from '../qtest/server.js';
import type { VmmrApp } from './app.js';

/** Starts the configured qtest listeners (none when neither setting is given); they close with `app`. */
export async function attachQtest(app: VmmrApp, config: Config): Promise<QtestServer | undefined> {
  if (config.qtestSocket === undefined && config.qtestPort === undefined) return undefined;
  const server = await startQtestServer({
    emulator: app.vmmr.emulator,
    host: config.host,
    ...(config.qtestSocket !== undefined ? { socketPath: config.qtestSocket } : {}),
    ...(config.qtestPort !== undefined ? { port: config.qtestPort } : {}),
    ...(config.token !== undefined ? { token: config.token } : {}),
    log: app.log,
  });
  app.addHook('onClose', () => server.close());
  return server;
}
