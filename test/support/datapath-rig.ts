/**
 * Test rigs: a device back-end on a StandaloneContext over sparse RAM, with the simulated
 * driver on the other side of real rings. Feature bits are named from the spec tables.
 */
import type { DeviceBackend, FeatureBits } from '../../src/devices/context.js';
import { NetDevice, type NetOptions } from '../../src/devices/net/device.js';
import { StandaloneContext } from '../../src/devices/standalone.js';
import { SparseRam } from '../../src/dma/sparse-ram.js';
import { DmaArena } from '../../src/driver-sim/memory.js';
import { NetDriver } from '../../src/driver-sim/net-driver.js';
import type { RingLayout } from '../../src/driver-sim/queues.js';
import { standaloneTransport, type DriverTransport } from '../../src/driver-sim/transport.js';
import { deviceConfigs, features, type VirtioTypeName } from '../../src/spec/index.js';
import { ringFeatures, type RingFormat } from '../../src/virtqueue/index.js';

export function bits(type: VirtioTypeName, names: readonly string[]): FeatureBits {
  let lo = 0;
  let hi = 0;
  for (const n of names) {
    const c =
      (features.common.constants as Record<string, { value: number }>)[n] ??
      (features.byType[type].constants as Record<string, { value: number }>)[n];
    if (!c) throw new Error(`no feature ${n} for ${type}`);
    if (c.value < 32) lo = (lo | (1 << c.value)) >>> 0;
    else hi = (hi | (1 << (c.value - 32))) >>> 0;
  }
  return { lo, hi };
}

export interface Rig<D extends DeviceBackend> {
  ram: SparseRam;
  arena: DmaArena;
  ctx: StandaloneContext;
  device: D;
  transport: DriverTransport;
}

export function rigFor<D extends DeviceBackend>(
  type: VirtioTypeName,
  featureNames: readonly string[],
  options: { legacy: boolean; format?: RingFormat },
  make: (ctx: StandaloneContext) => D,
): Rig<D> {
  const ram = new SparseRam();
  const arena = new DmaArena(0x10_0000, 0x1000_0000);
  const f = bits(type, featureNames);
  const ctx = new StandaloneContext({ type, dma: ram, features: f, legacy: options.legacy });
  const device = make(ctx);
  const transport = standaloneTransport(ctx, device, options.format ?? 'split', ringFeatures(f.lo, f.hi));
  return { ram, arena, ctx, device, transport };
}

export interface NetRigOptions {
  legacy: boolean;
  format?: RingFormat;
  features?: readonly string[];
  mac?: string;
  name?: string;
  mergeable?: boolean;
  rxBufferSize?: number;
  queueSize?: number;
  indirectTx?: boolean;
  net?: Partial<NetOptions>;
}

export interface NetRig extends Rig<NetDevice> {
  driver: NetDriver;
  headerSize: number;
}

/** A net function and its driver. The header size is worked out here from the spec text, not the device. */
export function netRig(o: NetRigOptions): NetRig {
  const names = [
    ...(o.features ?? []),
    ...(o.mergeable ? ['MRG_RXBUF'] : []),
    ...(o.legacy ? [] : ['VERSION_1']),
  ];
  const rig = rigFor('net', names, o, (ctx) => new NetDevice(ctx, { name: o.name ?? 'port', ...o.net }));
  const macBytes = (o.mac ?? '02:00:00:00:00:01').split(':').map((h) => Number.parseInt(h, 16));
  rig.ctx.setConfig(deviceConfigs.net.registers.MAC.offset, macBytes);
  const headerSize = o.legacy && !o.mergeable ? 10 : 12;
  const layout: RingLayout = o.legacy ? 'legacy' : 'modern';
  const driver = new NetDriver(rig.transport, {
    arena: rig.arena,
    layout,
    headerSize,
    mergeable: !!o.mergeable,
    control: names.includes('CTRL_VQ'),
    rxBufferSize: o.rxBufferSize,
    queueSize: o.queueSize,
    indirectTx: o.indirectTx,
  });
  return { ...rig, driver, headerSize };
}
