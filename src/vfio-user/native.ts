import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Opaque handle of a readiness watcher (a libuv poll handle). */
export type WatchHandle = { readonly __brand: 'WatchHandle' };
/** Opaque handle of a shared mapping. */
export type MappingHandle = { readonly __brand: 'MappingHandle' };

/** Readiness bits of `watch` / `setEvents` (libuv's UV_READABLE, UV_WRITABLE). */
export const READABLE = 1;
export const WRITABLE = 2;
/** poll(2) bits returned by `poll` (<poll.h>). */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;

/**
 * The addon of src/vfio-user/native (vfio_user_native.c): the system calls Node does not offer.
 * Calls a caller handles (accept, recv, send, poll, close) return -errno; set-up calls throw an
 * Error whose `code` is the errno name.
 */
export interface NativeAddon {
  /** A listening Unix stream socket at `path`, mode 0600, non-blocking. */
  listen(path: string, backlog: number): number;
  /** A non-blocking connection, or -errno (-EAGAIN: none pending). */
  accept(fd: number): number;
  /** A connected non-blocking socket (clients). */
  connect(path: string): number;
  /**
   * One recvmsg into `into`: bytes read (0: end of stream) or -errno. `fdsOut[0]` = descriptors
   * received, `fdsOut[1]` = 1 when more came than `fdsOut` holds (the kernel closed the rest),
   * `fdsOut[2..]` = the descriptors.
   */
  recv(fd: number, into: Uint8Array, fdsOut: Int32Array): number;
  /** One sendmsg with `fds` as SCM_RIGHTS: bytes sent (possibly fewer) or -errno. */
  send(fd: number, bytes: Uint8Array, fds: Int32Array | null): number;
  /** Blocks until `events` (POLL* bits) or the time-out: the bits that fired, 0, or -errno. */
  poll(fd: number, events: number, timeoutMs: number): number;
  close(fd: number): number;
  /** Calls `callback(status, events)` on the event loop while `fd` is ready for `events`. */
  watch(fd: number, events: number, callback: (status: number, events: number) => void): WatchHandle;
  setEvents(handle: WatchHandle, events: number): void;
  unwatch(handle: WatchHandle): void;
  /** A shared mapping of `length` bytes at `offset` of `fd`: [its ArrayBuffer, its handle]. */
  mmap(fd: number, offset: number, length: number, writable: boolean): [ArrayBuffer, MappingHandle];
  /** Detaches `buffer` (its views then have length 0), then unmaps. */
  munmap(handle: MappingHandle, buffer: ArrayBuffer): void;
  eventfd(initial: number, nonblocking: boolean): number;
  memfd(name: string, size: number): number;
}

const ADDON = join('src', 'vfio-user', 'native', 'build', 'Release', 'vmmr_vfio_user.node');

/** The package root: the nearest directory above this module whose package.json is vmmr's. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'vmmr'
    ) {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error('vfio-user: cannot find the vmmr package root above ' + import.meta.url);
    dir = parent;
  }
}

function load(): NativeAddon {
  const path = join(packageRoot(), ADDON);
  if (!existsSync(path)) {
    throw new Error(
      `vfio-user: the native addon ${path} is not built (npm ci builds it; or run npm run build:native)`,
    );
  }
  return createRequire(import.meta.url)(path) as NativeAddon;
}

export const native: NativeAddon = load();

const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(osConstants.errno).map(([name, value]) => [value, name] as const),
);

/** The errno name of a negative return value (Node's os.constants.errno), for messages. */
export function errnoName(negative: number): string {
  return ERRNO_NAMES.get(-negative) ?? `errno ${-negative}`;
}
