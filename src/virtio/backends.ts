/**
 * The device back-end of each virtio type, built for a function on first use (docs/data-path.md
 * "Wiring"): net joins its switch, block opens its RAM disk or file image, the others need
 * nothing but their context.
 */
import { BalloonDevice } from '../devices/balloon.js';
import { FileDisk, RamDisk, type BlockBackend } from '../devices/block/backend.js';
import { BlockDevice } from '../devices/block/device.js';
import { ConsoleDevice } from '../devices/console.js';
import type { DeviceBackend } from '../devices/context.js';
import { NetDevice } from '../devices/net/device.js';
import { P9Device } from '../devices/p9.js';
import { RngDevice } from '../devices/rng.js';
import { ScsiDevice } from '../devices/scsi.js';
import { deviceConfigs } from '../spec/index.js';
import type { BackendFactory, BackendSettings, DataPathFunction, FunctionDataPath } from './datapath.js';

const SECTOR = deviceConfigs.block.constants.SECTOR_SIZE.value;
/** CAPACITY's reset value: the size of a RAM disk the topology does not size. */
const DEFAULT_SECTORS = deviceConfigs.block.registers.CAPACITY.reset ?? 0;

/** Capacity in sectors of a block function with these settings (config CAPACITY follows it). */
export function capacitySectors(settings: BackendSettings): number {
  if (settings.image !== undefined) return settings.imageSectors ?? 0;
  if (settings.ramDiskBytes !== undefined) return Math.floor(settings.ramDiskBytes / SECTOR);
  return DEFAULT_SECTORS;
}

function blockStorage(ctx: FunctionDataPath, settings: BackendSettings): BlockBackend {
  if (settings.image !== undefined) return new FileDisk(settings.image, { readOnly: settings.readOnly });
  return new RamDisk(capacitySectors(settings), ctx.hub.budget);
}

function create(ctx: FunctionDataPath, fn: DataPathFunction): DeviceBackend {
  const settings = fn.backendSettings();
  switch (fn.device.model.type) {
    case 'net': {
      const net = new NetDevice(ctx, { name: fn.bdf });
      if (settings.switch !== undefined) net.attach(ctx.hub.switch(settings.switch));
      return net;
    }
    case 'block':
      return new BlockDevice(ctx, { backend: blockStorage(ctx, settings), serial: fn.serial() });
    case 'console':
      return new ConsoleDevice(ctx);
    case 'rng':
      return new RngDevice(ctx);
    case 'balloon':
      return new BalloonDevice(ctx);
    case 'scsi':
      return new ScsiDevice(ctx);
    case '9p':
      return new P9Device(ctx);
  }
}

function close(backend: DeviceBackend): void {
  if (backend instanceof NetDevice) backend.attach(undefined);
  else if (backend instanceof BlockDevice && backend.backend instanceof FileDisk) backend.backend.close();
}

/** The back-ends vmmr builds for its functions. */
export const deviceBackends: BackendFactory = { create, close };
