import { lstatSync, realpathSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { Connection } from './connection.js';
import type { VfioUserDevice } from './device.js';
import { errnoName, native, READABLE, type WatchHandle } from './native.js';
import { Errno, HEADER_SIZE, MSG_CONST, PROTO } from './protocol.js';
import { Session, type DmaLayout, type Log, type SessionStatus } from './session.js';

/**
 * A vfio-user server for one exported function (document "Socket": one socket per device, one
 * client at a time). The socket is created with mode 0600 inside a configured directory; a second
 * client is accepted and closed at once; a client that disconnects leaves the device's state as
 * it was, with its maps unmapped and its eventfds closed (document "Client Disconnection").
 */
export interface VfioUserServerOptions {
  readonly socketPath: string;
  /** The directory every socket must be in (VMMR_SOCKET_DIR). */
  readonly socketDir: string;
  readonly device: VfioUserDevice;
  /** DMA_READ/DMA_WRITE message layout (default "qemu": QEMU 10.x's client). */
  readonly dmaLayout?: DmaLayout;
  /** How long a DMA round trip waits for the client (default spec-tables DMA_REPLY_TIMEOUT_MS). */
  readonly dmaTimeoutMs?: number;
  readonly log?: Log;
}

export type VfioUserSetupCode =
  'VFIO_USER_ERR_SOCKET_PATH' | 'VFIO_USER_ERR_SOCKET_IN_USE' | 'VFIO_USER_ERR_LISTEN';

/** A server that could not start: the socket path is refused, taken, or listen failed. */
export class VfioUserSetupError extends Error {
  override readonly name = 'VfioUserSetupError';
  constructor(
    readonly code: VfioUserSetupCode,
    message: string,
  ) {
    super(message);
  }
}

/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL (unix(7)). */
const MAX_SOCKET_PATH = 107;

/** The socket path to use: absolute, inside `dir` (symlinks resolved), not too long. */
export function checkSocketPath(path: string, dir: string): string {
  const fail = (why: string): never => {
    throw new VfioUserSetupError('VFIO_USER_ERR_SOCKET_PATH', `socket ${JSON.stringify(path)}: ${why}`);
  };
  if (typeof path !== 'string' || path === '' || !isAbsolute(path)) fail('must be an absolute path');
  let realDir: string;
  try {
    realDir = realpathSync(dir);
    if (!statSync(realDir).isDirectory()) fail(`the socket directory ${dir} is not a directory`);
  } catch (e) {
    if (e instanceof VfioUserSetupError) throw e;
    return fail(`the socket directory ${dir} does not exist`);
  }
  const name = basename(path);
  if (name === '' || name === '.' || name === '..' || path.endsWith('/')) fail('names no file');
  let realParent: string;
  try {
    realParent = realpathSync(dirname(resolve(path)));
  } catch {
    return fail(`its directory ${dirname(path)} does not exist`);
  }
  const rel = relative(realDir, realParent);
  if (rel.startsWith('..') || isAbsolute(rel)) fail(`is outside the socket directory ${realDir}`);
  const final = join(realParent, name);
  if (Buffer.byteLength(final) > MAX_SOCKET_PATH)
    fail(`${final} is longer than the ${MAX_SOCKET_PATH} bytes a Unix socket address holds`);
  return final;
}

/** Removes a socket no one listens on; refuses a live one or anything that is not a socket. */
function clearStale(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket)
    throw new VfioUserSetupError(
      'VFIO_USER_ERR_SOCKET_PATH',
      `socket ${path}: a file that is not a socket is in the way`,
    );
  let fd = -1;
  try {
    fd = native.connect(path);
  } catch {
    unlinkSync(path);
    return;
  }
  native.close(fd);
  throw new VfioUserSetupError(
    'VFIO_USER_ERR_SOCKET_IN_USE',
    `socket ${path}: another server is listening there`,
  );
}

export interface ServerStatus {
  readonly socketPath: string;
  readonly connected: boolean;
  /** Clients turned away because one was connected already. */
  readonly refusedClients: number;
  /** Reply bytes waiting for the client to read them. */
  readonly queuedBytes: number;
  readonly session: SessionStatus | undefined;
}

export class VfioUserServer {
  readonly socketPath: string;
  private readonly listenFd: number;
  private readonly watcher: WatchHandle;
  private connection: Connection | undefined;
  private session: Session | undefined;
  private refusedClients = 0;
  private isClosed = false;
  private readonly log: Log;

  constructor(private readonly options: VfioUserServerOptions) {
    this.log = options.log ?? (() => undefined);
    this.socketPath = checkSocketPath(options.socketPath, options.socketDir);
    clearStale(this.socketPath);
    try {
      this.listenFd = native.listen(this.socketPath, 8);
    } catch (e) {
      throw new VfioUserSetupError(
        'VFIO_USER_ERR_LISTEN',
        `socket ${this.socketPath}: ${(e as Error).message}`,
      );
    }
    this.watcher = native.watch(this.listenFd, READABLE, () => this.accept());
  }

  get connected(): boolean {
    return this.connection !== undefined;
  }

  status(): ServerStatus {
    return {
      socketPath: this.socketPath,
      connected: this.connected,
      refusedClients: this.refusedClients,
      queuedBytes: this.connection?.queuedBytes ?? 0,
      session: this.session?.status(),
    };
  }

  private accept(): void {
    for (;;) {
      const fd = native.accept(this.listenFd);
      if (fd === -Errno.EAGAIN) return;
      if (fd < 0) {
        this.log('warn', `accept on ${this.socketPath} failed (${errnoName(fd)})`);
        return;
      }
      if (this.connection || this.isClosed) {
        native.close(fd);
        this.refusedClients++;
        this.log('info', `${this.socketPath}: a second client was turned away (one client at a time)`);
        continue;
      }
      this.serve(fd);
    }
  }

  private serve(fd: number): void {
    const session = new Session(
      this.options.device,
      {
        dmaLayout: this.options.dmaLayout ?? 'qemu',
        dmaTimeoutMs: this.options.dmaTimeoutMs ?? PROTO.DMA_REPLY_TIMEOUT_MS.value,
        log: this.log,
      },
      (f) => native.close(f),
      () => {
        if (this.session === session) {
          this.session = undefined;
          this.connection = undefined;
        }
      },
    );
    const connection = new Connection(fd, session, {
      maxMessageSize:
        HEADER_SIZE + MSG_CONST.REGION_ACCESS_DATA_OFFSET.value + PROTO.SERVER_MAX_DATA_XFER_SIZE.value,
      maxFds: PROTO.SERVER_MAX_MSG_FDS.value,
      maxPending: PROTO.SERVER_MAX_PENDING_MESSAGES.value,
      outputHighWater: PROTO.SERVER_OUTPUT_HIGH_WATER.value,
    });
    this.session = session;
    this.connection = connection;
    session.start(connection);
    this.log('info', `${this.socketPath}: client connected`);
  }

  /** Disconnects the client, if any (it sees the socket close). */
  disconnect(reason = 'disconnected by the server'): void {
    this.connection?.close(reason);
  }

  /** Stops listening, disconnects the client and removes the socket file. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.disconnect('the server is closing');
    native.unwatch(this.watcher);
    native.close(this.listenFd);
    try {
      unlinkSync(this.socketPath);
    } catch {
      // already gone
    }
  }
}
