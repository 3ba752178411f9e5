/** `vmmr serve`: run the REST service. */
import type { Command } from 'commander';
import { loadConfig } from '../server/config.js';

export interface ServeOptions {
  host?: string;
  port?: string;
  topology?: string;
  logLevel?: string;
}

export async function serve(opts: ServeOptions, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env, {
    host: opts.host,
    port: opts.port,
    logLevel: opts.logLevel,
    topologyPath: opts.topology,
  });
  // Loaded once the configuration is known to be good, so that a bad setting
  // is reported without paying for the validators' and fastify's start-up.
  const { DEFAULT_TOPOLOGY, loadTopologyFile } = await import('../machine/topology.js');
  const topology =
    config.topologyPath === undefined ? DEFAULT_TOPOLOGY : loadTopologyFile(config.topologyPath);
  const { startServer } = await import('../server/main.js');
  await startServer(config, topology);
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve', { isDefault: true })
    .description('run the REST service (default command)')
    .option('--host <host>', 'address or hostname to listen on (env HOST, default 127.0.0.1)')
    .option('--port <port>', 'TCP port, 0 = any free port (env PORT, default 8080)')
    .option('--topology <file>', 'topology JSON file (env VMMR_TOPOLOGY, default: embedded)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env LOG_LEVEL, default info)')
    .action(async (opts: ServeOptions) => {
      await serve(opts);
    });
}
