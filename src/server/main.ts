/**
 * Starting and stopping the HTTP service: listen on HOST:PORT, log the URL,
 * and close gracefully on SIGINT/SIGTERM.
 */
import { isIP, type AddressInfo } from 'node:net';
import type { Config } from './config.js';
import type { ResolvedTopology } from '../machine/topology.js';
import type { QtestServer } from '../qtest/server.js';
import { buildApp, type BuildAppOptions, type VmmrApp } from './app.js';
import { attachQtest } from './qtest.js';

/** Listening failed (address in use, permission denied, unknown host...). */
export class ListenError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'ListenError';
    this.code = code;
  }
}

export interface StartServerOptions {
  /** Install SIGINT/SIGTERM handlers that close the app and exit (default true). */
  handleSignals?: boolean;
  /** Passed to buildApp (default: pino at config.logLevel on stdout). */
  logger?: BuildAppOptions['logger'];
  /** Extra route modules, see buildApp. */
  routes?: BuildAppOptions['routes'];
  /** Longest wait for in-flight requests after a signal before exiting 1 (default 10 s). */
  shutdownTimeoutMs?: number;
  /** Process exit, replaceable in tests (default process.exit). */
  exit?: (code: number) => void;
}

export interface RunningServer {
  app: VmmrApp;
  /** e.g. "http://127.0.0.1:8080" (actual port when PORT=0). */
  url: string;
  address: AddressInfo;
  /** The qtest listeners (VMMR_QTEST_SOCKET, VMMR_QTEST_PORT), when configured. */
  qtest: QtestServer | undefined;
  /** Closes the app and removes the signal handlers; resolves when done. */
  close(): Promise<void>;
}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
};

function urlFor(config: Config, address: AddressInfo): string {
  // Show the configured name for hostnames ("localhost"), the bound address otherwise.
  const host = isIP(config.host) === 0 ? config.host : address.address;
  const shown = isIP(host) === 6 ? `[${host}]` : host;
  return `http://${shown}:${address.port}`;
}

export async function startServer(
  config: Config,
  topology: ResolvedTopology,
  options: StartServerOptions = {},
): Promise<RunningServer> {
  const app = await buildApp({ config, topology, logger: options.logger, routes: options.routes });

  // The qtest listeners first: they close with the app (onClose), also when HTTP cannot listen.
  const qtest = await attachQtest(app, config).catch(async (err: unknown) => {
    await app.close().catch(() => undefined);
    throw new ListenError((err as Error).message, (err as NodeJS.ErrnoException).code);
  });

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await app.close().catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    const reason = (code && LISTEN_ERRORS[code]) ?? (err as Error).message.split('\n')[0];
    throw new ListenError(`cannot listen on ${config.host}:${config.port}: ${reason}`, code);
  }

  const address = app.server.address() as AddressInfo;
  const url = urlFor(config, address);
  // `pfs` and `vfs` (enabled) mean what they mean in GET /readyz.
  const machine = app.vmmr.emulator.machine;
  const initialVfs = topology.pfs.reduce((n, pf) => n + pf.initialVfs, 0);
  app.log.info(
    {
      url,
      pfs: machine.pfs.length,
      vfs: machine.enabledVfCount(),
      initialVfs,
      topology: config.topologyPath ?? 'embedded default',
    },
    `vmmr ready on ${url}`,
  );

  const exit = options.exit ?? ((code: number) => process.exit(code));
  const timeoutMs = options.shutdownTimeoutMs ?? 10_000;
  let closing: Promise<void> | undefined;

  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      app.log.warn({ signal }, 'second signal during shutdown: exiting now');
      exit(1);
      return;
    }
    app.log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      app.log.error({ timeoutMs }, 'graceful shutdown timed out');
      exit(1);
    }, timeoutMs);
    timer.unref();
    // Each line is flushed before the next step, so the log reads in the order things happened.
    closing = flushLog(app)
      .then(() => app.close())
      .then(
        async () => {
          clearTimeout(timer);
          app.log.info('stopped');
          await flushLog(app);
          exit(0);
        },
        (err: unknown) => {
          clearTimeout(timer);
          app.log.error({ err }, 'error while shutting down');
          exit(1);
        },
      );
  };

  const removeHandlers = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  if (options.handleSignals ?? true) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  return {
    app,
    url,
    address,
    qtest,
    async close() {
      removeHandlers();
      await (closing ?? app.close());
    },
  };
}

/** Resolves once the log lines written so far have reached the logger's destination. */
function flushLog(app: VmmrApp): Promise<void> {
  const log = app.log as { flush?: (cb?: (err?: Error) => void) => void };
  return new Promise((resolve) => (log.flush ? log.flush(() => resolve()) : resolve()));
}
