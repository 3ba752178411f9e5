/**
 * Per-queue state across device resets (src/virtio/device.ts): the record is taken once and
 * written back to its reset values, never taken again; the registers a driver reads after a
 * reset are the reset values of virtio 1.2 §4.1.4.3 (queue_size = the maximum, vectors
 * VIRTIO_MSI_NO_VECTOR, addresses 0, disabled), and a reset device is pristine again.
 */
import { describe, expect, it } from 'vitest';
import { rd as read, singlePf, wr as write } from '../support/functions.js';
import type { VirtioDevice } from '../../src/virtio/device.js';

/** Offsets of virtio_pci_common_cfg (<linux/virtio_pci.h>) in the PF BAR at 0. */
const QUEUE_SELECT = 0x16;
const QUEUE_SIZE = 0x18;
const QUEUE_VECTOR = 0x1a;
const QUEUE_ENABLE = 0x1c;
const QUEUE_DESC_LO = 0x20;
const DEVICE_STATUS = 0x14;
const NO_VECTOR = 0xffff;

/** The device's record in its template's queue pool (-1: none taken). */
function slotsOf(device: VirtioDevice): number {
  return device['queueRecord'];
}

describe('queue slots across device resets', () => {
  it('are allocated on the first queue write and kept, with reset values, by every reset', () => {
    const { pf } = singlePf('net');
    write(pf, 'config', 0x04, 2, 0x2);
    expect(slotsOf(pf.device)).toBe(-1);
    const program = (): void => {
      write(pf, 'bar0', QUEUE_SELECT, 2, 1);
      write(pf, 'bar0', QUEUE_SIZE, 2, 64);
      write(pf, 'bar0', QUEUE_DESC_LO, 4, 0x12340000);
      write(pf, 'bar0', QUEUE_ENABLE, 2, 1);
    };
    program();
    const slots = slotsOf(pf.device);
    expect(slots).toBeGreaterThanOrEqual(0);
    expect(pf.device.pristine).toBe(false);
    for (let round = 0; round < 3; round++) {
      write(pf, 'bar0', DEVICE_STATUS, 1, 0);
      expect(slotsOf(pf.device)).toBe(slots);
      expect(pf.device.pristine).toBe(true);
      expect(pf.device.getState().queues).toBeNull();
      write(pf, 'bar0', QUEUE_SELECT, 2, 1);
      expect(read(pf, 'bar0', QUEUE_SIZE, 2)).toBe(256);
      expect(read(pf, 'bar0', QUEUE_VECTOR, 2)).toBe(NO_VECTOR);
      expect(read(pf, 'bar0', QUEUE_ENABLE, 2)).toBe(0);
      expect(read(pf, 'bar0', QUEUE_DESC_LO, 4)).toBe(0);
      program();
      expect(read(pf, 'bar0', QUEUE_SIZE, 2)).toBe(64);
    }
    expect(slotsOf(pf.device)).toBe(slots);
  });

  it('are kept by a restore without queues, and take a restore with them', () => {
    const { pf } = singlePf('net');
    write(pf, 'config', 0x04, 2, 0x2);
    write(pf, 'bar0', QUEUE_SELECT, 2, 0);
    write(pf, 'bar0', QUEUE_SIZE, 2, 32);
    const programmed = pf.device.getState();
    const slots = slotsOf(pf.device);
    write(pf, 'bar0', DEVICE_STATUS, 1, 0);
    const fresh = pf.device.getState();
    pf.device.setState(programmed);
    expect(slotsOf(pf.device)).toBe(slots);
    expect(read(pf, 'bar0', QUEUE_SIZE, 2)).toBe(32);
    pf.device.setState(fresh);
    expect(slotsOf(pf.device)).toBe(slots);
    expect(read(pf, 'bar0', QUEUE_SIZE, 2)).toBe(256);
    expect(pf.device.pristine).toBe(true);
  });
});
