/**
 * The translator's I/O BAR0 (docs/device-model.md "The translator's guest view"): each guest I/O access is one MMIO access of the same
 * width at the legacy block + port; refusals; the device-config move seen through I/O; the
 * emulated INTx; notify routing; the trace ring.
 */
import { describe, expect, it } from 'vitest';
import { VmmrError } from '../../src/base/errors.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import { viewOf as guestView } from '../support/functions.js';
import { IDS, rd, record, refusal, setCfg, withVfs, wr } from '../support/functions.js';

const io = (vf: MmrVf, port: number, w: number): number => rd(vf, 'io', port, w);
const setIo = (vf: MmrVf, port: number, w: number, v: number): void => wr(vf, 'io', port, w, v);
const G = (vf: MmrVf, off: number, w: number): number => rd(vf, 'guest-config', off, w);
const setG = (vf: MmrVf, off: number, w: number, v: number): void => wr(vf, 'guest-config', off, w, v);

/** A VF whose guest has I/O decode on (Command.IO). */
function guest(type: Parameters<typeof withVfs>[0] = 'net', extra: Parameters<typeof withVfs>[2] = {}) {
  const fixture = withVfs(type, 2, extra);
  setG(fixture.vf, 0x04, 2, 0x0001);
  return fixture;
}

function guestMsix(vf: MmrVf, on: boolean): void {
  setG(vf, vf.template.caps.msix + 2, 2, on ? 0x8000 : 0);
}

describe('I/O is MMIO on the legacy block, width for width', () => {
  it('every header register reads through I/O what BAR2 + 0x1000 + port reads', () => {
    const { vf } = guest('block');
    const offer = io(vf, 0, 4);
    setIo(vf, 4, 4, offer);
    setIo(vf, 18, 1, 3);
    for (const [port, w] of [
      [0, 4],
      [4, 4],
      [8, 4],
      [12, 2],
      [14, 2],
      [18, 1],
      [20, 4],
      [24, 1],
      [26, 2],
    ] as const) {
      expect(io(vf, port, w), `port ${port}`).toBe(rd(vf, 'bar2', 0x1000 + port, w));
    }
    expect(io(vf, 18, 1)).toBe(3);
    expect(vf.device.driverFeatures(0)).toBe(offer);
  });

  it('widths are preserved: a strict width mismatch at the MMR block comes back through I/O', () => {
    const { vf } = guest('net');
    refusal(() => io(vf, 18, 2), 'VMMR_ERR_WIDTH_MISMATCH', 'STATUS');
    refusal(() => io(vf, 0, 2), 'VMMR_ERR_WIDTH_MISMATCH', 'HOST_FEATURES');
    refusal(() => setIo(vf, 16, 1, 0), 'VMMR_ERR_WIDTH_MISMATCH', 'QUEUE_NOTIFY');
    refusal(() => setIo(vf, 0, 4, 0), 'VMMR_ERR_READ_ONLY', 'HOST_FEATURES');
  });

  it('compat VFs take the same accesses the QEMU way', () => {
    const { vf } = guest('net', { policy: 'compat' });
    setIo(vf, 18, 1, 3);
    expect(io(vf, 18, 2)).toBe(3);
    expect(io(vf, 2, 2)).toBe(0xffff);
  });
});

describe('refusals', () => {
  it('I/O space disabled (guest Command.IO clear): VMMR_ERR_IO_DISABLED, nothing reaches the device', () => {
    const { vf } = withVfs('net');
    const e = refusal(() => io(vf, 0, 4), 'VMMR_ERR_IO_DISABLED');
    expect(e.context).toMatchObject({ bdf: vf.bdf, space: 'io', offset: 0, width: 4 });
    refusal(() => setIo(vf, 18, 1, 1), 'VMMR_ERR_IO_DISABLED');
    expect(vf.device.status).toBe(0);
    setG(vf, 0x04, 2, 0x0001);
    setIo(vf, 18, 1, 1);
    expect(vf.device.status).toBe(1);
    setG(vf, 0x04, 2, 0x0002); // memory on, I/O off
    refusal(() => io(vf, 18, 1), 'VMMR_ERR_IO_DISABLED');
    // the GuestView API refuses the same way
    refusal(() => guestView(vf).ioRead(18, 1), 'VMMR_ERR_IO_DISABLED');
  });

  it('beyond I/O BAR0: VMMR_ERR_OUT_OF_RANGE', () => {
    const { vf } = guest('net');
    const len = guestView(vf).ioLength;
    expect(len).toBe(64);
    for (const [port, w] of [
      [len, 1],
      [len, 4],
      [len + 0x100, 2],
    ] as const) {
      refusal(() => io(vf, port, w), 'VMMR_ERR_OUT_OF_RANGE');
      refusal(() => guestView(vf).ioRead(port, w), 'VMMR_ERR_OUT_OF_RANGE');
    }
  });

  it('widths other than 1, 2, 4: VMMR_ERR_BAD_WIDTH', () => {
    const { vf } = guest('net');
    for (const w of [8, 3, 0]) {
      refusal(() => io(vf, 0, w), 'VMMR_ERR_BAD_WIDTH');
      refusal(() => guestView(vf).ioRead(0, w), 'VMMR_ERR_BAD_WIDTH');
      refusal(() => guestView(vf).ioWrite(0, w, 0), 'VMMR_ERR_BAD_WIDTH');
    }
  });

  it('misaligned ports would not be one MMIO access: VMMR_ERR_UNALIGNED', () => {
    const { vf } = guest('net');
    for (const [port, w] of [
      [1, 2],
      [2, 4],
      [19, 2],
    ] as const) {
      refusal(() => io(vf, port, w), 'VMMR_ERR_UNALIGNED');
      refusal(() => guestView(vf).ioRead(port, w), 'VMMR_ERR_UNALIGNED');
      refusal(() => guestView(vf).ioWrite(port, w, 0), 'VMMR_ERR_UNALIGNED');
    }
  });

  it('the host side still gates the VF BAR: VF MSE clear is VMMR_ERR_DECODE_DISABLED', () => {
    const { pf, vf } = guest('net');
    setCfg(pf, pf.sriov + 0x08, 2, 0x1);
    refusal(() => io(vf, 0, 4), 'VMMR_ERR_DECODE_DISABLED');
  });
});

describe('device config at 20 or 24, seen through I/O', () => {
  it('MSI-X enabled through the guest moves the device config from port 20 to port 24', () => {
    const { vf } = guest('net');
    const mac0 = vf.device.configByte(0);
    const mac01 = mac0 | (vf.device.configByte(1) << 8);
    expect(io(vf, 20, 1)).toBe(mac0);
    expect(io(vf, 20, 2)).toBe(mac01);
    guestMsix(vf, true);
    expect(io(vf, 20, 2)).toBe(0xffff); // MSI_CONFIG_VECTOR
    expect(io(vf, 22, 2)).toBe(0xffff); // MSI_QUEUE_VECTOR
    expect(io(vf, 24, 1)).toBe(mac0);
    expect(io(vf, 24, 2)).toBe(mac01);
    setIo(vf, 20, 2, 1);
    expect(io(vf, 20, 2)).toBe(1);
    guestMsix(vf, false);
    expect(io(vf, 20, 2)).toBe(mac01);
  });

  it('a byte-by-byte read of the whole config matches the device at either offset', () => {
    const { vf } = guest('scsi');
    const size = vf.device.model.config.size;
    const expected = Array.from({ length: size }, (_, i) => vf.device.configByte(i));
    expect(Array.from({ length: size }, (_, i) => io(vf, 20 + i, 1))).toEqual(expected);
    guestMsix(vf, true);
    expect(Array.from({ length: size }, (_, i) => io(vf, 24 + i, 1))).toEqual(expected);
  });
});

describe('emulated INTx (level follows the ISR while MSI-X is disabled)', () => {
  it('an interrupt asserts it; the ISR read through I/O returns, clears and deasserts it', () => {
    const { machine, vf } = guest('net');
    const view = guestView(vf);
    const events = record(machine);
    vf.device.raiseQueueInterrupt(0);
    expect(view.intxAsserted).toBe(true);
    expect(G(vf, 0x06, 2) & 0x8).toBe(0x8); // guest Status.Interrupt
    expect(rd(vf, 'config', 0x06, 2) & 0x8).toBe(0); // the VF itself has no INTx
    expect(io(vf, 19, 1)).toBe(1);
    expect(view.intxAsserted).toBe(false);
    expect(G(vf, 0x06, 2) & 0x8).toBe(0);
    expect(io(vf, 19, 1)).toBe(0);
    expect(events).toEqual([
      { type: 'interrupt', bdf: vf.bdf, mode: 'intx', level: true, view: 'guest' },
      { type: 'interrupt', bdf: vf.bdf, mode: 'intx', level: false, view: 'guest' },
    ]);
  });

  it('disabling the VFs while the emulated pin is asserted drops it before vf-disable', () => {
    const { machine, vf } = guest('net');
    const view = guestView(vf);
    vf.device.raiseQueueInterrupt(0);
    expect(view.intxAsserted).toBe(true);
    const events = record(machine);
    const pf = vf.pf;
    wr(pf, 'config', pf.sriov + 0x08, 2, 0);
    expect(events).toEqual([
      { type: 'interrupt', bdf: vf.bdf, mode: 'intx', level: false, view: 'guest' },
      { type: 'vf-disable', bdf: pf.bdf, numVfs: 2 },
    ]);
  });

  it('guest Command.Interrupt Disable masks the pin; MSI-X enabled means no INTx', () => {
    const { machine, vf } = guest('block');
    const view = guestView(vf);
    const events = record(machine);
    setG(vf, 0x04, 2, 0x0401);
    vf.device.raiseConfigChange();
    expect(view.intxAsserted).toBe(false);
    expect(G(vf, 0x06, 2) & 0x8).toBe(0x8);
    setG(vf, 0x04, 2, 0x0001);
    expect(view.intxAsserted).toBe(true);
    expect(io(vf, 19, 1)).toBe(2);
    expect(view.intxAsserted).toBe(false);
    guestMsix(vf, true);
    vf.device.raiseQueueInterrupt(0);
    expect(view.intxAsserted).toBe(false);
    expect(events.filter((e) => e.type === 'interrupt')).toEqual([
      { type: 'interrupt', bdf: vf.bdf, mode: 'intx', level: true, view: 'guest' },
      { type: 'interrupt', bdf: vf.bdf, mode: 'intx', level: false, view: 'guest' },
    ]);
  });
});

describe('notify routing', () => {
  it("default (notify-region): a 2-byte QUEUE_NOTIFY write goes to the queue's notify address", () => {
    const { machine, vf } = guest('net');
    const view = guestView(vf);
    view.enableTrace(16);
    const events = record(machine);
    for (let q = 0; q < IDS.net.queues; q++) setIo(vf, 16, 2, q);
    expect(events).toEqual(
      [0, 1, 2].map((queue) => ({ type: 'notify', bdf: vf.bdf, queue, via: 'notify-region' })),
    );
    expect(view.trace!.list().map((t) => [t.port, t.offset, t.register])).toEqual([
      [16, 0x400, 'notify queue 0'],
      [16, 0x404, 'notify queue 1'],
      [16, 0x408, 'notify queue 2'],
    ]);
    // an index that names no queue has no notify address: it goes to the legacy register, which ignores it
    setIo(vf, 16, 2, IDS.net.queues);
    expect(events).toHaveLength(3);
    expect(view.trace!.list().at(-1)).toMatchObject({
      offset: 0x1010,
      register: 'QUEUE_NOTIFY',
      outcome: 'ok',
    });
  });

  it("topology notify 'legacy-register': the write goes to legacy offset 16", () => {
    const { machine, vf } = guest('net', { notify: 'legacy-register' });
    const view = guestView(vf);
    view.enableTrace();
    const events = record(machine);
    setIo(vf, 16, 2, 1);
    expect(events).toEqual([{ type: 'notify', bdf: vf.bdf, queue: 1, via: 'legacy-register' }]);
    expect(view.trace!.list()).toMatchObject([
      { op: 'write', port: 16, width: 2, value: 1, bar: 2, offset: 0x1010, register: 'QUEUE_NOTIFY' },
    ]);
  });
});

describe('trace ring', () => {
  it('is off by default', () => {
    const { vf } = guest('net');
    io(vf, 0, 4);
    expect(guestView(vf).trace).toBeUndefined();
  });

  it('records each translated access with sequence number, register name and outcome; bounded depth', () => {
    const { vf } = guest('net');
    const view = guestView(vf);
    view.enableTrace(4);
    const features = io(vf, 0, 4);
    setIo(vf, 4, 4, features);
    setIo(vf, 14, 2, 1);
    io(vf, 12, 2);
    setIo(vf, 18, 1, 3);
    io(vf, 20, 1);
    const entries = view.trace!.list();
    expect(entries).toHaveLength(4);
    expect(view.trace!.recorded).toBe(6);
    expect(entries.map((e) => e.seq)).toEqual([3, 4, 5, 6]);
    expect(entries.map((e) => [e.op, e.port, e.width, e.offset, e.register, e.outcome])).toEqual([
      ['write', 14, 2, 0x100e, 'QUEUE_SEL', 'ok'],
      ['read', 12, 2, 0x100c, 'QUEUE_NUM', 'ok'],
      ['write', 18, 1, 0x1012, 'STATUS', 'ok'],
      ['read', 20, 1, 0x1014, 'device config +0x0', 'ok'],
    ]);
    expect(entries[1]!.value).toBe(256);
    expect(entries[2]!.value).toBe(3);
    expect(entries.every((e) => e.bar === 2)).toBe(true);
    expect(view.trace!.list(5).map((e) => e.seq)).toEqual([6]);
  });

  it('records a refusal at the MMR block with its code, and the refusal still reaches the caller', () => {
    const { vf } = guest('net');
    const view = guestView(vf);
    view.enableTrace(8);
    expect(() => io(vf, 18, 2)).toThrow(VmmrError);
    expect(() => setIo(vf, 12, 2, 5)).toThrow(VmmrError);
    expect(view.trace!.list().map((e) => [e.op, e.register, e.outcome])).toEqual([
      ['read', 'STATUS', 'VMMR_ERR_WIDTH_MISMATCH'],
      ['write', 'QUEUE_NUM', 'VMMR_ERR_READ_ONLY'],
    ]);
  });

  it('records an access refused before translation (I/O Space disabled) with its code', () => {
    const { vf } = guest('net');
    const view = guestView(vf);
    view.enableTrace(8);
    setG(vf, 0x04, 2, 0);
    expect(() => io(vf, 0, 4)).toThrow(VmmrError);
    expect(view.trace!.list().map((e) => [e.op, e.port, e.register, e.outcome])).toEqual([
      ['read', 0, 'HOST_FEATURES', 'VMMR_ERR_IO_DISABLED'],
    ]);
  });

  it('can be switched off again; a bad depth is refused', () => {
    const { vf } = guest('net');
    const view = guestView(vf);
    view.enableTrace(2);
    io(vf, 0, 4);
    view.disableTrace();
    expect(view.trace).toBeUndefined();
    expect(() => view.enableTrace(0)).toThrow(RangeError);
  });
});
