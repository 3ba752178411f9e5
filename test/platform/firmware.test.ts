/**
 * Firmware wired into the machine (src/platform/firmware.ts): addresses at build, after VF
 * enable and when a guest view opens, from the topology's platform map. The addresses are read
 * back by pciutils (`lspci -F` on the dumps), and compared with the one-shot assignAddresses of
 * a twin machine (the same first-fit placement, done eagerly).
 */
import { describe, expect, it } from 'vitest';
import { lspci, rd as read, remember, viewOf, wr as write } from '../support/functions.js';
import { formatLspciDump } from '../../src/views/dump.js';
import { Machine } from '../../src/machine/machine.js';
import { parseTopology, type ResolvedTopology } from '../../src/machine/topology.js';
import { assignAddresses } from '../../src/platform/assign.js';
import { withFirmware } from '../../src/platform/firmware.js';
import type { VirtioPf } from '../../src/mmr/pf.js';

const KiB = 1024;

function topology(platform?: object): ResolvedTopology {
  return parseTopology(
    {
      ...(platform ? { platform } : {}),
      pfs: [
        { bdf: '0000:01:00.0', type: 'net', totalVfs: 64, initialVfs: 0 },
        { bdf: '0000:81:00.0', type: 'block', totalVfs: 64, initialVfs: 0 },
      ],
    },
    'test topology',
  );
}

function machineOf(platform?: object): Machine {
  return remember(new Machine(topology(platform), { firmware: withFirmware }));
}

function enableVfs(pf: VirtioPf, n: number): void {
  write(pf, 'config', pf.sriov + 0x10, 2, n);
  write(pf, 'config', pf.sriov + 0x08, 2, 0x9);
}

function memBar(read32: (offset: number) => number, offset: number): number {
  return ((read32(offset) & ~0xf) >>> 0) + read32(offset + 4) * 2 ** 32;
}

function hostDump(pf: VirtioPf): string {
  return formatLspciDump(pf.bdf.slice(5), 'vmmr', pf.config.snapshot());
}

describe('firmware at build', () => {
  it('assigns the PF BARs and the SR-IOV VF BARs, aligned, and routes INTx', () => {
    const machine = machineOf();
    for (const pf of machine.pfs) {
      const bar0 = memBar((o) => read(pf, 'config', o, 4), 0x10);
      const vfBar = memBar((o) => read(pf, 'config', o, 4), pf.sriov + 0x24 + 8);
      expect(bar0 % (16 * KiB)).toBe(0);
      expect(bar0).toBeGreaterThanOrEqual(0xc0000000);
      expect(vfBar % pf.vfBarSize()).toBe(0);
      expect(vfBar).toBeGreaterThanOrEqual(0xc0000000);
      const out = lspci(hostDump(pf)).stdout;
      expect(out).toContain(`Region 0: Memory at ${bar0.toString(16)} (64-bit, non-prefetchable) [disabled]`);
      expect(out).toMatch(
        new RegExp(`Region 2: Memory at 0*${vfBar.toString(16)} \\(64-bit, non-prefetchable\\)`),
      );
      expect(out).toMatch(/Interrupt: pin A routed to IRQ 1[01]/);
      // Decode stays as a driver finds it.
      expect(read(pf, 'config', 0x04, 2)).toBe(0);
    }
  });

  it('takes the windows from the topology', () => {
    const machine = machineOf({
      mem32: { base: '0xe0000000', size: '0x10000000' },
      io: { base: '0xd000', size: '0x1000' },
    });
    const pf = machine.findPf('0000:01:00.0');
    expect(memBar((o) => read(pf, 'config', o, 4), pf.sriov + 0x24 + 8)).toBe(0xe0000000);
    enableVfs(pf, 2);
    expect(read(machine.findVf('0000:01:00.1'), 'guest-config', 0x10, 4)).toBe(0xd001);
  });

  it('refuses a topology whose map cannot work, naming the field', () => {
    expect(() => topology({ io: { base: '0xf000', size: '0x2000' } })).toThrow(
      /test topology: platform\.io: \[0xf000, 0x11000\) runs past 0x10000/,
    );
    expect(() => topology({ mem32: { base: 12 }, nvram: 1 })).toThrow(/platform: unknown property "nvram"/);
  });
});

describe('firmware on VF enable and guest view open', () => {
  it('gives each guest view its I/O BAR0 from 0xC000 in VF order, whatever order views open in', () => {
    const machine = machineOf();
    const pf = machine.findPf('0000:01:00.0');
    enableVfs(pf, 4);
    // No view opens at VF enable (an idle VF stays small).
    expect([...machine.translator.openViews()]).toEqual([]);
    const third = machine.findVf('0000:01:00.3');
    expect(read(third, 'guest-config', 0x10, 4)).toBe(0xc081);
    const out = lspci(formatLspciDump('01:00.3', 'vmmr guest', viewOf(third).snapshot())).stdout;
    expect(out).toContain('Region 0: I/O ports at c080 [disabled]');
    expect(out).toMatch(/Region 2: Memory at [0-9a-f]+ \(64-bit, non-prefetchable\) \[disabled\]/);
    expect(out).toContain('Interrupt: pin A routed to IRQ 10');
    expect(read(machine.findVf('0000:01:00.1'), 'guest-config', 0x10, 4)).toBe(0xc001);
  });

  it('places as the eager assignAddresses does on a twin machine', () => {
    const lazy = machineOf();
    const eager = remember(new Machine(topology()));
    for (const m of [lazy, eager]) {
      enableVfs(m.findPf('0000:01:00.0'), 5);
      enableVfs(m.findPf('0000:81:00.0'), 3);
    }
    assignAddresses(eager);
    for (const pf of eager.pfs) {
      expect(lazy.findPf(pf.bdf).config.snapshot()).toEqual(pf.config.snapshot());
      for (const vf of [...pf.vfs].reverse()) {
        const twin = lazy.findVf(vf.bdf);
        for (const offset of [0x10, 0x18, 0x1c, 0x3c])
          expect(read(twin, 'guest-config', offset, 4), `${vf.bdf} 0x${offset.toString(16)}`).toBe(
            read(vf, 'guest-config', offset, 4),
          );
      }
    }
  });

  it('keeps what a harness programs, and plans around views already placed', () => {
    const machine = machineOf();
    const pf = machine.findPf('0000:01:00.0');
    enableVfs(pf, 2);
    const vf1 = machine.findVf('0000:01:00.1');
    write(vf1, 'guest-config', 0x10, 4, 0xc100);
    expect(read(vf1, 'guest-config', 0x10, 4)).toBe(0xc101);
    const host = pf.sriov + 0x24 + 8;
    write(pf, 'config', host, 4, 0xd0000000);
    expect(read(pf, 'config', host, 4)).toBe(0xd0000004);
    // Another PF enables VFs: the machine is planned again, nothing programmed moves.
    enableVfs(machine.findPf('0000:81:00.0'), 1);
    expect(read(vf1, 'guest-config', 0x10, 4)).toBe(0xc101);
    expect(read(pf, 'config', host, 4)).toBe(0xd0000004);
    expect(read(machine.findVf('0000:01:00.2'), 'guest-config', 0x10, 4)).toBe(0xc001);
  });

  it('re-places BARs that an FLR cleared when VFs are enabled again', () => {
    const machine = machineOf();
    const pf = machine.findPf('0000:01:00.0');
    const before = read(pf, 'config', 0x10, 4);
    write(pf, 'config', pf.template.caps.pcie + 0x08, 2, 0x8000);
    expect(read(pf, 'config', 0x10, 4)).toBe(4);
    enableVfs(pf, 1);
    expect(read(pf, 'config', 0x10, 4)).toBe(before);
  });
});

describe('firmware and state', () => {
  it('opening a guest view changes no snapshot; a restore gets the same addresses back', () => {
    const machine = machineOf();
    enableVfs(machine.findPf('0000:01:00.0'), 3);
    const before = JSON.stringify(machine.snapshot());
    const vf = machine.findVf('0000:01:00.2');
    expect(read(vf, 'guest-config', 0x10, 4)).toBe(0xc041);
    expect(JSON.stringify(machine.snapshot())).toBe(before);
    // What a harness writes is state, firmware's values are not.
    write(vf, 'guest-config', 0x04, 2, 0x1);
    const state = machine.snapshot();
    expect(state.functions.find((f) => f.bdf === vf.bdf)?.guest).toEqual([
      { offset: '0x0004', value: '0x00100001' },
    ]);
    const restored = remember(Machine.restore(state, { firmware: withFirmware }));
    const again = restored.findVf('0000:01:00.2');
    for (const offset of [0x04, 0x10, 0x18, 0x1c, 0x3c])
      expect(read(again, 'guest-config', offset, 4)).toBe(read(vf, 'guest-config', offset, 4));
    expect(restored.snapshot()).toEqual(state);
  });
});
