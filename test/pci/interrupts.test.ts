/**
 * Notifications (notify region and legacy QUEUE_NOTIFY), MSI-X table and PBA with
 * per-vector and function masking (PCI 3.0 §6.8.2), INTx of a PF (PCI 3.0 §6.2.2: Status.Interrupt,
 * Command.Interrupt Disable) and the absence of INTx on a VF (SR-IOV: VFs have no INTx).
 */
import { describe, expect, it } from 'vitest';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';
import {
  IDS,
  cfg,
  enableMemory,
  record,
  rd,
  rd64,
  refusal,
  setCfg,
  singlePf,
  withVfs,
  wr,
} from '../support/functions.js';

const NOTIFY = 0x400;
const TABLE = 0x2000;
const PBA = 0x3000;
const MSIX_ENABLE = 0x8000;
const MSIX_MASKALL = 0x4000;
const STATUS_INTERRUPT = 0x0008;
const COMMAND_INTX_DISABLE = 0x0400;

function setup(kind: 'pf' | 'vf') {
  const { machine, pf, vf } = withVfs('net');
  enableMemory(pf);
  const fn: VirtioPciFunction = kind === 'pf' ? pf : vf;
  const bar = kind === 'pf' ? ('bar0' as const) : ('bar2' as const);
  return { machine, fn, bar };
}

describe('notifications', () => {
  it('notify region: a 2-byte write at 0x400 + 4 * queue_notify_off kicks that queue', () => {
    for (const kind of ['pf', 'vf'] as const) {
      const { machine, fn, bar } = setup(kind);
      const events = record(machine);
      for (let q = 0; q < IDS.net.queues; q++) wr(fn, bar, NOTIFY + 4 * q, 2, q);
      expect(events).toEqual(
        [0, 1, 2].map((queue) => ({ type: 'notify', bdf: fn.bdf, queue, via: 'notify-region' })),
      );
      refusal(() => rd(fn, bar, NOTIFY, 2), 'VMMR_ERR_WRITE_ONLY');
      refusal(() => wr(fn, bar, NOTIFY, 4, 0), 'VMMR_ERR_WIDTH_MISMATCH', 'notify queue 0');
      refusal(() => wr(fn, bar, NOTIFY + 2, 2, 0), 'VMMR_ERR_WIDTH_MISMATCH');
      refusal(() => wr(fn, bar, NOTIFY + 4 * IDS.net.queues, 2, 3), 'VMMR_ERR_UNMAPPED');
      expect(events).toHaveLength(3);
    }
  });

  it('legacy QUEUE_NOTIFY and the notify region kick the same queue', () => {
    const { machine, fn } = setup('vf');
    const events = record(machine);
    for (let q = 0; q < IDS.net.queues; q++) {
      wr(fn, 'bar2', 0x1000 + 16, 2, q);
      wr(fn, 'bar2', NOTIFY + 4 * q, 2, q);
    }
    const kicks = events.map((e) => (e.type === 'notify' ? [e.queue, e.via] : e.type));
    expect(kicks).toEqual([
      [0, 'legacy-register'],
      [0, 'notify-region'],
      [1, 'legacy-register'],
      [1, 'notify-region'],
      [2, 'legacy-register'],
      [2, 'notify-region'],
    ]);
  });
});

describe('MSI-X table and PBA', () => {
  function program(
    fn: VirtioPciFunction,
    bar: 'bar0' | 'bar2',
    vector: number,
    address: bigint,
    data: number,
    masked: boolean,
  ): void {
    const e = TABLE + 16 * vector;
    wr(fn, bar, e, 8, address);
    wr(fn, bar, e + 8, 4, data);
    wr(fn, bar, e + 12, 4, masked ? 1 : 0);
  }
  const msixFlags = (fn: VirtioPciFunction, value: number): void =>
    setCfg(fn, fn.template.caps.msix + 2, 2, value);

  for (const kind of ['pf', 'vf'] as const) {
    it(`${kind}: reset state: every vector masked, address and data 0, nothing pending`, () => {
      const { fn, bar } = setup(kind);
      for (let v = 0; v < IDS.net.queues + 1; v++) {
        expect(rd(fn, bar, TABLE + 16 * v, 4)).toBe(0);
        expect(rd(fn, bar, TABLE + 16 * v + 4, 4)).toBe(0);
        expect(rd(fn, bar, TABLE + 16 * v + 8, 4)).toBe(0);
        expect(rd(fn, bar, TABLE + 16 * v + 12, 4)).toBe(1);
      }
      expect(rd(fn, bar, PBA, 4)).toBe(0);
    });

    it(`${kind}: an unmasked vector delivers its message; a masked one sets its pending bit until unmasked`, () => {
      const { machine, fn, bar } = setup(kind);
      program(fn, bar, 1, 0xfee0_0000n, 0x4041, false);
      program(fn, bar, 2, 0x1_fee0_1000n, 0x4042, true);
      msixFlags(fn, MSIX_ENABLE);
      wr(fn, bar, 0x16, 2, 0); // queue_select 0 → vector 1
      wr(fn, bar, 0x1a, 2, 1);
      wr(fn, bar, 0x16, 2, 1); // queue 1 → vector 2 (masked)
      wr(fn, bar, 0x1a, 2, 2);
      const events = record(machine);
      fn.device.raiseQueueInterrupt(0);
      expect(events).toEqual([
        {
          type: 'interrupt',
          bdf: fn.bdf,
          mode: 'msix',
          vector: 1,
          address: '0x00000000fee00000',
          data: 0x4041,
        },
      ]);
      events.length = 0;
      fn.device.raiseQueueInterrupt(1);
      expect(events).toEqual([{ type: 'interrupt', bdf: fn.bdf, mode: 'msix-pending', vector: 2 }]);
      expect(rd(fn, bar, PBA, 4)).toBe(1 << 2);
      expect(rd64(fn, bar, PBA)).toBe(4n);
      events.length = 0;
      wr(fn, bar, TABLE + 16 * 2 + 12, 4, 0); // unmask
      expect(events).toEqual([
        {
          type: 'interrupt',
          bdf: fn.bdf,
          mode: 'msix',
          vector: 2,
          address: '0x00000001fee01000',
          data: 0x4042,
        },
      ]);
      expect(rd(fn, bar, PBA, 4)).toBe(0);
      // no INTx while MSI-X is enabled
      expect(cfg(fn, 0x06, 2) & STATUS_INTERRUPT).toBe(0);
    });

    it(`${kind}: the function mask holds every vector pending; clearing it delivers them`, () => {
      const { machine, fn, bar } = setup(kind);
      program(fn, bar, 0, 0xfee0_0000n, 0x30, false);
      program(fn, bar, 3, 0xfee0_0000n, 0x33, false);
      msixFlags(fn, MSIX_ENABLE | MSIX_MASKALL);
      wr(fn, bar, 0x10, 2, 0); // config vector 0
      wr(fn, bar, 0x16, 2, 2); // queue 2 → vector 3
      wr(fn, bar, 0x1a, 2, 3);
      const events = record(machine);
      fn.device.raiseConfigChange();
      fn.device.raiseQueueInterrupt(2);
      expect(events.filter((e) => e.type === 'interrupt')).toEqual([
        { type: 'interrupt', bdf: fn.bdf, mode: 'msix-pending', vector: 0 },
        { type: 'interrupt', bdf: fn.bdf, mode: 'msix-pending', vector: 3 },
      ]);
      expect(rd(fn, bar, PBA, 4)).toBe(0b1001);
      events.length = 0;
      msixFlags(fn, MSIX_ENABLE);
      expect(events).toEqual([
        {
          type: 'interrupt',
          bdf: fn.bdf,
          mode: 'msix',
          vector: 0,
          address: '0x00000000fee00000',
          data: 0x30,
        },
        {
          type: 'interrupt',
          bdf: fn.bdf,
          mode: 'msix',
          vector: 3,
          address: '0x00000000fee00000',
          data: 0x33,
        },
      ]);
      expect(rd(fn, bar, PBA, 4)).toBe(0);
    });
  }

  it('a queue without a vector (0xFFFF) raises nothing while MSI-X is enabled', () => {
    const { machine, fn } = setup('pf');
    msixFlags(fn, MSIX_ENABLE);
    const events = record(machine);
    fn.device.raiseQueueInterrupt(0);
    expect(events.filter((e) => e.type === 'interrupt')).toEqual([]);
  });

  it('table entries: dword and qword accesses only; Vector Control keeps only the mask bit; PBA is read-only', () => {
    const { fn, bar } = setup('pf');
    refusal(() => wr(fn, bar, TABLE, 2, 0), 'VMMR_ERR_WIDTH_MISMATCH', 'MSI-X table');
    refusal(() => rd(fn, bar, TABLE + 8, 1), 'VMMR_ERR_WIDTH_MISMATCH');
    refusal(() => wr(fn, bar, PBA, 4, 1), 'VMMR_ERR_READ_ONLY');
    // PCI 3.0 §6.8.2.9: Vector Control bits 31:1 are reserved (read 0 after reset)
    wr(fn, bar, TABLE + 12, 4, 0xffff_fffe);
    expect(rd(fn, bar, TABLE + 12, 4)).toBe(0);
    wr(fn, bar, TABLE + 12, 4, 0xffff_ffff);
    expect(rd(fn, bar, TABLE + 12, 4)).toBe(1);
    // beyond the table (4 vectors for net)
    refusal(() => rd(fn, bar, TABLE + 16 * (IDS.net.queues + 1), 4), 'VMMR_ERR_UNMAPPED');
  });
});

describe('INTx', () => {
  it('PF: ISR non-zero with MSI-X off sets Status.Interrupt and asserts pin A; reading the ISR deasserts', () => {
    const { machine, pf } = singlePf('net');
    enableMemory(pf);
    const events = record(machine);
    pf.device.raiseQueueInterrupt(0);
    expect(cfg(pf, 0x06, 2) & STATUS_INTERRUPT).toBe(STATUS_INTERRUPT);
    expect(pf.intxAsserted).toBe(true);
    expect(events).toEqual([{ type: 'interrupt', bdf: pf.bdf, mode: 'intx', level: true }]);
    // a second interrupt while asserted: level unchanged, no new edge
    pf.device.raiseConfigChange();
    expect(events.filter((e) => e.type === 'interrupt')).toHaveLength(1);
    expect(rd(pf, 'bar0', 0x100, 1)).toBe(3);
    expect(cfg(pf, 0x06, 2) & STATUS_INTERRUPT).toBe(0);
    expect(pf.intxAsserted).toBe(false);
    expect(events.filter((e) => e.type === 'interrupt').at(-1)).toEqual({
      type: 'interrupt',
      bdf: pf.bdf,
      mode: 'intx',
      level: false,
    });
  });

  it('PF: Command.Interrupt Disable masks the pin but not Status.Interrupt', () => {
    const { machine, pf } = singlePf('net');
    const events = record(machine);
    setCfg(pf, 0x04, 2, COMMAND_INTX_DISABLE);
    pf.device.raiseQueueInterrupt(0);
    expect(cfg(pf, 0x06, 2) & STATUS_INTERRUPT).toBe(STATUS_INTERRUPT);
    expect(pf.intxAsserted).toBe(false);
    expect(events).toEqual([]);
    setCfg(pf, 0x04, 2, 0);
    expect(pf.intxAsserted).toBe(true);
    setCfg(pf, 0x04, 2, COMMAND_INTX_DISABLE);
    expect(pf.intxAsserted).toBe(false);
    expect(events).toEqual([
      { type: 'interrupt', bdf: pf.bdf, mode: 'intx', level: true },
      { type: 'interrupt', bdf: pf.bdf, mode: 'intx', level: false },
    ]);
  });

  it('PF: enabling MSI-X deasserts INTx; a device reset clears the ISR and deasserts', () => {
    const { pf } = singlePf('net');
    pf.device.raiseQueueInterrupt(0);
    expect(pf.intxAsserted).toBe(true);
    setCfg(pf, pf.template.caps.msix + 2, 2, MSIX_ENABLE);
    expect(pf.intxAsserted).toBe(false);
    expect(cfg(pf, 0x06, 2) & STATUS_INTERRUPT).toBe(0);
    setCfg(pf, pf.template.caps.msix + 2, 2, 0);
    expect(pf.intxAsserted).toBe(true);
    pf.device.writeStatus(0, 'modern');
    expect(pf.intxAsserted).toBe(false);
  });

  it('VF: no INTx at all (Interrupt Pin 0): an interrupt with MSI-X off only sets the ISR', () => {
    const { machine, vf } = withVfs('net');
    const events = record(machine);
    vf.device.raiseQueueInterrupt(0);
    expect(events).toEqual([]);
    expect(cfg(vf, 0x06, 2) & STATUS_INTERRUPT).toBe(0);
    expect(cfg(vf, 0x3d, 1)).toBe(0);
    expect(rd(vf, 'bar2', 0x1000 + 19, 1)).toBe(1);
  });
});
