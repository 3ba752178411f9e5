/**
 * Sparse RAM DMA space: pages on first write, zeros elsewhere, the shared byte budget, bounds,
 * little-endian helpers, zero-copy views, state. The property test compares every access with a
 * byte-per-address model (a Map) and with Node's own little-endian Buffer readers.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DmaBudget } from '../../src/dma/budget.js';
import { hasCoverage, hasDirect } from '../../src/dma/direct.js';
import { SparseRam } from '../../src/dma/sparse-ram.js';
import { DMA_ADDRESS_LIMIT, DmaFault } from '../../src/dma/space.js';
import { VmmrError } from '../../src/base/errors.js';

const PAGE = 4096;

function fault(fn: () => unknown): DmaFault {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DmaFault);
    return e as DmaFault;
  }
  throw new Error('expected a DmaFault');
}

describe('sparse RAM', () => {
  it('reads zeros from untouched memory and allocates only written pages', () => {
    const ram = new SparseRam();
    const out = new Uint8Array(10000).fill(0xee);
    ram.read(0x7fff_0000_0000, out, 0, out.length);
    expect(out.every((b) => b === 0)).toBe(true);
    expect(ram.touchedPages).toBe(0);
    ram.write(PAGE - 2, Uint8Array.of(1, 2, 3, 4), 0, 4);
    expect(ram.touchedPages).toBe(2);
    expect(ram.allocatedBytes).toBe(2 * PAGE);
    const back = new Uint8Array(6);
    ram.read(PAGE - 3, back, 0, 6);
    expect([...back]).toEqual([0, 1, 2, 3, 4, 0]);
  });

  it('little-endian helpers agree with Buffer, also across a page boundary', () => {
    const ram = new SparseRam();
    for (const address of [0x1000, PAGE - 1, PAGE - 3, 2 * PAGE - 7]) {
      ram.writeU16(address, 0xbeef);
      expect(ram.readU16(address)).toBe(0xbeef);
      ram.writeU32(address, 0xdeadbeef);
      const raw = new Uint8Array(8);
      ram.read(address, raw, 0, 4);
      expect(Buffer.from(raw).readUInt32LE(0)).toBe(0xdeadbeef);
      expect(ram.readU32(address)).toBe(0xdeadbeef);
      ram.writeU64(address, 2 ** 53 - 1);
      ram.read(address, raw, 0, 8);
      expect(Buffer.from(raw).readBigUInt64LE(0)).toBe(2n ** 53n - 1n);
      expect(ram.readU64(address)).toBe(2 ** 53 - 1);
    }
  });

  it('refuses a 64-bit value at or above 2^53', () => {
    const ram = new SparseRam();
    ram.writeU32(0x100, 0);
    ram.writeU32(0x104, 0x0020_0000);
    const f = fault(() => ram.readU64(0x100));
    expect(f.reason).toBe('address');
    expect(f.message).toContain('0x0020000000000000');
    expect(() => ram.writeU64(0, 2 ** 53)).toThrow(RangeError);
  });

  it('bounds: addresses beyond 2^53, negative, fractional, and beyond a sized space', () => {
    const ram = new SparseRam();
    expect(fault(() => ram.readU8(DMA_ADDRESS_LIMIT)).reason).toBe('address');
    expect(fault(() => ram.read(DMA_ADDRESS_LIMIT - 2, new Uint8Array(4), 0, 4)).message).toMatch(
      /runs past 2\^53/,
    );
    expect(fault(() => ram.readU16(-2)).reason).toBe('address');
    expect(fault(() => ram.readU16(1.5)).reason).toBe('address');
    expect(fault(() => ram.readU16(Number.NaN)).reason).toBe('address');
    const small = new SparseRam({ size: 0x10000 });
    const f = fault(() => small.writeU32(0xfffe, 1));
    expect(f.reason).toBe('unmapped');
    expect(f.address).toBe(0xfffe);
    expect(f.length).toBe(4);
    expect(f.message).toContain('outside the DMA space [0, 0x10000)');
    expect(small.touchedPages).toBe(0);
    expect(small.covers(0xfffc, 4)).toBe(true);
    expect(small.covers(0xfffe, 4)).toBe(false);
  });

  it('a shared budget refuses the page beyond the limit, naming it, and clear() returns bytes', () => {
    const budget = new DmaBudget(3 * PAGE);
    const a = new SparseRam({ budget });
    const b = new SparseRam({ budget });
    a.write(0, new Uint8Array(2 * PAGE), 0, 2 * PAGE);
    b.writeU8(0x10_0000, 1);
    expect(budget.used).toBe(3 * PAGE);
    const f = fault(() => b.writeU8(0x20_0000, 1));
    expect(f.reason).toBe('limit');
    expect(f.message).toContain('VMMR_DMA_LIMIT = 12288 bytes');
    expect(b.touchedPages).toBe(1);
    b.writeU8(0x10_0001, 2);
    a.clear();
    expect(budget.used).toBe(PAGE);
    b.writeU8(0x20_0000, 1);
    expect(budget.used).toBe(2 * PAGE);
  });

  it('zero-copy views: in-page only, read views only of written pages', () => {
    const ram = new SparseRam();
    expect(hasDirect(ram)).toBe(true);
    expect(hasCoverage(ram)).toBe(true);
    expect(ram.readView(0x2000, 16)).toBeUndefined();
    const w = ram.writeView(0x2010, 16)!;
    w.set([9, 8, 7]);
    expect(ram.readU8(0x2011)).toBe(8);
    expect(ram.readView(0x2010, 3)).toEqual(Uint8Array.of(9, 8, 7));
    expect(ram.writeView(0x2ff8, 16)).toBeUndefined();
    expect(fault(() => ram.writeView(DMA_ADDRESS_LIMIT, 1)).reason).toBe('address');
  });

  it('pages written together form one contiguous run that backing() hands out whole', () => {
    const budget = new DmaBudget(64 * PAGE);
    const ram = new SparseRam({ budget });
    ram.write(0x10000, new Uint8Array(16 * PAGE).fill(3), 0, 16 * PAGE);
    expect(ram.touchedPages).toBe(16);
    expect(budget.used).toBe(16 * PAGE);
    const run = ram.backing(0x10000 + 100, false, 16 * PAGE)!;
    expect(run.length).toBe(16 * PAGE - 100);
    expect(run.view[run.offset]).toBe(3);
    run.view[run.offset] = 9;
    expect(ram.readU8(0x10000 + 100)).toBe(9);
    // A run's page is zeroed in place by zero(), not freed; a page of its own is freed.
    ram.zero(0x10000, PAGE);
    expect(ram.readU8(0x10000 + 100)).toBe(0);
    expect(ram.touchedPages).toBe(16);
    ram.writeU8(0x40000, 1);
    ram.zero(0x40000, PAGE);
    expect(ram.touchedPages).toBe(16);
    expect(budget.used).toBe(16 * PAGE);
    // backing() for writing allocates the missing pages of the range as one run.
    expect(ram.backing(0x80000, false, PAGE)).toBeUndefined();
    const fresh = ram.backing(0x80000, true, 4 * PAGE)!;
    expect(fresh.length).toBe(4 * PAGE);
    expect(ram.touchedPages).toBe(20);
    // Single pages are not contiguous with each other: one page per piece.
    ram.writeU8(0xa0000, 1);
    ram.writeU8(0xa1000, 1);
    expect(ram.backing(0xa0000, false, 2 * PAGE)!.length).toBe(PAGE);
    expect(() => ram.backing(2 ** 53, false, 1)).toThrow(DmaFault);
  });

  it('fill with zero allocates nothing; fill with a value allocates', () => {
    const ram = new SparseRam();
    ram.fill(0, 3 * PAGE, 0);
    expect(ram.touchedPages).toBe(0);
    ram.fill(PAGE - 1, 2, 0xab);
    expect(ram.touchedPages).toBe(2);
    expect(ram.readU16(PAGE - 1)).toBe(0xabab);
    ram.fill(PAGE - 1, 1, 0);
    expect(ram.readU16(PAGE - 1)).toBe(0xab00);
  });

  it('state holds only non-zero pages, base64, and restores exactly', () => {
    const budget = new DmaBudget(16 * PAGE);
    const ram = new SparseRam({ budget });
    ram.writeU32(0x5000, 0x01020304);
    ram.writeU8(0x9000, 0);
    const state = ram.getState();
    expect(Object.keys(state.pages)).toEqual(['0x5000']);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
    const page = Buffer.from(state.pages['0x5000']!, 'base64');
    expect(page.length).toBe(PAGE);
    expect(page.readUInt32LE(0)).toBe(0x01020304);
    const copy = new SparseRam({ budget });
    copy.setState(state);
    expect(copy.readU32(0x5000)).toBe(0x01020304);
    expect(copy.touchedPages).toBe(1);
    expect(budget.used).toBe(3 * PAGE);
    copy.setState({ pageSize: PAGE, pages: {} });
    expect(copy.touchedPages).toBe(0);
    expect(budget.used).toBe(2 * PAGE);
  });

  it('state restore refuses malformed input without changing anything', () => {
    const ram = new SparseRam({ size: 0x10000 });
    ram.writeU8(0x10, 7);
    const good = Buffer.alloc(PAGE, 1).toString('base64');
    const bad: unknown[] = [
      null,
      { pageSize: 512, pages: {} },
      { pageSize: PAGE, pages: [] },
      { pageSize: PAGE, pages: { '4096': good } },
      { pageSize: PAGE, pages: { '0x1001': good } },
      { pageSize: PAGE, pages: { '0x10000': good } },
      { pageSize: PAGE, pages: { '0x1000': 'not base64!' } },
      { pageSize: PAGE, pages: { '0x1000': Buffer.alloc(10).toString('base64') } },
    ];
    for (const state of bad) {
      expect(() => ram.setState(state as never)).toThrow(VmmrError);
      expect(ram.readU8(0x10)).toBe(7);
    }
    const limited = new SparseRam({ budget: new DmaBudget(PAGE) });
    const two = { pageSize: PAGE, pages: { '0x0': good, '0x1000': good } };
    try {
      limited.setState(two);
      throw new Error('expected a refusal');
    } catch (e) {
      expect((e as VmmrError).code).toBe('VMMR_ERR_LIMIT');
    }
    expect(limited.touchedPages).toBe(0);
  });

  it('an untouched space holds no page map', () => {
    const ram = new SparseRam();
    ram.read(0, new Uint8Array(8), 0, 8);
    ram.readU64(0x1234_5678);
    expect((ram as unknown as { pages: unknown }).pages).toBeUndefined();
  });
});

describe('property: sparse RAM equals a byte model', () => {
  const op = fc.oneof(
    fc.record({
      kind: fc.constant('write' as const),
      address: fc.integer({ min: 0, max: 5 * PAGE }),
      bytes: fc.uint8Array({ minLength: 0, maxLength: 2 * PAGE + 10 }),
    }),
    fc.record({
      kind: fc.constant('read' as const),
      address: fc.integer({ min: 0, max: 5 * PAGE }),
      length: fc.integer({ min: 0, max: 2 * PAGE + 10 }),
    }),
    fc.record({
      kind: fc.constantFrom('u16' as const, 'u32' as const),
      address: fc.integer({ min: 0, max: 5 * PAGE }),
      value: fc.nat({ max: 0xffffffff }),
    }),
  );

  it('any sequence of reads and writes', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const ram = new SparseRam();
        const model = new Uint8Array(8 * PAGE);
        const modelRead = (a: number, n: number) => model.subarray(a, a + n);
        for (const o of ops) {
          if (o.kind === 'write') {
            ram.write(o.address, o.bytes, 0, o.bytes.length);
            model.set(o.bytes, o.address);
          } else if (o.kind === 'read') {
            const out = new Uint8Array(o.length);
            ram.read(o.address, out, 0, o.length);
            expect(Buffer.compare(out, modelRead(o.address, o.length))).toBe(0);
          } else {
            const width = o.kind === 'u16' ? 2 : 4;
            const value = width === 2 ? o.value & 0xffff : o.value;
            if (width === 2) ram.writeU16(o.address, value);
            else ram.writeU32(o.address, value);
            const le = Buffer.alloc(4);
            le.writeUInt32LE(value >>> 0);
            model.set(le.subarray(0, width), o.address);
            expect(width === 2 ? ram.readU16(o.address) : ram.readU32(o.address)).toBe(value);
          }
        }
        const restored = new SparseRam();
        restored.setState(ram.getState());
        const all = new Uint8Array(8 * PAGE);
        restored.read(0, all, 0, all.length);
        expect(Buffer.compare(all, model)).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
