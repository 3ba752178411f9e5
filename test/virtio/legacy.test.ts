/**
 * The legacy register block in the MMR VF's memory BAR (BAR2 + 0x1000), register by register
 * (virtio 1.2 §4.1.4.10, <linux/virtio_pci.h>), under both access policies.
 */
import { describe, expect, it } from 'vitest';
import type { MmrVf } from '../../src/mmr/vf.js';
import {
  IDS,
  TYPES,
  cfg,
  machineOf,
  record,
  rd,
  rd64,
  refusal,
  setCfg,
  withVfs,
  wr,
  type TypeName,
} from '../support/functions.js';

// <linux/virtio_pci.h>
const HOST_FEATURES = 0;
const GUEST_FEATURES = 4;
const QUEUE_PFN = 8;
const QUEUE_NUM = 12;
const QUEUE_SEL = 14;
const QUEUE_NOTIFY = 16;
const STATUS = 18;
const ISR = 19;
const MSI_CONFIG_VECTOR = 20;
const MSI_QUEUE_VECTOR = 22;
const CONFIG_OFF_NO_MSIX = 20;
const CONFIG_OFF_MSIX = 24;
const NO_VECTOR = 0xffff;
const BLOCK = 0x1000;
const MSIX_ENABLE = 0x8000;

const L = (vf: MmrVf, off: number, w: number): number => rd(vf, 'bar2', BLOCK + off, w);
const setL = (vf: MmrVf, off: number, w: number, v: number): void => wr(vf, 'bar2', BLOCK + off, w, v);
/** Common cfg (BAR2 + 0) for cross-checks of the shared device state. */
const C = (vf: MmrVf, off: number, w: number): number => rd(vf, 'bar2', off, w);
const setC = (vf: MmrVf, off: number, w: number, v: number): void => wr(vf, 'bar2', off, w, v);

function enableMsix(vf: MmrVf): void {
  setCfg(vf, vf.template.caps.msix + 2, 2, MSIX_ENABLE);
}

describe('HOST_FEATURES / GUEST_FEATURES', () => {
  for (const type of TYPES) {
    it(`${type}: device offers ANY_LAYOUT (27), never the bad feature bit (30); same bits as device_feature[31:0]`, () => {
      const { vf } = withVfs(type);
      const host = L(vf, HOST_FEATURES, 4);
      expect((host >>> 27) & 1).toBe(1);
      expect((host >>> 30) & 1).toBe(0);
      setC(vf, 0x00, 4, 0);
      expect(C(vf, 0x04, 4)).toBe(host);
      // VIRTIO_F_VERSION_1 (bit 32) is offered on the modern side, invisible to the legacy one
      setC(vf, 0x00, 4, 1);
      expect(C(vf, 0x04, 4) & 1).toBe(1);
    });
  }

  it('HOST_FEATURES is read-only; GUEST_FEATURES reads back and drops the upper 32 bits', () => {
    const { vf } = withVfs('net');
    refusal(() => setL(vf, HOST_FEATURES, 4, 0), 'VMMR_ERR_READ_ONLY', 'HOST_FEATURES');
    // a driver that negotiated VERSION_1 on the modern side, then goes legacy
    setC(vf, 0x08, 4, 1);
    setC(vf, 0x0c, 4, 1);
    setL(vf, GUEST_FEATURES, 4, 0x0800_0020);
    expect(L(vf, GUEST_FEATURES, 4)).toBe(0x0800_0020);
    setC(vf, 0x08, 4, 1);
    expect(C(vf, 0x0c, 4)).toBe(0);
    setC(vf, 0x08, 4, 0);
    expect(C(vf, 0x0c, 4)).toBe(0x0800_0020);
  });
});

describe('queues: QUEUE_SEL, QUEUE_NUM, QUEUE_PFN', () => {
  it('QUEUE_NUM is the queue size for each queue, 0 past the last queue; read-only', () => {
    const machine = machineOf([{ bdf: '0000:01:00.0', type: 'net', totalVfs: 2, queueSize: 64 }]);
    const pf = machine.findPf('01:00.0');
    setCfg(pf, pf.sriov + 0x10, 2, 1);
    setCfg(pf, pf.sriov + 0x08, 2, 0x9);
    const vf = pf.vfs[0]!;
    for (let q = 0; q < IDS.net.queues; q++) {
      setL(vf, QUEUE_SEL, 2, q);
      expect(L(vf, QUEUE_SEL, 2)).toBe(q);
      expect(L(vf, QUEUE_NUM, 2)).toBe(64);
    }
    setL(vf, QUEUE_SEL, 2, IDS.net.queues);
    expect(L(vf, QUEUE_NUM, 2)).toBe(0);
    refusal(() => setL(vf, QUEUE_NUM, 2, 8), 'VMMR_ERR_READ_ONLY', 'QUEUE_NUM');
  });

  it('QUEUE_SEL >= 1024 is ignored (QEMU VIRTIO_QUEUE_MAX)', () => {
    const { vf } = withVfs('net');
    setL(vf, QUEUE_SEL, 2, 2);
    setL(vf, QUEUE_SEL, 2, 1024);
    expect(L(vf, QUEUE_SEL, 2)).toBe(2);
    setL(vf, QUEUE_SEL, 2, 0xffff);
    expect(L(vf, QUEUE_SEL, 2)).toBe(2);
    setL(vf, QUEUE_SEL, 2, 1023);
    expect(L(vf, QUEUE_SEL, 2)).toBe(1023);
    expect(L(vf, QUEUE_NUM, 2)).toBe(0);
    expect(L(vf, QUEUE_PFN, 4)).toBe(0);
  });

  it('QUEUE_PFN places the ring in the legacy layout (desc, avail, used aligned to 4096)', () => {
    const { vf } = withVfs('net');
    setL(vf, QUEUE_SEL, 2, 1);
    expect(L(vf, QUEUE_PFN, 4)).toBe(0);
    const pfn = 0x12345;
    setL(vf, QUEUE_PFN, 4, pfn);
    expect(L(vf, QUEUE_PFN, 4)).toBe(pfn);
    // virtio 1.2 §2.7.2 legacy layout with qsz 256: desc 16*qsz, avail 6+2*qsz, used aligned to 4096
    const qsz = 256;
    const desc = pfn * 4096;
    const avail = desc + 16 * qsz;
    const used = Math.ceil((avail + 6 + 2 * qsz) / 4096) * 4096;
    setC(vf, 0x16, 2, 1);
    expect(rd64(vf, 'bar2', 0x20)).toBe(BigInt(desc));
    expect(rd64(vf, 'bar2', 0x28)).toBe(BigInt(avail));
    expect(rd64(vf, 'bar2', 0x30)).toBe(BigInt(used));
    expect(C(vf, 0x1c, 2)).toBe(1); // the queue counts as enabled
    // other queues untouched
    setL(vf, QUEUE_SEL, 2, 0);
    expect(L(vf, QUEUE_PFN, 4)).toBe(0);
  });

  it('a PFN above 4 GiB >> 12 keeps all 32 bits (44-bit ring addresses)', () => {
    const { vf } = withVfs('block');
    setL(vf, QUEUE_PFN, 4, 0xfffff);
    expect(L(vf, QUEUE_PFN, 4)).toBe(0xfffff);
    setL(vf, QUEUE_PFN, 4, 0x8000_0001);
    expect(L(vf, QUEUE_PFN, 4)).toBe(0x8000_0001);
    expect(rd64(vf, 'bar2', 0x20)).toBe(0x8000_0001n * 4096n);
  });

  it('QUEUE_PFN 0 resets the device (QEMU), as a STATUS 0 write does', () => {
    const { machine, vf } = withVfs('net');
    setL(vf, STATUS, 1, 7);
    setL(vf, QUEUE_PFN, 4, 0x100);
    setL(vf, QUEUE_SEL, 2, 2);
    const events = record(machine);
    setL(vf, QUEUE_PFN, 4, 0);
    expect(L(vf, STATUS, 1)).toBe(0);
    expect(L(vf, QUEUE_SEL, 2)).toBe(0);
    expect(L(vf, QUEUE_PFN, 4)).toBe(0);
    expect(events).toEqual([
      { type: 'status', bdf: vf.bdf, from: 7, to: 0 },
      { type: 'reset', bdf: vf.bdf, reason: 'queue-pfn' },
    ]);
  });
});

describe('QUEUE_NOTIFY', () => {
  it('reads all-ones; a queue index kicks that queue, a bad index nothing', () => {
    const { machine, vf } = withVfs('net');
    expect(L(vf, QUEUE_NOTIFY, 2)).toBe(0xffff);
    const events = record(machine);
    setL(vf, QUEUE_NOTIFY, 2, 2);
    setL(vf, QUEUE_NOTIFY, 2, 3);
    setL(vf, QUEUE_NOTIFY, 2, 0);
    expect(events).toEqual([
      { type: 'notify', bdf: vf.bdf, queue: 2, via: 'legacy-register' },
      { type: 'notify', bdf: vf.bdf, queue: 0, via: 'legacy-register' },
    ]);
  });
});

describe('STATUS', () => {
  it('reads back what the driver wrote, emits status events, 0 resets (reason status)', () => {
    const { machine, vf } = withVfs('net');
    const events = record(machine);
    setL(vf, STATUS, 1, 1);
    setL(vf, STATUS, 1, 3);
    expect(L(vf, STATUS, 1)).toBe(3);
    setL(vf, GUEST_FEATURES, 4, 0x20);
    setL(vf, STATUS, 1, 0);
    expect(L(vf, STATUS, 1)).toBe(0);
    expect(L(vf, GUEST_FEATURES, 4)).toBe(0);
    expect(events).toEqual([
      { type: 'status', bdf: vf.bdf, from: 0, to: 1 },
      { type: 'status', bdf: vf.bdf, from: 1, to: 3 },
      { type: 'status', bdf: vf.bdf, from: 3, to: 0 },
      { type: 'reset', bdf: vf.bdf, reason: 'status' },
    ]);
  });

  it('legacy has no FEATURES_OK step: the bit is not kept on the legacy path', () => {
    const { vf } = withVfs('net');
    setL(vf, STATUS, 1, 0x0b);
    expect(L(vf, STATUS, 1)).toBe(0x03);
    setL(vf, STATUS, 1, 0x87);
    expect(L(vf, STATUS, 1)).toBe(0x87);
  });

  it('the legacy and modern views share one status', () => {
    const { vf } = withVfs('block');
    setL(vf, STATUS, 1, 3);
    expect(C(vf, 0x14, 1)).toBe(3);
    setC(vf, 0x14, 1, 0);
    expect(L(vf, STATUS, 1)).toBe(0);
  });
});

describe('ISR', () => {
  it('read returns and clears it (queue bit 0, config bit 1); read-only', () => {
    const { vf } = withVfs('net');
    expect(L(vf, ISR, 1)).toBe(0);
    vf.device.raiseQueueInterrupt(0);
    vf.device.raiseConfigChange();
    expect(L(vf, ISR, 1)).toBe(0x3);
    expect(L(vf, ISR, 1)).toBe(0);
    vf.device.raiseConfigChange();
    expect(L(vf, ISR, 1)).toBe(0x2);
    refusal(() => setL(vf, ISR, 1, 0), 'VMMR_ERR_READ_ONLY', 'ISR');
  });
});

describe('MSI-X vectors and the device-config move (20 without MSI-X, 24 with)', () => {
  it('MSI_CONFIG_VECTOR / MSI_QUEUE_VECTOR exist only while MSI-X is enabled', () => {
    const { vf } = withVfs('net');
    // MSI-X off: offset 20 is the first byte of the device config (MAC[0] = 0x02)
    expect(L(vf, CONFIG_OFF_NO_MSIX, 1)).toBe(0x02);
    expect(L(vf, MSI_CONFIG_VECTOR, 2)).toBe(cfgWord(vf, 0));
    enableMsix(vf);
    expect(L(vf, MSI_CONFIG_VECTOR, 2)).toBe(NO_VECTOR);
    expect(L(vf, MSI_QUEUE_VECTOR, 2)).toBe(NO_VECTOR);
    expect(L(vf, CONFIG_OFF_MSIX, 1)).toBe(0x02);
    // and back
    setCfg(vf, vf.template.caps.msix + 2, 2, 0);
    expect(L(vf, CONFIG_OFF_NO_MSIX, 1)).toBe(0x02);
  });

  for (const type of TYPES) {
    it(`${type}: the whole device config reads the same at 20 (no MSI-X) and at 24 (MSI-X)`, () => {
      const { vf } = withVfs(type);
      const size = vf.device.model.config.size;
      const without = Array.from({ length: size }, (_, i) => L(vf, CONFIG_OFF_NO_MSIX + i, 1));
      enableMsix(vf);
      const withMsix = Array.from({ length: size }, (_, i) => L(vf, CONFIG_OFF_MSIX + i, 1));
      expect(withMsix).toEqual(without);
      expect(withMsix).toEqual(Array.from({ length: size }, (_, i) => vf.device.configByte(i)));
    });
  }

  it('vectors inside the table are kept, beyond it read back 0xFFFF', () => {
    const { vf } = withVfs('net'); // 4 vectors
    enableMsix(vf);
    setL(vf, MSI_CONFIG_VECTOR, 2, 0);
    expect(L(vf, MSI_CONFIG_VECTOR, 2)).toBe(0);
    setL(vf, MSI_CONFIG_VECTOR, 2, 3);
    expect(L(vf, MSI_CONFIG_VECTOR, 2)).toBe(3);
    setL(vf, MSI_CONFIG_VECTOR, 2, 4);
    expect(L(vf, MSI_CONFIG_VECTOR, 2)).toBe(NO_VECTOR);
    setL(vf, QUEUE_SEL, 2, 1);
    setL(vf, MSI_QUEUE_VECTOR, 2, 2);
    expect(L(vf, MSI_QUEUE_VECTOR, 2)).toBe(2);
    setL(vf, MSI_QUEUE_VECTOR, 2, 100);
    expect(L(vf, MSI_QUEUE_VECTOR, 2)).toBe(NO_VECTOR);
    setL(vf, MSI_QUEUE_VECTOR, 2, 1);
    // per queue: queue 0 still has none; a queue that does not exist has none
    setL(vf, QUEUE_SEL, 2, 0);
    expect(L(vf, MSI_QUEUE_VECTOR, 2)).toBe(NO_VECTOR);
    setL(vf, QUEUE_SEL, 2, 7);
    setL(vf, MSI_QUEUE_VECTOR, 2, 1);
    expect(L(vf, MSI_QUEUE_VECTOR, 2)).toBe(NO_VECTOR);
    // the modern view sees the same vectors
    setC(vf, 0x16, 2, 1);
    expect(C(vf, 0x1a, 2)).toBe(1);
    expect(C(vf, 0x10, 2)).toBe(NO_VECTOR);
  });
});

function cfgWord(vf: MmrVf, offset: number): number {
  return vf.device.configByte(offset) | (vf.device.configByte(offset + 1) << 8);
}

describe('strict policy: the access must match the register', () => {
  it('names the register on a width mismatch, refuses unmapped and straddling accesses', () => {
    const { vf } = withVfs('net');
    refusal(() => L(vf, HOST_FEATURES, 2), 'VMMR_ERR_WIDTH_MISMATCH', 'HOST_FEATURES');
    refusal(() => L(vf, HOST_FEATURES + 2, 2), 'VMMR_ERR_WIDTH_MISMATCH', 'HOST_FEATURES');
    refusal(() => setL(vf, QUEUE_NUM, 4, 0), 'VMMR_ERR_WIDTH_MISMATCH', 'QUEUE_NUM');
    refusal(() => setL(vf, QUEUE_NOTIFY, 4, 0), 'VMMR_ERR_WIDTH_MISMATCH', 'QUEUE_NOTIFY');
    refusal(() => L(vf, STATUS, 2), 'VMMR_ERR_WIDTH_MISMATCH', 'STATUS');
    refusal(() => setL(vf, QUEUE_PFN, 1, 1), 'VMMR_ERR_WIDTH_MISMATCH', 'QUEUE_PFN');
    enableMsix(vf);
    refusal(() => L(vf, MSI_CONFIG_VECTOR, 4), 'VMMR_ERR_WIDTH_MISMATCH', 'MSI_CONFIG_VECTOR');
    // device config: any width, but not past its end; the block ends at its length
    expect(L(vf, CONFIG_OFF_MSIX, 4)).toBe(L(vf, CONFIG_OFF_MSIX, 2) | (L(vf, CONFIG_OFF_MSIX + 2, 2) << 16));
    refusal(() => L(vf, CONFIG_OFF_MSIX + 12, 4), 'VMMR_ERR_UNMAPPED');
    refusal(() => L(vf, 64, 4), 'VMMR_ERR_UNMAPPED');
  });

  it('a PF has no legacy block', () => {
    const { pf } = withVfs('net');
    setCfg(pf, 0x04, 2, 0x2);
    refusal(() => rd(pf, 'bar0', BLOCK, 4), 'VMMR_ERR_UNMAPPED');
  });
});

describe('compat policy (QEMU): exact-offset decode, all-ones elsewhere, writes truncated', () => {
  const compat = (type: TypeName = 'net') => withVfs(type, 1, { policy: 'compat' }).vf;

  it('registers read at any width, truncated to the access; other offsets read all-ones', () => {
    const vf = compat();
    setL(vf, STATUS, 1, 3);
    expect(L(vf, STATUS, 2)).toBe(3);
    expect(L(vf, QUEUE_NUM, 4)).toBe(256);
    expect(L(vf, QUEUE_NOTIFY, 4)).toBe(0xffffffff);
    expect(L(vf, HOST_FEATURES, 2)).toBe(L(vf, HOST_FEATURES, 4) & 0xffff);
    expect(L(vf, HOST_FEATURES + 2, 2)).toBe(0xffff);
    expect(L(vf, QUEUE_NOTIFY, 2)).toBe(0xffff);
    expect(L(vf, 64, 4)).toBe(0xffffffff);
  });

  it('writes are truncated to the access width and ignored off a register', () => {
    const vf = compat();
    const offer = L(vf, HOST_FEATURES, 4);
    setL(vf, GUEST_FEATURES, 2, 0xffff);
    expect(L(vf, GUEST_FEATURES, 4)).toBe(offer & 0xffff);
    setL(vf, GUEST_FEATURES, 4, offer);
    setL(vf, GUEST_FEATURES + 2, 2, 0);
    expect(L(vf, GUEST_FEATURES, 4)).toBe(offer);
    setL(vf, HOST_FEATURES, 4, 0); // read-only: ignored
    expect((L(vf, HOST_FEATURES, 4) >>> 27) & 1).toBe(1);
    setL(vf, STATUS, 2, 0x0107);
    expect(L(vf, STATUS, 1)).toBe(0x07);
    setL(vf, QUEUE_NUM, 4, 0x0001_0002); // QUEUE_NUM is read-only: ignored, QUEUE_SEL untouched
    expect(L(vf, QUEUE_NUM, 2)).toBe(256);
    expect(L(vf, QUEUE_SEL, 2)).toBe(0);
    setL(vf, 64, 4, 0);
  });

  it('read-only device config fields ignore writes silently', () => {
    const vf = compat('block');
    const capacity = L(vf, CONFIG_OFF_NO_MSIX, 4);
    setL(vf, CONFIG_OFF_NO_MSIX, 4, 0);
    expect(L(vf, CONFIG_OFF_NO_MSIX, 4)).toBe(capacity);
  });
});

describe('Command.Memory of the VF does not matter; reads of the header do not disturb state', () => {
  it('reading every header register twice gives the same values (ISR aside)', () => {
    const { vf } = withVfs('scsi');
    setL(vf, STATUS, 1, 3);
    const regs: Array<[number, number]> = [
      [HOST_FEATURES, 4],
      [GUEST_FEATURES, 4],
      [QUEUE_PFN, 4],
      [QUEUE_NUM, 2],
      [QUEUE_SEL, 2],
      [STATUS, 1],
    ];
    const once = regs.map(([o, w]) => L(vf, o, w));
    expect(regs.map(([o, w]) => L(vf, o, w))).toEqual(once);
    expect(cfg(vf, 0x04, 2) & 0x2).toBe(0);
  });
});
