/**
 * Oracles nobody here wrote: config-space dumps in `lspci -xxxx` format decoded by pciutils
 * (`lspci -F dump -vvv -nn`) and read back register by register by `setpci -A dump`. When the
 * tools cannot run, these tests fail (never skip): pciutils is a test dependency.
 */
import { describe, expect, it } from 'vitest';
import { formatLspciDump } from '../../src/views/dump.js';
import { Machine } from '../../src/machine/machine.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';
import {
  IDS,
  TYPES,
  capabilityBlock,
  enableVfs,
  lspci,
  pfBdfOf,
  setCfg,
  setpci,
  sevenTypeMachine,
} from '../support/functions.js';

const hex = (n: number, digits: number): string => n.toString(16).padStart(digits, '0');
const dumpOf = (fn: VirtioPciFunction): string => formatLspciDump(fn.bdf, fn.kind, fn.config.snapshot());

/** The lspci output of one function (from its "bb:dd.f " line to the next blank line). */
function deviceBlock(out: string, bdf: string): string {
  const short = bdf.replace(/^0000:/, '');
  const start = out.indexOf(`${short} `);
  if (start < 0) return '';
  const end = out.indexOf('\n\n', start);
  return out.slice(start, end < 0 ? undefined : end);
}

describe('lspci -F decodes the default net PF with VFs enabled, and one of its VFs', () => {
  const machine = new Machine(DEFAULT_TOPOLOGY);
  const pf = machine.findPf('0000:01:00.0');
  const topo = DEFAULT_TOPOLOGY.pfs[0]!;
  // a driver's view after enumeration: BAR0 placed, memory on, 4 VFs with their BAR placed
  setCfg(pf, 0x10, 4, 0xfe00_0000);
  setCfg(pf, 0x04, 2, 0x0006);
  setCfg(pf, pf.sriov + 0x24 + 8, 4, 0xe000_0000);
  setCfg(pf, pf.sriov + 0x24 + 12, 4, 0x0000_0004);
  enableVfs(pf, 4);
  const vf = pf.vfs[0]!;
  const run = lspci(dumpOf(pf) + dumpOf(vf));
  const pfOut = deviceBlock(run.stdout, pf.bdf);
  const vfOut = deviceBlock(run.stdout, vf.bdf);

  it('pciutils has nothing to complain about', () => {
    expect(run.complaints).toEqual([]);
    expect(pfOut).not.toBe('');
    expect(vfOut).not.toBe('');
  });

  it('PF: identity, BAR0, interrupt pin', () => {
    expect(pfOut.split('\n')[0]).toMatch(
      /^01:00\.0 Ethernet controller \[0200\]: .*\[1af4:1041\] \(rev 01\)$/,
    );
    expect(pfOut).toMatch(/\tInterrupt: pin A/);
    expect(pfOut).toMatch(/\tRegion 0: Memory at fe000000 \(64-bit, non-prefetchable\)/);
    expect(pfOut).toMatch(/Control: I\/O- Mem\+ BusMaster\+/);
  });

  it('PF: SR-IOV capability', () => {
    const sriov = capabilityBlock(pfOut, /Single Root I\/O Virtualization \(SR-IOV\)/);
    expect(sriov).toContain(`[${hex(pf.sriov, 3)} v1] Single Root I/O Virtualization (SR-IOV)`);
    expect(sriov).toContain(
      `Initial VFs: ${topo.initialVfs}, Total VFs: ${topo.totalVfs}, Number of VFs: 4, Function Dependency Link: 00`,
    );
    expect(sriov).toContain(`VF offset: ${topo.firstVfOffset}, stride: ${topo.vfStride}, Device ID: 10f9`);
    expect(sriov).toMatch(/IOVCtl:\s+Enable\+ Migration- Interrupt- MSE\+ ARIHierarchy-/);
    expect(sriov).toContain('Supported Page Size: 00000553, System Page Size: 00000001');
    expect(sriov).toContain('Region 2: Memory at 00000004e0000000 (64-bit, non-prefetchable)');
    expect(sriov).not.toMatch(/Region [01345]:/);
  });

  it('PF: ARI, PCI Express and MSI-X capabilities', () => {
    expect(pfOut).toMatch(/Capabilities: \[100 v1\] Alternative Routing-ID Interpretation \(ARI\)/);
    expect(pfOut).toMatch(/Capabilities: \[40\] Express \(v2\) Endpoint/);
    expect(pfOut).toMatch(/DevCap:.*\n.*FLReset\+/);
    expect(pfOut).toMatch(/MSI-X: Enable- Count=4 Masked-/);
    const msix = capabilityBlock(pfOut, /MSI-X:/);
    expect(msix).toContain('Vector table: BAR=0 offset=00002000');
    expect(msix).toContain('PBA: BAR=0 offset=00003000');
  });

  it('PF: the virtio vendor capabilities with BAR, offset and size', () => {
    const cap = (name: string) => capabilityBlock(pfOut, new RegExp(`VirtIO: ${name}$`));
    expect(cap('CommonCfg')).toContain('BAR=0 offset=00000000 size=00000040');
    expect(cap('Notify')).toContain('BAR=0 offset=00000400 size=0000000c multiplier=00000004');
    expect(cap('ISR')).toContain('BAR=0 offset=00000100 size=00000001');
    expect(cap('DeviceCfg')).toContain('BAR=0 offset=00000200 size=0000000c');
  });

  it('VF: SR-IOV identity rules, no INTx, MSI-X in BAR2, the MMR locator', () => {
    expect(vfOut.split('\n')[0]).toMatch(/^01:00\.1 Ethernet controller \[0200\]: .*\[ffff:ffff\]$/);
    expect(vfOut).toMatch(/Subsystem: .*\[1af4:0001\]/);
    expect(vfOut).not.toMatch(/Interrupt: pin/);
    expect(vfOut).not.toMatch(/\(rev /);
    expect(vfOut).toMatch(/Capabilities: \[40\] Express \(v2\) Endpoint/);
    expect(vfOut).toMatch(/MSI-X: Enable- Count=4 Masked-/);
    expect(capabilityBlock(vfOut, /MSI-X:/)).toContain('Vector table: BAR=2 offset=00002000');
    expect(vfOut).toContain('Capabilities: [100 v1] Vendor Specific Information: ID=000a Rev=0 Len=01c <?>');
    expect(vfOut).not.toMatch(/SR-IOV|ARI/);
    expect(vfOut).not.toMatch(/Region \d:/);
  });

  it('setpci -A dump reads back the SR-IOV fields and the VSEC header by capability name', () => {
    expect(
      setpci(dumpOf(pf), '01:00.0', [
        'ECAP_SRIOV+0x1a.w',
        'ECAP_SRIOV+0x0e.w',
        'ECAP_SRIOV+0x10.w',
        'ECAP_SRIOV+0x14.l',
        'CAP_MSIX+2.w',
        '0.l',
      ]),
    ).toEqual([
      '10f9',
      hex(topo.totalVfs, 4),
      '0004',
      hex((topo.vfStride << 16) | topo.firstVfOffset, 8),
      '0003',
      '10411af4',
    ]);
    expect(
      setpci(dumpOf(vf), '01:00.1', [
        'ECAP_VNDR.l',
        'ECAP_VNDR+4.l',
        'ECAP_VNDR+8.b',
        'ECAP_VNDR+0xc.l',
        'ECAP_VNDR+0x14.l',
        '0.l',
      ]),
    ).toEqual([
      '0001000b', // ID 0x000b, version 1, last
      '01c0000a', // VSEC ID 10, rev 0, length 0x1c
      '02',
      '00001000',
      '00000040',
      'ffffffff',
    ]);
  });
});

describe('lspci -F over one PF and one VF of every type', () => {
  const machine = sevenTypeMachine();
  const dumps: string[] = [];
  for (const type of TYPES) {
    const pf = machine.findPf(pfBdfOf(type));
    enableVfs(pf, 2);
    dumps.push(dumpOf(pf), dumpOf(pf.vfs[0]!));
  }
  const run = lspci(dumps.join(''));

  it('decodes cleanly', () => {
    expect(run.complaints).toEqual([]);
  });

  for (const type of TYPES) {
    it(`${type}: PF ${hex(IDS[type].modern, 4)} with VF Device ID ${hex(IDS[type].mmr, 4)}; VF with the MMR locator`, () => {
      const pf = machine.findPf(pfBdfOf(type));
      const pfOut = deviceBlock(run.stdout, pf.bdf);
      const vfOut = deviceBlock(run.stdout, pf.vfs[0]!.bdf);
      expect(pfOut.split('\n')[0]).toContain(`[1af4:${hex(IDS[type].modern, 4)}] (rev 01)`);
      expect(pfOut.split('\n')[0]).toContain(`[${hex(IDS[type].classCode >> 8, 4)}]`);
      expect(pfOut).toContain(`Device ID: ${hex(IDS[type].mmr, 4)}`);
      expect(pfOut).toContain(`MSI-X: Enable- Count=${IDS[type].queues + 1} Masked-`);
      expect(pfOut).toMatch(/VirtIO: CommonCfg/);
      expect(pfOut).toMatch(/VirtIO: Notify\n\t\tBAR=0 offset=00000400 size=/);
      expect(pfOut).toContain(`multiplier=00000004`);
      expect(pfOut).toMatch(type === 'rng' ? /^(?![\s\S]*VirtIO: DeviceCfg)/ : /VirtIO: DeviceCfg/);
      expect(vfOut).toContain(`Subsystem: Red Hat, Inc. Device [1af4:${hex(IDS[type].typeId, 4)}]`);
      expect(vfOut).toContain('Vendor Specific Information: ID=000a Rev=0 Len=01c');
    });
  }
});
