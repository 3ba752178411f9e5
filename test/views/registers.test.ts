/**
 * The decoded registers of GET /api/v1/functions/{bdf}/registers against pciutils: the same
 * config space, dumped in `lspci -xxxx` format and decoded by `lspci -F dump -vvv`, must list
 * the same capabilities at the same offsets, and every summary and detail line vmmr words as
 * lspci does must be in lspci's own block of that capability. pciutils is a test dependency:
 * when it cannot run, these tests fail.
 */
import { describe, expect, it } from 'vitest';
import { read, write } from '../../src/access/index.js';
import { formatLspciDump } from '../../src/views/dump.js';
import { functionRegisters } from '../../src/views/registers.js';
import type { DecodedCapability } from '../../src/views/shapes.js';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';
import { TYPES, enableVfs, lspci, pfBdfOf, setCfg, sevenTypeMachine, viewOf } from '../support/functions.js';

const dumpOf = (fn: VirtioPciFunction): string => formatLspciDump(fn.bdf, fn.kind, fn.config.snapshot());
const squash = (text: string): string => text.replace(/\s+/g, ' ').trim();

interface LspciCap {
  offset: number;
  version: number | undefined;
  header: string;
  body: string;
}

/** The "Capabilities: [off vN] text" blocks of one device of lspci's output, in order. */
function lspciCaps(out: string, bdf: string): LspciCap[] {
  const short = bdf.replace(/^0000:/, '');
  const start = out.indexOf(`${short} `);
  const end = out.indexOf('\n\n', start);
  const lines = out.slice(start, end < 0 ? undefined : end).split('\n');
  const caps: LspciCap[] = [];
  for (const line of lines) {
    const m = /^\tCapabilities: \[([0-9a-f]+)(?: v(\d+))?\] (.*)$/.exec(line);
    if (m)
      caps.push({
        offset: parseInt(m[1]!, 16),
        version: m[2] ? Number(m[2]) : undefined,
        header: m[3]!,
        body: '',
      });
    else if (/^\t\t/.test(line) && caps.length > 0) caps[caps.length - 1]!.body += `${line}\n`;
  }
  return caps;
}

/** What pciutils calls each capability (its own words, written here from its output). */
const LSPCI_PREFIX: Record<string, string> = {
  'standard 0x10': 'Express',
  'standard 0x11': 'MSI-X',
  'standard 0x09': 'Vendor Specific Information',
  'extended 0x000e': 'Alternative Routing-ID Interpretation (ARI)',
  'extended 0x0010': 'Single Root I/O Virtualization (SR-IOV)',
  'extended 0x000b': 'Vendor Specific Information',
};

function compareWithLspci(ours: DecodedCapability[], theirs: LspciCap[], vendorKnown: boolean): void {
  expect(ours.map((c) => c.offset)).toEqual(theirs.map((c) => c.offset));
  ours.forEach((cap, i) => {
    const lspciCap = theirs[i]!;
    const what = `[${cap.offset.toString(16)}] ${cap.name}`;
    expect(lspciCap.header.startsWith(LSPCI_PREFIX[`${cap.kind} ${cap.id}`]!), what).toBe(true);
    if (cap.kind === 'extended') expect(cap.version, what).toBe(lspciCap.version);
    // lspci decodes the virtio structures only under the virtio Vendor ID (a VF reads 0xffff).
    if (cap.id === '0x09' && !vendorKnown) return;
    expect(cap.summary, what).not.toBe('');
    expect(squash(lspciCap.header).startsWith(squash(cap.summary)), `${what}: ${lspciCap.header}`).toBe(true);
    for (const line of cap.lines) expect(squash(lspciCap.body), `${what}: ${line}`).toContain(squash(line));
  });
}

describe('decoded capabilities against lspci -vvv -F of the same dump, every type', () => {
  const machine = sevenTypeMachine();
  const dumps: string[] = [];
  for (const type of TYPES) {
    const pf = machine.findPf(pfBdfOf(type));
    setCfg(pf, 0x10, 4, 0xfe00_0000);
    setCfg(pf, 0x04, 2, 0x0006);
    setCfg(pf, pf.sriov + 0x24 + 8, 4, 0xe000_0000);
    setCfg(pf, pf.sriov + 0x24 + 12, 4, 0x0000_0004);
    enableVfs(pf, 3);
    const vf = pf.vfs[1]!;
    // MSI-X Enable + Function Mask on the VF: both flags change in both decoders.
    setCfg(vf, vf.template.caps.msix + 2, 2, 0xc000);
    dumps.push(dumpOf(pf), dumpOf(vf));
  }
  const run = lspci(dumps.join(''));

  it('pciutils decodes the dumps without complaint', () => {
    expect(run.complaints).toEqual([]);
  });

  for (const type of TYPES) {
    it(`${type}: PF and VF capability lists, summaries and detail lines`, () => {
      const pf = machine.findPf(pfBdfOf(type));
      const vf = pf.vfs[1]!;
      compareWithLspci(functionRegisters(pf).capabilities, lspciCaps(run.stdout, pf.bdf), true);
      compareWithLspci(functionRegisters(vf).capabilities, lspciCaps(run.stdout, vf.bdf), false);
      const msix = functionRegisters(vf).capabilities.find((c) => c.id === '0x11')!;
      expect(msix.summary).toMatch(/^MSI-X: Enable\+ Count=\d+ Masked\+$/);
    });
  }
});

describe('register tables of a VF', () => {
  it('legacy STATUS follows a guest I/O write; ISR is shown without being cleared', () => {
    const machine = sevenTypeMachine();
    const pf = machine.findPf(pfBdfOf('net'));
    enableVfs(pf, 1);
    const vf = pf.vfs[0]!;
    const view = viewOf(vf);
    write(view, 'guest-config', 0x04, 2, 0x0001);
    write(view, 'io', 18, 1, 0x03);
    vf.device.raiseQueueInterrupt(0);
    const regs = functionRegisters(vf);
    const legacy = new Map(regs.legacy!.map((r) => [r.name, r]));
    expect(legacy.get('STATUS')).toMatchObject({ offset: 18, size: 1, value: '0x03' });
    // QUEUE_NOTIFY as a guest read of it answers (its read has no side effect).
    const notify = (read(view, 'io', 16, 2) as number).toString(16).padStart(4, '0');
    expect(legacy.get('QUEUE_NOTIFY')!.value).toBe(`0x${notify}`);
    expect(legacy.get('ISR')!.value).toBe('0x01');
    expect(functionRegisters(vf).legacy!.find((r) => r.name === 'ISR')!.value).toBe('0x01');
    expect(read(view, 'io', 19, 1)).toBe(1);
    expect(regs.statusBits).toEqual(['ACKNOWLEDGE', 'DRIVER']);
    // MSI-X off: the header ends at 20, where the device config starts (virtio 1.2 §4.1.4.10).
    expect(regs.legacy!.map((r) => r.offset + r.size).every((end) => end <= 20)).toBe(true);
  });

  it('feature bits by name: the transitional VF offers VERSION_1 (bit 32), ANY_LAYOUT (27), net MAC (5)', () => {
    const machine = sevenTypeMachine();
    const pf = machine.findPf(pfBdfOf('net'));
    enableVfs(pf, 1);
    const bits = functionRegisters(pf.vfs[0]!).deviceFeatures;
    expect(bits).toContainEqual({ bit: 32, name: 'VERSION_1' });
    expect(bits).toContainEqual({ bit: 27, name: 'ANY_LAYOUT' });
    expect(bits).toContainEqual({ bit: 5, name: 'MAC' });
    expect(functionRegisters(pf.vfs[0]!).driverFeatures).toEqual([]);
  });

  it('common cfg shows the selected queue', () => {
    const machine = sevenTypeMachine();
    const pf = machine.findPf(pfBdfOf('net'));
    const regs = new Map(functionRegisters(pf).commonCfg.map((r) => [r.name, r.value]));
    expect(regs.get('NUM_QUEUES')).toBe('0x0003');
    expect(regs.get('QUEUE_DESC')).toBe('0x0000000000000000');
    expect(functionRegisters(pf).legacy).toBeUndefined();
  });
});
