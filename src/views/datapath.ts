/**
 * Answers about the data path of a function (docs/data-path.md "REST"): its queues as the
 * driver programmed them and as the device runs them, and the state of its back-end.
 */
import { BalloonDevice } from '../devices/balloon.js';
import { BlockDevice } from '../devices/block/device.js';
import { ConsoleDevice } from '../devices/console.js';
import { NetDevice } from '../devices/net/device.js';
import type { Machine } from '../machine/machine.js';
import { bytesToHex } from '../base/hex.js';
import { queueView } from '../virtio/datapath.js';
import type {
  BalloonStateView,
  BlockStateView,
  ConsoleStateView,
  NetStateView,
  QueueList,
} from './shapes.js';

export function queueList(machine: Machine, bdf: string): QueueList {
  const fn = machine.find(bdf);
  const path = machine.dataPath.existing(fn);
  const items = path
    ? path.queueViews()
    : fn.device.model.queueNames.map((name, index) => queueView(fn.device, index, name, undefined));
  return { bdf: fn.bdf, ready: fn.device.driverOk && fn.busMasterEnabled(), items };
}

export function netView(machine: Machine, bdf: string): NetStateView {
  const path = machine.dataPathOf(bdf);
  const device = path.backendAs(NetDevice, 'net');
  return { bdf: path.fn.bdf, ...device.state() };
}

export function blockView(machine: Machine, bdf: string): BlockStateView {
  const path = machine.dataPathOf(bdf);
  const device = path.backendAs(BlockDevice, 'block');
  return {
    bdf: path.fn.bdf,
    sectors: device.backend.sectors,
    readOnly: device.backend.readOnly,
    stats: { ...device.stats },
    injected: device.injectedRanges,
  };
}

export function consoleView(machine: Machine, bdf: string): ConsoleStateView {
  const path = machine.dataPathOf(bdf);
  const device = path.backendAs(ConsoleDevice, 'console');
  return {
    bdf: path.fn.bdf,
    output: bytesToHex(device.output.contents()),
    pendingInput: device.pendingInput,
  };
}

export function balloonView(machine: Machine, bdf: string): BalloonStateView {
  const path = machine.dataPathOf(bdf);
  const device = path.backendAs(BalloonDevice, 'balloon');
  return {
    bdf: path.fn.bdf,
    numPages: device.target,
    actual: device.actual,
    pages: device.pageList().length,
    stats: { ...device.stats },
  };
}
