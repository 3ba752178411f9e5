import { statSync } from 'node:fs';
import { VmmrError } from '../base/errors.js';
import { deviceConfigs } from '../spec/index.js';
import { EventBus } from '../base/events.js';
import { bdfKey, formatBdf, MAX_RID, normalizeBdf, parseBdf } from '../pci/bdf.js';
import { parseMac, type IdentityOverride } from '../mmr/identity.js';
import type { MmrVf } from '../mmr/vf.js';
import { VirtioPf, type PfDefinition } from '../mmr/pf.js';
import { lastVfRid, vfIndexAt, vfRid, type VfRouting } from '../sriov/routing.js';
import type { GuestView } from '../translator/guest-view.js';
import { Translator } from '../translator/translator.js';
import { checkRunState } from '../virtqueue/queue.js';
import { DataPathHub, type BackendSettings, type FunctionDataPath } from '../virtio/datapath.js';
import type { FunctionState, VirtioPciFunction } from '../virtio/pci-function.js';
import type { ConfigChange } from '../pci/config-space.js';
import { STATE_FORMAT, STATE_VERSION, type MachineState } from './state.js';
import { DEFAULT_PLATFORM_MAP, type PlatformMap } from './platform-map.js';
import type { ResolvedPf, ResolvedTopology } from './topology.js';

/**
 * What firmware does as functions appear (src/platform/firmware.ts): BAR addresses and
 * Interrupt Lines. The machine calls it once built (and restored), after a PF is added or
 * enables VFs, and when a guest view opens.
 */
export interface FirmwareHook {
  /** The machine is built, restored, or has a new PF. */
  machineReady(): void;
  vfsEnabled(pf: VirtioPf): void;
  guestViewOpened(view: GuestView): void;
  /**
   * Whether guest config dword `offset` of a view holds what firmware put there: such dwords are
   * no state of their own (firmware puts them there again), so opening a view changes no snapshot.
   */
  setByFirmware(view: GuestView, offset: number, value: number): boolean;
}

export interface MachineOptions {
  /** Most VFs enabled at once in this process (default 65536). */
  maxVfs?: number;
  /** Bytes of DMA memory and RAM disks all functions may allocate together (VMMR_DMA_LIMIT). */
  dmaLimit?: number;
  /** Runs deferred data-path processing (default queueMicrotask; `drain` runs it at once). */
  defer?: (run: () => void) => void;
  /** The address map (default: the topology's, else DEFAULT_PLATFORM_MAP). */
  platform?: PlatformMap;
  /** Firmware of the machine, built once its PFs exist; none: BARs stay as a harness sets them. */
  firmware?: (machine: Machine) => FirmwareHook;
}

export const DEFAULT_MAX_VFS = 65536;
const SECTOR_SIZE = deviceConfigs.block.constants.SECTOR_SIZE.value;

/** Who holds a routing ID, for collision messages. */
function describeOwner(bdf: string, vf: number): string {
  return vf < 0 ? `PF ${bdf}` : `VF ${vf} of PF ${bdf}`;
}

function routingOf(pf: ResolvedPf, rid: number): VfRouting {
  return { rid, firstVfOffset: pf.firstVfOffset, vfStride: pf.vfStride, totalVfs: pf.totalVfs };
}

/** The size of an image file in sectors, or a topology refusal naming the file. */
function imageSectors(path: string, owner: string): number {
  try {
    return Math.floor(statSync(path).size / SECTOR_SIZE);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));
    throw new VmmrError('VMMR_ERR_TOPOLOGY', `${owner}: disk image ${path} cannot be opened (${why})`, {
      bdf: owner,
    });
  }
}

function backendOf(
  entry: { switch?: string; ramDiskSize?: number; image?: string; readOnly?: boolean },
  owner: string,
): BackendSettings {
  return {
    ...(entry.switch !== undefined ? { switch: entry.switch } : {}),
    ...(entry.ramDiskSize !== undefined ? { ramDiskBytes: entry.ramDiskSize } : {}),
    ...(entry.image !== undefined
      ? {
          image: entry.image,
          imageSectors: imageSectors(entry.image, owner),
          readOnly: entry.readOnly ?? false,
        }
      : {}),
  };
}

function toDefinition(pf: ResolvedPf): PfDefinition {
  const { domain, rid } = parseBdf(pf.bdf);
  const routing = routingOf(pf, rid);
  const overrides = new Map<number, IdentityOverride>();
  const vfBackend = backendOf({ switch: pf.switch, ramDiskSize: pf.ramDiskSize }, pf.bdf);
  const vfBackends = new Map<number, BackendSettings>();
  for (const [vfBdf, override] of Object.entries(pf.vfs)) {
    const at = parseBdf(vfBdf);
    const index = at.domain === domain ? vfIndexAt(routing, at.rid) : -1;
    if (index < 0) {
      throw new VmmrError('VMMR_ERR_TOPOLOGY', `PF ${pf.bdf}: override for ${vfBdf} names no VF of this PF`);
    }
    overrides.set(index, {
      ...(override.mac !== undefined ? { mac: parseMac(override.mac) } : {}),
      ...(override.serial !== undefined ? { serial: override.serial } : {}),
    });
    if (override.switch !== undefined || override.image !== undefined)
      vfBackends.set(index, { ...vfBackend, ...backendOf(override, vfBdf) });
  }
  const { bdf, vfs, switch: _switch, ramDiskSize: _size, image: _image, readOnly: _ro, ...rest } = pf;
  return { ...rest, domain, rid, overrides, backend: backendOf(pf, pf.bdf), vfBackend, vfBackends };
}

/** Space names that address a VF's guest view (the translator) rather than the VF itself. */
function isGuestSpace(space: string): boolean {
  return space === 'io' || space === 'guest-config';
}

/**
 * The emulated platform: PFs (each with its VFs), routing-ID bookkeeping across domains, the
 * translator that owns the guest views, the event bus and process-wide limits. Transport-free.
 */
export class Machine {
  readonly events = new EventBus();
  readonly translator = new Translator((vf) => this.definitionOf(vf.pf).vfs[vf.bdf]?.legacyOnly === true);
  readonly maxVfs: number;
  readonly dataPath: DataPathHub;
  readonly platform: PlatformMap;
  private firmwareHook: FirmwareHook | undefined;
  private pfList: VirtioPf[] = [];
  private readonly sources = new Map<VirtioPf, ResolvedPf>();
  private readonly pfByKey = new Map<number, VirtioPf>();

  constructor(topology: ResolvedTopology, options: MachineOptions = {}) {
    this.maxVfs = options.maxVfs ?? DEFAULT_MAX_VFS;
    this.dataPath = new DataPathHub({ dmaLimit: options.dmaLimit, defer: options.defer });
    this.platform = options.platform ?? topology.platform ?? DEFAULT_PLATFORM_MAP;
    for (const pf of topology.pfs) this.addPf(pf);
    this.attachFirmware(options.firmware);
  }

  get firmware(): FirmwareHook | undefined {
    return this.firmwareHook;
  }

  /** Builds the machine's firmware (once) and lets it run over what exists now. */
  private attachFirmware(build: MachineOptions['firmware']): void {
    if (!build || this.firmwareHook) return;
    const firmware = build(this);
    this.firmwareHook = firmware;
    this.translator.opened = (view) => firmware.guestViewOpened(view);
    firmware.machineReady();
  }

  get pfs(): readonly VirtioPf[] {
    return this.pfList;
  }

  enabledVfCount(): number {
    let n = 0;
    for (const pf of this.pfList) n += pf.vfs.length;
    return n;
  }

  /**
   * Adds a PF. Refused when its routing ID or any of its TotalVFs VF routing IDs exceeds 0xFFFF
   * or collides with another function (PF or potential VF) in the same domain.
   */
  addPf(resolved: ResolvedPf): VirtioPf {
    const def = toDefinition(resolved);
    this.checkRoutingIds(resolved, def);
    const pf = new VirtioPf(
      def,
      this.events,
      { available: () => this.maxVfs - this.enabledVfCount() },
      {
        removed: (vfs) => {
          this.translator.release(vfs);
          this.dataPath.release(vfs);
        },
        enabled: (enabledPf) => this.firmwareHook?.vfsEnabled(enabledPf),
      },
      this.dataPath,
    );
    this.pfList = [...this.pfList, pf].sort((a, b) => bdfKey(a.domain, a.rid) - bdfKey(b.domain, b.rid));
    this.pfByKey.set(bdfKey(def.domain, def.rid), pf);
    this.sources.set(pf, resolved);
    this.firmwareHook?.machineReady();
    return pf;
  }

  /** The topology entry a PF was made from (its per-VF overrides included). */
  definitionOf(pf: VirtioPf): ResolvedPf {
    const resolved = this.sources.get(pf);
    if (!resolved) throw new VmmrError('VMMR_ERR_NO_FUNCTION', `PF ${pf.bdf} is not part of this machine`);
    return resolved;
  }

  removePf(bdf: string): VirtioPf {
    const { domain, rid } = parseBdf(bdf);
    const pf = this.pfByKey.get(bdfKey(domain, rid));
    if (!pf) throw new VmmrError('VMMR_ERR_NO_FUNCTION', `no PF at ${formatBdf(domain, rid)}`, { bdf });
    this.pfByKey.delete(bdfKey(domain, rid));
    this.pfList = this.pfList.filter((p) => p !== pf);
    this.sources.delete(pf);
    pf.removeVfs();
    this.dataPath.release([pf]);
    return pf;
  }

  private checkRoutingIds(resolved: ResolvedPf, def: PfDefinition): void {
    if (lastVfRid(def) > MAX_RID) {
      const n = Math.floor((MAX_RID - def.rid - def.firstVfOffset) / Math.max(1, def.vfStride)) + 1;
      throw new VmmrError(
        'VMMR_ERR_TOPOLOGY',
        `PF ${resolved.bdf}: VF ${n} would take routing ID 0x${vfRid(def, n).toString(16)}, ` +
          `beyond 0xffff (TotalVFs ${def.totalVfs}, First VF Offset ${def.firstVfOffset}, VF Stride ${def.vfStride})`,
        { bdf: resolved.bdf },
      );
    }
    const owner = new Map<number, string>();
    const claim = (rid: number, who: string): void => {
      const other = owner.get(rid);
      if (other !== undefined) {
        throw new VmmrError(
          'VMMR_ERR_TOPOLOGY',
          `routing ID ${formatBdf(def.domain, rid)}: ${who} collides with ${other}`,
          {
            bdf: resolved.bdf,
          },
        );
      }
      owner.set(rid, who);
    };
    const claimAll = (bdf: string, routing: VfRouting): void => {
      claim(routing.rid, describeOwner(bdf, -1));
      for (let n = 0; n < routing.totalVfs; n++) claim(vfRid(routing, n), describeOwner(bdf, n));
    };
    for (const pf of this.pfList) if (pf.domain === def.domain) claimAll(pf.bdf, pf.definition);
    claimAll(resolved.bdf, def);
  }

  findPf(bdf: string): VirtioPf {
    const { domain, rid } = parseBdf(bdf);
    const pf = this.pfByKey.get(bdfKey(domain, rid));
    if (!pf) {
      throw new VmmrError('VMMR_ERR_NO_FUNCTION', `no PF at ${formatBdf(domain, rid)}`, {
        bdf: formatBdf(domain, rid),
      });
    }
    return pf;
  }

  /** The live function at a BDF; a VF slot whose VF is not enabled is VMMR_ERR_VF_DISABLED. */
  find(bdf: string): VirtioPciFunction {
    const { domain, rid } = parseBdf(bdf);
    const pf = this.pfByKey.get(bdfKey(domain, rid));
    if (pf) return pf;
    for (const candidate of this.pfList) {
      if (candidate.domain !== domain) continue;
      const n = candidate.vfIndexAt(rid);
      if (n < 0) continue;
      const vf = candidate.vfs[n];
      if (vf) return vf;
      throw new VmmrError(
        'VMMR_ERR_VF_DISABLED',
        `${formatBdf(domain, rid)} is VF ${n + 1} of PF ${candidate.bdf}, which is not enabled ` +
          `(VF Enable ${candidate.vfEnabled ? 1 : 0}, NumVFs ${candidate.numVfs})`,
        { bdf: formatBdf(domain, rid) },
      );
    }
    throw new VmmrError('VMMR_ERR_NO_FUNCTION', `no function at ${formatBdf(domain, rid)}`, {
      bdf: formatBdf(domain, rid),
    });
  }

  findVf(bdf: string): MmrVf {
    const fn = this.find(bdf);
    if (fn.kind !== 'vf') {
      throw new VmmrError(
        'VMMR_ERR_NOT_TRANSITIONAL',
        `${fn.bdf} is a PF (a modern device): the guest view exists for MMR VFs only`,
        {
          bdf: fn.bdf,
        },
      );
    }
    return fn as MmrVf;
  }

  /** The machine is replaced (REST reset or restore): back-ends let go of switches and image files. */
  close(): void {
    this.dataPath.release([...this.functions()]);
  }

  /**
   * Processes every notification waiting for the data path now (they run on their own right
   * after the notifying access otherwise); returns how many were processed.
   */
  drain(): number {
    return this.dataPath.drain();
  }

  /** The data path of the function at a BDF: its DMA space, queues and back-end (made on first use). */
  dataPathOf(bdf: string): FunctionDataPath {
    return this.dataPath.path(this.find(bdf));
  }

  /** The translator's guest view of the VF at a BDF (opened on first use). */
  guestView(bdf: string): GuestView {
    return this.translator.view(this.findVf(bdf));
  }

  /** What an access to `space` of the function at `bdf` reaches: the function, or its guest view. */
  target(bdf: string, space: string): VirtioPciFunction | GuestView {
    return isGuestSpace(space) ? this.guestView(bdf) : this.find(bdf);
  }

  /** Every live function: each PF followed by its enabled VFs. */
  *functions(): Generator<VirtioPciFunction> {
    for (const pf of this.pfList) {
      yield pf;
      yield* pf.vfs;
    }
  }

  /** A VF's guest config changes, without the dwords firmware set (undefined: none). */
  private guestChanges(vf: MmrVf): ConfigChange[] | undefined {
    const changes = this.translator.stateOf(vf);
    const firmware = this.firmwareHook;
    const view = this.translator.existing(vf);
    if (!changes || !firmware || !view) return changes;
    const own = changes.filter((c) => !firmware.setByFirmware(view, Number(c.offset), Number(c.value)));
    return own.length > 0 ? own : undefined;
  }

  private functionState(fn: VirtioPciFunction): FunctionState {
    const state = fn.getState();
    const guest = fn.kind === 'vf' ? this.guestChanges(fn as MmrVf) : undefined;
    const legacyOnly = fn.kind === 'vf' ? this.translator.legacyOnlyOf(fn as MmrVf) : undefined;
    const path = this.dataPath.existing(fn);
    const dma = path?.dma.getState();
    const queues = path?.runStates();
    return {
      ...state,
      ...(guest ? { guest } : {}),
      ...(legacyOnly !== undefined ? { legacyOnly } : {}),
      ...(dma && Object.keys(dma.pages).length > 0 ? { dma } : {}),
      ...(queues ? { queues } : {}),
    };
  }

  private pristine(fn: VirtioPciFunction): boolean {
    return (
      fn.pristine &&
      (fn.kind !== 'vf' ||
        (this.guestChanges(fn as MmrVf) === undefined &&
          this.translator.legacyOnlyOf(fn as MmrVf) === undefined)) &&
      this.dataPath.existing(fn) === undefined
    );
  }

  /** The data path part of a function's snapshot: DMA pages, then the queues' run states. */
  private restoreDataPath(fn: VirtioPciFunction, state: FunctionState): void {
    if (!state.dma && !state.queues) return;
    const path = this.dataPath.path(fn);
    if (state.dma) path.dma.setState(state.dma);
    if (state.queues) {
      if (state.queues.length !== fn.device.numQueues)
        throw new VmmrError(
          'VMMR_ERR_STATE',
          `${fn.bdf}: ${state.queues.length} queue run states, the device has ${fn.device.numQueues} queues`,
        );
      state.queues.forEach((q, i) => {
        if (q !== null) checkRunState(i, q.format, q);
      });
      path.restoreRunStates(state.queues);
    }
  }

  /** A JSON-safe snapshot: PF definitions, then the state of every function that changed. */
  snapshot(): MachineState {
    const functions: FunctionState[] = [];
    for (const fn of this.functions())
      if (fn.kind === 'pf' || !this.pristine(fn)) functions.push(this.functionState(fn));
    return {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      pfs: this.pfList.map((pf) => this.definitionOf(pf)),
      functions,
    };
  }

  /** Rebuilds a machine from a snapshot; PFs first (their VF Enable recreates VFs), then VFs. */
  static restore(state: MachineState, options: MachineOptions = {}): Machine {
    if (state.format !== STATE_FORMAT || state.version !== STATE_VERSION) {
      throw new VmmrError(
        'VMMR_ERR_STATE',
        `not a vmmr state of version ${STATE_VERSION} (format ${JSON.stringify(state.format)}, version ${JSON.stringify(state.version)})`,
      );
    }
    // Snapshots written before the admin options existed leave them out: they take the defaults.
    const pfs = state.pfs.map((pf: Partial<ResolvedPf> & Omit<ResolvedPf, 'adminQueue' | 'translator'>) => ({
      ...pf,
      adminQueue: pf.adminQueue ?? false,
      translator: pf.translator ?? 'mmr',
    }));
    const machine = new Machine({ pfs }, { ...options, firmware: undefined });
    const pfBdfs = new Set(machine.pfs.map((pf) => pf.bdf));
    const isPf = (f: FunctionState): boolean => pfBdfs.has(normalizeBdf(f.bdf));
    for (const f of state.functions.filter(isPf)) {
      const pf = machine.find(f.bdf);
      pf.setState(f);
      machine.restoreDataPath(pf, f);
    }
    for (const f of state.functions.filter((f) => !isPf(f))) {
      const fn = machine.find(f.bdf);
      fn.setState(f);
      machine.restoreDataPath(fn, f);
      if (f.guest || f.legacyOnly !== undefined) {
        if (fn.kind !== 'vf')
          throw new VmmrError('VMMR_ERR_STATE', `${fn.bdf} is a PF: it has no guest view to restore`);
        machine.translator.restore(fn as MmrVf, f.guest ?? [], f.legacyOnly);
      }
    }
    machine.attachFirmware(options.firmware);
    return machine;
  }
}
