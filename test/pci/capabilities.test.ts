/**
 * Standard capabilities of the PF and of an MMR VF: PCI Express (FLR → function reset), MSI-X
 * (enable / function mask, table and PBA location) and the virtio vendor capabilities
 * (virtio 1.2 §4.1.4) including a working VIRTIO_PCI_CAP_PCI_CFG access window (§4.1.4.9).
 */
import { describe, expect, it } from 'vitest';
import { barLayout } from '../../src/spec/index.js';
import {
  IDS,
  TYPES,
  capsOf,
  cfg,
  enableMemory,
  expectSameBytes,
  record,
  rd,
  setCfg,
  singlePf,
  virtioCaps,
  withVfs,
  type TypeName,
} from '../support/functions.js';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';

const CAP_EXP = 0x10;
const CAP_MSIX = 0x11;
const CAP_VNDR = 0x09;
// pci_regs.h: PCI_EXP_DEVCAP_FLR (bit 28), PCI_EXP_DEVCTL_BCR_FLR (bit 15), PCI_EXP_DEVCTL at +8
const DEVCAP_FLR = 1 << 28;
const DEVCTL = 0x08;
const BCR_FLR = 0x8000;
// MSI-X Message Control at +2: Enable bit 15, Function Mask bit 14, Table Size [10:0] (N-1)
const MSIX_ENABLE = 0x8000;
const MSIX_MASKALL = 0x4000;

/** Device config length per type with the features vmmr offers (virtio 1.2 §5.x layouts). */
const DEVICE_CFG_SIZE: Record<TypeName, number> = {
  net: 12, // mac[6], status, max_virtqueue_pairs, mtu
  block: 36, // capacity .. num_queues
  balloon: 8, // num_pages, actual
  console: 12, // cols, rows, max_nr_ports, emerg_wr
  scsi: 36, // num_queues .. max_lun
  rng: 0, // no device configuration
  '9p': 34, // tag_len, tag[32]
};

function capAt(fn: VirtioPciFunction, id: number): number {
  const c = capsOf(fn).find((x) => x.id === id);
  if (!c) throw new Error(`no capability 0x${id.toString(16)}`);
  return c.offset;
}

describe('capability list', () => {
  it('PF and VF list PCI Express, MSI-X and the virtio vendor capabilities, all below 0x100', () => {
    const { pf, vf } = withVfs('net');
    for (const fn of [pf, vf]) {
      const caps = capsOf(fn);
      expect(caps.map((c) => c.id)).toEqual([
        CAP_EXP,
        CAP_MSIX,
        CAP_VNDR,
        CAP_VNDR,
        CAP_VNDR,
        CAP_VNDR,
        CAP_VNDR,
      ]);
      for (const c of caps) {
        expect(c.offset).toBeGreaterThanOrEqual(0x40);
        expect(c.offset).toBeLessThan(0x100);
      }
    }
    expect(pf.template.caps.pcie).toBe(capAt(pf, CAP_EXP));
    expect(pf.template.caps.msix).toBe(capAt(pf, CAP_MSIX));
  });
});

describe('PCI Express capability', () => {
  it('is a version-2 endpoint that advertises Function Level Reset', () => {
    const { pf, vf } = withVfs('block');
    for (const fn of [pf, vf]) {
      const exp = capAt(fn, CAP_EXP);
      const flags = cfg(fn, exp + 2, 2);
      expect(flags & 0xf).toBe(2); // capability version
      expect((flags >> 4) & 0xf).toBe(0); // PCI_EXP_TYPE_ENDPOINT
      expect(cfg(fn, exp + 4, 4) & DEVCAP_FLR).toBe(DEVCAP_FLR);
    }
  });

  it('FLR on a PF: config space back to power-on, device reset (reason flr), Initiate FLR reads 0', () => {
    const { machine, pf } = singlePf('net');
    const powerOn = pf.config.snapshot();
    const exp = capAt(pf, CAP_EXP);
    const msix = capAt(pf, CAP_MSIX);
    enableMemory(pf);
    setCfg(pf, msix + 2, 2, MSIX_ENABLE);
    setCfg(pf, 0x0c, 1, 0x10);
    setCfg(pf, 0x10, 4, 0xfe000000);
    setCfg(pf, 0x14, 4, 0x1);
    wrStatus(pf, 0, 7);
    expect(pf.device.status).toBe(7);
    const events = record(machine);
    setCfg(pf, exp + DEVCTL, 2, cfg(pf, exp + DEVCTL, 2) | BCR_FLR);
    expect(cfg(pf, exp + DEVCTL, 2) & BCR_FLR).toBe(0);
    expectSameBytes(pf.config.snapshot(), powerOn, 'config after FLR');
    expect(pf.device.status).toBe(0);
    expect(pf.getState().msix).toBeNull();
    expect(events).toContainEqual({ type: 'reset', bdf: pf.bdf, reason: 'flr' });
  });

  it('FLR on a PF clears VF Enable: its VFs disappear (SR-IOV §9.2.1.2: FLR resets the SR-IOV capability)', () => {
    const { machine, pf } = withVfs('net', 4);
    const vfBdf = pf.vfs[1]!.bdf;
    const events = record(machine);
    const exp = capAt(pf, CAP_EXP);
    setCfg(pf, exp + DEVCTL, 2, BCR_FLR);
    expect(pf.vfEnabled).toBe(false);
    expect(pf.vfs).toHaveLength(0);
    expect(() => machine.find(vfBdf)).toThrow(expect.objectContaining({ code: 'VMMR_ERR_VF_DISABLED' }));
    expect(events).toContainEqual({ type: 'vf-disable', bdf: pf.bdf, numVfs: 4 });
  });

  it('FLR on a VF resets that VF only', () => {
    const { machine, pf } = withVfs('net', 2);
    const [vf0, vf1] = [pf.vfs[0]!, pf.vfs[1]!];
    for (const vf of [vf0, vf1]) {
      setCfg(vf, 0x04, 2, 0x4);
      wrStatus(vf, 2, 3);
    }
    const events = record(machine);
    const exp = capAt(vf0, CAP_EXP);
    setCfg(vf0, exp + DEVCTL, 2, BCR_FLR);
    expect(cfg(vf0, 0x04, 2)).toBe(0);
    expect(vf0.device.status).toBe(0);
    expect(cfg(vf1, 0x04, 2)).toBe(0x4);
    expect(vf1.device.status).toBe(3);
    expect(pf.vfs[0]).toBe(vf0);
    expect(events).toEqual([
      { type: 'status', bdf: vf0.bdf, from: 3, to: 0 },
      { type: 'reset', bdf: vf0.bdf, reason: 'flr' },
    ]);
  });
});

/** Writes device_status through the common cfg (BAR `bar`). */
function wrStatus(fn: VirtioPciFunction, bar: number, value: number): void {
  setCfgBar(fn, bar, barLayout.registers.COMMON_CFG.offset + 0x14, 1, value);
}

function setCfgBar(fn: VirtioPciFunction, bar: number, offset: number, width: number, value: number): void {
  fn.writeBar(bar, offset, width, value);
}

describe('MSI-X capability', () => {
  for (const type of TYPES) {
    it(`${type}: one vector per queue plus config; table and PBA in the function's memory BAR`, () => {
      const { pf, vf } = withVfs(type);
      for (const [fn, bar] of [
        [pf, 0],
        [vf, 2],
      ] as const) {
        const msix = capAt(fn, CAP_MSIX);
        expect((cfg(fn, msix + 2, 2) & 0x7ff) + 1).toBe(IDS[type].queues + 1);
        const table = cfg(fn, msix + 4, 4);
        const pba = cfg(fn, msix + 8, 4);
        expect(table & 7).toBe(bar);
        expect(pba & 7).toBe(bar);
        expect(table & ~7).toBe(barLayout.registers.MSIX_TABLE.offset);
        expect(pba & ~7).toBe(barLayout.registers.MSIX_PBA.offset);
      }
    });
  }

  it('Enable and Function Mask are writable, Table Size and the BIR/offset registers are not', () => {
    const { pf } = singlePf('net');
    const msix = capAt(pf, CAP_MSIX);
    const size = cfg(pf, msix + 2, 2) & 0x7ff;
    setCfg(pf, msix + 2, 2, 0xffff);
    expect(cfg(pf, msix + 2, 2)).toBe(MSIX_ENABLE | MSIX_MASKALL | size);
    expect(pf.msixEnabled()).toBe(true);
    expect(pf.msixFunctionMasked()).toBe(true);
    setCfg(pf, msix + 2, 2, MSIX_ENABLE);
    expect(pf.msixFunctionMasked()).toBe(false);
    setCfg(pf, msix + 2, 2, 0);
    expect(pf.msixEnabled()).toBe(false);
    const table = cfg(pf, msix + 4, 4);
    setCfg(pf, msix + 4, 4, 0);
    setCfg(pf, msix + 8, 4, 0);
    expect(cfg(pf, msix + 4, 4)).toBe(table);
    // upper byte alone
    setCfg(pf, msix + 3, 1, 0x80);
    expect(cfg(pf, msix + 2, 2)).toBe(MSIX_ENABLE | size);
  });
});

describe('virtio vendor capabilities (virtio 1.2 §4.1.4)', () => {
  for (const type of TYPES) {
    it(`${type}: common, notify, ISR, device and PCI_CFG capabilities point into the memory BAR`, () => {
      const { pf, vf } = withVfs(type);
      const L = barLayout.registers;
      const queues = IDS[type].queues;
      for (const [fn, bar] of [
        [pf, 0],
        [vf, 2],
      ] as const) {
        const caps = virtioCaps(fn);
        const byType = (t: number) => caps.filter((c) => c.cfgType === t);
        const [common] = byType(1);
        const [notify] = byType(2);
        const [isr] = byType(3);
        const device = byType(4);
        const [pciCfg] = byType(5);
        expect(common).toMatchObject({ capLen: 16, bar, offset: L.COMMON_CFG.offset });
        // the common cfg must cover struct virtio_pci_common_cfg (0x38 bytes; 0x3c with queue_reset)
        expect(common!.length).toBeGreaterThanOrEqual(0x3c);
        expect(notify).toMatchObject({ capLen: 20, bar, offset: L.NOTIFY.offset, multiplier: 4 });
        expect(notify!.length).toBe(queues * 4);
        expect(isr).toMatchObject({ capLen: 16, bar, offset: L.ISR.offset, length: 1 });
        // §4.1.4.6: a device-specific configuration capability exists iff the type has a config
        if (DEVICE_CFG_SIZE[type] === 0) {
          expect(device).toEqual([]);
        } else {
          expect(device).toHaveLength(1);
          expect(device[0]).toMatchObject({
            capLen: 16,
            bar,
            offset: L.DEVICE_CFG.offset,
            length: DEVICE_CFG_SIZE[type],
          });
        }
        expect(pciCfg).toMatchObject({ capLen: 20 });
        // every region lies inside the 16 KiB BAR and is naturally aligned (§4.1.4.1)
        for (const c of caps.filter((x) => x.cfgType !== 5)) {
          expect(c.offset + c.length).toBeLessThanOrEqual(fn.barSize());
          expect(c.offset % 4).toBe(0);
        }
      }
    });
  }

  it('the vendor capabilities are read-only (except the PCI_CFG window fields)', () => {
    const { pf } = singlePf('net');
    const before = virtioCaps(pf).filter((c) => c.cfgType !== 5);
    for (const c of before) for (let o = 0; o < c.capLen; o += 4) setCfg(pf, c.at + o, 4, 0xffffffff);
    expect(virtioCaps(pf).filter((c) => c.cfgType !== 5)).toEqual(before);
  });
});

describe('VIRTIO_PCI_CAP_PCI_CFG access window (virtio 1.2 §4.1.4.9)', () => {
  function windowOf(fn: VirtioPciFunction): number {
    const c = virtioCaps(fn).find((x) => x.cfgType === 5);
    if (!c) throw new Error('no PCI_CFG capability');
    return c.at;
  }
  const setWindow = (fn: VirtioPciFunction, bar: number, offset: number, length: number): void => {
    const at = windowOf(fn);
    setCfg(fn, at + 4, 1, bar);
    setCfg(fn, at + 8, 4, offset);
    setCfg(fn, at + 12, 4, length);
  };

  for (const kind of ['pf', 'vf'] as const) {
    it(`${kind}: reads and writes BAR registers through config space, without the BAR being decoded`, () => {
      const { pf, vf } = withVfs('net', 1, {});
      const fn = kind === 'pf' ? pf : vf;
      const bar = kind === 'pf' ? 0 : 2;
      if (kind === 'vf') setCfg(pf, pf.sriov + 0x08, 2, 0x1); // VF Enable without VF MSE
      const at = windowOf(fn);
      // cap.bar, cap.offset, cap.length read back
      setWindow(fn, bar, 0x12, 2);
      expect(cfg(fn, at + 4, 1)).toBe(bar);
      expect(cfg(fn, at + 8, 4)).toBe(0x12);
      expect(cfg(fn, at + 12, 4)).toBe(2);
      // num_queues through the window
      expect(cfg(fn, at + 16, 2)).toBe(IDS.net.queues);
      // device_status write through the window
      setWindow(fn, bar, 0x14, 1);
      setCfg(fn, at + 16, 1, 0x3);
      expect(fn.device.status).toBe(0x3);
      expect(cfg(fn, at + 16, 1)).toBe(0x3);
      // 4-byte device config read: MAC bytes 0..3
      setWindow(fn, bar, barLayout.registers.DEVICE_CFG.offset, 4);
      const mac = cfg(fn, at + 16, 4);
      expect(mac & 0xff).toBe(0x02);
    });
  }

  it('a window read of the ISR is a read of the ISR: it returns and clears it', () => {
    const { pf } = singlePf('net');
    const at = windowOf(pf);
    setWindow(pf, 0, barLayout.registers.ISR.offset, 1);
    pf.device.raiseQueueInterrupt(0);
    expect(cfg(pf, at + 16, 1)).toBe(1);
    expect(pf.device.isr).toBe(0);
    expect(cfg(pf, at + 16, 1)).toBe(0);
  });

  it('an invalid window (other BAR, bad length, misaligned, beyond the BAR) does nothing', () => {
    const { pf } = singlePf('net');
    const at = windowOf(pf);
    for (const [bar, offset, length] of [
      [1, 0x14, 1],
      [0, 0x14, 3],
      [0, 0x13, 2],
      [0, 0x4000, 4],
    ] as const) {
      setWindow(pf, bar, offset, length);
      setCfg(pf, at + 16, 4, 0x0f0f0f0f);
      expect(pf.device.status).toBe(0);
      expect(cfg(pf, at + 16, 4)).toBe(0x0f0f0f0f);
    }
  });

  it('BAR accesses are unaffected by a window access', () => {
    const { pf } = singlePf('block');
    enableMemory(pf);
    setWindow(pf, 0, 0x16, 2);
    setCfg(pf, windowOf(pf) + 16, 2, 0);
    expect(rd(pf, 'bar0', 0x16, 2)).toBe(0);
    expect(rd(pf, 'bar0', 0x18, 2)).toBe(256);
  });
});
