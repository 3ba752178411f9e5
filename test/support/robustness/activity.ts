/**
 * Driver activity that leaves a machine in a rich state: VFs enabled on every PF, VF BARs
 * placed, System Page Size changed, Linux probe sequences (legacy through the MMR block, modern
 * through the common cfg) left at DRIVER_OK, MSI-X programmed, device config written.
 */
import fc from 'fast-check';
import { read, write, type Space } from '../../../src/access/index.js';
import { legacyProbe, modernProbe, runSim, type SimOp } from '../../../src/driver-sim/probes.js';
import { isVmmrError } from '../../../src/base/errors.js';
import type { Machine } from '../../../src/machine/machine.js';
import { LEGACY_BLOCK_OFFSET } from '../../../src/mmr/locator.js';
import { barLayout, pciHeader, sriovCap } from '../../../src/spec/index.js';
import type { VirtioPciFunction } from '../../../src/virtio/pci-function.js';

const S = sriovCap.registers;

function portOf(fn: VirtioPciFunction): { read(op: SimOp): number; write(op: SimOp): void } {
  const bar = `bar${fn.template.barIndex}` as Space;
  const where = (op: SimOp): [Space, number] =>
    op.space === 'config'
      ? ['config', op.offset]
      : op.space === 'legacy'
        ? [bar, LEGACY_BLOCK_OFFSET + op.offset]
        : [`bar${op.bar ?? fn.template.barIndex}` as Space, op.offset];
  return {
    read: (op) => {
      const [sp, off] = where(op);
      return Number(read(fn, sp, off, op.width));
    },
    write: (op) => {
      const [sp, off] = where(op);
      write(fn, sp, off, op.width, op.value ?? 0);
    },
  };
}

export interface Activity {
  numVfs: number[];
  pageSizeShift: number;
  probes: Array<{ pick: number; legacy: boolean; msix: boolean }>;
  writes: Array<{ pick: number; at: number; value: number }>;
}

export const activity: fc.Arbitrary<Activity> = fc.record({
  numVfs: fc.array(fc.nat({ max: 8 }), { minLength: 8, maxLength: 8 }),
  pageSizeShift: fc.constantFrom(0, 0, 1, 4),
  probes: fc.array(fc.record({ pick: fc.nat(), legacy: fc.boolean(), msix: fc.boolean() }), {
    maxLength: 12,
  }),
  writes: fc.array(fc.record({ pick: fc.nat(), at: fc.nat({ max: 0x1ff }), value: fc.nat() }), {
    maxLength: 40,
  }),
});

/** Applies an activity; refusals of the random writes are expected and ignored. */
export function applyActivity(m: Machine, a: Activity): void {
  m.pfs.forEach((pf, i) => {
    const total = pf.definition.totalVfs;
    write(pf, 'config', pciHeader.registers.COMMAND.offset, 2, 6);
    write(pf, 'config', pciHeader.registers.BASE_ADDRESS_0.offset, 4, 0xfe000000 - i * 0x100000);
    write(pf, 'config', pf.sriov + S.SYS_PGSIZE.offset, 4, 1 << a.pageSizeShift);
    write(pf, 'config', pf.sriov + S.BAR0.offset + 8, 4, 0xc0000000 - i * 0x1000000);
    write(pf, 'config', pf.sriov + S.BAR0.offset + 12, 4, i);
    write(pf, 'config', pf.sriov + S.NUM_VF.offset, 2, Math.min(total, a.numVfs[i % a.numVfs.length]!));
    try {
      write(pf, 'config', pf.sriov + S.CTRL.offset, 2, 9);
    } catch (e) {
      if (!isVmmrError(e) || e.code !== 'VMMR_ERR_LIMIT') throw e;
    }
  });
  const all = (): VirtioPciFunction[] => [...m.functions()];
  for (const p of a.probes) {
    const fns = all();
    const fn = fns[p.pick % fns.length]!;
    const sim =
      fn.kind === 'vf' && p.legacy
        ? legacyProbe({ msix: p.msix, teardown: false, notify: [0] })
        : modernProbe({ msix: p.msix, teardown: false, notify: [0] });
    runSim(sim, portOf(fn));
  }
  for (const w of a.writes) {
    const fns = all();
    const fn = fns[w.pick % fns.length]!;
    const bar = `bar${fn.template.barIndex}` as Space;
    // Device config, MSI-X table entries, queue registers: the driver-writable state.
    const targets: Array<[Space, number, number]> = [
      [bar, barLayout.registers.DEVICE_CFG.offset + (w.at % 8), 1],
      [bar, barLayout.registers.MSIX_TABLE.offset + (w.at % 32) * 4, 4],
      [bar, barLayout.registers.COMMON_CFG.offset + 22, 2],
      [bar, barLayout.registers.COMMON_CFG.offset + 32, 4],
      ['config', pciHeader.registers.INTERRUPT_LINE.offset, 1],
    ];
    const [sp, off, width] = targets[w.at % targets.length]!;
    try {
      write(fn, sp, off, width, w.value % 2 ** (8 * width));
    } catch (e) {
      if (!isVmmrError(e)) throw e;
    }
  }
}
