/**
 * Bus Master and the device status under the compat policy, as QEMU hw/virtio/virtio-pci.c:
 * virtio_ioport_write sets Command.Bus Master when a legacy driver writes STATUS
 * ACKNOWLEDGE | DRIVER (Linux before 2.6.34 never set it), and virtio_write_config takes
 * DRIVER_OK away when a config write leaves Bus Master clear. The strict policy does neither:
 * Command and STATUS change only when the driver writes them.
 */
import { describe, expect, it } from 'vitest';
import type { MmrVf } from '../../src/mmr/vf.js';
import { cfg, enableMemory, rd, record, setCfg, singlePf, withVfs, wr } from '../support/functions.js';

// <linux/pci_regs.h>, <linux/virtio_config.h>, <linux/virtio_pci.h>
const PCI_COMMAND = 0x04;
const PCI_COMMAND_IO = 0x1;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;
const ACKNOWLEDGE = 1;
const DRIVER = 2;
const DRIVER_OK = 4;
const FEATURES_OK = 8;
const VIRTIO_PCI_STATUS = 18;
const COMMON_DEVICE_STATUS = 20; // struct virtio_pci_common_cfg.device_status

function guest(policy: 'strict' | 'compat') {
  const fixture = withVfs('net', 1, { policy });
  wr(fixture.vf, 'guest-config', PCI_COMMAND, 2, PCI_COMMAND_IO);
  return fixture;
}

const guestCommand = (vf: MmrVf): number => rd(vf, 'guest-config', PCI_COMMAND, 2);

describe('compat: QEMU sets Bus Master on a legacy STATUS write of ACKNOWLEDGE | DRIVER', () => {
  it('through the translator: the guest Command and the VF Command show Bus Master', () => {
    const { vf } = guest('compat');
    wr(vf, 'io', VIRTIO_PCI_STATUS, 1, ACKNOWLEDGE);
    expect(guestCommand(vf)).toBe(PCI_COMMAND_IO);
    wr(vf, 'io', VIRTIO_PCI_STATUS, 1, ACKNOWLEDGE | DRIVER);
    expect(guestCommand(vf)).toBe(PCI_COMMAND_IO | PCI_COMMAND_MASTER);
    expect(cfg(vf, PCI_COMMAND, 2)).toBe(PCI_COMMAND_MASTER);
  });

  it('only that exact value, and only on the legacy path', () => {
    const { vf } = guest('compat');
    wr(vf, 'io', VIRTIO_PCI_STATUS, 1, ACKNOWLEDGE | DRIVER | DRIVER_OK);
    expect(guestCommand(vf)).toBe(PCI_COMMAND_IO);
    wr(vf, 'bar2', COMMON_DEVICE_STATUS, 1, 0);
    wr(vf, 'bar2', COMMON_DEVICE_STATUS, 1, ACKNOWLEDGE | DRIVER);
    expect(cfg(vf, PCI_COMMAND, 2)).toBe(0);
  });
});

describe('compat: a config write leaving Bus Master clear takes DRIVER_OK away (QEMU virtio_write_config)', () => {
  it('the guest clears Bus Master after DRIVER_OK: STATUS reads ACKNOWLEDGE | DRIVER, with a status event', () => {
    const { machine, vf } = guest('compat');
    wr(vf, 'io', VIRTIO_PCI_STATUS, 1, ACKNOWLEDGE | DRIVER);
    wr(vf, 'io', VIRTIO_PCI_STATUS, 1, ACKNOWLEDGE | DRIVER | DRIVER_OK);
    const events = record(machine);
    wr(vf, 'guest-config', PCI_COMMAND, 2, PCI_COMMAND_IO);
    expect(rd(vf, 'io', VIRTIO_PCI_STATUS, 1)).toBe(ACKNOWLEDGE | DRIVER);
    expect(events).toEqual([{ type: 'status', bdf: vf.bdf, from: 7, to: 3 }]);
  });

  it('a write that keeps Bus Master set changes nothing', () => {
    const { vf } = guest('compat');
    wr(vf, 'io', VIRTIO_PCI_STATUS, 1, ACKNOWLEDGE | DRIVER);
    wr(vf, 'io', VIRTIO_PCI_STATUS, 1, ACKNOWLEDGE | DRIVER | DRIVER_OK);
    wr(vf, 'guest-config', PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MASTER);
    expect(rd(vf, 'io', VIRTIO_PCI_STATUS, 1)).toBe(ACKNOWLEDGE | DRIVER | DRIVER_OK);
  });

  it('PF: a Command write without Bus Master after DRIVER_OK drops it too', () => {
    const { pf } = singlePf('net', { policy: 'compat' });
    enableMemory(pf);
    const running = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;
    wr(pf, 'bar0', COMMON_DEVICE_STATUS, 1, running);
    setCfg(pf, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    expect(rd(pf, 'bar0', COMMON_DEVICE_STATUS, 1)).toBe(running & ~DRIVER_OK & 0xff);
  });
});

describe('strict: Command and STATUS change only when the driver writes them', () => {
  it('ACKNOWLEDGE | DRIVER leaves Bus Master clear; clearing Bus Master keeps DRIVER_OK', () => {
    const { vf } = guest('strict');
    wr(vf, 'io', VIRTIO_PCI_STATUS, 1, ACKNOWLEDGE | DRIVER);
    expect(guestCommand(vf)).toBe(PCI_COMMAND_IO);
    expect(cfg(vf, PCI_COMMAND, 2)).toBe(0);
    wr(vf, 'io', VIRTIO_PCI_STATUS, 1, ACKNOWLEDGE | DRIVER | DRIVER_OK);
    wr(vf, 'guest-config', PCI_COMMAND, 2, PCI_COMMAND_IO);
    expect(rd(vf, 'io', VIRTIO_PCI_STATUS, 1)).toBe(ACKNOWLEDGE | DRIVER | DRIVER_OK);
  });
});
