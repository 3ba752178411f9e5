import { describe, expect, expectTypeOf, it } from 'vitest';
import * as spec from '../../src/spec/index.js';
import {
  allTables,
  barLayout,
  commonCfg,
  deviceConfigs,
  deviceTypes,
  featureMask,
  features,
  isVirtioTypeName,
  legacy,
  legacyBlockLength,
  registerList,
  tablesById,
  VIRTIO_TYPE_NAMES,
  type AnyTable,
  type Constant,
  type Register,
  type VirtioTypeName,
} from '../../src/spec/index.js';
import { loadRawTables } from '../support/spec-oracle.js';

function notFrozen(value: unknown, path: string, out: string[], seen = new Set<unknown>()): string[] {
  if (typeof value !== 'object' || value === null || seen.has(value)) return out;
  seen.add(value);
  if (!Object.isFrozen(value)) out.push(path);
  for (const [k, v] of Object.entries(value)) notFrozen(v, `${path}.${k}`, out, seen);
  return out;
}

describe('src/spec exports', () => {
  it('are deeply frozen', () => {
    const data = Object.entries(spec).filter(([, v]) => typeof v === 'object' && v !== null);
    expect(data.length).toBeGreaterThan(15);
    const problems = data.flatMap(([name, v]) => notFrozen(v, name, []));
    expect(problems).toEqual([]);
  });

  it('cannot be modified', () => {
    expect(() => {
      (legacy.registers.QUEUE_PFN as { offset: number }).offset = 0;
    }).toThrow(TypeError);
    expect(() => {
      (features.offeredByType.net as string[]).push('CSUM');
    }).toThrow(TypeError);
    expect(() => {
      (deviceTypes.types.net.queues as string[])[0] = 'x';
    }).toThrow(TypeError);
  });

  it('hold exactly the JSON tables', () => {
    for (const { data } of loadRawTables()) {
      if (data.id === 'device-types') expect(deviceTypes).toEqual(data);
      else expect(tablesById[String(data.id)], String(data.id)).toEqual(data);
    }
    expect(allTables).toHaveLength(loadRawTables().length - 1);
  });

  it('keep key names typed and entries uniform', () => {
    expectTypeOf(legacy.registers.QUEUE_PFN.offset).toEqualTypeOf<number>();
    expectTypeOf(legacy.registers.QUEUE_PFN).toEqualTypeOf<Register>();
    expectTypeOf(legacy.constants.NO_VECTOR).toEqualTypeOf<Constant>();
    expectTypeOf(deviceConfigs.block.registers.GEOMETRY_CYLINDERS).toEqualTypeOf<Register>();
    expectTypeOf(features.byType.net.constants.MAC.value).toEqualTypeOf<number>();
    expectTypeOf<VirtioTypeName>().toEqualTypeOf<
      'net' | 'block' | 'balloon' | 'console' | 'scsi' | 'rng' | '9p'
    >();
    expectTypeOf(features.offeredByType.net).toEqualTypeOf<
      readonly (keyof typeof features.byType.net.constants & string)[]
    >();
    expectTypeOf(commonCfg).toExtend<AnyTable>();
    expectTypeOf(deviceConfigs).toExtend<Readonly<Record<VirtioTypeName, AnyTable>>>();
    // @ts-expect-error unknown register names do not compile
    expect(legacy.registers.NOPE).toBeUndefined();
    // @ts-expect-error unknown constant names do not compile
    expect(barLayout.constants.NOPE).toBeUndefined();
    expect(legacy.registers.QUEUE_PFN).toMatchObject({ offset: 8, size: 4, access: 'rw' });
  });

  it('list the device types', () => {
    expect(VIRTIO_TYPE_NAMES).toEqual(['net', 'block', 'balloon', 'console', 'scsi', 'rng', '9p']);
    expect(Object.keys(deviceConfigs).sort()).toEqual([...VIRTIO_TYPE_NAMES].sort());
    expect(Object.keys(features.byType).sort()).toEqual([...VIRTIO_TYPE_NAMES].sort());
    expect(isVirtioTypeName('9p')).toBe(true);
    expect(isVirtioTypeName('gpu')).toBe(false);
    expect(isVirtioTypeName('toString')).toBe(false);
  });

  it('expose the offered features', () => {
    expect(features.offered.pf).toEqual([
      'VERSION_1',
      'SR_IOV',
      'RING_INDIRECT_DESC',
      'RING_EVENT_IDX',
      'RING_PACKED',
    ]);
    expect(features.offeredByType.net).toEqual([
      'MAC',
      'STATUS',
      'MTU',
      'CTRL_VQ',
      'MRG_RXBUF',
      'CTRL_RX',
      'CTRL_RX_EXTRA',
      'CTRL_VLAN',
      'CTRL_MAC_ADDR',
      'GUEST_ANNOUNCE',
      'GUEST_CSUM',
    ]);
    expect(featureMask(features.common, features.offered.pf)).toBe(
      (1n << 32n) | (1n << 37n) | (1n << 28n) | (1n << 29n) | (1n << 34n),
    );
    expect(features.offeredByType.rng).toEqual([]);
    expect(featureMask(features.common, features.offered.transitional)).toBe(
      (1n << 27n) | (1n << 24n) | (1n << 28n) | (1n << 29n) | (1n << 32n),
    );
    expect(featureMask(features.byType.net, features.offeredByType.net)).toBe(
      // <linux/virtio_net.h>: MAC 5, STATUS 16, MTU 3, CTRL_VQ 17, MRG_RXBUF 15, CTRL_RX 18,
      // CTRL_RX_EXTRA 20, CTRL_VLAN 19, CTRL_MAC_ADDR 23, GUEST_ANNOUNCE 21, GUEST_CSUM 1
      (1n << 5n) |
        (1n << 16n) |
        (1n << 3n) |
        (1n << 17n) |
        (1n << 15n) |
        (1n << 18n) |
        (1n << 20n) |
        (1n << 19n) |
        (1n << 23n) |
        (1n << 21n) |
        (1n << 1n),
    );
  });

  it('compute the legacy block length per type', () => {
    const lengths = Object.fromEntries(VIRTIO_TYPE_NAMES.map((t) => [t, legacyBlockLength(t)]));
    expect(lengths).toEqual({ net: 64, block: 64, balloon: 32, console: 64, scsi: 64, rng: 32, '9p': 64 });
  });

  it('list registers by group and offset', () => {
    const names = registerList(legacy).map((r) => r.name);
    expect(names).toEqual([
      'HOST_FEATURES',
      'GUEST_FEATURES',
      'QUEUE_PFN',
      'QUEUE_NUM',
      'QUEUE_SEL',
      'QUEUE_NOTIFY',
      'STATUS',
      'ISR',
      'MSI_CONFIG_VECTOR',
      'MSI_QUEUE_VECTOR',
    ]);
    expect(Object.isFrozen(registerList(barLayout)[0])).toBe(true);
  });
});
