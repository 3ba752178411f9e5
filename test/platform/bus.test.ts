/**
 * The machine as a guest (or the host) sees it: configuration mechanism #1 and ECAM, BAR decode
 * following the BARs' current values, and what answers where nothing is decoded. Expected values
 * come from the PCI/PCIe specifications, the reference's device ID table, <linux/virtio_pci.h>
 * offsets and QEMU's observed behaviour (noted where it is QEMU's), not from the code under test.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rd as read, rd64, remember, wr as write } from '../support/functions.js';
import { VmmrError } from '../../src/base/errors.js';
import { Machine } from '../../src/machine/machine.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import { PlatformBus, type DmaProvider } from '../../src/platform/bus.js';
import { AddressDecoder, type ViewName } from '../../src/platform/decode.js';
import { resolvePlatformOptions } from '../../src/platform/options.js';
import type { VirtioPf } from '../../src/mmr/pf.js';
import { resolvePf, type PfSpec } from '../support/qtest/vmmr.js';
import { TestRam } from '../support/ram.js';

const NET_PF = '0000:00:03.0';
const BLK_PF = '0001:02:00.0';
const TOPOLOGY: PfSpec[] = [
  { bdf: NET_PF, type: 'net', totalVfs: 4, firstVfOffset: 8 },
  { bdf: BLK_PF, type: 'block', totalVfs: 2 },
];
/** PCI 3.0 §3.2.2.3.2: enable bit, bus 23:16, device/function 15:8, register 7:0. */
const cf8 = (rid: number, offset: number): number => (0x80000000 | (rid << 8) | offset) >>> 0;
const ECAM = 0xb0000000;
/** Legacy register offsets, <linux/virtio_pci.h>. */
const VIRTIO_PCI_HOST_FEATURES = 0;
const VIRTIO_PCI_QUEUE_NUM = 12;
const VIRTIO_PCI_STATUS = 18;
const LEGACY_BLOCK = 0x1000;

interface Rig {
  machine: Machine;
  pf: VirtioPf;
  vf0: MmrVf;
  vf1: MmrVf;
  bus(view: ViewName, dma?: DmaProvider): PlatformBus;
}

function rig(): Rig {
  const machine = remember(new Machine({ pfs: TOPOLOGY.map(resolvePf) }));
  const pf = machine.findPf(NET_PF);
  write(pf, 'config', pf.sriov + 0x10, 2, 2); // NumVFs
  write(pf, 'config', pf.sriov + 0x08, 2, 0x9); // VF Enable | VF MSE
  return {
    machine,
    pf,
    vf0: machine.findVf('0000:00:04.0'),
    vf1: machine.findVf('0000:00:04.1'),
    bus: (view, dma) => new PlatformBus({ view, machine: () => machine, ...(dma ? { dma } : {}) }),
  };
}

function refusedWith(f: () => unknown, code: string): VmmrError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(VmmrError);
    expect((e as VmmrError).code).toBe(code);
    return e as VmmrError;
  }
  throw new Error(`expected a refusal with ${code}`);
}

/** Programs the guest view's BAR0 and BAR2 and sets Command (IO | MEMORY by default). */
function programGuest(vf: MmrVf, io: number, mem: number, command = 0x3): void {
  write(vf, 'guest-config', 0x10, 4, io);
  write(vf, 'guest-config', 0x18, 4, mem);
  write(vf, 'guest-config', 0x1c, 4, 0);
  write(vf, 'guest-config', 0x04, 2, command);
}

describe('configuration mechanism #1 (0xCF8/0xCFC)', () => {
  it('CONFIG_ADDRESS latches a 4-byte write and returns it on a 4-byte read, all 32 bits (QEMU pci_host.c)', () => {
    const bus = rig().bus('guest');
    bus.portWrite(0xcf8, 4, 0x80002003);
    expect(bus.portRead(0xcf8, 4)).toBe(0x80002003);
  });

  it('narrower accesses to 0xCF8..0xCFB are normal I/O: the latch keeps its value, reads are all-ones', () => {
    const bus = rig().bus('guest');
    bus.portWrite(0xcf8, 4, 0x80002000);
    bus.portWrite(0xcf8, 1, 0x12);
    bus.portWrite(0xcfa, 2, 0x3456);
    expect(bus.portRead(0xcf8, 4)).toBe(0x80002000);
    expect(bus.portRead(0xcf8, 1)).toBe(0xff);
    expect(bus.portRead(0xcfa, 2)).toBe(0xffff);
  });

  it('finds the guest view of a VF at its BDF: 1af4:1000, a transitional net device; PFs are not shown', () => {
    const { bus } = rig();
    const guest = bus('guest');
    guest.portWrite(0xcf8, 4, cf8(0x20, 0));
    expect(guest.portRead(0xcfc, 4)).toBe(0x10001af4);
    guest.portWrite(0xcf8, 4, cf8(0x18, 0));
    expect(guest.portRead(0xcfc, 4)).toBe(0xffffffff);
  });

  it('in the host view the PF is 1af4:1041 and its VFs read Vendor/Device ID 0xFFFF (SR-IOV)', () => {
    const host = rig().bus('host');
    host.portWrite(0xcf8, 4, cf8(0x18, 0));
    expect(host.portRead(0xcfc, 4)).toBe(0x10411af4);
    host.portWrite(0xcf8, 4, cf8(0x20, 0));
    expect(host.portRead(0xcfc, 4)).toBe(0xffffffff);
    host.portWrite(0xcf8, 4, cf8(0x20, 0x08));
    expect(host.portRead(0xcfc, 4) >>> 8).toBe(0x020000);
  });

  it('offset = (CONFIG_ADDRESS | port & 3) & 0xff: libqos puts the byte offset in CONFIG_ADDRESS', () => {
    const guest = rig().bus('guest');
    guest.portWrite(0xcf8, 4, cf8(0x20, 0x02));
    expect(guest.portRead(0xcfc, 2)).toBe(0x1000);
    guest.portWrite(0xcf8, 4, cf8(0x20, 0x00));
    expect(guest.portRead(0xcfe, 2)).toBe(0x1000);
    expect(guest.portRead(0xcfd, 1)).toBe(0x1a);
  });

  it('with the enable bit clear CONFIG_DATA reads all-ones and drops writes', () => {
    const { bus, vf0 } = rig();
    const guest = bus('guest');
    guest.portWrite(0xcf8, 4, (0x20 << 8) | 0x04);
    expect(guest.portRead(0xcfc, 2)).toBe(0xffff);
    guest.portWrite(0xcfc, 2, 0x1);
    expect(read(vf0, 'guest-config', 0x04, 2)).toBe(0);
  });

  it('a function nothing answers for reads all-ones (master abort) and drops writes', () => {
    const guest = rig().bus('guest');
    guest.portWrite(0xcf8, 4, cf8(0x22, 0x04)); // VF 2: not enabled
    expect(guest.portRead(0xcfc, 1)).toBe(0xff);
    expect(guest.portRead(0xcfc, 2)).toBe(0xffff);
    guest.portWrite(0xcfc, 2, 1);
  });

  it('writes go through the access layer to the view’s config space', () => {
    const { bus, vf0 } = rig();
    const guest = bus('guest');
    guest.portWrite(0xcf8, 4, cf8(0x20, 0x3c));
    guest.portWrite(0xcfc, 1, 0x0b);
    expect(read(vf0, 'guest-config', 0x3c, 1)).toBe(0x0b);
    expect(read(vf0, 'config', 0x3c, 1)).toBe(0);
  });

  it('refuses what one config access cannot be: unaligned, or across CONFIG_DATA', () => {
    const guest = rig().bus('guest');
    guest.portWrite(0xcf8, 4, cf8(0x20, 0));
    const e = refusedWith(() => guest.portRead(0xcfd, 2), 'VMMR_ERR_UNALIGNED');
    expect(e.message).toMatch(/0000:00:04\.0 guest-config offset 0x1 width 2/);
    expect(refusedWith(() => guest.portRead(0xcfe, 4), 'VMMR_ERR_OUT_OF_RANGE').message).toMatch(/straddles/);
    expect(refusedWith(() => guest.portRead(0xcfa, 4), 'VMMR_ERR_OUT_OF_RANGE').message).toMatch(/straddles/);
  });

  it('reaches PCI segment 0 only', () => {
    const { machine, bus } = rig();
    const blk = machine.findPf(BLK_PF);
    expect(read(blk, 'config', 0, 2)).toBe(0x1af4);
    const host = bus('host');
    host.portWrite(0xcf8, 4, cf8(0x0200, 0));
    expect(host.portRead(0xcfc, 4)).toBe(0xffffffff);
  });

  it('refuses ports outside 0x0..0xffff and widths other than 1, 2, 4', () => {
    const guest = rig().bus('guest');
    refusedWith(() => guest.portRead(0x10000, 1), 'VMMR_ERR_BAD_OFFSET');
    refusedWith(() => guest.portRead(0xfffe, 4), 'VMMR_ERR_BAD_OFFSET');
    refusedWith(() => guest.portRead(0x80, 3 as 1), 'VMMR_ERR_BAD_WIDTH');
  });
});

describe('ECAM (PCIe §7.2.2)', () => {
  it('address = base + bus << 20 | devfn << 12 | offset, 4 KiB per function', () => {
    const { bus, pf } = rig();
    const host = bus('host');
    expect(host.memoryRead(ECAM + (0x18 << 12), 4)).toBe(0x10411af4);
    // The extended space: the PF's first extended capability header at 0x100.
    expect(host.memoryRead(ECAM + (0x18 << 12) + 0x100, 4)).toBe(read(pf, 'config', 0x100, 4));
    expect(Number(host.memoryRead(ECAM + (0x18 << 12) + 0x100, 4)) & 0xffff).not.toBe(0);
  });

  it('the guest view has no extended capabilities; absent functions read all-ones', () => {
    const guest = rig().bus('guest');
    expect(guest.memoryRead(ECAM + (0x20 << 12), 4)).toBe(0x10001af4);
    expect(guest.memoryRead(ECAM + (0x20 << 12) + 0x100, 4)).toBe(0);
    expect(guest.memoryRead(ECAM + (0x30 << 12), 2)).toBe(0xffff);
    expect(guest.memoryRead(ECAM + (0x30 << 12), 8)).toBe(0xffffffffffffffffn);
  });

  it('writes through ECAM land in config space; an 8-byte config access is refused', () => {
    const { bus, vf0 } = rig();
    const guest = bus('guest');
    guest.memoryWrite(ECAM + (0x20 << 12) + 0x04, 2, 0x1);
    expect(read(vf0, 'guest-config', 0x04, 2)).toBe(1);
    refusedWith(() => guest.memoryRead(ECAM + (0x20 << 12), 8), 'VMMR_ERR_BAD_WIDTH');
  });

  it('sits where the platform options say', () => {
    const { machine } = rig();
    const map = resolvePlatformOptions({
      ecamBase: '0xe0000000',
      mem32: { base: '0xc0000000', size: '0x20000000' },
    });
    const guest = new PlatformBus({ view: 'guest', machine: () => machine, map });
    expect(guest.memoryRead(0xe0000000 + (0x20 << 12), 2)).toBe(0x1af4);
    expect(guest.memoryRead(ECAM + (0x20 << 12), 2)).toBe(0);
  });
});

describe('I/O BARs of the guest view', () => {
  it('decode at the programmed port while Command.IO is set; every access one I/O access of its width', () => {
    const { bus, vf0 } = rig();
    programGuest(vf0, 0xc000, 0xc0000000);
    const guest = bus('guest');
    guest.portWrite(0xc000 + VIRTIO_PCI_STATUS, 1, 0x1);
    expect(read(vf0, 'io', VIRTIO_PCI_STATUS, 1)).toBe(1);
    expect(guest.portRead(0xc000 + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(256);
    expect(guest.portRead(0xc000 + VIRTIO_PCI_HOST_FEATURES, 4)).toBe(read(vf0, 'io', 0, 4));
  });

  it('with Command.IO clear the ports are unassigned: all-ones, writes dropped (QEMU unassigned_io_ops)', () => {
    const { bus, vf0 } = rig();
    programGuest(vf0, 0xc000, 0xc0000000, 0x2);
    const guest = bus('guest');
    expect(guest.portRead(0xc000 + VIRTIO_PCI_STATUS, 1)).toBe(0xff);
    guest.portWrite(0xc000 + VIRTIO_PCI_STATUS, 1, 0x1);
    expect(vf0.device.getState().status).toBe(0);
  });

  it('follows a BAR reprogrammed through the access layer (as REST does it), and the core’s refusals', () => {
    const { bus, vf0 } = rig();
    programGuest(vf0, 0xc000, 0xc0000000);
    const guest = bus('guest');
    expect(guest.portRead(0xc000 + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(256);
    write(vf0, 'guest-config', 0x10, 4, 0xd040);
    expect(guest.portRead(0xc000 + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(0xffff);
    expect(guest.portRead(0xd040 + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(256);
    expect(refusedWith(() => guest.portRead(0xd040 + 0x12, 4), 'VMMR_ERR_UNALIGNED').message).toMatch(
      /io offset 0x12 width 4/,
    );
  });

  it('an access running from an unclaimed port into a BAR is refused', () => {
    const { bus, vf0 } = rig();
    programGuest(vf0, 0xc000, 0xc0000000);
    expect(refusedWith(() => bus('guest').portRead(0xbffe, 4), 'VMMR_ERR_OUT_OF_RANGE').message).toMatch(
      /straddles/,
    );
  });

  it('the address decoder caches claims and rebuilds them after any config write', () => {
    const { machine, vf0, vf1 } = rig();
    const decoder = new AddressDecoder('guest');
    expect(decoder.claimCount(machine)).toEqual({ io: 0, memory: 0 });
    programGuest(vf0, 0xc000, 0xc0000000);
    programGuest(vf1, 0xc040, 0xc0004000);
    expect(decoder.claimCount(machine)).toEqual({ io: 2, memory: 2 });
    expect(decoder.ioAt(machine, 0xc041)?.fn).toBe(vf1);
    expect(decoder.ioAt(machine, 0xc041)?.offset).toBe(1);
  });

  it('where two BARs overlap, the function enumerated first answers', () => {
    const { bus, vf0, vf1 } = rig();
    programGuest(vf0, 0xc000, 0xc0000000);
    programGuest(vf1, 0xc000, 0xc0004000);
    write(vf1, 'io', VIRTIO_PCI_STATUS, 1, 0x3);
    expect(bus('guest').portRead(0xc000 + VIRTIO_PCI_STATUS, 1)).toBe(0);
  });
});

describe('memory BARs', () => {
  it('guest view: the VF memory BAR passed through at the guest BAR2, while Command.Memory is set', () => {
    const { bus, vf0 } = rig();
    programGuest(vf0, 0xc000, 0xc0000000);
    const guest = bus('guest');
    expect(guest.memoryRead(0xc0000000 + LEGACY_BLOCK + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(256);
    expect(guest.memoryRead(0xc0000000 + LEGACY_BLOCK, 4)).toBe(read(vf0, 'io', 0, 4));
    write(vf0, 'guest-config', 0x04, 2, 0x1);
    expect(guest.memoryRead(0xc0000000 + LEGACY_BLOCK + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(0);
  });

  it('guest view: the host side’s VF MSE still gates the VF BAR (refused, naming why)', () => {
    const { bus, pf, vf0 } = rig();
    programGuest(vf0, 0xc000, 0xc0000000);
    write(pf, 'config', pf.sriov + 0x08, 2, 0x1); // VF Enable, VF MSE clear
    const e = refusedWith(
      () => bus('guest').memoryRead(0xc0000000 + LEGACY_BLOCK, 4),
      'VMMR_ERR_DECODE_DISABLED',
    );
    expect(e.message).toMatch(/VF MSE/);
  });

  it('host view: PF BAR0 by Command.Memory; VF k at the SR-IOV VF BAR base + k × per-VF size', () => {
    const { bus, pf, vf1 } = rig();
    write(pf, 'config', 0x10, 4, 0xc0000000);
    write(pf, 'config', 0x14, 4, 0);
    write(pf, 'config', pf.sriov + 0x24 + 8, 4, 0xc1000000);
    write(pf, 'config', pf.sriov + 0x24 + 12, 4, 0);
    const host = bus('host');
    expect(host.memoryRead(0xc0000000, 4)).toBe(0);
    write(pf, 'config', 0x04, 2, 0x2);
    expect(host.memoryRead(0xc0000000 + 0x14, 1)).toBe(read(pf, 'bar0', 0x14, 1));
    const perVf = pf.vfBarSize();
    write(vf1, 'bar2', LEGACY_BLOCK + VIRTIO_PCI_STATUS, 1, 0x1);
    expect(host.memoryRead(0xc1000000 + perVf + LEGACY_BLOCK + VIRTIO_PCI_STATUS, 1)).toBe(1);
    // Beyond NumVFs × size nothing answers: unassigned memory.
    expect(host.memoryRead(0xc1000000 + 2 * perVf + LEGACY_BLOCK, 4)).toBe(0);
  });

  it('an 8-byte access to a BAR is delivered whole', () => {
    const { bus, vf0 } = rig();
    programGuest(vf0, 0xc000, 0xc0000000);
    const guest = bus('guest');
    guest.memoryWrite(0xc0000000 + 0x20, 8, 0x1122334455667788n);
    expect(guest.memoryRead(0xc0000000 + 0x20, 8)).toBe(rd64(vf0, 'bar2', 0x20));
    expect(guest.memoryRead(0xc0000000 + 0x20, 8)).toBe(0x1122334455667788n);
  });

  it('refuses an access that runs past a BAR or from RAM into one', () => {
    const { bus, vf0 } = rig();
    programGuest(vf0, 0xc000, 0xc0000000);
    const guest = bus('guest');
    // Inside a BAR an aligned access cannot cross its end (BARs are powers of two): the core
    // refuses the unaligned one that would.
    refusedWith(() => guest.memoryRead(0xc0000000 + vf0.barSize() - 2, 4), 'VMMR_ERR_UNALIGNED');
    expect(refusedWith(() => guest.memoryRead(0xc0000000 - 2, 4), 'VMMR_ERR_OUT_OF_RANGE').message).toMatch(
      /straddles/,
    );
  });
});

describe('memory outside BARs: the DMA space', () => {
  it('without one, reads return 0 and writes are dropped (QEMU unassigned memory)', () => {
    const guest = rig().bus('guest');
    guest.memoryWrite(0x1000, 4, 0x12345678);
    expect(guest.memoryRead(0x1000, 4)).toBe(0);
    expect(guest.memoryRead(0x1000, 8)).toBe(0n);
    expect([...guest.readBytes(0x1000, 4)]).toEqual([0, 0, 0, 0]);
  });

  it('with one, values are little-endian bytes in it; the provider is asked with the view', () => {
    const ram = new TestRam(1 << 20);
    const asked: ViewName[] = [];
    const guest = rig().bus('guest', { spaceFor: (view) => (asked.push(view), ram) });
    guest.memoryWrite(0x1000, 4, 0x12345678);
    guest.memoryWrite(0x1008, 8, 0x0102030405060708n);
    expect(ram.readU32(0x1000)).toBe(0x12345678);
    expect([...guest.readBytes(0x1000, 4)]).toEqual([0x78, 0x56, 0x34, 0x12]);
    expect(guest.memoryRead(0x1008, 8)).toBe(0x0102030405060708n);
    expect(asked.every((v) => v === 'guest')).toBe(true);
  });

  it('pages the space does not map read 0 and drop writes; a full space is VMMR_ERR_LIMIT', () => {
    const ram = new TestRam(1 << 20, [[0x2000, 0x3000]], 2);
    const guest = rig().bus('guest', { spaceFor: () => ram });
    guest.writeBytes(0x1ffe, new Uint8Array([1, 2, 3, 4]));
    expect([...guest.readBytes(0x1ffe, 4)]).toEqual([1, 2, 0, 0]);
    guest.memoryWrite(0x5000, 1, 1);
    refusedWith(() => guest.memoryWrite(0x9000, 1, 1), 'VMMR_ERR_LIMIT');
  });

  it('bulk copies across RAM and a BAR: RAM copied whole, the BAR read in aligned pieces of at most 4 bytes', () => {
    const { bus, vf0 } = rig();
    programGuest(vf0, 0xc000, 0xd0000000);
    const ram = new TestRam(0xd0000000);
    const guest = bus('guest', { spaceFor: () => ram });
    ram.write(0xd0000000 - 4, new Uint8Array([9, 8, 7, 6]), 0, 4);
    // The BAR starts with the common cfg's device_feature_select and device_feature (4 bytes
    // each): two 4-byte pieces, which the strict policy accepts.
    const across = new DataView(guest.readBytes(0xd0000000 - 4, 12).buffer);
    expect(across.getUint32(0, true)).toBe(0x06070809);
    expect(across.getUint32(4, true)).toBe(read(vf0, 'bar2', 0, 4));
    expect(across.getUint32(8, true)).toBe(read(vf0, 'bar2', 4, 4));
    // The legacy block's HOST_FEATURES and GUEST_FEATURES likewise.
    write(vf0, 'bar2', LEGACY_BLOCK + 4, 4, 0x20);
    const legacy = new DataView(guest.readBytes(0xd0000000 + LEGACY_BLOCK, 8).buffer);
    expect(legacy.getUint32(0, true)).toBe(read(vf0, 'io', 0, 4));
    expect(legacy.getUint32(4, true)).toBe(0x20);
    // A piece the strict policy refuses stops the copy with the core's refusal.
    refusedWith(() => guest.readBytes(0xd0000000 + LEGACY_BLOCK + 16, 4), 'VMMR_ERR_WIDTH_MISMATCH');
  });

  it('follows a machine swapped under it (a service reset)', () => {
    let machine = rig().machine;
    const guest = new PlatformBus({ view: 'guest', machine: () => machine });
    const other = rig();
    programGuest(other.vf0, 0xc000, 0xc0000000);
    expect(guest.portRead(0xc000 + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(0xffff);
    machine = other.machine;
    expect(guest.portRead(0xc000 + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(256);
  });
});

describe('decode updates after the view’s own config writes', () => {
  it('match a full rebuild whatever BARs and Command bits a guest writes (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            vf: fc.integer({ min: 0, max: 1 }),
            register: fc.constantFrom(0x04, 0x10, 0x18, 0x1c),
            value: fc.oneof(
              fc.constantFrom(0, 1, 2, 3, 0xc000, 0xc040, 0xc020, 0xffffffff, 0xc0000000, 0xc0004000),
              fc.integer({ min: 0, max: 0xffffffff }),
            ),
          }),
          { maxLength: 25 },
        ),
        (ops) => {
          const { machine, vf0, vf1 } = rig();
          const incremental = new AddressDecoder('guest');
          const probes = [0xc000, 0xc00c, 0xc020, 0xc03f, 0xc040, 0xc07f, 0xffc0];
          const memProbes = [0xc0000000, 0xc0001000, 0xc0004000, 0xc0007ffc, 0xffffc000];
          const same = (): void => {
            const fresh = new AddressDecoder('guest');
            for (const p of probes) {
              const a = incremental.ioAt(machine, p);
              const b = fresh.ioAt(machine, p);
              expect([a?.fn.bdf, a?.offset]).toEqual([b?.fn.bdf, b?.offset]);
            }
            for (const p of memProbes) {
              const a = incremental.memoryAt(machine, p);
              const b = fresh.memoryAt(machine, p);
              expect([a?.fn.bdf, a?.offset]).toEqual([b?.fn.bdf, b?.offset]);
            }
          };
          same();
          for (const op of ops) {
            const vf = op.vf === 0 ? vf0 : vf1;
            const before = machine.events.configWrites;
            const width = op.register === 0x04 ? 2 : 4;
            write(vf, 'guest-config', op.register, width, width === 2 ? op.value & 0xffff : op.value);
            incremental.afterConfigWrite(machine, vf, before);
            same();
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('host view: a PF enabling VFs through ECAM brings its VF BARs into decode', () => {
    const machine = remember(new Machine({ pfs: TOPOLOGY.map(resolvePf) }));
    const pf = machine.findPf(NET_PF);
    const host = new PlatformBus({ view: 'host', machine: () => machine });
    // The SR-IOV capability is extended config space: ECAM reaches it, 0xCF8/0xCFC do not.
    const ecam = (offset: number): number => ECAM + (0x18 << 12) + offset;
    host.memoryWrite(ecam(pf.sriov + 0x24 + 8), 4, 0xd0000000);
    host.memoryWrite(ecam(pf.sriov + 0x10), 2, 2);
    expect(host.memoryRead(0xd0000000 + LEGACY_BLOCK + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(0);
    host.memoryWrite(ecam(pf.sriov + 0x08), 2, 0x9);
    expect(host.memoryRead(0xd0000000 + pf.vfBarSize() + LEGACY_BLOCK + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(256);
    host.memoryWrite(ecam(pf.sriov + 0x08), 2, 0x0);
    expect(host.memoryRead(0xd0000000 + LEGACY_BLOCK + VIRTIO_PCI_QUEUE_NUM, 2)).toBe(0);
  });
});
