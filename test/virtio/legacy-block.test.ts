/**
 * The legacy block's header registers where QEMU (hw/virtio/virtio-pci.c virtio_ioport_read /
 * virtio_ioport_write, hw/virtio/virtio.c virtio_set_features) and the virtio spec's legacy
 * register table (virtio 1.2 §4.1.4.10) are the reference: QUEUE_NOTIFY reads, GUEST_FEATURES
 * masking and the bad-feature fallback, under both access policies.
 */
import { describe, expect, it } from 'vitest';
import type { MmrVf } from '../../src/mmr/vf.js';
import { TYPES, rd, record, refusal, withVfs, wr, type TypeName } from '../support/functions.js';

// <linux/virtio_pci.h>
const HOST_FEATURES = 0;
const GUEST_FEATURES = 4;
const QUEUE_SEL = 14;
const QUEUE_NOTIFY = 16;
const BLOCK = 0x1000;
// <linux/virtio_config.h>, <linux/virtio_net.h>: bit numbers
const VIRTIO_NET_F_CSUM = 0;
const VIRTIO_NET_F_MTU = 3;
const VIRTIO_NET_F_MAC = 5;
const VIRTIO_NET_F_HOST_TSO4 = 11;
const VIRTIO_NET_F_HOST_ECN = 13;
const VIRTIO_NET_F_STATUS = 16;
const VIRTIO_NET_F_CTRL_VQ = 17;
const VIRTIO_NET_F_GUEST_CSUM = 1;
const VIRTIO_NET_F_MRG_RXBUF = 15;
const VIRTIO_NET_F_CTRL_RX = 18;
const VIRTIO_NET_F_CTRL_VLAN = 19;
const VIRTIO_NET_F_CTRL_RX_EXTRA = 20;
const VIRTIO_NET_F_GUEST_ANNOUNCE = 21;
const VIRTIO_NET_F_CTRL_MAC_ADDR = 23;
const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
const VIRTIO_F_ANY_LAYOUT = 27;
const VIRTIO_RING_F_INDIRECT_DESC = 28;
const VIRTIO_RING_F_EVENT_IDX = 29;
/** QEMU include/hw/virtio/virtio.h VIRTIO_F_BAD_FEATURE. */
const VIRTIO_F_BAD_FEATURE = 30;

const bit = (n: number): number => 2 ** n;
const L = (vf: MmrVf, off: number, w: number): number => rd(vf, 'bar2', BLOCK + off, w);
const setL = (vf: MmrVf, off: number, w: number, v: number): void => wr(vf, 'bar2', BLOCK + off, w, v);
const vfOf = (type: TypeName, policy: 'strict' | 'compat'): MmrVf => withVfs(type, 1, { policy }).vf;

/** What a net VF offers to a legacy driver (docs/device-model.md "The legacy block"). */
const NET_OFFER =
  bit(VIRTIO_NET_F_MTU) +
  bit(VIRTIO_NET_F_MAC) +
  bit(VIRTIO_NET_F_STATUS) +
  bit(VIRTIO_NET_F_CTRL_VQ) +
  bit(VIRTIO_NET_F_GUEST_CSUM) +
  bit(VIRTIO_NET_F_MRG_RXBUF) +
  bit(VIRTIO_NET_F_CTRL_RX) +
  bit(VIRTIO_NET_F_CTRL_VLAN) +
  bit(VIRTIO_NET_F_CTRL_RX_EXTRA) +
  bit(VIRTIO_NET_F_GUEST_ANNOUNCE) +
  bit(VIRTIO_NET_F_CTRL_MAC_ADDR) +
  bit(VIRTIO_F_NOTIFY_ON_EMPTY) +
  bit(VIRTIO_F_ANY_LAYOUT) +
  bit(VIRTIO_RING_F_INDIRECT_DESC) +
  bit(VIRTIO_RING_F_EVENT_IDX);

describe('QUEUE_NOTIFY is readable (the spec table marks it R+W) and reads all-ones, as QEMU', () => {
  for (const policy of ['strict', 'compat'] as const) {
    it(`${policy}: a 2-byte read returns 0xffff and changes nothing`, () => {
      const vf = vfOf('net', policy);
      setL(vf, QUEUE_SEL, 2, 1);
      expect(L(vf, QUEUE_NOTIFY, 2)).toBe(0xffff);
      expect(L(vf, QUEUE_SEL, 2)).toBe(1);
    });
  }

  it('compat: a 4-byte read at 16 is all-ones too (QEMU: virtio_ioport_read default 0xFFFFFFFF)', () => {
    expect(L(vfOf('net', 'compat'), QUEUE_NOTIFY, 4)).toBe(0xffffffff);
  });

  it('strict: a read at another width is still refused, naming the register', () => {
    refusal(() => L(vfOf('net', 'strict'), QUEUE_NOTIFY, 1), 'VMMR_ERR_WIDTH_MISMATCH', 'QUEUE_NOTIFY');
  });
});

describe('GUEST_FEATURES keeps only offered bits (QEMU virtio_set_features masks with host_features)', () => {
  it('the net offer is the bits docs/device-model.md lists', () => {
    expect(L(vfOf('net', 'strict'), HOST_FEATURES, 4)).toBe(NET_OFFER);
  });

  for (const type of TYPES) {
    it(`compat ${type}: writing 0x3fffffff reads back what HOST_FEATURES offers of it`, () => {
      const vf = vfOf(type, 'compat');
      const offer = L(vf, HOST_FEATURES, 4);
      setL(vf, GUEST_FEATURES, 4, 0x3fff_ffff);
      expect(L(vf, GUEST_FEATURES, 4)).toBe((offer & 0x3fff_ffff) >>> 0);
    });
  }

  it('compat: an offered subset reads back unchanged', () => {
    const vf = vfOf('net', 'compat');
    const subset = bit(VIRTIO_NET_F_MAC) + bit(VIRTIO_F_ANY_LAYOUT);
    setL(vf, GUEST_FEATURES, 4, subset);
    expect(L(vf, GUEST_FEATURES, 4)).toBe(subset);
  });

  it('strict: a value with unoffered bits is refused naming them, and GUEST_FEATURES keeps its value', () => {
    const vf = vfOf('net', 'strict');
    setL(vf, GUEST_FEATURES, 4, bit(VIRTIO_NET_F_MAC));
    const e = refusal(
      () =>
        setL(
          vf,
          GUEST_FEATURES,
          4,
          bit(VIRTIO_NET_F_MAC) + bit(VIRTIO_NET_F_CSUM) + bit(VIRTIO_NET_F_HOST_ECN),
        ),
      'VMMR_ERR_BAD_VALUE',
      'GUEST_FEATURES',
    );
    expect(e.message).toMatch(/CSUM \(bit 0\)/);
    expect(e.message).toMatch(/HOST_ECN \(bit 13\)/);
    expect(e.message).not.toMatch(/\bMAC \(bit 5\)/);
    expect(e.message).toMatch(/bar2 offset 0x1004 width 4/);
    expect(L(vf, GUEST_FEATURES, 4)).toBe(bit(VIRTIO_NET_F_MAC));
  });

  it('strict: an offered subset is taken', () => {
    const vf = vfOf('block', 'strict');
    const offer = L(vf, HOST_FEATURES, 4);
    setL(vf, GUEST_FEATURES, 4, offer);
    expect(L(vf, GUEST_FEATURES, 4)).toBe(offer);
  });
});

describe('VIRTIO_F_BAD_FEATURE (bit 30): a legacy driver that cannot negotiate', () => {
  it("compat net: QEMU's fallback, virtio_net_bad_features (MAC, CSUM, HOST_TSO4/6, HOST_ECN) masked with the offer = MAC", () => {
    const vf = vfOf('net', 'compat');
    setL(
      vf,
      GUEST_FEATURES,
      4,
      bit(VIRTIO_F_BAD_FEATURE) + bit(VIRTIO_NET_F_CTRL_VQ) + bit(VIRTIO_NET_F_HOST_TSO4),
    );
    expect(L(vf, GUEST_FEATURES, 4)).toBe(bit(VIRTIO_NET_F_MAC));
  });

  for (const type of TYPES.filter((t) => t !== 'net')) {
    it(`compat ${type}: no fallback set in QEMU (no bad_features), so nothing is negotiated`, () => {
      const vf = vfOf(type, 'compat');
      setL(vf, GUEST_FEATURES, 4, L(vf, HOST_FEATURES, 4));
      setL(vf, GUEST_FEATURES, 4, (L(vf, HOST_FEATURES, 4) | bit(VIRTIO_F_BAD_FEATURE)) >>> 0);
      expect(L(vf, GUEST_FEATURES, 4)).toBe(0);
    });
  }

  it('strict: bit 30 is never offered, so the write is refused naming VIRTIO_F_BAD_FEATURE', () => {
    const e = refusal(
      () => setL(vfOf('net', 'strict'), GUEST_FEATURES, 4, bit(VIRTIO_F_BAD_FEATURE)),
      'VMMR_ERR_BAD_VALUE',
      'GUEST_FEATURES',
    );
    expect(e.message).toMatch(/BAD_FEATURE \(bit 30\)/);
  });
});

describe('the notify region identifies the queue by its address (virtio 1.2 §4.1.5.2)', () => {
  const NOTIFY = 0x400;
  const MULTIPLIER = 4;

  it('strict: the value must be the queue index (no VIRTIO_F_NOTIFICATION_DATA); another is refused', () => {
    const { machine, vf } = withVfs('net', 1);
    const events = record(machine);
    wr(vf, 'bar2', NOTIFY + 1 * MULTIPLIER, 2, 1);
    const e = refusal(
      () => wr(vf, 'bar2', NOTIFY + 1 * MULTIPLIER, 2, 2),
      'VMMR_ERR_BAD_VALUE',
      'notify queue 1',
    );
    expect(e.message).toMatch(/queue index 1, not 0x2/);
    expect(events).toEqual([{ type: 'notify', bdf: vf.bdf, queue: 1, via: 'notify-region' }]);
  });

  it('compat: the value is ignored, as QEMU virtio_pci_notify_write', () => {
    const { machine, vf } = withVfs('net', 1, { policy: 'compat' });
    const events = record(machine);
    wr(vf, 'bar2', NOTIFY + 2 * MULTIPLIER, 2, 0xbeef);
    expect(events).toEqual([{ type: 'notify', bdf: vf.bdf, queue: 2, via: 'notify-region' }]);
  });

  it('a queue never set up is still reported (QEMU drops it in virtio_queue_notify); no back-end work follows', () => {
    const { machine, vf } = withVfs('rng', 1);
    const events = record(machine);
    wr(vf, 'bar2', NOTIFY, 2, 0);
    expect(events).toEqual([{ type: 'notify', bdf: vf.bdf, queue: 0, via: 'notify-region' }]);
  });
});

describe('one addressing rule: the header is registers, device config is bytes (virtio 1.3 legacy admin commands)', () => {
  const CONFIG = 20; // VIRTIO_PCI_CONFIG_OFF(0): MSI-X disabled
  const QUEUE_NUM = 12;
  const NET_STATUS = 6; // struct virtio_net_config.status

  it('strict: an access inside one header register, or across two, is refused naming the register', () => {
    const vf = vfOf('net', 'strict');
    refusal(() => L(vf, QUEUE_NUM + 1, 1), 'VMMR_ERR_WIDTH_MISMATCH', 'QUEUE_NUM');
    refusal(() => L(vf, HOST_FEATURES + 2, 2), 'VMMR_ERR_WIDTH_MISMATCH', 'HOST_FEATURES');
    refusal(() => L(vf, QUEUE_NUM, 4), 'VMMR_ERR_WIDTH_MISMATCH', 'QUEUE_NUM');
  });

  it('compat: as QEMU virtio_ioport_read, a register answers at its own offset only, truncated', () => {
    const vf = vfOf('net', 'compat');
    expect(L(vf, QUEUE_NUM, 1)).toBe(L(vf, QUEUE_NUM, 2) & 0xff);
    expect(L(vf, QUEUE_NUM + 1, 1)).toBe(0xff);
  });

  for (const policy of ['strict', 'compat'] as const) {
    it(`${policy}: device config is byte-addressable: any width, across fields, inside a field, the same bytes`, () => {
      const vf = vfOf('net', policy);
      const bytes = Array.from({ length: 12 }, (_, i) => L(vf, CONFIG + i, 1));
      const le = (at: number, n: number): number =>
        bytes.slice(at, at + n).reduceRight((v, b) => v * 256 + b!, 0);
      expect(L(vf, CONFIG + 4, 4)).toBe(le(4, 4)); // mac[4..5] and status
      expect(L(vf, CONFIG + NET_STATUS + 1, 1)).toBe(le(NET_STATUS + 1, 1)); // inside status
      expect(L(vf, CONFIG + 8, 4)).toBe(le(8, 4)); // max_virtqueue_pairs and mtu
      expect(rd(vf, 'bar2', 0x200 + 4, 4)).toBe(le(4, 4)); // the modern DEVICE_CFG: same bytes
    });
  }
});

describe('the vector of a queue that does not exist reads NO_VECTOR (vmmr decision; QEMU stores it)', () => {
  const MSI_QUEUE_VECTOR = 22;
  const MSIX_ENABLE = 0x8000;
  const COMMON_QUEUE_SELECT = 22;
  const COMMON_QUEUE_MSIX_VECTOR = 26;

  for (const policy of ['strict', 'compat'] as const) {
    it(`${policy}: legacy and modern, the write is not taken and reads back 0xffff`, () => {
      const vf = vfOf('net', policy);
      wr(vf, 'config', vf.template.caps.msix + 2, 2, MSIX_ENABLE);
      setL(vf, QUEUE_SEL, 2, 3); // net has queues 0..2
      setL(vf, MSI_QUEUE_VECTOR, 2, 1);
      expect(L(vf, MSI_QUEUE_VECTOR, 2)).toBe(0xffff);
      wr(vf, 'bar2', COMMON_QUEUE_SELECT, 2, 7);
      wr(vf, 'bar2', COMMON_QUEUE_MSIX_VECTOR, 2, 1);
      expect(rd(vf, 'bar2', COMMON_QUEUE_MSIX_VECTOR, 2)).toBe(0xffff);
    });
  }
});
