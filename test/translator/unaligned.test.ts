/**
 * Unaligned I/O accesses to the guest view's BAR0. QEMU's memory core cuts them into naturally
 * aligned pieces, in ascending order (system/physmem.c flatview_read_continue /
 * flatview_write_continue with memory_access_size); the compat policy does the same, each piece
 * one MMIO access of its own width. The strict policy refuses them: they could not be one MMIO
 * access of the same width.
 */
import { describe, expect, it } from 'vitest';
import type { MmrVf } from '../../src/mmr/vf.js';
import { alignedPieces } from '../../src/translator/guest-view.js';
import { rd, record, refusal, viewOf, withVfs, wr } from '../support/functions.js';

// <linux/virtio_pci.h>
const VIRTIO_PCI_GUEST_FEATURES = 4;
const VIRTIO_PCI_QUEUE_SEL = 14;
const VIRTIO_PCI_STATUS = 18;
const VIRTIO_PCI_ISR = 19;
const VIRTIO_PCI_CONFIG_OFF_NO_MSIX = 20;
const BLOCK = 0x1000;

const io = (vf: MmrVf, port: number, w: number): number => rd(vf, 'io', port, w);
const setIo = (vf: MmrVf, port: number, w: number, v: number): void => wr(vf, 'io', port, w, v);

function guest(policy: 'strict' | 'compat'): MmrVf {
  const { vf } = withVfs('net', 1, { policy });
  wr(vf, 'guest-config', 0x04, 2, 0x0001);
  return vf;
}

describe("the pieces are QEMU's memory_access_size cuts", () => {
  it('by alignment first, then by the bytes left', () => {
    expect(alignedPieces(2, 4)).toEqual([
      { port: 2, width: 2 },
      { port: 4, width: 2 },
    ]);
    expect(alignedPieces(1, 4)).toEqual([
      { port: 1, width: 1 },
      { port: 2, width: 2 },
      { port: 4, width: 1 },
    ]);
    expect(alignedPieces(3, 4)).toEqual([
      { port: 3, width: 1 },
      { port: 4, width: 2 },
      { port: 6, width: 1 },
    ]);
    expect(alignedPieces(19, 2)).toEqual([
      { port: 19, width: 1 },
      { port: 20, width: 1 },
    ]);
  });
});

describe('compat: an unaligned I/O access is its aligned pieces, in order', () => {
  it('a 4-byte read at port 2 is 2 bytes at 2 (no register: all-ones) and 2 bytes at 4 (GUEST_FEATURES)', () => {
    const vf = guest('compat');
    setIo(vf, VIRTIO_PCI_GUEST_FEATURES, 4, 0x0800_0020);
    const view = viewOf(vf);
    view.enableTrace(8);
    expect(io(vf, 2, 4)).toBe((0x0020 * 0x10000 + 0xffff) >>> 0);
    expect(view.trace!.list().map((t) => [t.op, t.port, t.width, t.offset, t.outcome])).toEqual([
      ['read', 2, 2, BLOCK + 2, 'ok'],
      ['read', 4, 2, BLOCK + 4, 'ok'],
    ]);
  });

  it('a 2-byte read at 19 reads the ISR (and clears it) and the first device-config byte', () => {
    const vf = guest('compat');
    vf.device.raiseQueueInterrupt(0);
    const mac0 = rd(vf, 'bar2', BLOCK + VIRTIO_PCI_CONFIG_OFF_NO_MSIX, 1);
    expect(io(vf, VIRTIO_PCI_ISR, 2)).toBe(0x01 + mac0 * 0x100);
    expect(vf.device.isr).toBe(0);
  });

  it('a 4-byte write at 17 is 1 byte at 17 (ignored), STATUS as 2 bytes at 18, a config byte at 20', () => {
    const vf = guest('compat');
    setIo(vf, 17, 4, 0x06_0003_ff);
    expect(io(vf, VIRTIO_PCI_STATUS, 1)).toBe(0x03);
    expect(io(vf, VIRTIO_PCI_CONFIG_OFF_NO_MSIX, 1)).toBe(0x06);
  });

  it('a 4-byte write at 14 selects a queue, then notifies through the notify region', () => {
    const { machine, vf } = withVfs('net', 1, { policy: 'compat' });
    wr(vf, 'guest-config', 0x04, 2, 0x0001);
    const events = record(machine);
    setIo(vf, VIRTIO_PCI_QUEUE_SEL, 4, 0x0001_0002);
    expect(io(vf, VIRTIO_PCI_QUEUE_SEL, 2)).toBe(2);
    expect(events).toEqual([{ type: 'notify', bdf: vf.bdf, queue: 1, via: 'notify-region' }]);
  });

  it('I/O decode and the BAR0 length still apply to the whole access', () => {
    const vf = guest('compat');
    refusal(() => io(vf, viewOf(vf).ioLength - 2, 4), 'VMMR_ERR_OUT_OF_RANGE');
    wr(vf, 'guest-config', 0x04, 2, 0);
    refusal(() => io(vf, 2, 4), 'VMMR_ERR_IO_DISABLED');
  });
});

describe('strict: an unaligned I/O access is refused', () => {
  for (const [port, width] of [
    [2, 4],
    [1, 2],
    [19, 2],
  ] as const) {
    it(`${width} bytes at port ${port}: VMMR_ERR_UNALIGNED, nothing reaches the device`, () => {
      const vf = guest('strict');
      vf.device.raiseQueueInterrupt(0);
      const e = refusal(() => io(vf, port, width), 'VMMR_ERR_UNALIGNED');
      expect(e.message).toMatch(new RegExp(`io offset 0x${port.toString(16)} width ${width}`));
      refusal(() => setIo(vf, port, width, 0), 'VMMR_ERR_UNALIGNED');
      expect(vf.device.isr).toBe(1);
    });
  }
});
