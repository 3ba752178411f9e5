/** Exported functions behind real sockets, fd counting and eventfd counters for the vfio-user suites. */
import { mkdtempSync, readdirSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Machine } from '../../src/machine/machine.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import type { VirtioPf } from '../../src/mmr/pf.js';
import {
  exportFunction,
  InterruptRouter,
  type ExportView,
  type FunctionDevice,
} from '../../src/vfio-user/adapter.js';
import { native } from '../../src/vfio-user/native.js';
import { VfioUserServer } from '../../src/vfio-user/server.js';
import type { DmaLayout } from '../../src/vfio-user/session.js';
import { withVfs, type TypeName } from './functions.js';
import type { TopologyPf } from '../../src/machine/topology.js';
import { TestClient, type DmaResponderOptions } from './vfio-user-client.js';

export interface Exported {
  machine: Machine;
  pf: VirtioPf;
  vf: MmrVf;
  device: FunctionDevice;
  server: VfioUserServer;
  dir: string;
  logs: string[];
  connect(dma?: DmaResponderOptions): TestClient;
  /** connect + VERSION with QEMU's capabilities. */
  ready(dma?: DmaResponderOptions): Promise<TestClient>;
  cleanup(): void;
}

export interface ExportOptions {
  type?: TypeName;
  /** "guest" (VF guest view), "function" (the VF as it is) or "pf" (the PF as it is). */
  view?: ExportView | 'pf';
  pf?: Partial<TopologyPf>;
  dmaLayout?: DmaLayout;
  dmaTimeoutMs?: number;
}

export function exported(options: ExportOptions = {}): Exported {
  const { machine, pf, vf } = withVfs(options.type ?? 'net', 2, options.pf ?? {});
  const router = new InterruptRouter(machine.events);
  const view: ExportView = options.view === 'pf' ? 'function' : (options.view ?? 'guest');
  const device = exportFunction(machine, options.view === 'pf' ? pf : vf, view, router);
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-vu-'));
  const logs: string[] = [];
  const server = new VfioUserServer({
    socketPath: join(dir, 'fn.sock'),
    socketDir: dir,
    device,
    dmaLayout: options.dmaLayout,
    dmaTimeoutMs: options.dmaTimeoutMs,
    log: (level, message) => logs.push(`${level} ${message}`),
  });
  const clients: TestClient[] = [];
  const connect = (dma?: DmaResponderOptions): TestClient => {
    const c = TestClient.connect(server.socketPath, dma);
    clients.push(c);
    return c;
  };
  return {
    machine,
    pf,
    vf,
    device,
    server,
    dir,
    logs,
    connect,
    async ready(dma) {
      const c = connect(dma);
      const r = await c.version();
      if (r.flags & 0x20) throw new Error(`VERSION refused: errno ${r.error}`);
      return c;
    },
    cleanup() {
      for (const c of clients) c.close();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Open file descriptors of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Reads (and so clears) an eventfd's counter: 0 when nothing was signalled. */
export function counter(fd: number): number {
  const buf = Buffer.alloc(8);
  try {
    readSync(fd, buf, 0, 8, null);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
    throw e;
  }
  return Number(buf.readBigUInt64LE());
}

export function eventfds(n: number): number[] {
  return Array.from({ length: n }, () => native.eventfd(0, true));
}

export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) native.close(fd);
}

/** Lets the event loop run until `cond` holds (or fails after `ms`). */
export async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Linux errno values the document's replies carry (asm-generic/errno-base.h, errno.h). */
export const E = {
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EACCES: 13,
  EFAULT: 14,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  ENOTTY: 25,
  ENOSYS: 38,
  ENOTSUP: 95,
} as const;
