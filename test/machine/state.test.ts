/**
 * The state format by name (version 2) and the conversion of version-1 snapshots. The version-1
 * fixture (test/fixtures/state-v1.json) was written by vmmr 0.1.0 after `drive` below; reading it
 * must give the machine that today's code builds from the same accesses.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { write, type AccessTarget } from '../../src/access/index.js';
import { VmmrError } from '../../src/base/errors.js';
import { Machine } from '../../src/machine/machine.js';
import { migrateStateV1, stateProblem, STATE_VERSION } from '../../src/machine/state.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import { setNumVfs } from '../../src/control/sriov.js';

const V1 = JSON.parse(readFileSync(new URL('../fixtures/state-v1.json', import.meta.url), 'utf8')) as unknown;

/** The accesses the fixture was recorded after (guest view, MSI-X, legacy probe, a pending vector). */
function drive(): Machine {
  const m = new Machine(DEFAULT_TOPOLOGY);
  const pf = m.findPf('0000:01:00.0');
  setNumVfs(pf, 2);
  const vf = m.find('0000:01:00.1') as MmrVf;
  const g: AccessTarget = m.translator.view(vf);
  write(g, 'guest-config', 4, 2, 0x0005);
  write(g, 'guest-config', 0x10, 4, 0xc040);
  write(g, 'guest-config', 0x3c, 1, 11);
  write(vf, 'config', vf.template.caps.msix + 2, 2, 0x8000);
  write(vf, 'bar2', 0x2000, 4, 0xfee00000);
  write(vf, 'bar2', 0x2008, 4, 0x4021);
  write(vf, 'bar2', 0x200c, 4, 0);
  write(vf, 'bar2', 0x2010, 4, 0xfee01000);
  write(vf, 'bar2', 0x2018, 4, 0x4022);
  write(g, 'io', 18, 1, 1);
  write(g, 'io', 18, 1, 3);
  write(g, 'io', 4, 4, 0x20);
  for (const q of [0, 1]) {
    write(g, 'io', 14, 2, q);
    write(g, 'io', 8, 4, 0x1000 + q * 0x10);
    write(g, 'io', 22, 2, q + 1);
  }
  write(g, 'io', 20, 2, 0);
  write(g, 'io', 24, 1, 0x52);
  write(g, 'io', 18, 1, 7);
  vf.device.raiseQueueInterrupt(1);
  write(pf, 'config', 4, 2, 6);
  write(pf, 'bar0', 0x16, 2, 1);
  write(pf, 'bar0', 0x20, 4, 0x12345000);
  write(pf, 'bar0', 0x24, 4, 0x1);
  return m;
}

describe('state format', () => {
  it('names every field: config dwords by offset, queues, device config as hex, the MSI-X table', () => {
    const state = drive().snapshot();
    expect(state.version).toBe(STATE_VERSION);
    expect(stateProblem(state)).toBeUndefined();
    const vf = state.functions.find((f) => f.bdf === '0000:01:00.1')!;
    // MSI-X at 0x7c (docs/device-model.md): Message Control (its upper half) has Enable set.
    expect(vf.config).toContainEqual({ offset: '0x007c', value: expect.stringMatching(/^0x8003/) });
    expect(vf.guest).toContainEqual({ offset: '0x0004', value: '0x00100005' });
    expect(vf.device.queues?.[1]).toEqual({
      size: 256,
      vector: 2,
      enabled: true,
      desc: '0x0000000001010000',
      driver: '0x0000000001011000',
      device: '0x0000000001012000',
    });
    expect(vf.device.config?.slice(0, 2)).toBe('52');
    expect(vf.msix?.vectors[0]).toEqual({ address: '0x00000000fee00000', data: 0x4021, masked: false });
    expect(vf.msix?.vectors[1]).toEqual({ address: '0x00000000fee01000', data: 0x4022, masked: true });
    expect(vf.msix?.pending).toEqual([2]);
  });

  it('reads a version-1 snapshot of 0.1.0 as the machine today builds from the same accesses', () => {
    const migrated = migrateStateV1(V1);
    expect(migrated).toBeDefined();
    expect(stateProblem(migrated)).toBeUndefined();
    const restored = Machine.restore(migrated!);
    expect(restored.snapshot()).toEqual(drive().snapshot());
  });

  it('a version-1 document whose arrays fit no device is VMMR_ERR_STATE', () => {
    const bad = structuredClone(V1) as { functions: Array<{ device: { msix: number[] | null } }> };
    bad.functions[1]!.device.msix = [1, 2, 3];
    expect(() => migrateStateV1(bad)).toThrow(VmmrError);
    expect(() => migrateStateV1(bad)).toThrow(/version 1 state not converted: msix: 3 dwords/);
  });
});
