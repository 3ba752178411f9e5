/**
 * Modern common configuration (virtio 1.2 §4.1.4.3, struct virtio_pci_common_cfg), field by
 * field, on the PF (BAR0) and on an MMR VF (BAR2); the ISR region.
 */
import { describe, expect, it } from 'vitest';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';
import {
  IDS,
  TYPES,
  enableMemory,
  rd,
  rd64,
  refusal,
  setCfg,
  singlePf,
  withVfs,
  wr,
} from '../support/functions.js';

// <linux/virtio_pci.h> VIRTIO_PCI_COMMON_*
const DFSELECT = 0x00;
const DF = 0x04;
const GFSELECT = 0x08;
const GF = 0x0c;
const MSIX = 0x10;
const NUMQ = 0x12;
const STATUS = 0x14;
const CFGGENERATION = 0x15;
const Q_SELECT = 0x16;
const Q_SIZE = 0x18;
const Q_MSIX = 0x1a;
const Q_ENABLE = 0x1c;
const Q_NOFF = 0x1e;
const Q_DESCLO = 0x20;
const Q_DESCHI = 0x24;
const Q_AVAILLO = 0x28;
const Q_USEDLO = 0x30;
const Q_NDATA = 0x38;
const Q_RESET = 0x3a;
const ACKNOWLEDGE = 1;
const DRIVER = 2;
const FEATURES_OK = 8;
const NO_VECTOR = 0xffff;

type Fixture = { fn: VirtioPciFunction; bar: 'bar0' | 'bar2' };

function fixtures(type: (typeof TYPES)[number] = 'net'): Fixture[] {
  const { pf, vf } = withVfs(type);
  enableMemory(pf);
  return [
    { fn: pf, bar: 'bar0' },
    { fn: vf, bar: 'bar2' },
  ];
}

const R = (f: Fixture, off: number, w: number): number => rd(f.fn, f.bar, off, w);
const W = (f: Fixture, off: number, w: number, v: number | bigint): void => wr(f.fn, f.bar, off, w, v);

function features(f: Fixture): bigint {
  W(f, DFSELECT, 4, 0);
  const lo = R(f, DF, 4);
  W(f, DFSELECT, 4, 1);
  const hi = R(f, DF, 4);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

describe('features', () => {
  it('device_feature by select: VERSION_1 (32) always; PF adds SR_IOV (37); VF adds ANY_LAYOUT (27); select >= 2 reads 0', () => {
    const [pf, vf] = fixtures();
    const pfFeatures = features(pf!);
    const vfFeatures = features(vf!);
    expect((pfFeatures >> 32n) & 1n).toBe(1n);
    expect((pfFeatures >> 37n) & 1n).toBe(1n);
    expect((vfFeatures >> 32n) & 1n).toBe(1n);
    expect((vfFeatures >> 27n) & 1n).toBe(1n);
    expect((vfFeatures >> 37n) & 1n).toBe(0n);
    for (const f of [pf!, vf!]) {
      W(f, DFSELECT, 4, 2);
      expect(R(f, DFSELECT, 4)).toBe(2);
      expect(R(f, DF, 4)).toBe(0);
      W(f, DFSELECT, 4, 0xffffffff);
      expect(R(f, DF, 4)).toBe(0);
      refusal(() => W(f, DF, 4, 0), 'VMMR_ERR_READ_ONLY', 'DEVICE_FEATURE');
    }
  });

  it('driver_feature by select reads back per half; select >= 2 takes nothing', () => {
    for (const f of fixtures()) {
      W(f, GFSELECT, 4, 0);
      W(f, GF, 4, 0x3000_0020);
      W(f, GFSELECT, 4, 1);
      W(f, GF, 4, 0x1);
      W(f, GFSELECT, 4, 2);
      W(f, GF, 4, 0xffff_ffff);
      expect(R(f, GF, 4)).toBe(0);
      W(f, GFSELECT, 4, 0);
      expect(R(f, GF, 4)).toBe(0x3000_0020);
      W(f, GFSELECT, 4, 1);
      expect(R(f, GF, 4)).toBe(1);
    }
  });

  it('FEATURES_OK sticks only when the driver features are a subset of the device features (§3.1.1)', () => {
    for (const f of fixtures('block')) {
      const offered = features(f);
      const acceptAll = (value: bigint): void => {
        W(f, GFSELECT, 4, 0);
        W(f, GF, 4, Number(value & 0xffffffffn));
        W(f, GFSELECT, 4, 1);
        W(f, GF, 4, Number(value >> 32n));
      };
      W(f, STATUS, 1, ACKNOWLEDGE | DRIVER);
      // a feature the device does not offer: bit 31 (not offered by any type), or bit 63
      acceptAll(offered | (1n << 63n));
      W(f, STATUS, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK);
      expect(R(f, STATUS, 1)).toBe(ACKNOWLEDGE | DRIVER);
      acceptAll(offered);
      W(f, STATUS, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK);
      expect(R(f, STATUS, 1)).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK);
      W(f, STATUS, 1, 0);
      expect(R(f, STATUS, 1)).toBe(0);
      // an empty set is a subset too
      W(f, STATUS, 1, FEATURES_OK);
      expect(R(f, STATUS, 1)).toBe(FEATURES_OK);
    }
  });
});

describe('device_status, config_generation, num_queues, config_msix_vector', () => {
  for (const type of TYPES) {
    it(`${type}: num_queues is ${IDS[type].queues} and read-only`, () => {
      for (const f of fixtures(type)) {
        expect(R(f, NUMQ, 2)).toBe(IDS[type].queues);
        refusal(() => W(f, NUMQ, 2, 1), 'VMMR_ERR_READ_ONLY', 'NUM_QUEUES');
      }
    });
  }

  it('device_status 0 resets the device and its queues', () => {
    const [f] = fixtures();
    W(f!, Q_SELECT, 2, 1);
    W(f!, Q_SIZE, 2, 64);
    W(f!, Q_ENABLE, 2, 1);
    W(f!, STATUS, 1, 0x0f);
    W(f!, STATUS, 1, 0);
    expect(R(f!, STATUS, 1)).toBe(0);
    expect(R(f!, Q_SELECT, 2)).toBe(0);
    W(f!, Q_SELECT, 2, 1);
    expect(R(f!, Q_SIZE, 2)).toBe(256);
    expect(R(f!, Q_ENABLE, 2)).toBe(0);
  });

  it('config_generation is read-only and changes with every device configuration change', () => {
    for (const f of fixtures()) {
      expect(R(f, CFGGENERATION, 1)).toBe(0);
      f.fn.device.raiseConfigChange();
      expect(R(f, CFGGENERATION, 1)).toBe(1);
      f.fn.device.setConfigField(6, [0, 0]);
      expect(R(f, CFGGENERATION, 1)).toBe(2);
      refusal(() => W(f, CFGGENERATION, 1, 0), 'VMMR_ERR_READ_ONLY', 'CONFIG_GENERATION');
      for (let i = 0; i < 254; i++) f.fn.device.raiseConfigChange();
      expect(R(f, CFGGENERATION, 1)).toBe(0); // 8 bits, wraps
    }
  });

  it('config_msix_vector: kept inside the table, 0xFFFF beyond it', () => {
    for (const f of fixtures()) {
      expect(R(f, MSIX, 2)).toBe(NO_VECTOR);
      W(f, MSIX, 2, 0);
      expect(R(f, MSIX, 2)).toBe(0);
      W(f, MSIX, 2, IDS.net.queues);
      expect(R(f, MSIX, 2)).toBe(IDS.net.queues);
      W(f, MSIX, 2, IDS.net.queues + 1);
      expect(R(f, MSIX, 2)).toBe(NO_VECTOR);
    }
  });
});

describe('queue fields', () => {
  it('queue_size: the maximum by default, the driver may shrink it, 0 or above the maximum are ignored', () => {
    for (const f of fixtures()) {
      W(f, Q_SELECT, 2, 2);
      expect(R(f, Q_SIZE, 2)).toBe(256);
      W(f, Q_SIZE, 2, 64);
      expect(R(f, Q_SIZE, 2)).toBe(64);
      W(f, Q_SIZE, 2, 0);
      expect(R(f, Q_SIZE, 2)).toBe(64);
      W(f, Q_SIZE, 2, 512);
      expect(R(f, Q_SIZE, 2)).toBe(64);
      W(f, Q_SELECT, 2, 0);
      expect(R(f, Q_SIZE, 2)).toBe(256);
    }
  });

  it('queue_notify_off is the queue index (notify address = 0x400 + 4 * index), read-only', () => {
    for (const f of fixtures()) {
      for (let q = 0; q < IDS.net.queues; q++) {
        W(f, Q_SELECT, 2, q);
        expect(R(f, Q_NOFF, 2)).toBe(q);
      }
      refusal(() => W(f, Q_NOFF, 2, 0), 'VMMR_ERR_READ_ONLY', 'QUEUE_NOTIFY_OFF');
    }
  });

  it('queue_msix_vector and queue_enable are per queue', () => {
    for (const f of fixtures()) {
      W(f, Q_SELECT, 2, 0);
      W(f, Q_MSIX, 2, 1);
      W(f, Q_ENABLE, 2, 1);
      W(f, Q_SELECT, 2, 1);
      expect(R(f, Q_MSIX, 2)).toBe(NO_VECTOR);
      expect(R(f, Q_ENABLE, 2)).toBe(0);
      W(f, Q_MSIX, 2, 9);
      expect(R(f, Q_MSIX, 2)).toBe(NO_VECTOR);
      W(f, Q_SELECT, 2, 0);
      expect(R(f, Q_MSIX, 2)).toBe(1);
      expect(R(f, Q_ENABLE, 2)).toBe(1);
      W(f, Q_ENABLE, 2, 0); // disabling is done by reset only
      expect(R(f, Q_ENABLE, 2)).toBe(1);
    }
  });

  it('64-bit queue addresses: two 4-byte halves and one 8-byte access are the same register', () => {
    for (const f of fixtures()) {
      W(f, Q_SELECT, 2, 1);
      W(f, Q_DESCLO, 4, 0x8765_4000);
      W(f, Q_DESCHI, 4, 0x0000_0012);
      expect(rd64(f.fn, f.bar, Q_DESCLO)).toBe(0x12_8765_4000n);
      W(f, Q_AVAILLO, 8, 0xfedc_ba98_7654_3000n);
      expect(R(f, Q_AVAILLO, 4)).toBe(0x7654_3000);
      expect(R(f, Q_AVAILLO + 4, 4)).toBe(0xfedc_ba98);
      W(f, Q_USEDLO, 8, 0xffff_ffff_ffff_f000n);
      expect(rd64(f.fn, f.bar, Q_USEDLO)).toBe(0xffff_ffff_ffff_f000n);
      // per queue
      W(f, Q_SELECT, 2, 0);
      expect(rd64(f.fn, f.bar, Q_DESCLO)).toBe(0n);
      W(f, Q_SELECT, 2, 1);
      expect(rd64(f.fn, f.bar, Q_DESCLO)).toBe(0x12_8765_4000n);
      // 8-byte accesses are 8-aligned, so they always start at a low half
      refusal(() => rd64(f.fn, f.bar, Q_DESCHI), 'VMMR_ERR_UNALIGNED');
      refusal(() => rd(f.fn, f.bar, Q_DESCLO, 2), 'VMMR_ERR_WIDTH_MISMATCH', 'QUEUE_DESC[31:0]');
    }
  });

  it('a queue that does not exist: size 0, fields read 0 and ignore writes', () => {
    for (const f of fixtures()) {
      W(f, Q_SELECT, 2, IDS.net.queues);
      expect(R(f, Q_SIZE, 2)).toBe(0);
      W(f, Q_SIZE, 2, 16);
      W(f, Q_ENABLE, 2, 1);
      W(f, Q_DESCLO, 4, 0x1000);
      expect(R(f, Q_SIZE, 2)).toBe(0);
      expect(R(f, Q_ENABLE, 2)).toBe(0);
      expect(R(f, Q_DESCLO, 4)).toBe(0);
      expect(R(f, Q_MSIX, 2)).toBe(NO_VECTOR);
    }
  });

  it('queue_notif_config_data reads 0 and is read-only; queue_reset reads 0', () => {
    for (const f of fixtures()) {
      expect(R(f, Q_NDATA, 2)).toBe(0);
      refusal(() => W(f, Q_NDATA, 2, 1), 'VMMR_ERR_READ_ONLY');
      expect(R(f, Q_RESET, 2)).toBe(0);
    }
  });
});

describe('strict refusals in the common cfg', () => {
  it('width mismatches name the register; the tail of the region is unmapped', () => {
    const [f] = fixtures();
    refusal(() => R(f!, STATUS, 2), 'VMMR_ERR_WIDTH_MISMATCH', 'DEVICE_STATUS');
    refusal(() => R(f!, DFSELECT, 2), 'VMMR_ERR_WIDTH_MISMATCH', 'DEVICE_FEATURE_SELECT');
    refusal(() => R(f!, DFSELECT, 8), 'VMMR_ERR_WIDTH_MISMATCH', 'DEVICE_FEATURE_SELECT');
    refusal(() => R(f!, 0x3c, 4), 'VMMR_ERR_UNMAPPED');
    refusal(() => R(f!, 0x40, 4), 'VMMR_ERR_UNMAPPED');
  });

  it('compat: a 2-byte read of a 1-byte register is truncated, off-register offsets read all-ones', () => {
    const { pf } = singlePf('net', { policy: 'compat' });
    enableMemory(pf);
    const f: Fixture = { fn: pf, bar: 'bar0' };
    W(f, STATUS, 1, 3);
    expect(R(f, STATUS, 2)).toBe(3);
    expect(R(f, DFSELECT + 2, 2)).toBe(0xffff);
    expect(R(f, 0x3c, 4)).toBe(0xffffffff);
    W(f, NUMQ, 2, 0);
    expect(R(f, NUMQ, 2)).toBe(IDS.net.queues);
    // 8-byte access of two 4-byte registers: two accesses
    W(f, GFSELECT, 8, 0x0000_1234_0000_0000n);
    expect(R(f, GFSELECT, 4)).toBe(0);
    expect(R(f, GF, 4)).toBe(0x1234);
  });
});

describe('ISR region (cfg_type 3, BAR + 0x100)', () => {
  it('read returns and clears; 1 byte; read-only', () => {
    for (const f of fixtures()) {
      f.fn.device.raiseQueueInterrupt(1);
      expect(R(f, 0x100, 1)).toBe(1);
      expect(R(f, 0x100, 1)).toBe(0);
      f.fn.device.raiseQueueInterrupt(1);
      refusal(() => R(f, 0x100, 4), 'VMMR_ERR_UNMAPPED'); // the region is 1 byte long
      expect(f.fn.device.isr).toBe(1); // a refused read has no side effect
      expect(R(f, 0x100, 1)).toBe(1);
      refusal(() => W(f, 0x100, 1, 0), 'VMMR_ERR_READ_ONLY');
    }
  });
});

describe('PF config writes do not leak into the device', () => {
  it('Command.Memory off refuses BAR0; the device state is untouched by the refusal', () => {
    const { pf } = singlePf('net');
    setCfg(pf, 0x04, 2, 0);
    refusal(() => wr(pf, 'bar0', STATUS, 1, 1), 'VMMR_ERR_DECODE_DISABLED');
    expect(pf.device.status).toBe(0);
  });
});
