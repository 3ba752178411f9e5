/**
 * SR-IOV (PCIe §9.3.3, behaviour as QEMU hw/pci/pcie_sriov.c and openvmm), ARI, the MMR locator
 * (docs/device-model.md "The MMR locator") and the VF lifecycle as the machine sees it.
 */
import { describe, expect, it } from 'vitest';
import { sriovCap } from '../../src/spec/index.js';
import {
  IDS,
  TYPES,
  cfg,
  enableVfs,
  extCapsOf,
  machineOf,
  record,
  rd,
  refusal,
  setCfg,
  singlePf,
  withVfs,
} from '../support/functions.js';

const S = sriovCap.registers;
const ECAP_ARI = 0x000e;
const ECAP_SRIOV = 0x0010;
const ECAP_VNDR = 0x000b;
const VFE = 0x1;
const MSE = 0x8;
const ARI_HIERARCHY = 0x10;
// SR-IOV §9.3.3.13: VF BARn at +0x24 + 4n; the 64-bit VF BAR is VF BAR2/3 (vmmr decision: BAR2)
const VF_BAR_LO = 0x24 + 2 * 4;
const VF_BAR_HI = VF_BAR_LO + 4;

describe('SR-IOV capability registers', () => {
  it('PF extended list: ARI then SR-IOV (version 1); VF extended list: only the MMR locator', () => {
    const { pf, vf } = withVfs('net');
    const pfExt = extCapsOf(pf);
    expect(pfExt.map((c) => [c.id, c.version])).toEqual([
      [ECAP_ARI, 1],
      [ECAP_SRIOV, 1],
    ]);
    expect(pfExt[1]!.offset).toBe(pf.sriov);
    const vfExt = extCapsOf(vf);
    expect(vfExt.map((c) => c.id)).toEqual([ECAP_VNDR]);
    expect(vfExt[0]!.offset).toBe(pf.vfLocator);
  });

  it('reset values: InitialVFs/TotalVFs/offset/stride from the topology, NumVFs 0, page sizes 0x553 / 4 KiB', () => {
    const machine = machineOf([
      { bdf: '0000:05:00.0', type: 'block', totalVfs: 100, initialVfs: 60, firstVfOffset: 8, vfStride: 2 },
    ]);
    const pf = machine.findPf('05:00.0');
    const s = pf.sriov;
    expect(cfg(pf, s + 0x04, 4)).toBe(0); // capabilities: no VF migration
    expect(cfg(pf, s + 0x08, 2)).toBe(0); // control
    expect(cfg(pf, s + 0x0a, 2)).toBe(0); // status
    expect(cfg(pf, s + 0x0c, 2)).toBe(60);
    expect(cfg(pf, s + 0x0e, 2)).toBe(100);
    expect(cfg(pf, s + 0x10, 2)).toBe(0);
    expect(cfg(pf, s + 0x12, 1)).toBe(0); // function dependency link: PF function number
    expect(cfg(pf, s + 0x14, 2)).toBe(8);
    expect(cfg(pf, s + 0x16, 2)).toBe(2);
    expect(cfg(pf, s + 0x1a, 2)).toBe(IDS.block.mmr);
    expect(cfg(pf, s + 0x1c, 4)).toBe(0x553);
    expect(cfg(pf, s + 0x20, 4)).toBe(0x1);
    // read-only fields ignore writes
    for (const off of [0x0c, 0x0e, 0x14, 0x16, 0x1a]) setCfg(pf, s + off, 2, 0x1234);
    setCfg(pf, s + 0x1c, 4, 0);
    expect([cfg(pf, s + 0x0c, 2), cfg(pf, s + 0x0e, 2), cfg(pf, s + 0x14, 2), cfg(pf, s + 0x16, 2)]).toEqual([
      60, 100, 8, 2,
    ]);
    expect(cfg(pf, s + 0x1a, 2)).toBe(IDS.block.mmr);
    expect(cfg(pf, s + 0x1c, 4)).toBe(0x553);
  });

  for (const type of TYPES) {
    it(`${type}: VF Device ID is the MMR ID 0x${IDS[type].mmr.toString(16)}`, () => {
      const { pf } = singlePf(type);
      expect(cfg(pf, pf.sriov + S.VF_DID.offset, 2)).toBe(IDS[type].mmr);
    });
  }

  it('Control: VF Enable, VF MSE and ARI Capable Hierarchy are writable; VF Migration and VF interrupt are not', () => {
    const { pf } = singlePf('net');
    setCfg(pf, pf.sriov + 0x08, 2, 0xffff);
    expect(cfg(pf, pf.sriov + 0x08, 2)).toBe(VFE | MSE | ARI_HIERARCHY);
  });
});

describe('NumVFs', () => {
  it('takes values up to TotalVFs while VF Enable is clear', () => {
    const { pf } = singlePf('net'); // TotalVFs 16
    setCfg(pf, pf.sriov + 0x10, 2, 16);
    expect(pf.numVfs).toBe(16);
    setCfg(pf, pf.sriov + 0x10, 2, 3);
    expect(pf.numVfs).toBe(3);
  });

  it('strict: NumVFs > TotalVFs is refused and leaves NumVFs unchanged', () => {
    const { pf } = singlePf('net');
    setCfg(pf, pf.sriov + 0x10, 2, 5);
    refusal(() => setCfg(pf, pf.sriov + 0x10, 2, 17), 'VMMR_ERR_SRIOV_RANGE', 'SR-IOV NumVFs');
    refusal(() => setCfg(pf, pf.sriov + 0x10, 2, 0xffff), 'VMMR_ERR_SRIOV_RANGE');
    // a byte write that would make it 0x0105 too
    refusal(() => setCfg(pf, pf.sriov + 0x11, 1, 0x01), 'VMMR_ERR_SRIOV_RANGE');
    expect(pf.numVfs).toBe(5);
  });

  it('strict: NumVFs is read-only while VF Enable is set (same value accepted)', () => {
    const { pf } = withVfs('net', 4);
    refusal(() => setCfg(pf, pf.sriov + 0x10, 2, 2), 'VMMR_ERR_SRIOV_STATE', 'SR-IOV NumVFs');
    setCfg(pf, pf.sriov + 0x10, 2, 4);
    expect(pf.numVfs).toBe(4);
    expect(pf.vfs).toHaveLength(4);
    // a dword write at NumVFs that also changes the function dependency link byte (RO) is fine
    setCfg(pf, pf.sriov + 0x10, 4, 0x00ff0004);
    expect(pf.numVfs).toBe(4);
  });

  it('compat: NumVFs above TotalVFs is stored (test/sriov/num-vfs.test.ts); a change while enabled is dropped', () => {
    const { pf } = singlePf('net', { policy: 'compat' });
    setCfg(pf, pf.sriov + 0x10, 2, 17);
    expect(pf.numVfs).toBe(17);
    enableVfs(pf, 4);
    setCfg(pf, pf.sriov + 0x10, 2, 2);
    expect(pf.numVfs).toBe(4);
    expect(pf.vfs).toHaveLength(4);
  });
});

describe('VF Enable', () => {
  it('creates NumVFs VFs at PF + First VF Offset + n * VF Stride and announces them', () => {
    const machine = machineOf([
      { bdf: '0000:05:00.0', type: 'net', totalVfs: 64, firstVfOffset: 8, vfStride: 2 },
    ]);
    const pf = machine.findPf('0000:05:00.0');
    const events = record(machine);
    enableVfs(pf, 5);
    // routing ID 0x0500 + 8 + 2n: 05:01.0, 05:01.2, 05:01.4, 05:01.6, 05:02.0
    const expected = ['0000:05:01.0', '0000:05:01.2', '0000:05:01.4', '0000:05:01.6', '0000:05:02.0'];
    expect(pf.vfs.map((v) => v.bdf)).toEqual(expected);
    expected.forEach((bdf, n) => {
      const vf = machine.findVf(bdf);
      expect(vf.index).toBe(n);
      expect(vf.pf).toBe(pf);
    });
    expect(events).toEqual([
      { type: 'vf-enable', bdf: pf.bdf, numVfs: 5, first: expected[0], last: expected[4] },
    ]);
    // between strides: nobody; past NumVFs but within TotalVFs: a disabled VF slot
    refusal(() => machine.find('0000:05:01.1'), 'VMMR_ERR_NO_FUNCTION');
    refusal(() => machine.find('0000:05:02.2'), 'VMMR_ERR_VF_DISABLED');
    expect([...machine.functions()].map((f) => f.bdf)).toEqual([pf.bdf, ...expected]);
  });

  it('VF routing IDs cross bus boundaries as Linux computes them (bus = PF bus + (devfn >> 8))', () => {
    const machine = machineOf([{ bdf: '0000:01:00.0', type: 'net', totalVfs: 300 }]);
    const pf = machine.findPf('01:00.0');
    enableVfs(pf, 300);
    expect(pf.vfs[254]!.bdf).toBe('0000:01:1f.7');
    expect(pf.vfs[255]!.bdf).toBe('0000:02:00.0');
    expect(pf.vfs[299]!.bdf).toBe('0000:02:05.4');
    expect(machine.find('02:05.4')).toBe(pf.vfs[299]);
  });

  it('clearing VF Enable removes the VFs; enabling again gives fresh VFs', () => {
    const { machine, pf } = withVfs('net', 3);
    const vf = pf.vfs[2]!;
    vf.device.writeStatus(3, 'legacy');
    const events = record(machine);
    setCfg(pf, pf.sriov + 0x08, 2, 0);
    expect(pf.vfs).toEqual([]);
    refusal(() => machine.find(vf.bdf), 'VMMR_ERR_VF_DISABLED');
    expect(events).toEqual([{ type: 'vf-disable', bdf: pf.bdf, numVfs: 3 }]);
    setCfg(pf, pf.sriov + 0x08, 2, VFE | MSE);
    const again = machine.findVf(vf.bdf);
    expect(again).not.toBe(vf);
    expect(again.device.status).toBe(0);
    expect(again.pristine).toBe(true);
  });

  it('VF Enable with NumVFs 0 creates no VF', () => {
    const { machine, pf } = singlePf('net');
    const events = record(machine);
    setCfg(pf, pf.sriov + 0x08, 2, VFE);
    expect(pf.vfs).toEqual([]);
    expect(events).toEqual([{ type: 'vf-enable', bdf: pf.bdf, numVfs: 0 }]);
  });

  it('the process-wide VF limit refuses an enable that would exceed it', () => {
    const machine = machineOf(
      [
        { bdf: '0000:01:00.0', type: 'net', totalVfs: 8 },
        { bdf: '0000:02:00.0', type: 'block', totalVfs: 8 },
      ],
      10,
    );
    enableVfs(machine.findPf('01:00.0'), 8);
    const blk = machine.findPf('02:00.0');
    setCfg(blk, blk.sriov + 0x10, 2, 3);
    refusal(() => setCfg(blk, blk.sriov + 0x08, 2, VFE), 'VMMR_ERR_LIMIT');
    expect(blk.vfEnabled).toBe(false);
    setCfg(blk, blk.sriov + 0x10, 2, 2);
    setCfg(blk, blk.sriov + 0x08, 2, VFE);
    expect(machine.enabledVfCount()).toBe(10);
  });
});

describe('VF memory BAR (SR-IOV VF BAR2/3) and VF MSE', () => {
  it('VF MSE gates the decode of every VF BAR', () => {
    const { pf } = singlePf('net');
    enableVfs(pf, 2, false);
    const vf = pf.vfs[1]!;
    refusal(() => rd(vf, 'bar2', 0x12, 2), 'VMMR_ERR_DECODE_DISABLED');
    setCfg(pf, pf.sriov + 0x08, 2, VFE | MSE);
    expect(rd(vf, 'bar2', 0x12, 2)).toBe(IDS.net.queues);
    setCfg(pf, pf.sriov + 0x08, 2, VFE);
    refusal(() => rd(vf, 'bar2', 0x12, 2), 'VMMR_ERR_DECODE_DISABLED');
    // the PF's own BAR is governed by its Command register, not by VF MSE
    refusal(() => rd(pf, 'bar0', 0x12, 2), 'VMMR_ERR_DECODE_DISABLED');
  });

  it('VF BAR0/1 and 4/5 are not implemented; BAR3 is the upper half of BAR2', () => {
    const { vf } = withVfs('net');
    refusal(() => rd(vf, 'bar0', 0, 4), 'VMMR_ERR_BAD_SPACE');
    refusal(() => rd(vf, 'bar3', 0, 4), 'VMMR_ERR_BAD_SPACE');
    refusal(() => rd(vf, 'bar4', 0, 4), 'VMMR_ERR_BAD_SPACE');
  });

  it('sizing probe: 64-bit non-prefetchable, 16 KiB per VF at the default 4 KiB System Page Size', () => {
    const { pf } = singlePf('net');
    const s = pf.sriov;
    expect(cfg(pf, s + VF_BAR_LO, 4)).toBe(0x4);
    for (let i = 0; i < 6; i++) setCfg(pf, s + 0x24 + 4 * i, 4, 0xffffffff);
    expect(cfg(pf, s + VF_BAR_LO, 4)).toBe(0xffffc004);
    expect(cfg(pf, s + VF_BAR_HI, 4)).toBe(0xffffffff);
    for (const i of [0, 1, 4, 5]) expect(cfg(pf, s + 0x24 + 4 * i, 4)).toBe(0);
  });

  it.each([
    [0x1, 0x4000],
    [0x2, 0x4000], // 8 KiB pages: the 16 KiB layout is already a multiple
    [0x10, 0x10000], // 64 KiB pages
    [0x100, 0x100000], // 1 MiB pages
  ])('System Page Size 0x%s: per-VF BAR size 0x%s, VF n at base + n * size', (pageBits, size) => {
    const { pf } = singlePf('net');
    const s = pf.sriov;
    setCfg(pf, s + 0x20, 4, pageBits);
    expect(cfg(pf, s + 0x20, 4)).toBe(pageBits);
    setCfg(pf, s + VF_BAR_LO, 4, 0xffffffff);
    expect(cfg(pf, s + VF_BAR_LO, 4)).toBe(((~(size - 1) & ~0xf) | 0x4) >>> 0);
    setCfg(pf, s + VF_BAR_LO, 4, 0x8000_0000);
    setCfg(pf, s + VF_BAR_HI, 4, 0x2);
    enableVfs(pf, 3);
    for (const vf of pf.vfs) {
      expect(vf.barSize()).toBe(size);
      expect(vf.barAddress()).toBe(0x2_8000_0000 + vf.index * size);
    }
  });

  it('after a System Page Size change the VF BAR takes addresses aligned to the new size', () => {
    const { pf } = singlePf('net');
    const s = pf.sriov;
    setCfg(pf, s + VF_BAR_LO, 4, 0x8000_4000); // 16 KiB-aligned, fine at 4 KiB pages
    expect(cfg(pf, s + VF_BAR_LO, 4)).toBe(0x8000_4004);
    setCfg(pf, s + 0x20, 4, 0x10); // 64 KiB pages: address bits 15:0 become read-only zero
    expect(cfg(pf, s + VF_BAR_LO, 4) & 0xffff).toBe(0x4);
    setCfg(pf, s + VF_BAR_LO, 4, 0x8001_0000);
    expect(cfg(pf, s + VF_BAR_LO, 4)).toBe(0x8001_0004);
    enableVfs(pf, 2);
    expect(pf.vfs[1]!.barAddress()).toBe(0x8001_0000 + 0x10000);
  });

  it('compat: an unsupported System Page Size is dropped silently', () => {
    const { pf } = singlePf('net', { policy: 'compat' });
    setCfg(pf, pf.sriov + 0x20, 4, 0x4);
    expect(cfg(pf, pf.sriov + 0x20, 4)).toBe(1);
  });

  it('System Page Size: one supported page size only, and never while VF Enable is set (strict)', () => {
    const { pf } = singlePf('net');
    const s = pf.sriov;
    refusal(() => setCfg(pf, s + 0x20, 4, 0x3), 'VMMR_ERR_BAD_VALUE', 'SR-IOV System Page Size');
    refusal(() => setCfg(pf, s + 0x20, 4, 0x4), 'VMMR_ERR_BAD_VALUE');
    refusal(() => setCfg(pf, s + 0x20, 4, 0), 'VMMR_ERR_BAD_VALUE');
    expect(cfg(pf, s + 0x20, 4)).toBe(1);
    enableVfs(pf, 1);
    refusal(() => setCfg(pf, s + 0x20, 4, 0x10), 'VMMR_ERR_SRIOV_STATE');
    expect(cfg(pf, s + 0x20, 4)).toBe(1);
  });

  it('a PF FLR brings the System Page Size and the VF BAR size back to their reset values', () => {
    const { pf } = singlePf('net');
    const s = pf.sriov;
    setCfg(pf, s + 0x20, 4, 0x10);
    setCfg(pf, pf.template.caps.pcie + 0x08, 2, 0x8000);
    expect(cfg(pf, s + 0x20, 4)).toBe(1);
    setCfg(pf, s + VF_BAR_LO, 4, 0xffffffff);
    expect(cfg(pf, s + VF_BAR_LO, 4)).toBe(0xffffc004);
  });
});

describe('ARI capability', () => {
  it('is present with Next Function Number 0 and read-only control', () => {
    const { pf } = singlePf('net');
    const ari = extCapsOf(pf).find((c) => c.id === ECAP_ARI)!;
    expect(cfg(pf, ari.offset + 4, 2)).toBe(0);
    setCfg(pf, ari.offset + 4, 4, 0xffffffff);
    expect(cfg(pf, ari.offset + 4, 4)).toBe(0);
  });
});

describe('MMR locator (docs/device-model.md)', () => {
  /** Legacy block length: 24-byte header + device config, a power of two >= 32 (docs/device-model.md "The MMR locator"). */
  const legacyLength: Record<(typeof TYPES)[number], number> = {
    net: 64, // 24 + 12
    block: 64, // 24 + 36
    balloon: 32, // 24 + 8
    console: 64, // 24 + 12
    scsi: 64, // 24 + 36
    rng: 32, // 24
    '9p': 64, // 24 + 34
  };

  for (const type of TYPES) {
    it(`${type}: VSEC ID 10, rev 0, length 0x1c; bar 2, offset 0x1000, length ${legacyLength[type]}`, () => {
      const { pf, vf } = withVfs(type);
      const at = pf.vfLocator;
      expect(at).toBe(0x100);
      const header = cfg(vf, at, 4);
      expect(header & 0xffff).toBe(ECAP_VNDR);
      expect((header >>> 16) & 0xf).toBe(1);
      expect(header >>> 20).toBe(0); // last capability
      const vsec = cfg(vf, at + 4, 4);
      expect(vsec & 0xffff).toBe(10); // cfg_type VIRTIO_PCI_CAP_LEGACY_MMR_CFG
      expect((vsec >>> 16) & 0xf).toBe(0);
      expect(vsec >>> 20).toBe(0x1c);
      expect(cfg(vf, at + 8, 1)).toBe(2);
      expect(cfg(vf, at + 9, 1)).toBe(0);
      expect(cfg(vf, at + 0x0a, 2)).toBe(0);
      expect(cfg(vf, at + 0x0c, 4)).toBe(0x1000);
      expect(cfg(vf, at + 0x10, 4)).toBe(0);
      const length = cfg(vf, at + 0x14, 4);
      expect(cfg(vf, at + 0x18, 4)).toBe(0);
      expect(length).toBe(legacyLength[type]);
      expect(length & (length - 1)).toBe(0);
      // the legacy block sits there: HOST_FEATURES at BAR2 + 0x1000 has ANY_LAYOUT (bit 27)
      expect((rd(vf, 'bar2', 0x1000, 4) >>> 27) & 1).toBe(1);
    });
  }

  it('is read-only and identical on every VF', () => {
    const { pf } = withVfs('net', 3);
    const at = pf.vfLocator;
    const image = (n: number): number[] =>
      Array.from({ length: 7 }, (_, i) => cfg(pf.vfs[n]!, at + 4 * i, 4));
    const before = image(0);
    for (let i = 0; i < 7; i++) setCfg(pf.vfs[0]!, at + 4 * i, 4, 0xffffffff);
    expect(image(0)).toEqual(before);
    expect(image(1)).toEqual(before);
    expect(image(2)).toEqual(before);
  });
});

describe('VF objects after VF Enable is cleared', () => {
  it('a kept reference to a removed VF is refused in every space, as its BDF is', () => {
    const { pf } = withVfs('net', 2);
    const stale = pf.vfs[0]!;
    setCfg(pf, pf.sriov + 0x08, 2, 0);
    expect(stale.live).toBe(false);
    refusal(() => rd(stale, 'config', 0x04, 2), 'VMMR_ERR_VF_DISABLED');
    refusal(() => setCfg(stale, 0x04, 2, 0x4), 'VMMR_ERR_VF_DISABLED');
    refusal(() => rd(stale, 'guest-config', 0, 4), 'VMMR_ERR_VF_DISABLED');
    refusal(() => rd(stale, 'io', 0, 4), 'VMMR_ERR_VF_DISABLED');
    // enabled again: the BDF is a new VF; the old object stays refused
    setCfg(pf, pf.sriov + 0x08, 2, VFE | MSE);
    refusal(() => rd(stale, 'bar2', 0x12, 2), 'VMMR_ERR_VF_DISABLED');
    expect(rd(pf.vfs[0]!, 'bar2', 0x12, 2)).toBe(IDS.net.queues);
  });
});

describe('routing IDs (PCIe §9.2.1.2: VF routing IDs fit in 16 bits and collide with nobody)', () => {
  it('a PF whose potential VFs would overlap another function is refused', () => {
    refusal(
      () =>
        machineOf([
          { bdf: '0000:01:00.0', type: 'net', totalVfs: 8 },
          { bdf: '0000:01:00.4', type: 'block', totalVfs: 2 },
        ]),
      'VMMR_ERR_TOPOLOGY',
    );
    // another domain is another routing-ID space
    const m = machineOf([
      { bdf: '0000:01:00.0', type: 'net', totalVfs: 8 },
      { bdf: '0001:01:00.4', type: 'block', totalVfs: 2 },
    ]);
    expect(m.pfs).toHaveLength(2);
  });

  it('a PF whose last VF would pass routing ID 0xffff is refused', () => {
    refusal(() => machineOf([{ bdf: '0000:ff:00.0', type: 'net', totalVfs: 256 }]), 'VMMR_ERR_TOPOLOGY');
    const m = machineOf([{ bdf: '0000:ff:00.0', type: 'net', totalVfs: 255 }]);
    enableVfs(m.pfs[0]!, 255);
    expect(m.pfs[0]!.vfs.at(-1)!.bdf).toBe('0000:ff:1f.7');
  });
});

describe('machine lookups', () => {
  it('find / findPf / findVf refusals', () => {
    const { machine, pf } = withVfs('net', 1);
    refusal(() => machine.find('0000:09:00.0'), 'VMMR_ERR_NO_FUNCTION');
    refusal(() => machine.findPf(pf.vfs[0]!.bdf), 'VMMR_ERR_NO_FUNCTION');
    refusal(() => machine.find('nonsense'), 'VMMR_ERR_BAD_BDF');
    refusal(() => machine.find('0000:01:20.0'), 'VMMR_ERR_BAD_BDF');
    refusal(() => machine.findVf(pf.bdf), 'VMMR_ERR_NOT_TRANSITIONAL');
    expect(machine.find('01:00.1')).toBe(pf.vfs[0]);
    expect(machine.find('0000:01:00.0')).toBe(pf);
  });
});
