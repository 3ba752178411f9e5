/**
 * Actions on the data path of a function, as a harness drives the host side of a device
 * (docs/data-path.md "REST"): process a queue now, inject frames, move a function to another
 * switch, make sectors fail, type on a console, set a balloon's target.
 */
import { VmmrError } from '../base/errors.js';
import { BalloonDevice } from '../devices/balloon.js';
import { BlockDevice, type InjectedOp } from '../devices/block/device.js';
import { ConsoleDevice } from '../devices/console.js';
import { NetDevice } from '../devices/net/device.js';
import type { NetHeader } from '../devices/net/header.js';
import type { DeliveryResult } from '../devices/net/switch.js';
import type { Machine } from '../machine/machine.js';
import type { QueueView } from '../virtio/datapath.js';

/** Processes queue `index` of a function now (as a notification would), and everything waiting. */
export function drainQueue(
  machine: Machine,
  bdf: string,
  index: number,
): { processed: number; queue: QueueView } {
  const fn = machine.find(bdf);
  if (!Number.isInteger(index) || index < 0 || index >= fn.device.numQueues) {
    throw new VmmrError(
      'VMMR_ERR_BAD_VALUE',
      `${fn.bdf}: queue ${String(index)} does not exist: this ${fn.device.model.type} device has queues 0..${fn.device.numQueues - 1}`,
      { bdf: fn.bdf },
    );
  }
  machine.dataPath.notify(fn, index);
  const processed = machine.drain();
  return { processed, queue: machine.dataPath.path(fn).queueViews()[index]! };
}

export function injectFrame(
  machine: Machine,
  bdf: string,
  frame: Uint8Array,
  header: NetHeader | undefined,
): DeliveryResult {
  const device = machine.dataPathOf(bdf).backendAs(NetDevice, 'net');
  const result = device.inject(frame, header);
  machine.drain();
  return result;
}

/** Puts a net function on switch `name` (made on first use), or takes it off with null. */
export function joinSwitch(machine: Machine, bdf: string, name: string | null): void {
  const device = machine.dataPathOf(bdf).backendAs(NetDevice, 'net');
  device.attach(name === null ? undefined : machine.dataPath.switch(name));
}

export function injectBlockErrors(
  machine: Machine,
  bdf: string,
  first: number,
  count: number,
  op: InjectedOp,
): void {
  const device = machine.dataPathOf(bdf).backendAs(BlockDevice, 'block');
  if (!Number.isSafeInteger(first) || first < 0 || !Number.isSafeInteger(count) || count < 1)
    throw new VmmrError('VMMR_ERR_BAD_VALUE', `${bdf}: sectors ${first}+${count} are not a sector range`, {
      bdf,
    });
  device.injectErrors(first, count, op);
}

export function clearBlockErrors(machine: Machine, bdf: string): void {
  machine.dataPathOf(bdf).backendAs(BlockDevice, 'block').clearErrors();
}

/** Host input on console port 0; returns how many bytes were taken. */
export function consoleInput(machine: Machine, bdf: string, bytes: Uint8Array): number {
  const device = machine.dataPathOf(bdf).backendAs(ConsoleDevice, 'console');
  const taken = device.input(bytes);
  machine.drain();
  return taken;
}

export function setBalloonTarget(machine: Machine, bdf: string, pages: number): void {
  const device = machine.dataPathOf(bdf).backendAs(BalloonDevice, 'balloon');
  if (!Number.isInteger(pages) || pages < 0 || pages > 0xffffffff)
    throw new VmmrError('VMMR_ERR_BAD_VALUE', `${bdf}: num_pages ${pages} is not a 32-bit page count`, {
      bdf,
    });
  device.setTarget(pages);
}
