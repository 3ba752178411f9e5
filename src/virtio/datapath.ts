/**
 * The data path of the functions: each function's DMA space and device back-end behind a
 * DeviceContext over its virtio device state, and the machine-wide scheduler that processes
 * notifications after the notifying access has returned, in notify order (docs/data-path.md
 * "Wiring").
 *
 * - Queues are built from what the driver programmed: legacy QUEUE_PFN (the device state holds
 *   the legacy layout's three addresses) or queue_desc/driver/device with queue_enable; packed
 *   when VIRTIO_F_RING_PACKED is negotiated (virtio 1.2 §2.7, §2.8). A queue keeps its run state
 *   across notifications and is rebuilt when the driver programs it again.
 * - The device touches DMA only while Bus Master is set in the function's Command register (a
 *   translated VF's guest view mirrors its Bus Master there; PCI 3.0 §6.2.2) and uses buffers
 *   only once the driver set DRIVER_OK (virtio 1.2 §3.1.1): notifications that arrive before
 *   wait, in order, and are processed when both hold.
 * - Interrupts go through the device state: ISR bit 0 and INTx, or the queue's MSI-X vector with
 *   its mask (§4.1.4.5, §4.1.5.3). A broken queue sets DEVICE_NEEDS_RESET with a config change.
 * - Nothing exists for a function until it is used: an idle VF has no entry here at all.
 */
import { VmmrError } from '../base/errors.js';
import type { EventBus } from '../base/events.js';
import type { DeviceBackend, DeviceContext, DeviceEvent, FeatureBits } from '../devices/context.js';
import { NetSwitch } from '../devices/net/switch.js';
import { DmaBudget } from '../dma/budget.js';
import { SparseRam } from '../dma/sparse-ram.js';
import { datapath, features } from '../spec/index.js';
import {
  createQueue,
  isVirtqueueError,
  ringFeatures,
  VirtqueueError,
  type QueueInfo,
  type QueueRunState,
  type Virtqueue,
} from '../virtqueue/index.js';
import { deviceBackends } from './backends.js';
import type { QueueProgram, VirtioDevice } from './device.js';

const VERSION_1 = features.common.constants.VERSION_1.value;
const RING_PACKED = features.common.constants.RING_PACKED.value;

/** What the data path needs of the PCI function carrying a device. */
export interface DataPathFunction {
  readonly bdf: string;
  readonly device: VirtioDevice;
  readonly events: EventBus;
  /** Command.Bus Master Enable of the function. */
  busMasterEnabled(): boolean;
  /** The block serial (GET_ID) of the function. */
  serial(): string;
  /** Where the function's back-end comes from (topology settings). */
  backendSettings(): BackendSettings;
}

/** A function's back-end settings (topology: switch, RAM disk size, image path). */
export interface BackendSettings {
  /** net: the switch the function joins. */
  switch?: string;
  /** block: RAM disk size in bytes (a multiple of 512). */
  ramDiskBytes?: number;
  /** block: a file image instead of a RAM disk. */
  image?: string;
  /** block: the image opened read-only. */
  readOnly?: boolean;
  /** block: the image's size in sectors, measured when the machine takes the topology. */
  imageSectors?: number;
}

/** Builds the back-end of a function on first use, and lets it go when the function goes. */
export interface BackendFactory {
  create(ctx: FunctionDataPath, fn: DataPathFunction): DeviceBackend;
  close(backend: DeviceBackend): void;
}

/** One queue as the API shows it: what the driver programmed, and the device's run state once built. */
export interface QueueView {
  index: number;
  name: string;
  size: number;
  enabled: boolean;
  layout: 'legacy' | 'modern';
  format: 'split' | 'packed';
  addresses: { desc: string; driver: string; device: string };
  run: QueueInfo | null;
}

interface BuiltQueue {
  queue: Virtqueue;
  program: QueueProgram;
  lo: number;
  hi: number;
}

function sameProgram(a: QueueProgram, b: QueueProgram): boolean {
  return a.size === b.size && a.desc === b.desc && a.driver === b.driver && a.device === b.device;
}

function hexAddress(n: number): string {
  return `0x${n.toString(16).padStart(16, '0')}`;
}

/** A function's side of the data path: its DMA space, queues and back-end (a DeviceContext). */
export class FunctionDataPath implements DeviceContext {
  readonly dma: SparseRam;
  private backendObject: DeviceBackend | undefined;
  private readonly built: (BuiltQueue | undefined)[] = [];
  private featureCache: FeatureBits = { lo: 0, hi: 0 };
  /** Queues notified while Bus Master was clear, processed once it is set. */
  private readonly held = new Set<number>();
  /** Run states from a snapshot, taken by each queue when it is next built. */
  private restoredRuns: (QueueRunState | null)[] | undefined;

  constructor(
    readonly fn: DataPathFunction,
    readonly hub: DataPathHub,
  ) {
    this.dma = new SparseRam({ budget: hub.budget });
  }

  private get device(): VirtioDevice {
    return this.fn.device;
  }

  get backend(): DeviceBackend {
    return (this.backendObject ??= this.hub.createBackend(this, this.fn));
  }

  /** The back-end as the class a route or action needs, or a refusal naming what the function is. */
  backendAs<T extends DeviceBackend>(kind: new (...args: never[]) => T, what: string): T {
    const device = this.backend;
    if (device instanceof kind) return device;
    throw new VmmrError(
      'VMMR_ERR_BAD_REQUEST',
      `${this.fn.bdf} is a ${this.device.model.type} function: this is for ${what} functions`,
      { bdf: this.fn.bdf },
    );
  }

  get existingBackend(): DeviceBackend | undefined {
    return this.backendObject;
  }

  get features(): FeatureBits {
    const d = this.device;
    const cached = this.featureCache;
    if (cached.lo !== d.driverFeaturesLo || cached.hi !== d.driverFeaturesHi)
      this.featureCache = { lo: d.driverFeaturesLo, hi: d.driverFeaturesHi };
    return this.featureCache;
  }

  /** A transitional function whose driver did not accept VERSION_1 is driven through the legacy interface. */
  get legacy(): boolean {
    const d = this.device;
    return d.model.transitional && ((d.driverFeaturesHi >>> (VERSION_1 - 32)) & 1) === 0;
  }

  /** Bus Master set and DRIVER_OK: the device may touch DMA and use buffers. */
  get ready(): boolean {
    return this.fn.device.driverOk && this.fn.busMasterEnabled();
  }

  queue(index: number): Virtqueue | undefined {
    if (!this.ready) return undefined;
    const program = this.device.queueProgram(index);
    if (!program || !program.enabled) return undefined;
    const { lo, hi } = this.features;
    const existing = this.built[index];
    if (existing && existing.lo === lo && existing.hi === hi && sameProgram(existing.program, program))
      return existing.queue;
    return this.build(index, program, lo, hi);
  }

  private build(index: number, program: QueueProgram, lo: number, hi: number): Virtqueue | undefined {
    const ring = ringFeatures(lo, hi);
    const addresses = { desc: program.desc, driver: program.driver, device: program.device };
    const run = this.restoredRuns?.[index] ?? undefined;
    if (this.restoredRuns) this.restoredRuns[index] = null;
    try {
      const setup = { index, size: program.size, format: ring.format, addresses, features: ring };
      const queue = createQueue(this.dma, setup, run);
      this.built[index] = { queue, program, lo, hi };
      return queue;
    } catch (e) {
      const error = isVirtqueueError(e)
        ? e
        : new VirtqueueError(index, null, 'alignment', e instanceof Error ? e.message : String(e));
      this.built[index] = undefined;
      this.needsReset(error);
      if (this.listening) this.emit({ type: 'queue-error', error: error.toJSON() });
      return undefined;
    }
  }

  interrupt(queue: number): void {
    this.device.raiseQueueInterrupt(queue);
  }

  readConfig(offset: number, width: 1 | 2 | 4): number {
    return this.device.readConfig(offset, width);
  }

  setConfig(offset: number, bytes: ArrayLike<number>): void {
    this.device.setDeviceConfig(offset, bytes);
  }

  configChanged(): void {
    this.device.raiseConfigChange();
  }

  needsReset(_error: VirtqueueError): void {
    this.device.markNeedsReset();
  }

  get listening(): boolean {
    return this.fn.events.active;
  }

  emit(event: DeviceEvent): void {
    this.fn.events.emit({ ...event, bdf: this.fn.bdf });
  }

  /** Processes one notification of `queue` now (held until the function is ready). */
  process(queue: number): void {
    if (!this.ready) {
      this.held.add(queue);
      return;
    }
    try {
      this.backend.notify(queue);
    } catch (e) {
      // A device that fails on a request must not take the process or other functions down.
      const detail = `the device failed: ${e instanceof Error ? e.message : String(e)}`;
      const error = isVirtqueueError(e) ? e : new VirtqueueError(queue, null, 'request', detail);
      this.built[queue]?.queue.fail(error);
      this.needsReset(error);
      if (this.listening) this.emit({ type: 'queue-error', error: error.toJSON() });
    }
  }

  /** Bus Master or DRIVER_OK may have been set: held notifications are scheduled again. */
  resume(): void {
    if (this.held.size === 0 || !this.ready) return;
    const queues = [...this.held];
    this.held.clear();
    for (const q of queues) this.hub.schedule(this, q);
  }

  /** The run state of every queue the device built (null for the others), for snapshots. */
  runStates(): (QueueRunState | null)[] | undefined {
    if (!this.built.some((b) => b !== undefined)) return undefined;
    return this.fn.device.model.queueNames.map((_, i) => this.built[i]?.queue.getState() ?? null);
  }

  /** Run states of a snapshot: each queue continues from its own when the device rebuilds it. */
  restoreRunStates(states: readonly (QueueRunState | null)[]): void {
    this.built.length = 0;
    this.restoredRuns = [...states];
  }

  /** Device reset: queues dropped, the back-end forgets what was in flight. */
  reset(): void {
    this.restoredRuns = undefined;
    this.built.length = 0;
    this.held.clear();
    this.backendObject?.reset();
  }

  queueViews(): QueueView[] {
    const d = this.device;
    return d.model.queueNames.map((name, index) => queueView(d, index, name, this.built[index]?.queue));
  }
}

/** A queue of a function that has no data path yet (or has not built it). */
export function queueView(
  device: VirtioDevice,
  index: number,
  name: string,
  queue: Virtqueue | undefined,
): QueueView {
  const p = device.queueProgram(index)!;
  const packed = ((device.driverFeaturesHi >>> (RING_PACKED - 32)) & 1) === 1;
  const legacyLayout =
    device.model.transitional && ((device.driverFeaturesHi >>> (VERSION_1 - 32)) & 1) === 0;
  return {
    index,
    name,
    size: p.size,
    enabled: p.enabled,
    layout: legacyLayout ? 'legacy' : 'modern',
    format: packed ? 'packed' : 'split',
    addresses: { desc: hexAddress(p.desc), driver: hexAddress(p.driver), device: hexAddress(p.device) },
    run: queue ? queue.info() : null,
  };
}

export interface DataPathOptions {
  /** Bytes all DMA spaces and RAM disks may take together (VMMR_DMA_LIMIT). */
  dmaLimit?: number;
  backends?: BackendFactory;
  /** Runs the scheduler after the current access (default queueMicrotask). */
  defer?: (run: () => void) => void;
}

/**
 * The machine's data path: every function's FunctionDataPath (made on first use), the switches
 * by name, one DmaBudget, and the FIFO of notifications waiting to be processed.
 */
export class DataPathHub {
  readonly budget: DmaBudget;
  private readonly paths = new Map<DataPathFunction, FunctionDataPath>();
  private readonly switches = new Map<string, NetSwitch>();
  private readonly factory: BackendFactory;
  private readonly defer: (run: () => void) => void;
  private pending: Array<{ path: FunctionDataPath; queue: number }> = [];
  private scheduled = false;

  constructor(options: DataPathOptions = {}) {
    this.budget = new DmaBudget(options.dmaLimit ?? datapath.constants.DMA_LIMIT_DEFAULT.value);
    this.factory = options.backends ?? deviceBackends;
    this.defer = options.defer ?? queueMicrotask;
  }

  createBackend(ctx: FunctionDataPath, fn: DataPathFunction): DeviceBackend {
    return this.factory.create(ctx, fn);
  }

  /** The data path of a function, made on first use. */
  path(fn: DataPathFunction): FunctionDataPath {
    let path = this.paths.get(fn);
    if (!path) {
      path = new FunctionDataPath(fn, this);
      this.paths.set(fn, path);
    }
    return path;
  }

  existing(fn: DataPathFunction): FunctionDataPath | undefined {
    return this.paths.get(fn);
  }

  /** The switch with this name, made on first use. */
  switch(name: string): NetSwitch {
    let sw = this.switches.get(name);
    if (!sw) {
      sw = new NetSwitch(name);
      this.switches.set(name, sw);
    }
    return sw;
  }

  switchNames(): string[] {
    return [...this.switches.keys()];
  }

  existingSwitch(name: string): NetSwitch | undefined {
    return this.switches.get(name);
  }

  /** A driver notified `queue` of `fn`: processed after the notifying access, in notify order. */
  notify(fn: DataPathFunction, queue: number): void {
    this.schedule(this.path(fn), queue);
  }

  schedule(path: FunctionDataPath, queue: number): void {
    this.pending.push({ path, queue });
    if (!this.scheduled) {
      this.scheduled = true;
      this.defer(() => this.drain());
    }
  }

  /** Processes every waiting notification now, in order (also those they cause); returns how many. */
  drain(): number {
    let done = 0;
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      for (const { path, queue } of batch) {
        path.process(queue);
        done++;
      }
    }
    this.scheduled = false;
    return done;
  }

  /** Command or status changed: held notifications resume once the function is ready. */
  resume(fn: DataPathFunction): void {
    this.paths.get(fn)?.resume();
  }

  /** Device reset of a function. */
  reset(fn: DataPathFunction): void {
    this.paths.get(fn)?.reset();
  }

  /** Functions went away: their back-ends leave their switches, their DMA returns to the budget. */
  release(fns: Iterable<DataPathFunction>): void {
    for (const fn of fns) {
      const path = this.paths.get(fn);
      if (!path) continue;
      const backend = path.existingBackend;
      if (backend) this.factory.close(backend);
      path.dma.clear();
      this.paths.delete(fn);
    }
    this.pending = this.pending.filter((p) => this.paths.get(p.path.fn) === p.path);
  }

  get functionCount(): number {
    return this.paths.size;
  }
}
