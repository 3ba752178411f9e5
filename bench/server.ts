/**
 * A server for the HTTP sections, run as a child process so that the load generator does not
 * share its event loop (on two cores: one for the server, one for the load generator).
 *
 *   node dist/bench/server.js vmmr   the vmmr API: startServer(loadConfig(), DEFAULT_TOPOLOGY,
 *                                    { handleSignals: false, logger: false }) on 127.0.0.1, port 0
 *   node dist/bench/server.js bare   a bare fastify app (same fastify, logger off, same host):
 *                                    one GET route with the same URL template answering a
 *                                    constant JSON object of the same shape as vmmr's answer
 *
 * Over IPC the child sends { url } once listening; it answers { cpu } (process.cpuUsage(), in
 * µs) to "cpu", and closes and exits on "stop" or when the parent goes away. Under
 * `node --cpu-prof` the profile is written at that exit.
 */
import Fastify from 'fastify';
import { loadConfig } from '../src/server/config.js';
import { startServer } from '../src/server/main.js';
import { DEFAULT_TOPOLOGY } from '../src/machine/topology.js';
import { BAR_ROUTE, BARE_ANSWER, type ServerKind, type ServerMessage } from './lib/servers.js';

async function start(kind: ServerKind): Promise<{ url: string; close(): Promise<void> }> {
  if (kind === 'vmmr') {
    // The qtest section passes VMMR_QTEST_SOCKET to serve its protocol too.
    const qtest = process.env.VMMR_QTEST_SOCKET;
    const config = loadConfig({
      HOST: '127.0.0.1',
      PORT: '0',
      ...(qtest ? { VMMR_QTEST_SOCKET: qtest } : {}),
    });
    const server = await startServer(config, DEFAULT_TOPOLOGY, { handleSignals: false, logger: false });
    return { url: server.url, close: () => server.close() };
  }
  const app = Fastify({ logger: false });
  app.get(BAR_ROUTE, async () => BARE_ANSWER);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return { url: `http://127.0.0.1:${address.port}`, close: () => app.close() };
}

async function main(argv: readonly string[]): Promise<void> {
  const kind = argv[0];
  if (kind !== 'vmmr' && kind !== 'bare') throw new Error('usage: server.js vmmr|bare');
  if (!process.send) throw new Error('server.js runs as a child process with an IPC channel');
  const server = await start(kind);
  const send = (m: ServerMessage): void => {
    process.send!(m);
  };
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('message', (m: unknown) => {
    if (m === 'cpu') send({ cpu: process.cpuUsage() });
    else if (m === 'stop') stop();
  });
  process.on('disconnect', stop);
  send({ url: server.url });
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`bench server failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
