/**
 * The translator's guest view of an MMR VF's config space (docs/device-model.md "The translator's guest view", as Linux
 * drivers/vfio/pci/virtio): a classic transitional virtio device with an I/O BAR0 sized to the
 * legacy block, the VF memory BAR passed through, INTx pin A, the standard capabilities passed
 * through to the VF and no extended capability. Decoded by lspci as well.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VmmrError } from '../../src/base/errors.js';
import { formatLspciDump } from '../../src/views/dump.js';
import { viewOf as guestView } from '../support/functions.js';
import { Machine } from '../../src/machine/machine.js';
import {
  IDS,
  TYPES,
  VENDOR,
  capabilityBlock,
  capsOf,
  enableVfs,
  extCapsOf,
  lspci,
  pfBdfOf,
  rd,
  remember,
  refusal,
  setCfg,
  sevenTypeMachine,
  singlePf,
  virtioCaps,
  withVfs,
  wr,
  writableMask,
} from '../support/functions.js';
import type { MmrVf } from '../../src/mmr/vf.js';

const G = (vf: MmrVf, off: number, w: number): number => rd(vf, 'guest-config', off, w);
const setG = (vf: MmrVf, off: number, w: number, v: number): void => wr(vf, 'guest-config', off, w, v);

/** The legacy block length as the VF's MMR locator states it (docs/device-model.md "The MMR locator": +0x14 le64). */
const locatorLength = (vf: MmrVf): number => rd(vf, 'config', vf.pf.vfLocator + 0x14, 4);

describe('guest header (virtio 1.2 §4.1.2: transitional device)', () => {
  for (const type of TYPES) {
    it(`${type}: 1af4:${IDS[type].transitional.toString(16)} rev 0, subsystem 1af4:${IDS[type].typeId}, pin A`, () => {
      const { vf } = withVfs(type);
      expect(G(vf, 0x00, 2)).toBe(VENDOR);
      expect(G(vf, 0x02, 2)).toBe(IDS[type].transitional);
      expect(G(vf, 0x02, 2)).toBeGreaterThanOrEqual(0x1000);
      expect(G(vf, 0x02, 2)).toBeLessThanOrEqual(0x103f);
      expect(G(vf, 0x08, 1)).toBe(0);
      expect(G(vf, 0x08, 4) >>> 8).toBe(IDS[type].classCode);
      expect(G(vf, 0x2c, 2)).toBe(VENDOR);
      expect(G(vf, 0x2e, 2)).toBe(IDS[type].typeId);
      expect(G(vf, 0x3d, 1)).toBe(1);
      expect(G(vf, 0x06, 2) & 0x10).toBe(0x10);
      // the VF itself still shows the SR-IOV identity
      expect(rd(vf, 'config', 0x00, 4)).toBe(0xffffffff);
    });
  }

  it('Interrupt Line is read-write since the guest function uses pin A (PCI 3.0 §6.2.4)', () => {
    const { vf } = withVfs('net');
    setG(vf, 0x3c, 1, 0x0b);
    expect(G(vf, 0x3c, 1)).toBe(0x0b);
    expect(G(vf, 0x3d, 1)).toBe(1);
    expect(rd(vf, 'config', 0x3c, 1)).toBe(0); // the VF's own register stays hard-wired
  });

  it('exists for VFs only', () => {
    const { pf } = singlePf('net');
    refusal(() => rd(pf, 'guest-config', 0, 4), 'VMMR_ERR_NOT_TRANSITIONAL');
    refusal(() => rd(pf, 'io', 0, 4), 'VMMR_ERR_NOT_TRANSITIONAL');
  });

  it('Command: the PCI bits a legacy driver uses are writable; Bus Master reaches the VF', () => {
    const { vf } = withVfs('net');
    setG(vf, 0x04, 2, 0xffff);
    expect(G(vf, 0x04, 2)).toBe(0x0547);
    expect(rd(vf, 'config', 0x04, 2)).toBe(0x0004);
    setG(vf, 0x04, 2, 0x0001);
    expect(G(vf, 0x04, 2)).toBe(0x0001);
    expect(rd(vf, 'config', 0x04, 2)).toBe(0);
  });
});

describe('guest BARs', () => {
  for (const type of TYPES) {
    it(`${type}: BAR0 is an I/O BAR of the legacy block length (sizing probe ~(len-1)|1)`, () => {
      const { vf } = withVfs(type);
      const len = locatorLength(vf);
      expect(G(vf, 0x10, 4)).toBe(0x1);
      setG(vf, 0x10, 4, 0xffffffff);
      expect(G(vf, 0x10, 4)).toBe((~(len - 1) | 1) >>> 0);
      setG(vf, 0x10, 4, 0xc040);
      expect(G(vf, 0x10, 4)).toBe(0xc041);
      expect(guestView(vf).ioLength).toBe(len);
    });
  }

  it('BAR2/3 is the VF memory BAR (64-bit, non-prefetchable, the VF BAR size); BAR1, 4, 5 are not implemented', () => {
    const { vf } = withVfs('block');
    expect(G(vf, 0x18, 4)).toBe(0x4);
    for (let i = 1; i < 6; i++) setG(vf, 0x10 + 4 * i, 4, 0xffffffff);
    expect(G(vf, 0x18, 4)).toBe(((~(vf.barSize() - 1) & ~0xf) | 0x4) >>> 0);
    expect(vf.barSize()).toBe(16 * 1024);
    expect(G(vf, 0x1c, 4)).toBe(0xffffffff);
    for (const off of [0x14, 0x20, 0x24]) expect(G(vf, off, 4)).toBe(0);
  });

  it('the BAR2 sizing probe follows the VF BAR size when the PF System Page Size changes', () => {
    const { pf } = singlePf('net');
    enableVfs(pf, 1);
    const first = pf.vfs[0]!;
    setG(first, 0x18, 4, 0xffffffff);
    expect(G(first, 0x18, 4)).toBe(0xffffc004);
    // the PF driver disables VFs, picks 64 KiB pages, enables again
    setCfg(pf, pf.sriov + 0x08, 2, 0);
    setCfg(pf, pf.sriov + 0x20, 4, 0x10);
    enableVfs(pf, 1);
    const again = pf.vfs[0]!;
    expect(again.barSize()).toBe(0x10000);
    setG(again, 0x18, 4, 0xffffffff);
    expect(G(again, 0x18, 4)).toBe(0xffff0004);
  });
});

describe('capabilities in the guest view', () => {
  it('0x40..0xff pass through to the VF: same bytes, and a guest MSI-X enable is the VF MSI-X enable', () => {
    const { vf } = withVfs('net');
    for (let off = 0x40; off < 0x100; off += 4) expect(G(vf, off, 4)).toBe(rd(vf, 'config', off, 4));
    expect(capsOf(vf, 'guest-config')).toEqual(capsOf(vf, 'config'));
    expect(virtioCaps(vf, 'guest-config').map((c) => c.bar)).toEqual([2, 2, 2, 2, 0]);
    const msix = capsOf(vf, 'guest-config').find((c) => c.id === 0x11)!;
    setG(vf, msix.offset + 2, 2, 0x8000);
    expect(vf.msixEnabled()).toBe(true);
    expect(rd(vf, 'config', msix.offset + 2, 2) & 0x8000).toBe(0x8000);
  });

  it('no extended capability: 0x100..0xfff read 0 and ignore writes (the MMR locator is hidden)', () => {
    const { vf } = withVfs('net');
    expect(extCapsOf(vf, 'config')).toHaveLength(1);
    expect(extCapsOf(vf, 'guest-config')).toEqual([]);
    setG(vf, 0x100, 4, 0x0001000b);
    for (let off = 0x100; off < 0x1000; off += 4) expect(G(vf, off, 4)).toBe(0);
  });

  it('snapshot() is the guest config space as reads see it', () => {
    const { vf } = withVfs('console');
    setG(vf, 0x04, 2, 0x0005);
    setG(vf, 0x10, 4, 0xe000);
    const image = guestView(vf).snapshot();
    const view = new DataView(image.buffer);
    for (let off = 0; off < 0x1000; off += 4) expect(view.getUint32(off, true)).toBe(G(vf, off, 4));
  });
});

describe('property: read-only bits of the guest config space never change', () => {
  it('under random guest-config writes (oracle: a classic header, the VF capabilities, nothing above 0x100)', () => {
    const write = fc.record({
      offset: fc.oneof(
        fc.integer({ min: 0, max: 0x3f }),
        fc.integer({ min: 0x40, max: 0xff }),
        fc.integer({ min: 0, max: 0xfff }),
      ),
      width: fc.constantFrom(1, 2, 4),
      value: fc.oneof(fc.constant(0xffffffff), fc.nat({ max: 0xffffffff })),
    });
    fc.assert(
      fc.property(
        fc.constantFrom(...TYPES),
        fc.array(write, { minLength: 1, maxLength: 40 }),
        (type, writes) => {
          const { vf } = withVfs(type);
          const mask = writableMask(vf, 'guest-config');
          const before = guestView(vf).snapshot();
          for (const w of writes) {
            const offset = w.offset - (w.offset % w.width);
            try {
              setG(vf, offset, w.width, w.width === 4 ? w.value : w.value % 2 ** (8 * w.width));
            } catch (e) {
              if (!(e instanceof VmmrError)) throw e;
            }
            const after = guestView(vf).snapshot();
            const at = after.findIndex((b, i) => ((b ^ before[i]!) & ~mask[i]!) !== 0);
            expect(
              at,
              `read-only bits changed at 0x${at.toString(16)} after ${JSON.stringify({ ...w, offset })}`,
            ).toBe(-1);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('lspci -F on guest-view dumps of every type', () => {
  const machine = sevenTypeMachine();
  const dumps: string[] = [];
  const vfs: MmrVf[] = [];
  for (const type of TYPES) {
    const pf = machine.findPf(pfBdfOf(type));
    enableVfs(pf, 1);
    const vf = pf.vfs[0]!;
    setG(vf, 0x10, 4, 0xc000); // BAR0: an I/O address
    setG(vf, 0x18, 4, 0xfd00_0000); // BAR2
    setG(vf, 0x04, 2, 0x0007);
    vfs.push(vf);
    dumps.push(formatLspciDump(vf.bdf, `guest view of ${type}`, guestView(vf).snapshot()));
  }
  const run = lspci(dumps.join(''));
  const blocks = run.stdout.split('\n\n').filter((b) => b.trim() !== '');

  it('decodes cleanly, one device per dump', () => {
    expect(run.complaints).toEqual([]);
    expect(blocks).toHaveLength(TYPES.length);
  });

  TYPES.forEach((type, i) => {
    it(`${type}: a transitional virtio device with I/O ports at Region 0 and the virtio capabilities`, () => {
      const out = blocks[i]!;
      const ids = /\[1af4:([0-9a-f]{4})\]/.exec(out.split('\n')[0]!);
      expect(ids).not.toBeNull();
      const device = parseInt(ids![1]!, 16);
      expect(device).toBeGreaterThanOrEqual(0x1000);
      expect(device).toBeLessThanOrEqual(0x107f);
      expect(device).toBe(IDS[type].transitional);
      expect(out.split('\n')[0]).not.toMatch(/\(rev /); // revision 0
      expect(out).toMatch(/\tRegion 0: I\/O ports at c000/);
      expect(out).toMatch(/\tRegion 2: Memory at fd000000 \(64-bit, non-prefetchable\)/);
      expect(out).toMatch(/\tInterrupt: pin A/);
      expect(out).toMatch(/Control: I\/O\+ Mem\+ BusMaster\+/);
      expect(capabilityBlock(out, /VirtIO: CommonCfg$/)).toContain('BAR=2 offset=00000000 size=00000040');
      expect(capabilityBlock(out, /VirtIO: Notify$/)).toContain(
        `BAR=2 offset=00000400 size=${(IDS[type].queues * 4).toString(16).padStart(8, '0')} multiplier=00000004`,
      );
      expect(capabilityBlock(out, /VirtIO: ISR$/)).toContain('BAR=2 offset=00000100 size=00000001');
      expect(out).toMatch(/MSI-X: Enable- Count=\d+ Masked-/);
      expect(out).not.toMatch(/Vendor Specific Information: ID=/);
      expect(out).not.toMatch(/Capabilities: \[1[0-9a-f]{2}/);
      expect(vfs[i]!.bdf.endsWith(out.split(' ')[0]!)).toBe(true);
    });
  });
});

describe('guest view state survives a snapshot', () => {
  it('a restored machine shows the guest the same config space (Command, BAR0, Interrupt Line)', () => {
    const { machine, vf } = withVfs('net', 2);
    setG(vf, 0x04, 2, 0x0001);
    setG(vf, 0x10, 4, 0xc040);
    setG(vf, 0x3c, 1, 11);
    const before = guestView(vf).snapshot();
    const state = JSON.parse(JSON.stringify(machine.snapshot())) as ReturnType<typeof machine.snapshot>;
    expect(state.functions.find((f) => f.bdf === vf.bdf)?.guest).toBeDefined();
    const restored = remember(Machine.restore(state));
    const again = restored.findVf(vf.bdf);
    expect(Buffer.from(guestView(again).snapshot())).toEqual(Buffer.from(before));
    expect(rd(again, 'io', 12, 2)).toBe(256);
  });
});
