/**
 * Firmware-like address assignment. The placement rules are checked arithmetically (alignment,
 * windows, no overlap), and the resulting config spaces are decoded by pciutils (`lspci -F` on
 * the `lspci -xxxx` dumps), which reads the BARs, the SR-IOV VF BARs and Interrupt Line on its own
 * (from a dump it prints no BAR sizes: those would come from sysfs).
 */
import { describe, expect, it } from 'vitest';
import { rd as read, remember, wr as write } from '../support/functions.js';
import { formatLspciDump } from '../../src/views/dump.js';
import { Machine } from '../../src/machine/machine.js';
import { assignAddresses, type BarAssignment } from '../../src/platform/assign.js';
import { DEFAULT_PLATFORM_MAP, resolvePlatformOptions } from '../../src/platform/options.js';
import type { VirtioPf } from '../../src/mmr/pf.js';
import { viewOf as guestView } from '../support/functions.js';
import { lspci } from '../support/functions.js';
import { resolvePf, type PfSpec } from '../support/qtest/vmmr.js';

/** The embedded default topology's PFs (src/topology-default.json). */
const DEFAULT_PFS: PfSpec[] = [
  { bdf: '0000:01:00.0', type: 'net', totalVfs: 1024 },
  { bdf: '0000:81:00.0', type: 'block', totalVfs: 1024 },
];
const KiB = 1024;
const MiB = 1024 * KiB;

function machineOf(pfs: PfSpec[]): Machine {
  return remember(new Machine({ pfs: pfs.map(resolvePf) }));
}

function enableVfs(pf: VirtioPf, n: number): void {
  write(pf, 'config', pf.sriov + 0x10, 2, n);
  write(pf, 'config', pf.sriov + 0x08, 2, 0x9);
}

function expectDisjoint(list: readonly BarAssignment[]): void {
  const sorted = [...list].sort((a, b) => a.base - b.base);
  for (let i = 1; i < sorted.length; i++) {
    expect(sorted[i]!.base, `${sorted[i]!.bdf} ${sorted[i]!.register}`).toBeGreaterThanOrEqual(
      sorted[i - 1]!.base + sorted[i - 1]!.size,
    );
  }
}

function hostDump(pf: VirtioPf): string {
  return formatLspciDump(pf.bdf.slice(5), 'vmmr', pf.config.snapshot());
}

describe('host view: PF BARs and SR-IOV VF BARs', () => {
  it('puts every BAR of the default topology into the 32-bit window, aligned, without overlap', () => {
    const machine = machineOf(DEFAULT_PFS);
    const { host } = assignAddresses(machine);
    expect(host.unassigned).toEqual([]);
    expect(host.assigned.map((a) => [a.bdf, a.register, a.size])).toEqual(
      expect.arrayContaining([
        ['0000:01:00.0', 'BAR0', 16 * KiB],
        ['0000:01:00.0', 'VF BAR2', 1024 * 16 * KiB],
        ['0000:81:00.0', 'BAR0', 16 * KiB],
        ['0000:81:00.0', 'VF BAR2', 1024 * 16 * KiB],
      ]),
    );
    for (const a of host.assigned) {
      expect(a.window).toBe('mem32');
      expect(a.base).toBeGreaterThanOrEqual(0xc0000000);
      expect(a.base + a.size).toBeLessThanOrEqual(0xfec00000);
      // A VF BAR is aligned to its per-VF size (Linux pci_sriov_resource_alignment).
      expect(a.base % (16 * KiB)).toBe(0);
    }
    expectDisjoint(host.assigned);
    // Largest first: the two 16 MiB VF BARs open the window.
    expect(host.assigned[0]).toMatchObject({ register: 'VF BAR2', base: 0xc0000000 });
  });

  it('writes the registers, leaves Command and VF MSE alone: lspci decodes them', () => {
    const machine = machineOf(DEFAULT_PFS);
    const { host } = assignAddresses(machine);
    const pf = machine.findPf('0000:01:00.0');
    const bar0 = host.assigned.find((a) => a.bdf === pf.bdf && a.register === 'BAR0')!;
    const vfBar = host.assigned.find((a) => a.bdf === pf.bdf && a.register === 'VF BAR2')!;
    expect(read(pf, 'config', 0x04, 2)).toBe(0);
    expect(read(pf, 'config', pf.sriov + 0x08, 2)).toBe(0);
    const out = lspci(hostDump(pf)).stdout;
    expect(out).toContain(
      `Region 0: Memory at ${bar0.base.toString(16).padStart(8, '0')} (64-bit, non-prefetchable) [disabled]`,
    );
    // SR-IOV VF BARs: lspci prints the VF BAR base with the per-VF size.
    expect(out).toMatch(
      new RegExp(`Region 2: Memory at 0*${vfBar.base.toString(16)} \\(64-bit, non-prefetchable\\)`),
    );
    expect(out).toMatch(/Interrupt: pin A routed to IRQ 1[01]/);
  });

  it('VF k then sits at the VF BAR base + k × per-VF size', () => {
    const machine = machineOf(DEFAULT_PFS);
    const { host } = assignAddresses(machine);
    const pf = machine.findPf('0000:01:00.0');
    enableVfs(pf, 3);
    const vfBar = host.assigned.find((a) => a.bdf === pf.bdf && a.register === 'VF BAR2')!;
    expect(machine.findVf('0000:01:00.3').barAddress()).toBe(vfBar.base + 2 * 16 * KiB);
  });

  it('moves a 64-bit BAR to the 64-bit window when the 32-bit window is full', () => {
    const machine = machineOf(DEFAULT_PFS);
    const map = resolvePlatformOptions({ mem32: { base: 0xc0000000, size: 20 * MiB } });
    const { host } = assignAddresses(machine, map);
    expect(host.unassigned).toEqual([]);
    const windows = host.assigned.map((a) => [a.register, a.window]);
    expect(windows.filter(([, w]) => w === 'mem64')).toEqual([['VF BAR2', 'mem64']]);
    const high = host.assigned.find((a) => a.window === 'mem64')!;
    expect(high.base).toBe(0x8000000000);
    const pf = machine.findPf(high.bdf);
    expect(read(pf, 'config', pf.sriov + 0x24 + 12, 4)).toBe(0x80);
    expect(lspci(hostDump(pf)).stdout).toMatch(
      /Region 2: Memory at 0*8000000000 \(64-bit, non-prefetchable\)/,
    );
  });

  it('leaves a BAR that fits nowhere unassigned and says why', () => {
    const machine = machineOf([{ bdf: '0000:01:00.0', type: 'net', totalVfs: 1024 }]);
    const map = resolvePlatformOptions({
      mem32: { base: 0xc0000000, size: MiB },
      mem64: { base: 0x8000000000, size: MiB },
    });
    const { host } = assignAddresses(machine, map);
    expect(host.unassigned).toEqual([
      {
        bdf: '0000:01:00.0',
        view: 'host',
        register: 'VF BAR2',
        size: 16 * MiB,
        reason: `no room for ${16 * MiB} bytes in the mem32 or mem64 window`,
      },
    ]);
    const pf = machine.findPf('0000:01:00.0');
    expect((read(pf, 'config', pf.sriov + 0x24 + 8, 4) as number) & ~0xf).toBe(0);
  });

  it('keeps BARs already programmed (by a harness or an earlier run) and places the rest around them', () => {
    const machine = machineOf(DEFAULT_PFS);
    const blk = machine.findPf('0000:81:00.0');
    write(blk, 'config', 0x10, 4, 0xc0000000);
    const first = assignAddresses(machine);
    expect(first.host.assigned.some((a) => a.bdf === blk.bdf && a.register === 'BAR0')).toBe(false);
    expect((read(blk, 'config', 0x10, 4) as number) >>> 4).toBe(0xc0000000 >>> 4);
    expectDisjoint([
      ...first.host.assigned,
      { bdf: blk.bdf, view: 'host', register: 'BAR0', base: 0xc0000000, size: 16 * KiB, window: 'mem32' },
    ]);
    const again = assignAddresses(machine);
    expect(again.host.assigned).toEqual([]);
    expect(again.host.interruptLines).toEqual([]);
  });
});

describe('guest view: the translated VFs', () => {
  it('gives each enabled VF an I/O BAR0 from 0xC000 up and its memory BAR from the 32-bit window', () => {
    const machine = machineOf(DEFAULT_PFS);
    const pf = machine.findPf('0000:01:00.0');
    enableVfs(pf, 4);
    const { guest } = assignAddresses(machine);
    const io = guest.assigned.filter((a) => a.window === 'io');
    // The net legacy block is 64 bytes: four 64-byte I/O BARs from 0xC000.
    expect(io.map((a) => [a.bdf, a.base, a.size])).toEqual([
      ['0000:01:00.1', 0xc000, 64],
      ['0000:01:00.2', 0xc040, 64],
      ['0000:01:00.3', 0xc080, 64],
      ['0000:01:00.4', 0xc0c0, 64],
    ]);
    const mem = guest.assigned.filter((a) => a.window === 'mem32');
    expect(mem).toHaveLength(4);
    for (const a of mem) expect(a.base % a.size).toBe(0);
    expectDisjoint(mem);
    const vf = machine.findVf('0000:01:00.2');
    const out = lspci(formatLspciDump('01:00.2', 'vmmr guest', guestView(vf).snapshot())).stdout;
    expect(out).toContain('Region 0: I/O ports at c040 [disabled]');
    const bar2 = mem.find((a) => a.bdf === vf.bdf)!;
    expect(out).toContain(
      `Region 2: Memory at ${bar2.base.toString(16)} (64-bit, non-prefetchable) [disabled]`,
    );
    // Decode stays off: the guest's Command is as a driver finds it.
    expect(read(vf, 'guest-config', 0x04, 2)).toBe(0);
  });

  it('routes pin A as SeaBIOS does on q35: IRQ = PIRQ[(slot + pin - 1) & 3] with PIRQs 10, 10, 11, 11', () => {
    const machine = machineOf([{ bdf: '0000:01:00.0', type: 'net', totalVfs: 24 }]);
    enableVfs(machine.findPf('0000:01:00.0'), 24);
    const { guest } = assignAddresses(machine);
    const lineOf = (bdf: string): number | undefined => guest.interruptLines.find((l) => l.bdf === bdf)?.line;
    expect(lineOf('0000:01:00.1')).toBe(10); // slot 0
    expect(lineOf('0000:01:01.0')).toBe(10); // slot 1
    expect(lineOf('0000:01:02.0')).toBe(11); // slot 2
    expect(lineOf('0000:01:03.0')).toBe(11); // slot 3
    const vf = machine.findVf('0000:01:02.0');
    expect(lspci(formatLspciDump('01:02.0', 'vmmr guest', guestView(vf).snapshot())).stdout).toContain(
      'Interrupt: pin A routed to IRQ 11',
    );
  });

  it('after a later VF enable assigns only the new VFs, around the earlier ones', () => {
    const machine = machineOf(DEFAULT_PFS);
    const pf = machine.findPf('0000:01:00.0');
    enableVfs(pf, 2);
    assignAddresses(machine);
    const before = read(machine.findVf('0000:01:00.2'), 'guest-config', 0x10, 4);
    write(pf, 'config', pf.sriov + 0x08, 2, 0);
    enableVfs(pf, 3);
    // New VF objects: their guest views start unassigned.
    expect(read(machine.findVf('0000:01:00.2'), 'guest-config', 0x10, 4)).toBe(1);
    const { guest } = assignAddresses(machine);
    expect(guest.assigned.filter((a) => a.window === 'io')).toHaveLength(3);
    expect(read(machine.findVf('0000:01:00.2'), 'guest-config', 0x10, 4)).toBe(before);
    expect(assignAddresses(machine).guest.assigned).toEqual([]);
  });

  it('when the I/O window is full, the rest keep BAR0 unassigned, each named in the report', () => {
    const machine = machineOf([{ bdf: '0000:01:00.0', type: 'net', totalVfs: 6 }]);
    enableVfs(machine.findPf('0000:01:00.0'), 6);
    const map = resolvePlatformOptions({ io: { base: '0xc000', size: '0x100' } });
    const { guest } = assignAddresses(machine, map);
    expect(guest.assigned.filter((a) => a.window === 'io')).toHaveLength(4);
    expect(guest.unassigned.map((u) => [u.bdf, u.register, u.reason])).toEqual([
      ['0000:01:00.5', 'BAR0', 'no room for 64 bytes in the io window'],
      ['0000:01:00.6', 'BAR0', 'no room for 64 bytes in the io window'],
    ]);
    expect(read(machine.findVf('0000:01:00.6'), 'guest-config', 0x10, 4)).toBe(1);
  });
});

describe('platform options', () => {
  it('defaults are q35 under SeaBIOS', () => {
    expect(DEFAULT_PLATFORM_MAP).toEqual({
      io: { base: 0xc000, size: 0x4000 },
      mem32: { base: 0xc0000000, size: 0xfec00000 - 0xc0000000 },
      mem64: { base: 0x8000000000, size: 0x8000000000 },
      ecamBase: 0xb0000000,
      intxLines: [10, 10, 11, 11],
    });
  });

  it.each([
    [{ io: { base: '0xc000', size: '0x8000' } }, /platform\.io: .* runs past 0x10000/],
    [{ mem32: { base: '0xf0000000', size: '0x20000000' } }, /platform\.mem32: .* runs past 0x100000000/],
    [{ mem64: { base: '0xc0000000', size: '0x1000' } }, /platform\.mem64: overlaps mem32/],
    [{ ecamBase: '0xb0001000' }, /platform\.ecamBase: 0xb0001000 is not aligned/],
    [{ ecamBase: '0xc0000000' }, /platform\.ecamBase: the ECAM window overlaps mem32/],
    [{ mem32: { size: 0 } }, /platform\.mem32\.size: must not be 0/],
    [{ io: { base: '12q' } }, /platform\.io\.base: "12q" is not an address/],
    [{ intxLines: [10, 11] }, /platform\.intxLines: expected 4 interrupt lines/],
  ])('refuses %j', (options, message) => {
    expect(() => resolvePlatformOptions(options)).toThrow(message);
  });
});
