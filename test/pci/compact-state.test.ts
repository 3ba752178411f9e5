/**
 * Compact per-function state (src/pci/config-space.ts, src/pci/record-pool.ts): the config
 * overlay behaves as a plain map of changed dwords whatever its representation (property test
 * against a Map model written here), and the MSI-X and queue records of VFs that went away are
 * reused without leaking their values into the VFs that get them next.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigStore, ConfigTemplate } from '../../src/pci/config-space.js';
import { rd as read, singlePf, wr as write } from '../support/functions.js';
import type { VirtioPf } from '../../src/mmr/pf.js';

function template(): ConfigTemplate {
  const t = new ConfigTemplate();
  for (let i = 0; i < 64; i++) {
    t.set(i * 4, 4, (i * 0x01010101) >>> 0);
    t.setMasks(i * 4, 4, 0xffffffff);
  }
  return t;
}

describe('config overlay', () => {
  it('reads back like a map of the dwords that differ from the template (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 63 }), fc.oneof(fc.constant(-1), fc.nat(0xffffffff))), {
          maxLength: 60,
        }),
        (writes) => {
          const t = template();
          const store = new ConfigStore(t);
          const model = new Map<number, number>();
          for (const [index, value] of writes) {
            // -1: write the template's own value back (the dword no longer differs).
            const v = value === -1 ? t.get(index * 4, 4) : value;
            store.write(index * 4, 4, v);
            if (v === t.get(index * 4, 4)) model.delete(index);
            else model.set(index, v);
          }
          for (let i = 0; i < 64; i++) expect(store.read(i * 4, 4)).toBe(model.get(i) ?? t.get(i * 4, 4));
          expect(store.overlaySize).toBe(model.size);
          expect(store.changes().map((c) => Number(c.offset) / 4)).toEqual(
            [...model.keys()].sort((a, b) => a - b),
          );
        },
      ),
    );
  });
});

const MSIX_TABLE = 0x2000;

function enable(pf: VirtioPf, n: number): void {
  write(pf, 'config', pf.sriov + 0x10, 2, n);
  write(pf, 'config', pf.sriov + 0x08, 2, 0x9);
}

describe('records of VFs that went away', () => {
  it('come back at reset values for the next VFs, and the old VF objects hold none', () => {
    const { pf } = singlePf('net');
    enable(pf, 4);
    for (const vf of pf.vfs) {
      write(vf, 'bar2', MSIX_TABLE, 4, 0xfee00000 + vf.index);
      write(vf, 'bar2', MSIX_TABLE + 12, 4, 0);
      write(vf, 'bar2', 0x100e, 2, 1);
      write(vf, 'bar2', 0x1008, 4, 0x1234 + vf.index);
    }
    const old = [...pf.vfs];
    write(pf, 'config', pf.sriov + 0x08, 2, 0);
    for (const vf of old) {
      expect(vf.msixRecord).toBe(-1);
      expect(vf.device['queueRecord']).toBe(-1);
    }
    enable(pf, 4);
    for (const vf of pf.vfs) {
      expect(read(vf, 'bar2', MSIX_TABLE, 4)).toBe(0);
      expect(read(vf, 'bar2', MSIX_TABLE + 12, 4)).toBe(1);
      write(vf, 'bar2', 0x100e, 2, 1);
      expect(read(vf, 'bar2', 0x1008, 4)).toBe(0);
      expect(read(vf, 'bar2', 0x100c, 2)).toBe(256);
    }
  });
});
