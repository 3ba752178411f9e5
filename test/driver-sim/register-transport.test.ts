/**
 * The register-level driver transport on each interface: legacy through the guest I/O view,
 * legacy directly on the MMR block in the VF BAR, modern on the PF and on the VF; the accesses
 * it makes are those of Linux's probe (status sequence, features, queue programming).
 */
import { describe, expect, it } from 'vitest';
import { NetDevice } from '../../src/devices/net/device.js';
import { legacy, virtioStatus } from '../../src/spec/index.js';
import { mac } from '../support/frames.js';
import { netDriverOn, transport, wiredMachine, type DriverSetup } from '../support/wired.js';

const PF = '0000:01:00.0';
const VF0 = '0000:01:00.1';
const ST = virtioStatus.constants;

function frames(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => {
    const b = Buffer.alloc(60 + i);
    mac('02:00:00:00:00:99').copy(b, 0);
    mac('02:00:00:00:00:01').copy(b, 6);
    b.writeUInt16BE(0x88b5, 12);
    return b;
  });
}

const cases: Array<{ bdf: string; setup: DriverSetup; header: number }> = [
  { bdf: VF0, setup: { via: 'legacy-io', names: [] }, header: 10 },
  { bdf: VF0, setup: { via: 'legacy-mmr', names: [] }, header: 10 },
  { bdf: VF0, setup: { via: 'legacy-mmr', names: ['MRG_RXBUF'] }, header: 12 },
  { bdf: VF0, setup: { via: 'modern', names: ['VERSION_1'] }, header: 12 },
  { bdf: PF, setup: { via: 'modern', names: ['VERSION_1'] }, header: 12 },
  { bdf: PF, setup: { via: 'modern', names: ['VERSION_1', 'RING_PACKED'] }, header: 12 },
];

describe('register transport', () => {
  for (const c of cases) {
    it(`${c.setup.via} on ${c.bdf === PF ? 'the PF' : 'a VF'} (${c.setup.names.join(', ') || 'no features'}): ${c.header}-byte header`, () => {
      const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 1, initialVfs: 1 }]);
      const { driver, transport: t } = netDriverOn(machine, c.bdf, c.setup);
      const sent = frames(20);
      driver.send(sent);
      const net = machine.dataPathOf(c.bdf).backend as NetDevice;
      expect(net.headerSize).toBe(c.header);
      expect(net.capture.frames().map((f) => Buffer.from(f.data))).toEqual(sent);
      const ok = ST.ACKNOWLEDGE.value | ST.DRIVER.value | ST.DRIVER_OK.value;
      expect(t.status & ok).toBe(ok);
    });
  }

  it('a legacy driver accepts only the low 32 offered bits it wants', () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 1, initialVfs: 1 }]);
    const t = transport(machine, VF0, 'net', { via: 'legacy-io', names: ['VERSION_1', 'MAC', 'MRG_RXBUF'] });
    // <linux/virtio_net.h>: VIRTIO_NET_F_MAC 5, VIRTIO_NET_F_MRG_RXBUF 15; VERSION_1 (32) is not legacy.
    expect(t.negotiated).toEqual({ lo: (1 << 5) | (1 << 15), hi: 0 });
    expect(t.read(legacy.registers.GUEST_FEATURES.offset, 4)).toBe((1 << 5) | (1 << 15));
  });

  it('packed rings are negotiated on the PF', () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 0 }]);
    const t = transport(machine, PF, 'net', { via: 'modern', names: ['VERSION_1', 'RING_PACKED'] });
    expect(t.format).toBe('packed');
  });
});
