import { isAbsolute, join } from 'node:path';
import { VmmrError } from '../base/errors.js';
import type { VmmrEvent } from '../base/events.js';
import type { Emulator, TopologyChange } from '../machine/emulator.js';
import type { Machine } from '../machine/machine.js';
import type { ExportViewName } from '../machine/topology.js';
import { normalizeBdf } from '../pci/bdf.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';
import { exportFunction, InterruptRouter } from './adapter.js';
import { checkSocketPath, VfioUserServer, VfioUserSetupError } from './server.js';
import type { DmaLayout, Log, SessionStatus } from './session.js';

/**
 * The vfio-user exports of a service (docs/vfio-user.md "Starting and stopping"): at most one per
 * function, each a VfioUserServer on its own socket inside the socket directory. Exports named in
 * the topology (a VF's `vfioUser`) start whenever their VF is live; an export closes (its client
 * sees the socket close) when stopped, when its function goes away (VF Enable cleared, PF FLR,
 * PF removed) and when the machine is replaced (reset, restore).
 */
export interface ExportRequest {
  readonly bdf: string;
  /** Absolute, or a name inside the socket directory. */
  readonly socket: string;
  readonly view: ExportViewName;
}

export interface ExportClient extends Omit<SessionStatus, 'lastRefusal'> {
  lastRefusal: string | null;
  /** Reply bytes waiting for the client to read them. */
  queuedBytes: number;
}

export interface ExportInfo {
  bdf: string;
  view: ExportViewName;
  socket: string;
  source: 'api' | 'topology';
  /** When the socket started listening (ISO 8601). */
  since: string;
  /** Clients turned away because one was connected already. */
  refusedClients: number;
  client: ExportClient | null;
}

export interface ExportsOptions {
  readonly emulator: Emulator;
  /** VMMR_SOCKET_DIR; undefined: exports are refused (VMMR_ERR_NOT_CONFIGURED). */
  readonly socketDir: string | undefined;
  readonly dmaLayout?: DmaLayout;
  readonly log?: Log;
}

interface Entry {
  readonly fn: VirtioPciFunction;
  readonly view: ExportViewName;
  readonly source: ExportInfo['source'];
  readonly since: string;
  readonly server: VfioUserServer;
}

export class VfioUserExports {
  private readonly entries = new Map<string, Entry>();
  private router: { machine: Machine; router: InterruptRouter } | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly log: Log;

  constructor(private readonly options: ExportsOptions) {
    this.log = options.log ?? (() => undefined);
    if (this.topologyExports(options.emulator.machine).length > 0) this.watch();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Starts an export; refusals are VmmrErrors (409 VMMR_ERR_EXPORTED when the function has one). */
  start(request: ExportRequest, source: ExportInfo['source'] = 'api'): ExportInfo {
    const machine = this.options.emulator.machine;
    const fn = request.view === 'guest' ? machine.findVf(request.bdf) : machine.find(request.bdf);
    const existing = this.entries.get(fn.bdf);
    if (existing) {
      throw new VmmrError(
        'VMMR_ERR_EXPORTED',
        `${fn.bdf} is already exported (${existing.view} view on ${existing.server.socketPath}): DELETE it first`,
        { bdf: fn.bdf },
      );
    }
    const socketDir = this.options.socketDir;
    if (socketDir === undefined) {
      throw new VmmrError(
        'VMMR_ERR_NOT_CONFIGURED',
        'vfio-user exports need a socket directory: start the service with VMMR_SOCKET_DIR set',
        { bdf: fn.bdf },
      );
    }
    const device = exportFunction(machine, fn, request.view, this.routerFor(machine));
    const server = this.listen(fn.bdf, request.socket, socketDir, device);
    this.entries.set(fn.bdf, { fn, view: request.view, source, since: new Date().toISOString(), server });
    this.watch();
    this.log('info', `${fn.bdf}: exported (${request.view} view) on ${server.socketPath}`);
    return this.describe(this.entries.get(fn.bdf)!);
  }

  private listen(
    bdf: string,
    socket: string,
    socketDir: string,
    device: ReturnType<typeof exportFunction>,
  ): VfioUserServer {
    const socketPath = this.socketPath(bdf, socket, socketDir);
    try {
      return new VfioUserServer({
        socketPath,
        socketDir,
        device,
        log: this.log,
        ...(this.options.dmaLayout ? { dmaLayout: this.options.dmaLayout } : {}),
      });
    } catch (e) {
      if (!(e instanceof VfioUserSetupError)) throw e;
      const code = e.code === 'VFIO_USER_ERR_SOCKET_PATH' ? 'VMMR_ERR_BAD_VALUE' : 'VMMR_ERR_SOCKET';
      throw new VmmrError(code, e.message, { bdf });
    }
  }

  /** The path a socket is created at: checked to lie inside the socket directory. */
  private socketPath(bdf: string, socket: string, socketDir: string): string {
    try {
      return checkSocketPath(isAbsolute(socket) ? socket : join(socketDir, socket), socketDir);
    } catch (e) {
      if (!(e instanceof VfioUserSetupError)) throw e;
      throw new VmmrError('VMMR_ERR_BAD_VALUE', e.message, { bdf });
    }
  }

  /** Stops the export of `bdf` (its client sees the socket close); VMMR_ERR_NOT_EXPORTED if none. */
  stop(bdf: string): void {
    const key = normalizeBdf(bdf);
    if (!this.entries.has(key))
      throw new VmmrError('VMMR_ERR_NOT_EXPORTED', `${key} is not exported over vfio-user`, { bdf: key });
    this.close(key, 'stopped');
  }

  get(bdf: string): ExportInfo {
    const key = normalizeBdf(bdf);
    const entry = this.entries.get(key);
    if (!entry)
      throw new VmmrError('VMMR_ERR_NOT_EXPORTED', `${key} is not exported over vfio-user`, { bdf: key });
    return this.describe(entry);
  }

  list(): ExportInfo[] {
    return [...this.entries.values()].map((e) => this.describe(e));
  }

  /** Closes every export (the service stops). */
  closeAll(): void {
    for (const bdf of [...this.entries.keys()]) this.close(bdf, 'the service is stopping');
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /**
   * Checks the socket of every topology export (a refusal names it) and starts those of the live
   * VFs (at start-up, after a restored state). Throws the first refusal.
   */
  startTopologyExports(): void {
    const socketDir = this.options.socketDir;
    for (const request of this.topologyExports(this.options.emulator.machine)) {
      if (socketDir === undefined) {
        throw new VmmrError(
          'VMMR_ERR_NOT_CONFIGURED',
          `the topology exports ${request.bdf} over vfio-user: start the service with VMMR_SOCKET_DIR set`,
          { bdf: request.bdf },
        );
      }
      this.socketPath(request.bdf, request.socket, socketDir);
    }
    this.startLiveTopologyExports();
  }

  /** Starts the topology's exports of every live VF that has none yet. */
  private startLiveTopologyExports(): void {
    const machine = this.options.emulator.machine;
    for (const request of this.topologyExports(machine)) {
      if (this.entries.has(request.bdf) || !this.isLive(machine, request.bdf)) continue;
      this.start(request, 'topology');
    }
  }

  /** The same while a register write or a topology change runs: a refusal is logged, not thrown. */
  private restartTopologyExports(): void {
    try {
      this.startLiveTopologyExports();
    } catch (e) {
      this.log('warn', `a topology export did not start: ${(e as Error).message}`);
    }
  }

  private describe(entry: Entry): ExportInfo {
    const status = entry.server.status();
    const session = status.session;
    return {
      bdf: entry.fn.bdf,
      view: entry.view,
      socket: status.socketPath,
      source: entry.source,
      since: entry.since,
      refusedClients: status.refusedClients,
      client: session
        ? { ...session, lastRefusal: session.lastRefusal ?? null, queuedBytes: status.queuedBytes }
        : null,
    };
  }

  private close(bdf: string, why: string): void {
    const entry = this.entries.get(bdf);
    if (!entry) return;
    this.entries.delete(bdf);
    entry.server.close();
    this.log('info', `${bdf}: vfio-user export on ${entry.server.socketPath} closed (${why})`);
    if (this.entries.size === 0 && this.topologyExports(this.options.emulator.machine).length === 0) {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
    }
  }

  private routerFor(machine: Machine): InterruptRouter {
    if (this.router?.machine !== machine)
      this.router = { machine, router: new InterruptRouter(machine.events) };
    return this.router.router;
  }

  private topologyExports(machine: Machine): ExportRequest[] {
    const out: ExportRequest[] = [];
    for (const pf of machine.pfs) {
      for (const [bdf, override] of Object.entries(machine.definitionOf(pf).vfs)) {
        if (override.vfioUser) out.push({ bdf, ...override.vfioUser });
      }
    }
    return out;
  }

  private isLive(machine: Machine, bdf: string): boolean {
    try {
      machine.find(bdf);
      return true;
    } catch {
      return false;
    }
  }

  /** Follows the emulator while anything is (or may become) exported. */
  private watch(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.options.emulator.subscribe({
      event: (e) => this.event(e),
      topology: (change) => this.topologyChange(change),
    });
  }

  private event(e: VmmrEvent): void {
    if (e.type === 'vf-disable') this.closeGone('its VF went away');
    else if (e.type === 'vf-enable') this.restartTopologyExports();
  }

  private topologyChange(change: TopologyChange): void {
    if (change.kind === 'pf-removed') this.closeGone('its PF was removed');
    else if (change.kind === 'pf-added') this.startTopologyExports();
    else {
      for (const bdf of [...this.entries.keys()])
        this.close(bdf, `the machine was replaced (${change.kind})`);
      this.startTopologyExports();
    }
  }

  /** Closes the exports whose function is no longer the machine's. */
  private closeGone(why: string): void {
    const machine = this.options.emulator.machine;
    for (const [bdf, entry] of [...this.entries]) {
      if (!this.isLive(machine, bdf) || machine.find(bdf) !== entry.fn) this.close(bdf, why);
    }
  }
}
