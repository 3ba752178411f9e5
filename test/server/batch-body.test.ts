/**
 * The batch body scanner must give exactly what JSON.parse gives, or nothing (then the route
 * falls back to JSON.parse): checked against JSON.parse itself on generated and mutated bodies.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanBatch, type ScannedBatch } from '../../src/server/routes/batch-body.js';

function plain(batch: ScannedBatch): unknown {
  const strip = (o: object): Record<string, unknown> =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return {
    ...strip({ bdf: batch.bdf, space: batch.space, onError: batch.onError }),
    ops: batch.ops.map(strip),
  };
}

const scalar = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer({ min: 0, max: 2 ** 53 - 1 }),
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom('0x1000', 'bar2', 'config', 'read', 'write', '0000:01:00.1', 'caf\u00e9', 'a"b', 'x\\y'),
);
const op = fc.dictionary(
  fc.constantFrom('bdf', 'space', 'op', 'offset', 'width', 'length', 'value', 'data', 'extra'),
  scalar,
  { maxKeys: 8 },
);
const body = fc.record(
  {
    bdf: fc.string({ maxLength: 14 }),
    space: fc.constantFrom('bar2', 'io', 'config'),
    onError: fc.constantFrom('stop', 'continue', 'maybe'),
    ops: fc.array(op, { maxLength: 8 }),
  },
  { requiredKeys: ['ops'] },
);

describe('batch body scanner ≡ JSON.parse', () => {
  it('on generated bodies (compact and indented) it returns nothing or what JSON.parse returns', () => {
    let scanned = 0;
    fc.assert(
      fc.property(body, fc.boolean(), (b, indent) => {
        const text = JSON.stringify(b, null, indent ? 2 : undefined);
        const result = scanBatch(Buffer.from(text));
        if (result === undefined) return;
        scanned++;
        expect(plain(result)).toEqual(JSON.parse(text));
      }),
      { numRuns: 2000 },
    );
    expect(scanned).toBeGreaterThan(100);
  });

  it('on mutated bodies it never accepts what JSON.parse rejects, and agrees otherwise', () => {
    const base = JSON.stringify({
      bdf: '0000:01:00.1',
      space: 'bar2',
      onError: 'continue',
      ops: [
        { op: 'read', offset: 4108, width: 2 },
        { op: 'write', offset: '0x1012', width: 1, value: 3 },
      ],
    });
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.integer({ min: 0, max: 127 }), fc.nat(3), (at, byte, how) => {
        const chars = [...base];
        const c = String.fromCharCode(byte);
        if (how === 0) chars[at] = c;
        else if (how === 1) chars.splice(at, 0, c);
        else if (how === 2) chars.splice(at, 1);
        else chars.splice(at, 0, ' ');
        const text = chars.join('');
        const result = scanBatch(Buffer.from(text));
        if (result === undefined) return;
        expect(plain(result)).toEqual(JSON.parse(text));
      }),
      { numRuns: 3000 },
    );
  });
});
