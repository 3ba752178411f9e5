/**
 * Fuzz: random descriptor tables, flags, next links, indirect tables, avail rings and indices
 * (split), random descriptor rings with random wrap bits (packed), in a small DMA space so that
 * addresses often fall outside it. A device pops every chain it can, reads all readable bytes,
 * fills all writable bytes and returns the chain. Oracle: a snapshot of the whole DMA memory
 * before and after — every changed byte must lie in a device-writable buffer of a chain the
 * queue handed out, or in the ring fields the device owns (split: the used ring; packed: the
 * len/id/flags of used descriptors). Anything thrown must be a VirtqueueError; the number of
 * chains per run is bounded, so a loop cannot hang the device.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SparseRam } from '../../src/dma/sparse-ram.js';
import {
  createQueue,
  VirtqueueError,
  type RingFeatures,
  type RingFormat,
} from '../../src/virtqueue/index.js';

const MEMORY = 0x4000;
const DESC = 0x0000;
const DRIVER = 0x0800;
const DEVICE = 0x0c00;
const RUNS = 1500;

const address = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0x1000, max: MEMORY - 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xfff }) },
  { weight: 1, arbitrary: fc.integer({ min: MEMORY - 64, max: MEMORY + 64 }) },
  { weight: 1, arbitrary: fc.constantFrom(2 ** 53 - 16, 2 ** 40, 0xffff_fff0) },
);
const length = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 300 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 8 }).map((n) => 16 * n) },
  { weight: 1, arbitrary: fc.constantFrom(0xffff_ffff, 0x8000_0000, 17) },
);
const descriptor = fc.record({
  address,
  length,
  flags: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 3 }) },
    { weight: 2, arbitrary: fc.integer({ min: 4, max: 7 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
  ),
  next: fc.oneof(
    { weight: 8, arbitrary: fc.nat() },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
  ),
  nextInRange: fc.boolean(),
  id: fc.integer({ min: 0, max: 0xffff }),
  /** Packed: bit 0 = AVAIL, bit 1 = USED. Mostly "available in the first pass" (AVAIL 1, USED 0). */
  wrap: fc.oneof(
    { weight: 6, arbitrary: fc.constant(1) },
    { weight: 1, arbitrary: fc.constantFrom(0, 2, 3) },
  ),
  /** INDIRECT descriptors: point at one of the seeded tables. */
  useTable: fc.nat(),
});
const rarely = fc.oneof(
  { weight: 5, arbitrary: fc.constant(false) },
  { weight: 1, arbitrary: fc.constant(true) },
);
const features = fc.record({
  indirect: fc.boolean(),
  eventIdx: fc.boolean(),
  inOrder: rarely,
  notifyOnEmpty: fc.boolean(),
});
const tableEntry = fc.record({
  address: fc.integer({ min: 0x1000, max: MEMORY - 1 }),
  length: fc.integer({ min: 0, max: 200 }),
  flags: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 3 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) },
  ),
  next: fc.integer({ min: 0, max: 5 }),
});

interface Descriptor {
  address: number;
  length: number;
  flags: number;
  next: number;
  id: number;
  wrap: number;
}

interface Case {
  size: number;
  features: RingFeatures;
  table: Descriptor[];
  avail: number[];
  availIdx: number;
  usedEvent: number;
  tables: Array<{
    at: number;
    entries: Array<{ address: number; length: number; flags: number; next: number }>;
  }>;
}

const fuzzCase = (format: RingFormat) =>
  fc
    .record({
      log: fc.integer({ min: 0, max: 4 }),
      features,
      table: fc.array(descriptor, { minLength: 16, maxLength: 16 }),
      avail: fc.array(fc.record({ head: fc.nat(), wild: fc.integer({ min: 0, max: 9 }) }), {
        minLength: 16,
        maxLength: 16,
      }),
      availIdx: fc.record({
        ahead: fc.nat(),
        wild: fc.integer({ min: 0, max: 9 }),
        any: fc.integer({ min: 0, max: 0xffff }),
      }),
      usedEvent: fc.integer({ min: 0, max: 0xffff }),
      tables: fc.array(
        fc.record({
          slot: fc.integer({ min: 0x100, max: 0x3f0 }),
          entries: fc.array(tableEntry, { minLength: 1, maxLength: 6 }),
        }),
        {
          minLength: 1,
          maxLength: 3,
        },
      ),
    })
    .map((c): Case => {
      const size = format === 'split' ? 1 << c.log : c.log * 3 + 1;
      const tables = c.tables.map((t) => ({ at: 16 * t.slot, entries: t.entries }));
      const table = c.table.map((d) => {
        const indirect = (d.flags & 4) !== 0 && d.useTable % 4 !== 0;
        const t = tables[d.useTable % tables.length]!;
        return {
          ...d,
          address: indirect ? t.at : d.address,
          length: indirect && d.useTable % 5 !== 0 ? 16 * t.entries.length : d.length,
          next: d.nextInRange ? d.next % size : d.next,
        };
      });
      return {
        size,
        features: c.features,
        table,
        avail: c.avail.map((a) => (a.wild === 0 ? a.head & 0xffff : a.head % size)),
        availIdx: c.availIdx.wild === 0 ? c.availIdx.any : c.availIdx.ahead % (size + 1),
        usedEvent: c.usedEvent,
        tables,
      };
    });

function snapshot(ram: SparseRam): Uint8Array {
  const all = new Uint8Array(MEMORY);
  ram.read(0, all, 0, MEMORY);
  return all;
}

function layOut(format: RingFormat, c: Case): SparseRam {
  const ram = new SparseRam({ size: MEMORY });
  for (const t of c.tables) {
    t.entries.forEach((e, i) => {
      const at = t.at + 16 * i;
      ram.writeU64(at, e.address);
      ram.writeU32(at + 8, e.length);
      ram.writeU16(at + 12, e.flags);
      ram.writeU16(at + 14, e.next);
    });
  }
  c.table.slice(0, c.size).forEach((d, i) => {
    const at = DESC + 16 * i;
    ram.writeU32(at, d.address % 2 ** 32);
    ram.writeU32(at + 4, Math.floor(d.address / 2 ** 32));
    ram.writeU32(at + 8, d.length);
    if (format === 'split') {
      ram.writeU16(at + 12, d.flags);
      ram.writeU16(at + 14, d.next);
    } else {
      ram.writeU16(at + 12, d.id);
      ram.writeU16(at + 14, (d.flags & 7) | ((d.wrap & 1) << 7) | ((d.wrap >> 1) << 15));
    }
  });
  if (format === 'split') {
    c.avail.slice(0, c.size).forEach((h, i) => ram.writeU16(DRIVER + 4 + 2 * i, h));
    ram.writeU16(DRIVER + 2, c.availIdx);
    ram.writeU16(DRIVER + 4 + 2 * c.size, c.usedEvent);
  } else {
    ram.writeU16(DRIVER, c.usedEvent);
    ram.writeU16(DRIVER + 2, c.availIdx & 3);
  }
  return ram;
}

/** Byte ranges the device may write: writable buffers handed out plus the device's ring fields. */
function allowed(
  format: RingFormat,
  size: number,
  writable: Array<[number, number]>,
): (at: number) => boolean {
  return (at) => {
    for (const [a, n] of writable) if (at >= a && at < a + n) return true;
    if (format === 'split') return at >= DEVICE && at < DEVICE + 6 + 8 * size;
    return at >= DESC && at < DESC + 16 * size && (at - DESC) % 16 >= 8;
  };
}

export const fuzzStats = { chains: 0, errors: new Map<string, number>() };

function runDevice(format: RingFormat, c: Case): void {
  const ram = layOut(format, c);
  const before = snapshot(ram);
  const queue = createQueue(ram, {
    index: 5,
    size: c.size,
    format,
    addresses: { desc: DESC, driver: DRIVER, device: DEVICE },
    features: c.features,
  });
  const writable: Array<[number, number]> = [];
  let chains = 0;
  try {
    for (let notify = 0; notify < 3; notify++) {
      for (let chain = queue.pop(); chain; chain = queue.pop()) {
        chains++;
        fuzzStats.chains++;
        expect(chains).toBeLessThanOrEqual(3 * (c.size + 1));
        const buffers = chain.buffers();
        let seenWritable = false;
        for (const b of buffers) {
          expect(b.address + b.length).toBeLessThanOrEqual(MEMORY);
          if (b.writable) {
            seenWritable = true;
            writable.push([b.address, b.length]);
          } else expect(seenWritable).toBe(false);
        }
        expect(buffers.length).toBeLessThanOrEqual(c.size);
        expect(chain.gather().length).toBe(chain.readable);
        chain.fill(0, chain.writable, 0xee);
        queue.push(chain);
      }
      queue.needsInterrupt();
    }
  } catch (e) {
    if (!(e instanceof VirtqueueError)) throw e;
    fuzzStats.errors.set(e.rule, (fuzzStats.errors.get(e.rule) ?? 0) + 1);
    expect(e.queue).toBe(5);
    expect(queue.broken).toBe(e);
    expect(queue.pop()).toBeUndefined();
  }
  const after = snapshot(ram);
  const ok = allowed(format, c.size, writable);
  for (let at = 0; at < MEMORY; at++) {
    if (after[at] !== before[at] && !ok(at)) {
      throw new Error(
        `byte 0x${at.toString(16)} changed (0x${before[at]!.toString(16)} -> 0x${after[at]!.toString(16)}) outside the device-writable buffers`,
      );
    }
  }
  expect(ram.allocatedBytes).toBeLessThanOrEqual(MEMORY);
}

describe('fuzz: descriptor chains and ring indices never crash, hang or write outside writable buffers', () => {
  for (const format of ['split', 'packed'] as const) {
    it(`${format} rings, ${RUNS} random cases`, () => {
      fc.assert(
        fc.property(fuzzCase(format), (c) => runDevice(format, c)),
        { numRuns: RUNS },
      );
      console.log(
        `fuzz ${format}: ${fuzzStats.chains} chains handed out; refusals by rule ${JSON.stringify(Object.fromEntries(fuzzStats.errors))}`,
      );
      expect(fuzzStats.chains).toBeGreaterThan(RUNS / 5);
      expect(fuzzStats.errors.size).toBeGreaterThanOrEqual(6);
      fuzzStats.chains = 0;
      fuzzStats.errors.clear();
    });
  }

  it('well-formed random chains are all handed out intact', () => {
    fc.assert(
      fc.property(
        fc
          .array(
            fc.array(fc.record({ length: fc.integer({ min: 1, max: 64 }), writable: fc.boolean() }), {
              minLength: 1,
              maxLength: 3,
            }),
            { minLength: 1, maxLength: 8 },
          )
          .filter((chains) => chains.flat().length <= 16),
        (chains) => {
          const ram = new SparseRam({ size: MEMORY });
          const queue = createQueue(ram, {
            index: 0,
            size: 16,
            format: 'split',
            addresses: { desc: DESC, driver: DRIVER, device: DEVICE },
            features: { indirect: false, eventIdx: false, inOrder: false, notifyOnEmpty: false },
          });
          let d = 0;
          let data = 0x1000;
          chains.forEach((bufs, k) => {
            const sorted = [...bufs].sort((a, b) => Number(a.writable) - Number(b.writable));
            const head = d;
            sorted.forEach((b, j) => {
              const at = DESC + 16 * d;
              ram.writeU64(at, data);
              ram.writeU32(at + 8, b.length);
              ram.writeU16(at + 12, (b.writable ? 2 : 0) | (j < sorted.length - 1 ? 1 : 0));
              ram.writeU16(at + 14, d + 1);
              d++;
              data += b.length;
            });
            ram.writeU16(DRIVER + 4 + 2 * k, head);
          });
          ram.writeU16(DRIVER + 2, chains.length);
          for (const bufs of chains) {
            const chain = queue.pop()!;
            expect(chain.readable).toBe(bufs.filter((b) => !b.writable).reduce((s, b) => s + b.length, 0));
            expect(chain.writable).toBe(bufs.filter((b) => b.writable).reduce((s, b) => s + b.length, 0));
          }
          expect(queue.pop()).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });
});
