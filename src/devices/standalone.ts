/**
 * A DeviceContext without a PCI function around it: queues set up directly (as a driver would
 * program them), the configuration as plain bytes, interrupts and notifications counted. Tests,
 * benchmarks and library users drive device back-ends through it with the driver-side ring
 * builder; the register model provides the same context for real functions.
 */
import type { DmaSpace } from '../dma/space.js';
import { deviceConfigs, type VirtioTypeName } from '../spec/index.js';
import { createQueue, type QueueSetup, type Virtqueue, type VirtqueueError } from '../virtqueue/index.js';
import type { DeviceContext, DeviceEvent, FeatureBits } from './context.js';

export interface StandaloneOptions {
  type: VirtioTypeName;
  dma: DmaSpace;
  /** Negotiated features (default none). */
  features?: FeatureBits;
  /** The driver uses the legacy interface. */
  legacy?: boolean;
  /** Configuration bytes (default: the type's reset values from the spec tables). */
  config?: Uint8Array;
}

/** Reset values of a type's exposed device configuration (spec-tables device-config-*). */
export function defaultConfig(type: VirtioTypeName): Uint8Array {
  const table = deviceConfigs[type];
  const bytes = new Uint8Array(table.size ?? 0);
  for (const reg of Object.values(table.registers)) {
    if (reg.offset + reg.size > bytes.length) continue;
    if (reg.resetBytes) bytes.set(reg.resetBytes, reg.offset);
    else if (reg.reset !== undefined) {
      for (let i = 0; i < Math.min(reg.size, 6); i++)
        bytes[reg.offset + i] = Math.floor(reg.reset / 2 ** (8 * i)) & 0xff;
    }
  }
  return bytes;
}

export class StandaloneContext implements DeviceContext {
  readonly dma: DmaSpace;
  features: FeatureBits;
  legacy: boolean;
  readonly config: Uint8Array;
  private readonly queues = new Map<number, Virtqueue>();
  /** Interrupts raised per queue index. */
  readonly interrupts = new Map<number, number>();
  configChanges = 0;
  /** Errors that put the device into DEVICE_NEEDS_RESET, in order. */
  readonly resetErrors: VirtqueueError[] = [];
  readonly events: DeviceEvent[] = [];
  /** Record events (off: devices skip building them, as with no subscriber). */
  listening = false;

  constructor(options: StandaloneOptions) {
    this.dma = options.dma;
    this.features = options.features ?? { lo: 0, hi: 0 };
    this.legacy = options.legacy ?? false;
    this.config = options.config ?? defaultConfig(options.type);
  }

  /** Sets up (or replaces) a queue, as a driver programming its addresses and enabling it. */
  setQueue(setup: QueueSetup): Virtqueue {
    const q = createQueue(this.dma, setup);
    this.queues.set(setup.index, q);
    return q;
  }

  queue(index: number): Virtqueue | undefined {
    return this.queues.get(index);
  }

  interrupt(queue: number): void {
    this.interrupts.set(queue, (this.interrupts.get(queue) ?? 0) + 1);
  }

  interruptCount(queue: number): number {
    return this.interrupts.get(queue) ?? 0;
  }

  readConfig(offset: number, width: 1 | 2 | 4): number {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + (this.config[offset + i] ?? 0);
    return v;
  }

  setConfig(offset: number, bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++)
      if (offset + i < this.config.length) this.config[offset + i] = bytes[i]!;
  }

  configChanged(): void {
    this.configChanges++;
  }

  needsReset(error: VirtqueueError): void {
    this.resetErrors.push(error);
  }

  emit(event: DeviceEvent): void {
    this.events.push(event);
  }
}
