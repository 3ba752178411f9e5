/**
 * A Function Level Reset of a VF (PCIe 5.0 §6.6.2: the function's configuration registers go back
 * to their reset values) resets the translator's guest header as well: Command 0, so I/O decode
 * is off, as Linux drivers/vfio/pci/virtio (legacy_io.c virtiovf_legacy_io_reset_done) clears its
 * Command copy on reset.
 */
import { describe, expect, it } from 'vitest';
import { pciHeader, pcieCap } from '../../src/spec/index.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import { cfg, rd, refusal, setCfg, viewOf, withVfs, wr } from '../support/functions.js';

// <linux/pci_regs.h>
const PCI_COMMAND = 0x04;
const PCI_COMMAND_IO = 0x1;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;
const PCI_BASE_ADDRESS_0 = 0x10;
const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
const PCI_INTERRUPT_LINE = 0x3c;
const PCI_EXP_DEVCTL = 0x08;
const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
const VIRTIO_PCI_STATUS = 18;

const G = (vf: MmrVf, off: number, w: number): number => rd(vf, 'guest-config', off, w);
const setG = (vf: MmrVf, off: number, w: number, v: number): void => wr(vf, 'guest-config', off, w, v);

/** A guest that enabled the device the way Linux does: BAR0, Interrupt Line, Command IO|MEM|MASTER. */
function probedGuest(): MmrVf {
  const { vf } = withVfs('net', 2);
  setG(vf, PCI_BASE_ADDRESS_0, 4, 0xc040);
  setG(vf, PCI_INTERRUPT_LINE, 1, 11);
  setG(vf, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  wr(vf, 'io', VIRTIO_PCI_STATUS, 1, 3);
  expect(G(vf, PCI_COMMAND, 2)).toBe(0x0007);
  return vf;
}

function expectGuestHeaderAtReset(vf: MmrVf): void {
  expect(G(vf, PCI_COMMAND, 2)).toBe(0);
  refusal(() => rd(vf, 'io', VIRTIO_PCI_STATUS, 1), 'VMMR_ERR_IO_DISABLED');
  expect(G(vf, PCI_BASE_ADDRESS_0, 4)).toBe(PCI_BASE_ADDRESS_SPACE_IO);
  expect(G(vf, PCI_INTERRUPT_LINE, 1)).toBe(0);
  expect(cfg(vf, PCI_COMMAND, 2) & PCI_COMMAND_MASTER).toBe(0);
  expect(viewOf(vf).config.overlaySize).toBe(0);
}

describe('a VF FLR resets the guest view header', () => {
  it('the guest initiates FLR through its (passed-through) PCI Express capability', () => {
    const vf = probedGuest();
    const devctl = vf.template.caps.pcie + PCI_EXP_DEVCTL;
    expect(devctl).toBe(vf.template.caps.pcie + pcieCap.registers.DEVCTL.offset);
    setG(vf, devctl, 2, G(vf, devctl, 2) | PCI_EXP_DEVCTL_BCR_FLR);
    expectGuestHeaderAtReset(vf);
    expect(vf.device.status).toBe(0);
  });

  it('the hypervisor initiates FLR on the VF itself', () => {
    const vf = probedGuest();
    const devctl = vf.template.caps.pcie + PCI_EXP_DEVCTL;
    setCfg(vf, devctl, 2, cfg(vf, devctl, 2) | PCI_EXP_DEVCTL_BCR_FLR);
    expectGuestHeaderAtReset(vf);
  });

  it('after the FLR the guest can enable I/O again and the device answers from reset', () => {
    const vf = probedGuest();
    const devctl = vf.template.caps.pcie + PCI_EXP_DEVCTL;
    setCfg(vf, devctl, 2, PCI_EXP_DEVCTL_BCR_FLR);
    setG(vf, PCI_COMMAND, 2, PCI_COMMAND_IO);
    expect(rd(vf, 'io', VIRTIO_PCI_STATUS, 1)).toBe(0);
    expect(G(vf, PCI_COMMAND, 2)).toBe(pciHeader.constants.COMMAND_IO.value);
  });

  it('the other VF’s guest view is untouched', () => {
    const { pf, vf } = withVfs('net', 2);
    const other = pf.vfs[1]!;
    setG(other, PCI_COMMAND, 2, PCI_COMMAND_IO);
    const devctl = vf.template.caps.pcie + PCI_EXP_DEVCTL;
    setCfg(vf, devctl, 2, PCI_EXP_DEVCTL_BCR_FLR);
    expect(G(other, PCI_COMMAND, 2)).toBe(PCI_COMMAND_IO);
  });
});
