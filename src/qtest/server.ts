/**
 * The qtest listeners: a Unix socket (VMMR_QTEST_SOCKET) and a TCP port (VMMR_QTEST_PORT, on
 * HOST), each connection one QtestSession. Lines are split on "\n"; every chunk of input is
 * answered with one socket write, so pipelined commands cost one system call per chunk.
 *
 * Bounds (spec-tables/qtest-protocol.json): a line longer than MAX_LINE is discarded up to its
 * newline and answered FAIL; a client whose unread output passes OUTPUT_LIMIT is disconnected;
 * past MAX_SESSIONS open sessions a new connection is answered FAIL and closed.
 */
import { lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { DmaProvider } from '../platform/bus.js';
import type { PlatformMap } from '../machine/platform-map.js';
import type { Emulator } from '../machine/emulator.js';
import { qtestProtocol } from '../spec/index.js';
import { MAX_LINE, QtestSession } from './session.js';

const OUTPUT_LIMIT = qtestProtocol.constants.OUTPUT_LIMIT.value;
const MAX_SESSIONS = qtestProtocol.constants.MAX_SESSIONS.value;

/** What the listeners log (a pino logger fits). */
export interface QtestLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface QtestServerOptions {
  emulator: Emulator;
  /** Unix socket path; undefined = no Unix listener. */
  socketPath?: string;
  /** TCP port (0 = a free one); undefined = no TCP listener. */
  port?: number;
  /** TCP address (HOST). */
  host: string;
  token?: string;
  map?: PlatformMap;
  dma?: DmaProvider;
  log?: QtestLog;
}

export interface QtestServer {
  /** The Unix socket path, when listening on one. */
  readonly socketPath: string | undefined;
  /** The TCP address, when listening on TCP. */
  readonly tcp: AddressInfo | undefined;
  /** Sessions open now. */
  readonly sessions: number;
  /** Stops listening, ends every session, removes the socket file. */
  close(): Promise<void>;
}

/** Listening failed: `where` is "unix:PATH" or "HOST:PORT". */
export class QtestListenError extends Error {
  constructor(
    readonly where: string,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'QtestListenError';
  }
}

const quiet: QtestLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Feeds a connection's bytes to its session, line by line, and writes the answers. */
function serveConnection(socket: Socket, options: QtestServerOptions, log: QtestLog): QtestSession {
  let batch: string[] | undefined;
  const send = (text: string): void => {
    if (socket.destroyed) return;
    // Byte-transparent, as the input is read: a command echoed in an answer comes back as sent.
    socket.write(text, 'latin1');
    if (socket.writableLength > OUTPUT_LIMIT) {
      log.warn(
        { queued: socket.writableLength, limit: OUTPUT_LIMIT },
        'qtest client does not read its answers: disconnected',
      );
      socket.destroy();
    }
  };
  const session = new QtestSession({
    emulator: options.emulator,
    ...(options.token !== undefined ? { token: options.token } : {}),
    ...(options.map ? { map: options.map } : {}),
    ...(options.dma ? { dma: options.dma } : {}),
    output: (text) => {
      if (batch) batch.push(text);
      else send(text);
    },
  });
  let pending: string[] = [];
  let pendingLength = 0;
  let overlong = false;
  let ended = false;

  const handle = (line: string): boolean => {
    if (line.length > MAX_LINE) {
      batch!.push(`FAIL line longer than ${MAX_LINE} bytes: discarded\n`);
      return true;
    }
    try {
      return session.handleLine(line);
    } catch (err) {
      log.error({ err }, 'qtest command failed inside vmmr');
      batch!.push(`FAIL VMMR_ERR_INTERNAL: ${(err as Error).message.replace(/[\r\n]+/g, ' ')}\n`);
      return true;
    }
  };

  socket.on('data', (chunk: Buffer) => {
    if (ended) return;
    const text = chunk.toString('latin1');
    batch = [];
    let from = 0;
    for (;;) {
      const nl = text.indexOf('\n', from);
      if (nl < 0) {
        const rest = text.length - from;
        if (!overlong && pendingLength + rest > MAX_LINE) {
          overlong = true;
          pending = [];
          pendingLength = 0;
        } else if (!overlong && rest > 0) {
          pending.push(from === 0 ? text : text.slice(from));
          pendingLength += rest;
        }
        break;
      }
      let keep = true;
      if (overlong) {
        overlong = false;
        batch.push(`FAIL line longer than ${MAX_LINE} bytes: discarded\n`);
      } else if (pendingLength > 0) {
        pending.push(text.slice(from, nl));
        const line = pending.join('');
        pending = [];
        pendingLength = 0;
        keep = handle(line);
      } else keep = handle(text.slice(from, nl));
      from = nl + 1;
      if (!keep) {
        ended = true;
        break;
      }
    }
    const out = batch.join('');
    batch = undefined;
    if (out) send(out);
    if (ended) socket.end();
  });
  return session;
}

async function removeStaleSocket(path: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) return;
  const stat = await lstat(path);
  if (stat.isSocket()) await unlink(path);
}

function listen(server: Server, target: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(target, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOTFOUND: 'host name not found',
  ENOENT: 'no such directory',
};

function listenError(where: string, err: unknown): QtestListenError {
  const code = (err as NodeJS.ErrnoException).code;
  const reason = (code && LISTEN_ERRORS[code]) ?? (err as Error).message;
  return new QtestListenError(where, code, `cannot listen for qtest on ${where}: ${reason}`);
}

/** Starts the configured listeners (none when neither a socket path nor a port is given). */
export async function startQtestServer(options: QtestServerOptions): Promise<QtestServer> {
  const log = options.log ?? quiet;
  const sessions = new Set<Socket>();
  const servers: Server[] = [];
  const accept = (socket: Socket): void => {
    socket.on('error', () => undefined);
    if (sessions.size >= MAX_SESSIONS) {
      log.warn({ sessions: sessions.size }, 'qtest session refused: too many open');
      socket.end(`FAIL too many qtest sessions: ${MAX_SESSIONS} are open\n`, 'latin1');
      return;
    }
    sessions.add(socket);
    const session = serveConnection(socket, options, log);
    socket.on('close', () => {
      sessions.delete(socket);
      session.close();
    });
  };

  let socketPath: string | undefined;
  let tcp: AddressInfo | undefined;
  const closeAll = async (): Promise<void> => {
    for (const s of sessions) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    servers.length = 0;
  };
  try {
    if (options.socketPath !== undefined) {
      const path = options.socketPath;
      const server = createServer(accept);
      try {
        await listen(server, { path });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw listenError(`unix:${path}`, err);
        await removeStaleSocket(path);
        await listen(server, { path }).catch((again: unknown) => {
          throw listenError(`unix:${path}`, again);
        });
      }
      servers.push(server);
      socketPath = path;
      log.info({ qtest: `unix:${path}` }, `qtest listening on unix:${path}`);
    }
    if (options.port !== undefined) {
      const server = createServer((socket) => {
        socket.setNoDelay(true);
        accept(socket);
      });
      await listen(server, { host: options.host, port: options.port }).catch((err: unknown) => {
        throw listenError(`${options.host}:${options.port}`, err);
      });
      servers.push(server);
      tcp = server.address() as AddressInfo;
      log.info({ qtest: `${tcp.address}:${tcp.port}` }, `qtest listening on ${tcp.address}:${tcp.port}`);
    }
  } catch (err) {
    await closeAll();
    if (socketPath !== undefined) await unlink(socketPath).catch(() => undefined);
    throw err;
  }

  return {
    socketPath,
    tcp,
    get sessions() {
      return sessions.size;
    },
    async close() {
      await closeAll();
    },
  };
}
