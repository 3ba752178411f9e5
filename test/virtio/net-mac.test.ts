/**
 * The net MAC is driver-writable only through the legacy interface (virtio 1.2 §5.1.4.3 "Legacy
 * Interface: Device configuration layout": mac is driver-writable for legacy drivers; §5.1.4.2: a
 * driver MUST NOT write device configuration fields). QEMU hw/net/virtio-net.c
 * virtio_net_set_config takes a MAC write only while VIRTIO_F_VERSION_1 is not negotiated.
 * Strict refuses such a write naming the field; compat ignores it.
 */
import { describe, expect, it } from 'vitest';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';
import { enableMemory, rd, refusal, singlePf, withVfs, wr } from '../support/functions.js';

// spec-independent offsets: docs/device-model.md "The memory BAR" and <linux/virtio_pci.h>
const DEVICE_CFG = 0x200;
const LEGACY_CFG = 0x1000 + 20; // VIRTIO_PCI_CONFIG_OFF(0): MSI-X disabled
const DRIVER_FEATURE_SELECT = 0x08; // struct virtio_pci_common_cfg.guest_feature_select
const DRIVER_FEATURE = 0x0c; // struct virtio_pci_common_cfg.guest_feature
const VIRTIO_F_VERSION_1_HI = 1 << (32 - 32);
const VIRTIO_NET_F_CTRL_MAC_ADDR = 23; // <linux/virtio_net.h>
const LEGACY_GUEST_FEATURES = 0x1000 + 4; // VIRTIO_PCI_GUEST_FEATURES

type Policy = 'strict' | 'compat';

const mac = (fn: VirtioPciFunction, bar: 'bar0' | 'bar2', base: number): number => rd(fn, bar, base, 4);

/** A modern driver's feature negotiation: VERSION_1 in driver_feature[63:32]. */
function negotiateVersion1(vf: VirtioPciFunction): void {
  wr(vf, 'bar2', DRIVER_FEATURE_SELECT, 4, 1);
  wr(vf, 'bar2', DRIVER_FEATURE, 4, VIRTIO_F_VERSION_1_HI);
}

/** Expects a MAC write to be refused (strict, naming MAC) or ignored (compat); the MAC is unchanged. */
function expectMacKept(fn: VirtioPciFunction, bar: 'bar0' | 'bar2', base: number, policy: Policy): void {
  const before = mac(fn, bar, base);
  const write = (): void => wr(fn, bar, base, 4, 0x1234_5678);
  if (policy === 'strict') {
    const e = refusal(write, 'VMMR_ERR_READ_ONLY', 'MAC');
    expect(e.message).toMatch(/VIRTIO_F_VERSION_1/);
    expect(e.message).toMatch(new RegExp(`offset 0x${base.toString(16)} width 4`));
  } else {
    write();
  }
  expect(mac(fn, bar, base)).toBe(before);
}

/** The same, byte by byte, as Linux writes device config. */
function expectMacKeptBytewise(
  fn: VirtioPciFunction,
  bar: 'bar0' | 'bar2',
  base: number,
  policy: Policy,
): void {
  const before = mac(fn, bar, base);
  for (let i = 0; i < 6; i++) {
    const write = (): void => wr(fn, bar, base + i, 1, 0xee);
    if (policy === 'strict') refusal(write, 'VMMR_ERR_READ_ONLY', 'MAC');
    else write();
  }
  expect(mac(fn, bar, base)).toBe(before);
}

for (const policy of ['strict', 'compat'] as const) {
  describe(`${policy}: the net MAC is read-only for a modern driver`, () => {
    it('PF (non-transitional): the modern DEVICE_CFG MAC never takes a write', () => {
      const { pf } = singlePf('net', { policy });
      enableMemory(pf);
      expectMacKeptBytewise(pf, 'bar0', DEVICE_CFG, policy);
      if (policy === 'strict') refusal(() => wr(pf, 'bar0', DEVICE_CFG, 4, 0), 'VMMR_ERR_READ_ONLY', 'MAC');
      negotiateVersion1AndCheckPf(pf, policy);
    });

    it('VF with VIRTIO_F_VERSION_1 negotiated: the modern DEVICE_CFG MAC is read-only', () => {
      const { vf } = withVfs('net', 1, { policy });
      negotiateVersion1(vf);
      expectMacKept(vf, 'bar2', DEVICE_CFG, policy);
      expectMacKeptBytewise(vf, 'bar2', DEVICE_CFG, policy);
    });

    it('VF with VIRTIO_F_VERSION_1 negotiated: the legacy block MAC is read-only too (QEMU checks features, not paths)', () => {
      const { vf } = withVfs('net', 1, { policy });
      negotiateVersion1(vf);
      expectMacKept(vf, 'bar2', LEGACY_CFG, policy);
    });

    it('VF legacy driver (no VERSION_1): the MAC takes writes, and a device reset restores it', () => {
      const { vf } = withVfs('net', 1, { policy });
      const before = mac(vf, 'bar2', LEGACY_CFG);
      wr(vf, 'bar2', LEGACY_CFG, 4, 0x1234_5602);
      expect(mac(vf, 'bar2', LEGACY_CFG)).toBe(0x1234_5602);
      expect(mac(vf, 'bar2', DEVICE_CFG)).toBe(0x1234_5602);
      wr(vf, 'bar2', 0x1000 + 18, 1, 0); // STATUS 0: reset
      expect(mac(vf, 'bar2', LEGACY_CFG)).toBe(before);
    });

    it('VF legacy driver with VIRTIO_NET_F_CTRL_MAC_ADDR: the MAC goes through the control queue only (QEMU virtio_net_set_config)', () => {
      const { vf } = withVfs('net', 1, { policy });
      wr(vf, 'bar2', LEGACY_GUEST_FEATURES, 4, 1 << VIRTIO_NET_F_CTRL_MAC_ADDR);
      const before = mac(vf, 'bar2', LEGACY_CFG);
      const write = (): void => wr(vf, 'bar2', LEGACY_CFG, 1, 0x06);
      if (policy === 'strict')
        expect(refusal(write, 'VMMR_ERR_READ_ONLY', 'MAC').message).toMatch(/CTRL_MAC_ADDR/);
      else write();
      expect(mac(vf, 'bar2', LEGACY_CFG)).toBe(before);
    });

    it('VF: after a reset drops VERSION_1, a legacy driver may write the MAC again', () => {
      const { vf } = withVfs('net', 1, { policy });
      negotiateVersion1(vf);
      wr(vf, 'bar2', 0x1000 + 18, 1, 0);
      wr(vf, 'bar2', LEGACY_CFG, 1, 0x06);
      expect(rd(vf, 'bar2', LEGACY_CFG, 1)).toBe(0x06);
    });
  });
}

function negotiateVersion1AndCheckPf(pf: VirtioPciFunction, policy: Policy): void {
  wr(pf, 'bar0', DRIVER_FEATURE_SELECT, 4, 1);
  wr(pf, 'bar0', DRIVER_FEATURE, 4, VIRTIO_F_VERSION_1_HI);
  expectMacKept(pf, 'bar0', DEVICE_CFG, policy);
}
