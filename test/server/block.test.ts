/** src/access/block.ts: block accesses cut into pieces as vfio-pci's bar_rw does. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { blockPieces, readBlock, writeBlock } from '../../src/access/block.js';
import { runBatch, type Operation } from '../../src/access/batch.js';
import { read } from '../../src/access/index.js';
import { VmmrError, isVmmrError } from '../../src/base/errors.js';
import { setNumVfs } from '../../src/control/sriov.js';
import { Machine } from '../../src/machine/machine.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';

const MSIX_TABLE = 0x2000;

function machineWithVf(): { machine: Machine; vf: ReturnType<Machine['find']> } {
  const machine = new Machine(DEFAULT_TOPOLOGY);
  setNumVfs(machine.findPf('0000:01:00.0'), 2);
  return { machine, vf: machine.find('0000:01:00.1') };
}

function caught(fn: () => unknown): VmmrError {
  try {
    fn();
  } catch (e) {
    if (isVmmrError(e)) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('blockPieces', () => {
  it.each([
    [
      'bar2',
      0x1003,
      13,
      [
        [0x1003, 1],
        [0x1004, 4],
        [0x1008, 8],
      ],
    ],
    [
      'bar2',
      0x2000,
      16,
      [
        [0x2000, 8],
        [0x2008, 8],
      ],
    ],
    [
      'bar2',
      0x2001,
      8,
      [
        [0x2001, 1],
        [0x2002, 2],
        [0x2004, 4],
        [0x2008, 1],
      ],
    ],
    ['bar2', 0x10, 1, [[0x10, 1]]],
    [
      'config',
      0x0,
      12,
      [
        [0x0, 4],
        [0x4, 4],
        [0x8, 4],
      ],
    ],
    [
      'config',
      0x2,
      7,
      [
        [0x2, 2],
        [0x4, 4],
        [0x8, 1],
      ],
    ],
    [
      'io',
      0x12,
      6,
      [
        [0x12, 2],
        [0x14, 4],
      ],
    ],
  ] as const)('%s 0x%s +%d', (space, offset, length, expected) => {
    expect(blockPieces(space, offset, length).map((p) => [p.offset, p.width])).toEqual(expected);
  });

  it('covers the range exactly, in ascending order, with naturally aligned pieces', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('bar0', 'config'),
        fc.nat(0x3000),
        fc.integer({ min: 1, max: 4096 }),
        (space, offset, length) => {
          const pieces = blockPieces(space, offset, length);
          let at = offset;
          for (const p of pieces) {
            expect(p.offset).toBe(at);
            expect(p.offset % p.width).toBe(0);
            expect(p.width).toBeLessThanOrEqual(space === 'config' ? 4 : 8);
            at += p.width;
          }
          expect(at).toBe(offset + length);
        },
      ),
    );
  });
});

describe('readBlock / writeBlock', () => {
  it('block and single accesses agree on the MSI-X table (dwords and qwords only)', () => {
    const { vf } = machineWithVf();
    fc.assert(
      fc.property(
        fc.nat(15),
        fc.integer({ min: 1, max: 10 }),
        fc.uint8Array({ minLength: 40, maxLength: 40 }),
        (dword, dwords, pool) => {
          fc.pre(dword + dwords <= 16); // 4 vectors of 16 bytes
          const offset = MSIX_TABLE + dword * 4;
          const bytes = pool.subarray(0, dwords * 4);
          writeBlock(vf, 'bar2', offset, bytes);
          const block = readBlock(vf, 'bar2', offset, bytes.length);
          const view = new DataView(block.buffer);
          for (let i = 0; i < dwords; i++)
            expect(view.getUint32(4 * i, true)).toBe(Number(read(vf, 'bar2', offset + 4 * i, 4)));
        },
      ),
    );
    // Message Upper Address and Message Data of vector 0 take every bit written.
    const bytes = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    writeBlock(vf, 'bar2', MSIX_TABLE + 4, bytes);
    expect(readBlock(vf, 'bar2', MSIX_TABLE + 4, 8)).toEqual(bytes);
  });

  it('reads equal the concatenation of byte reads (config space)', () => {
    const { machine } = machineWithVf();
    const pf = machine.findPf('0000:01:00.0');
    fc.assert(
      fc.property(fc.nat(0x1ff), fc.integer({ min: 1, max: 64 }), (offset, length) => {
        const block = readBlock(pf, 'config', offset, length);
        const bytes = Uint8Array.from({ length }, (_, i) => Number(read(pf, 'config', offset + i, 1)));
        expect(block).toEqual(bytes);
      }),
    );
  });

  it('reads config space like single accesses would', () => {
    const { vf } = machineWithVf();
    const block = readBlock(vf, 'config', 0x40, 0x20);
    const snapshot = vf.config.snapshot().subarray(0x40, 0x60);
    expect(block).toEqual(snapshot);
  });

  it('refuses a range beyond the space before any piece runs', () => {
    const { vf } = machineWithVf();
    const e = caught(() => writeBlock(vf, 'config', 0xffc, new Uint8Array(8).fill(0xff)));
    expect(e.code).toBe('VMMR_ERR_OUT_OF_RANGE');
    expect(e.context).toMatchObject({ bdf: '0000:01:00.1', space: 'config', offset: 0xffc });
  });

  it.each([0, 4097, 1.5])('refuses a length of %s', (length) => {
    const { vf } = machineWithVf();
    expect(caught(() => readBlock(vf, 'bar2', 0x2000, length)).code).toBe('VMMR_ERR_BAD_WIDTH');
  });

  it('stops at the first refused piece, naming it; earlier pieces happened', () => {
    const { vf } = machineWithVf();
    // Pieces: 2 bytes at +0xe (QUEUE_SEL, taken), then 4 bytes at +0x10, which spans QUEUE_NOTIFY,
    // STATUS and ISR: the legacy block refuses it and the block stops there.
    const e = caught(() => writeBlock(vf, 'bar2', 0x100e, Uint8Array.from([1, 0, 0xff, 0xff, 0, 0])));
    expect(e.code).toBe('VMMR_ERR_WIDTH_MISMATCH');
    expect(e.context).toMatchObject({ space: 'bar2', offset: 0x1010, width: 4 });
    expect(e.message).toContain('block write of 6 bytes at 0x100e stopped after 2 bytes');
    expect(Number(read(vf, 'bar2', 0x100e, 2))).toBe(1);
  });
});

describe('runBatch with block operations', () => {
  const op = (fields: Partial<Operation>): Operation => ({
    bdf: '0000:01:00.1',
    space: 'bar2',
    op: 'read',
    offset: 0,
    width: 0,
    length: 0,
    value: 0,
    data: undefined,
    refused: undefined,
    ...fields,
  });

  it('mixes single and block accesses and keeps results in order', () => {
    const { machine } = machineWithVf();
    const results = runBatch(
      machine,
      [
        op({ op: 'write', offset: MSIX_TABLE, data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), length: 8 }),
        op({ offset: MSIX_TABLE, width: 8 }),
        op({ offset: MSIX_TABLE + 4, length: 4 }),
        op({ offset: MSIX_TABLE + 1, width: 2 }),
        op({ offset: MSIX_TABLE, width: 4 }),
      ],
      false,
    );
    expect(results).toEqual([
      { ok: true, value: undefined, data: undefined },
      { ok: true, value: 0x0807060504030201n, data: undefined },
      { ok: true, value: undefined, data: Uint8Array.from([5, 6, 7, 8]) },
      { ok: false, error: expect.objectContaining({ code: 'VMMR_ERR_UNALIGNED' }) },
    ]);
  });

  it('reports an operation refused by its caller in its turn', () => {
    const { machine } = machineWithVf();
    const refused = new VmmrError('VMMR_ERR_BAD_VALUE', 'bad hex');
    const results = runBatch(
      machine,
      [op({ offset: MSIX_TABLE, width: 4 }), op({ refused }), op({ offset: MSIX_TABLE, width: 4 })],
      true,
    );
    expect(results.map((r) => r.ok)).toEqual([true, false, true]);
    expect(results[1]).toMatchObject({ ok: false, error: { code: 'VMMR_ERR_BAD_VALUE' } });
  });
});
