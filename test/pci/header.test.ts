/**
 * Type-0 configuration header of the PF and of an MMR VF: identities (docs/device-model.md "Functions"), Command/Status
 * write masks and RW1C bits (PCI 3.0 §6.2, PCIe §7.5.1, SR-IOV §9.3.4.1), BAR sizing probes,
 * interrupt pin. Expected values are the spec's, written out here.
 */
import { describe, expect, it } from 'vitest';
import { pciHeader } from '../../src/spec/index.js';
import { IDS, TYPES, VENDOR, cfg, rd, refusal, setCfg, singlePf, withVfs } from '../support/functions.js';

const H = pciHeader.registers;

// PCIe §7.5.1.1.1: the Command bits a PCIe endpoint implements: I/O Space (0), Memory Space (1),
// Bus Master (2), Parity Error Response (6), SERR# Enable (8), Interrupt Disable (10).
const PF_COMMAND_RW = 0x0547;
// SR-IOV §9.3.4.1.1: a VF implements only Bus Master Enable; I/O, Memory and Interrupt Disable
// are hard-wired 0 (memory decode is the PF's VF MSE), Parity/SERR are reserved.
const VF_COMMAND_RW = 0x0004;
// PCI 3.0 §6.2.3: Status error bits 8, 11, 12, 13, 14, 15 are write-1-to-clear.
const STATUS_RW1C = 0xf900;
const STATUS_CAP_LIST = 0x0010;
const BAR_64BIT_MEM = 0x4; // memory space, type 10b (64-bit), not prefetchable
const KIB16 = 16 * 1024;

describe('PF type-0 header: identity (docs/device-model.md "Functions", virtio 1.2 §4.1.2)', () => {
  for (const type of TYPES) {
    it(`${type}: modern device 0x${IDS[type].modern.toString(16)}, revision 1, class 0x${IDS[type].classCode.toString(16).padStart(6, '0')}`, () => {
      const { pf } = singlePf(type);
      expect(cfg(pf, H.VENDOR_ID.offset, 2)).toBe(VENDOR);
      expect(cfg(pf, H.DEVICE_ID.offset, 2)).toBe(IDS[type].modern);
      expect(cfg(pf, H.DEVICE_ID.offset, 2)).toBe(0x1040 + IDS[type].typeId);
      expect(cfg(pf, H.REVISION_ID.offset, 1)).toBeGreaterThanOrEqual(1);
      expect(cfg(pf, H.REVISION_ID.offset, 1)).toBe(1);
      // class code: base, sub-class, prog-if at 0x0b, 0x0a, 0x09
      expect(cfg(pf, 0x08, 4) >>> 8).toBe(IDS[type].classCode);
      expect(cfg(pf, H.HEADER_TYPE.offset, 1) & 0x7f).toBe(0);
      expect(cfg(pf, H.SUBSYSTEM_VENDOR_ID.offset, 2)).toBe(VENDOR);
      // non-transitional devices: Subsystem Device ID >= 0x40 (virtio 1.2 §4.1.2.1)
      expect(cfg(pf, H.SUBSYSTEM_ID.offset, 2)).toBeGreaterThanOrEqual(0x40);
      expect(cfg(pf, H.INTERRUPT_PIN.offset, 1)).toBe(1);
      expect(cfg(pf, H.STATUS.offset, 2) & STATUS_CAP_LIST).toBe(STATUS_CAP_LIST);
      const capPtr = cfg(pf, H.CAPABILITY_LIST.offset, 1);
      expect(capPtr).toBeGreaterThanOrEqual(0x40);
      expect(capPtr % 4).toBe(0);
    });
  }

  it('identity registers are read-only', () => {
    const { pf } = singlePf('net');
    for (const off of [0x00, 0x08, 0x2c]) setCfg(pf, off, 4, 0xffffffff);
    setCfg(pf, H.CAPABILITY_LIST.offset, 1, 0);
    setCfg(pf, H.INTERRUPT_PIN.offset, 1, 0);
    expect(cfg(pf, 0, 4)).toBe(((IDS.net.modern << 16) | VENDOR) >>> 0);
    expect(cfg(pf, 0x08, 4)).toBe(((IDS.net.classCode << 8) | 1) >>> 0);
    expect(cfg(pf, H.SUBSYSTEM_VENDOR_ID.offset, 2)).toBe(VENDOR);
    expect(cfg(pf, H.CAPABILITY_LIST.offset, 1)).not.toBe(0);
    expect(cfg(pf, H.INTERRUPT_PIN.offset, 1)).toBe(1);
  });
});

describe('PF type-0 header: Command and Status', () => {
  it('Command takes exactly the PCIe endpoint bits', () => {
    const { pf } = singlePf('net');
    expect(cfg(pf, H.COMMAND.offset, 2)).toBe(0);
    setCfg(pf, H.COMMAND.offset, 2, 0xffff);
    expect(cfg(pf, H.COMMAND.offset, 2)).toBe(PF_COMMAND_RW);
    setCfg(pf, H.COMMAND.offset, 2, 0);
    expect(cfg(pf, H.COMMAND.offset, 2)).toBe(0);
    // a 1-byte write to the high byte touches only Interrupt Disable there
    setCfg(pf, H.COMMAND.offset + 1, 1, 0xff);
    expect(cfg(pf, H.COMMAND.offset, 2)).toBe(PF_COMMAND_RW & 0xff00);
  });

  it('Status: software cannot set bits; the error bits are RW1C, the others are untouched', () => {
    const { pf } = singlePf('net');
    const status = (): number => cfg(pf, H.STATUS.offset, 2);
    expect(status()).toBe(STATUS_CAP_LIST);
    setCfg(pf, H.STATUS.offset, 2, 0xffff);
    expect(status()).toBe(STATUS_CAP_LIST);
    // the device latches every error bit (as hardware would on the events)
    pf.config.poke(H.STATUS.offset, 2, STATUS_CAP_LIST | STATUS_RW1C);
    setCfg(pf, H.STATUS.offset, 2, 0x0100);
    expect(status()).toBe(STATUS_CAP_LIST | (STATUS_RW1C & ~0x0100));
    setCfg(pf, H.STATUS.offset, 2, 0);
    expect(status()).toBe(STATUS_CAP_LIST | (STATUS_RW1C & ~0x0100));
    setCfg(pf, H.STATUS.offset, 2, 0x8000 | 0x0800);
    expect(status()).toBe(STATUS_CAP_LIST | 0x1000 | 0x2000 | 0x4000);
    // a dword write at 0x04 clears status bits too, and sets Command
    setCfg(pf, H.COMMAND.offset, 4, 0xffff0002);
    expect(status()).toBe(STATUS_CAP_LIST);
    expect(cfg(pf, H.COMMAND.offset, 2)).toBe(0x0002);
  });

  it('Cache Line Size and Interrupt Line are read-write; Latency, BIST, Header Type read-only', () => {
    const { pf } = singlePf('block');
    setCfg(pf, 0x0c, 4, 0xffffffff);
    expect(cfg(pf, 0x0c, 4)).toBe(0x000000ff);
    setCfg(pf, H.INTERRUPT_LINE.offset, 1, 0x2b);
    expect(cfg(pf, H.INTERRUPT_LINE.offset, 1)).toBe(0x2b);
    setCfg(pf, 0x3c, 4, 0xffffffff);
    expect(cfg(pf, 0x3c, 4)).toBe(0x000001ff);
  });
});

describe('PF BAR sizing probe (PCI 3.0 §6.2.5.1)', () => {
  it('BAR0/1 is one 64-bit non-prefetchable 16 KiB memory BAR; BAR2..5 and the ROM are not implemented', () => {
    const { pf } = singlePf('net');
    expect(cfg(pf, H.BASE_ADDRESS_0.offset, 4)).toBe(BAR_64BIT_MEM);
    for (let i = 0; i < 6; i++) setCfg(pf, H.BASE_ADDRESS_0.offset + 4 * i, 4, 0xffffffff);
    const low = cfg(pf, H.BASE_ADDRESS_0.offset, 4);
    expect(low & 0xf).toBe(BAR_64BIT_MEM);
    const size = (~(low & ~0xf) >>> 0) + 1;
    expect(size).toBe(KIB16);
    expect(cfg(pf, H.BASE_ADDRESS_1.offset, 4)).toBe(0xffffffff);
    for (const bar of [H.BASE_ADDRESS_2, H.BASE_ADDRESS_3, H.BASE_ADDRESS_4, H.BASE_ADDRESS_5]) {
      expect(cfg(pf, bar.offset, 4)).toBe(0);
    }
    setCfg(pf, H.ROM_ADDRESS.offset, 4, 0xffffffff);
    expect(cfg(pf, H.ROM_ADDRESS.offset, 4)).toBe(0);
  });

  it('takes an address aligned to its size, flags untouched', () => {
    const { pf } = singlePf('net');
    setCfg(pf, H.BASE_ADDRESS_0.offset, 4, 0xfebf_1234);
    setCfg(pf, H.BASE_ADDRESS_1.offset, 4, 0x0000_0001);
    expect(cfg(pf, H.BASE_ADDRESS_0.offset, 4)).toBe((0xfebf_0000 | BAR_64BIT_MEM) >>> 0);
    expect(cfg(pf, H.BASE_ADDRESS_1.offset, 4)).toBe(1);
  });

  it('BAR0 decodes only while Command.Memory Space Enable is set', () => {
    const { pf } = singlePf('net');
    refusal(() => rd(pf, 'bar0', 0x12, 2), 'VMMR_ERR_DECODE_DISABLED');
    setCfg(pf, H.COMMAND.offset, 2, 0x2);
    expect(rd(pf, 'bar0', 0x12, 2)).toBe(IDS.net.queues); // common cfg num_queues
    setCfg(pf, H.COMMAND.offset, 2, 0);
    refusal(() => rd(pf, 'bar0', 0x12, 2), 'VMMR_ERR_DECODE_DISABLED');
  });
});

describe('MMR VF type-0 header (SR-IOV §9.3.4)', () => {
  for (const type of TYPES) {
    it(`${type}: Vendor/Device 0xFFFF, revision 0, subsystem ${VENDOR.toString(16)}:${IDS[type].typeId}, pin 0`, () => {
      const { vf } = withVfs(type);
      expect(cfg(vf, H.VENDOR_ID.offset, 2)).toBe(0xffff);
      expect(cfg(vf, H.DEVICE_ID.offset, 2)).toBe(0xffff);
      expect(cfg(vf, H.REVISION_ID.offset, 1)).toBe(0);
      expect(cfg(vf, 0x08, 4) >>> 8).toBe(IDS[type].classCode);
      expect(cfg(vf, H.SUBSYSTEM_VENDOR_ID.offset, 2)).toBe(VENDOR);
      expect(cfg(vf, H.SUBSYSTEM_ID.offset, 2)).toBe(IDS[type].typeId);
      expect(cfg(vf, H.INTERRUPT_PIN.offset, 1)).toBe(0);
      expect(cfg(vf, H.STATUS.offset, 2) & STATUS_CAP_LIST).toBe(STATUS_CAP_LIST);
    });
  }

  it('Command: only Bus Master is writable; Memory Space Enable is hard-wired 0', () => {
    const { vf } = withVfs('net');
    setCfg(vf, H.COMMAND.offset, 2, 0xffff);
    expect(cfg(vf, H.COMMAND.offset, 2)).toBe(VF_COMMAND_RW);
    setCfg(vf, H.COMMAND.offset, 2, 0x0002);
    expect(cfg(vf, H.COMMAND.offset, 2) & 0x0002).toBe(0);
    // the VF BAR still decodes: its memory decode is the PF's VF MSE, not this bit
    expect(rd(vf, 'bar2', 0x12, 2)).toBe(IDS.net.queues);
  });

  it('header BARs read 0 and ignore the sizing probe; Cache Line Size and Interrupt Line are 0', () => {
    const { vf } = withVfs('block');
    for (let i = 0; i < 6; i++) {
      setCfg(vf, H.BASE_ADDRESS_0.offset + 4 * i, 4, 0xffffffff);
      expect(cfg(vf, H.BASE_ADDRESS_0.offset + 4 * i, 4)).toBe(0);
    }
    setCfg(vf, 0x0c, 4, 0xffffffff);
    expect(cfg(vf, 0x0c, 4)).toBe(0);
    setCfg(vf, 0x3c, 4, 0xffffffff);
    expect(cfg(vf, 0x3c, 4)).toBe(0);
  });

  it('Status error bits are RW1C on a VF too', () => {
    const { vf } = withVfs('net');
    vf.config.poke(H.STATUS.offset, 2, STATUS_CAP_LIST | 0x2000);
    setCfg(vf, H.STATUS.offset, 2, 0x2000);
    expect(cfg(vf, H.STATUS.offset, 2)).toBe(STATUS_CAP_LIST);
  });
});
