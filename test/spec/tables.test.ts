import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { loadRawTables, TABLE_DIR } from '../support/spec-oracle.js';

interface Reg {
  offset: number;
  size: number;
  access: string;
  reset?: number;
  vfReset?: number;
  resetBytes?: number[];
  writeMask?: number;
  vfWriteMask?: number;
  rw1cMask?: number;
  selfClearMask?: number;
  alias?: boolean;
  exposed?: boolean;
  group?: string;
  source: string;
}
interface Const {
  value: number;
  alias?: boolean;
  source: string;
}
interface DevType {
  typeId: number;
  transitionalId: number;
  modernId: number;
  mmrId: number;
  classCode: number;
  queues: string[];
  msixVectors: number;
  source: string;
}
interface RawTable {
  id: string;
  source: string;
  size?: number;
  registers?: Record<string, Reg>;
  constants: Record<string, Const>;
  types?: Record<string, DevType>;
  offered?: string[] | { pf: string[]; transitional: string[]; source: string };
}

const schema = JSON.parse(readFileSync(join(TABLE_DIR, 'schema/table.schema.json'), 'utf8')) as object;
const ajv = new Ajv2020({ $data: true, strict: true, strictRequired: false, allErrors: true });
const validate = ajv.compile(schema);
const files = loadRawTables();
const tables = files.map((f) => f.data as unknown as RawTable);
const byId = new Map(tables.map((t) => [t.id, t]));

function get(id: string): RawTable {
  const t = byId.get(id);
  if (!t) throw new Error(`missing table ${id}`);
  return t;
}
const constant = (id: string, name: string): number => {
  const c = get(id).constants[name];
  if (!c) throw new Error(`missing constant ${id}.${name}`);
  return c.value;
};
const registers = (t: RawTable): [string, Reg][] => Object.entries(t.registers ?? {});
const registerTables = tables.filter((t) => t.registers !== undefined);
const TYPE_NAMES = ['net', 'block', 'balloon', 'console', 'scsi', 'rng', '9p'];
const fits = (v: number, bytes: number) => bytes >= 7 || v < 2 ** (8 * bytes);

function schemaErrors(data: unknown): string[] {
  return validate(data) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

describe('spec table files', () => {
  it('there is one file per expected structure', () => {
    const expected = [
      'device-types',
      'pci-header',
      'capability-ids',
      'pcie-cap',
      'msix-cap',
      'msix-table-entry',
      'virtio-pci-cap',
      'virtio-common-cfg',
      'virtio-legacy',
      'virtio-status',
      'virtio-features',
      'sriov-cap',
      'ari-cap',
      'mmr-locator',
      'bar-layout',
      'pc-platform',
      'qtest-protocol',
      'virtio-ring',
      'virtio-admin',
      'virtio-net-hdr',
      'virtio-net-ctrl',
      'virtio-blk-req',
      'virtio-scsi-req',
      'virtio-9p-messages',
      'scsi-commands',
      'ethernet',
      'pcap',
      'datapath',
      'vfio-user-protocol',
      'vfio-user-messages',
      'vfio-pci',
      ...TYPE_NAMES.map((t) => `device-config-${t}`),
      ...TYPE_NAMES.map((t) => `virtio-features-${t}`),
    ];
    expect([...byId.keys()].sort()).toEqual(expected.sort());
  });

  it.each(files.map((f) => [f.file, f.data] as const))('%s validates against the schema', (_file, data) => {
    expect(schemaErrors(data)).toEqual([]);
  });

  it.each(files.map((f) => [f.file, f.data.id] as const))('%s has id = file name', (file, id) => {
    expect(`${String(id)}.json`).toBe(file);
  });
});

describe('schema strictness', () => {
  const legacy = () => structuredClone(get('virtio-legacy')) as unknown as Record<string, unknown> & RawTable;

  it('rejects an unknown property', () => {
    const t = legacy();
    (t.registers!.STATUS as unknown as Record<string, unknown>).colour = 'red';
    expect(schemaErrors(t)).not.toEqual([]);
  });

  it('rejects an entry without a source', () => {
    const t = legacy();
    delete (t.registers!.STATUS as Partial<Reg>).source;
    expect(schemaErrors(t)).not.toEqual([]);
    const u = legacy();
    u.constants.NO_VECTOR!.source = '  ';
    expect(schemaErrors(u)).not.toEqual([]);
  });

  it('rejects hex strings, fractions and bad access modes', () => {
    const t = legacy();
    (t.constants.NO_VECTOR as unknown as Record<string, unknown>).value = '0xffff';
    expect(schemaErrors(t)).not.toEqual([]);
    const u = legacy();
    u.registers!.STATUS!.offset = 18.5;
    expect(schemaErrors(u)).not.toEqual([]);
    const v = legacy();
    v.registers!.STATUS!.access = 'w1c';
    expect(schemaErrors(v)).not.toEqual([]);
  });

  it('rejects a malformed linux reference', () => {
    const t = legacy();
    (t.registers!.STATUS as unknown as Record<string, unknown>).linux = { macro: 'A', struct: 'b' };
    expect(schemaErrors(t)).not.toEqual([]);
    const u = legacy();
    (u.constants.NO_VECTOR as unknown as Record<string, unknown>).linux = { expr: 'X; system("x")' };
    expect(schemaErrors(u)).not.toEqual([]);
  });

  it('rejects an offered feature that is not a constant of the table', () => {
    const net = structuredClone(get('virtio-features-net'));
    (net.offered as string[]).push('NO_SUCH_FEATURE');
    expect(schemaErrors(net).join()).toContain('NO_SUCH_FEATURE');
    const common = structuredClone(get('virtio-features'));
    (common.offered as { pf: string[] }).pf.push('NO_SUCH_FEATURE');
    expect(schemaErrors(common).join()).toContain('NO_SUCH_FEATURE');
  });

  it('rejects "offered" outside feature tables and "types" outside device-types', () => {
    const t = legacy();
    t.offered = [];
    expect(schemaErrors(t)).not.toEqual([]);
    const u = legacy();
    u.types = {};
    expect(schemaErrors(u)).not.toEqual([]);
  });
});

describe('sources', () => {
  const entries = tables.flatMap((t) => [
    [`${t.id}`, t.source] as const,
    ...registers(t).map(([k, r]) => [`${t.id}.registers.${k}`, r.source] as const),
    ...Object.entries(t.constants).map(([k, c]) => [`${t.id}.constants.${k}`, c.source] as const),
    ...Object.entries(t.types ?? {}).map(([k, d]) => [`${t.id}.types.${k}`, d.source] as const),
  ]);

  it('every table, register, constant and type names a non-empty source', () => {
    const missing = entries.filter(([, s]) => typeof s !== 'string' || s.trim() === '').map(([w]) => w);
    expect(missing).toEqual([]);
    expect(entries.length).toBeGreaterThan(500);
  });

  it('every "vmmr decision" gives a reason', () => {
    const bare = entries.filter(([, s]) => /vmmr decision(?!: \S)/.test(s)).map(([w]) => w);
    expect(bare).toEqual([]);
  });
});

describe('register layouts', () => {
  it.each(registerTables.map((t) => [t.id, t] as const))(
    '%s: registers do not overlap unless aliased',
    (_id, t) => {
      const regs = registers(t).filter(([, r]) => !r.alias);
      const problems: string[] = [];
      for (let i = 0; i < regs.length; i++) {
        for (let j = i + 1; j < regs.length; j++) {
          const [a, ra] = regs[i]!;
          const [b, rb] = regs[j]!;
          // Different groups are different structures; ungrouped registers are shared by every group.
          if (ra.group !== undefined && rb.group !== undefined && ra.group !== rb.group) continue;
          if (ra.offset < rb.offset + rb.size && rb.offset < ra.offset + ra.size)
            problems.push(`${a} overlaps ${b}`);
        }
      }
      expect(problems).toEqual([]);
    },
  );

  it.each(registerTables.map((t) => [t.id, t] as const))('%s: values fit their registers', (_id, t) => {
    const problems: string[] = [];
    for (const [name, r] of registers(t)) {
      for (const k of [
        'reset',
        'vfReset',
        'writeMask',
        'vfWriteMask',
        'rw1cMask',
        'selfClearMask',
      ] as const) {
        const v = r[k];
        if (v !== undefined && !fits(v, r.size)) problems.push(`${name}.${k} does not fit ${r.size} bytes`);
      }
      if (r.resetBytes && r.resetBytes.length > r.size)
        problems.push(`${name}.resetBytes longer than the register`);
      const writable = r.writeMask ?? (r.access === 'rw' ? 2 ** (8 * r.size) - 1 : 0);
      if (r.access !== 'rw' && (r.writeMask ?? 0) !== 0)
        problems.push(`${name}: writeMask on a non-rw register`);
      if (r.vfWriteMask !== undefined && (r.vfWriteMask & ~writable) !== 0)
        problems.push(`${name}: vfWriteMask exceeds writeMask`);
      if (r.selfClearMask !== undefined && (r.selfClearMask & ~writable) !== 0)
        problems.push(`${name}: selfClearMask not writable`);
      if (r.rw1cMask !== undefined && r.writeMask !== undefined && (r.rw1cMask & r.writeMask) !== 0) {
        problems.push(`${name}: rw1cMask overlaps writeMask`);
      }
    }
    expect(problems).toEqual([]);
  });

  it.each(registerTables.filter((t) => t.size !== undefined).map((t) => [t.id, t] as const))(
    '%s: exposed shared registers lie inside the table size',
    (_id, t) => {
      const outside = registers(t)
        .filter(([, r]) => r.group === undefined && r.exposed !== false && r.offset + r.size > t.size!)
        .map(([n]) => n);
      expect(outside).toEqual([]);
    },
  );
});

describe('device types', () => {
  const dt = get('device-types');
  const types = Object.entries(dt.types ?? {});

  it('are exactly the seven vmmr types', () => {
    expect(types.map(([n]) => n)).toEqual(TYPE_NAMES);
  });

  it('have consistent PCI identities', () => {
    const base = constant('device-types', 'MODERN_DEVICE_ID_BASE');
    for (const [name, t] of types) {
      expect(t.modernId, name).toBe(base + t.typeId);
      expect(t.mmrId, name).toBeGreaterThanOrEqual(constant('device-types', 'MMR_DEVICE_ID_FIRST'));
      expect(t.mmrId, name).toBeLessThanOrEqual(constant('device-types', 'MMR_DEVICE_ID_LAST'));
      expect(t.transitionalId, name).toBeGreaterThanOrEqual(
        constant('device-types', 'TRANSITIONAL_DEVICE_ID_FIRST'),
      );
      expect(t.transitionalId, name).toBeLessThanOrEqual(
        constant('device-types', 'TRANSITIONAL_DEVICE_ID_LAST'),
      );
      expect(t.modernId, name).toBeLessThanOrEqual(constant('device-types', 'MODERN_DEVICE_ID_LAST'));
    }
    for (const field of ['typeId', 'transitionalId', 'mmrId'] as const) {
      expect(new Set(types.map(([, t]) => t[field])).size, field).toBe(types.length);
    }
  });

  it('MMR IDs follow the order of the transitional ID table', () => {
    const byTransitional = [...types].sort((a, b) => a[1].transitionalId - b[1].transitionalId);
    byTransitional.forEach(([name, t], i) => expect(t.mmrId, name).toBe(0x10f9 + i));
  });

  it('have one MSI-X vector per queue plus one for config changes, within the BAR layout', () => {
    for (const [name, t] of types) {
      expect(t.msixVectors, name).toBe(t.queues.length + 1);
      expect(t.msixVectors, name).toBeLessThanOrEqual(constant('bar-layout', 'MSIX_TABLE_MAX_ENTRIES'));
      expect(t.queues.length, name).toBeLessThanOrEqual(constant('bar-layout', 'MAX_QUEUES'));
    }
  });

  it('each have a device config table and a feature table', () => {
    for (const name of TYPE_NAMES) {
      expect(byId.has(`device-config-${name}`), name).toBe(true);
      expect(byId.has(`virtio-features-${name}`), name).toBe(true);
    }
  });
});

describe('device configs', () => {
  it.each(TYPE_NAMES)('%s: exposed fields tile [0, size) and the rest lies beyond', (name) => {
    const t = get(`device-config-${name}`);
    const exposed = registers(t)
      .filter(([, r]) => r.exposed !== false && !r.alias)
      .sort((a, b) => a[1].offset - b[1].offset);
    let end = 0;
    for (const [reg, r] of exposed) {
      expect(r.offset, `${reg} starts at the end of the previous field`).toBe(end);
      end = r.offset + r.size;
    }
    expect(end).toBe(t.size);
    for (const [reg, r] of registers(t).filter(([, x]) => x.exposed === false)) {
      expect(r.offset, reg).toBeGreaterThanOrEqual(t.size!);
    }
  });

  it.each(TYPE_NAMES)('%s: the legacy block fits the BAR layout', (name) => {
    const needed = constant('virtio-legacy', 'CONFIG_OFF_MSIX') + get(`device-config-${name}`).size!;
    expect(needed).toBeLessThanOrEqual(get('bar-layout').registers!.LEGACY!.size);
    expect(needed).toBeLessThanOrEqual(get('bar-layout').registers!.DEVICE_CFG!.size + 24);
  });

  it('only the fields a driver may write are rw', () => {
    const rw = TYPE_NAMES.flatMap((name) =>
      registers(get(`device-config-${name}`))
        .filter(([, r]) => r.access === 'rw')
        .map(([reg]) => `${name}.${reg}`),
    );
    expect(rw.sort()).toEqual(
      [
        'net.MAC',
        'block.WRITEBACK',
        'console.EMERG_WR',
        'scsi.SENSE_SIZE',
        'scsi.CDB_SIZE',
        'balloon.ACTUAL',
      ].sort(),
    );
  });
});

describe('feature tables', () => {
  const featureTables = tables.filter((t) => t.id.startsWith('virtio-features'));

  it.each(featureTables.map((t) => [t.id, t] as const))(
    '%s: bit numbers are 0..63 and unique unless aliased',
    (_id, t) => {
      const seen = new Map<number, string>();
      for (const [name, c] of Object.entries(t.constants)) {
        expect(c.value, name).toBeLessThan(64);
        if (c.alias) continue;
        expect(seen.get(c.value), `${name} reuses bit ${c.value}`).toBeUndefined();
        seen.set(c.value, name);
      }
    },
  );

  it('offered names exist', () => {
    for (const t of featureTables) {
      const offered = Array.isArray(t.offered) ? t.offered : [...t.offered!.pf, ...t.offered!.transitional];
      for (const name of offered) expect(t.constants, `${t.id}: ${name}`).toHaveProperty(name);
    }
  });

  it('transitional devices offer ANY_LAYOUT and the legacy-invisible VERSION_1', () => {
    const offered = get('virtio-features').offered as { transitional: string[]; pf: string[] };
    expect(offered.transitional).toContain('ANY_LAYOUT');
    expect(offered.pf).toEqual(expect.arrayContaining(['VERSION_1', 'SR_IOV']));
  });
});

describe('cross-table consistency', () => {
  it('the MMR locator header encodes ID, revision and length', () => {
    const c = (n: string) => constant('mmr-locator', n);
    const expected =
      (c('VSEC_ID') << c('VSEC_ID_SHIFT')) |
      (c('VSEC_REV') << c('VSEC_REV_SHIFT')) |
      (c('VSEC_LENGTH') << c('VSEC_LENGTH_SHIFT'));
    expect(get('mmr-locator').registers!.VSEC_HEADER!.reset).toBe(expected);
    expect(c('VSEC_LENGTH')).toBe(get('mmr-locator').size);
    expect(c('VSEC_ID')).toBe(constant('virtio-pci-cap', 'CFG_TYPE_LEGACY_MMR'));
    expect(get('mmr-locator').registers!.OFFSET!.reset).toBe(get('bar-layout').registers!.LEGACY!.offset);
    expect(c('LEGACY_BLOCK_OFFSET')).toBe(get('bar-layout').registers!.LEGACY!.offset);
  });

  it('the BAR regions fit the BAR and hold their structures', () => {
    const bar = get('bar-layout');
    for (const [name, r] of registers(bar)) expect(r.offset + r.size, name).toBeLessThanOrEqual(bar.size!);
    expect(bar.size).toBe(constant('bar-layout', 'BAR_SIZE'));
    expect(bar.registers!.COMMON_CFG!.size).toBeGreaterThanOrEqual(get('virtio-common-cfg').size!);
    expect(bar.registers!.MSIX_TABLE!.size).toBe(
      constant('bar-layout', 'MSIX_TABLE_MAX_ENTRIES') * constant('msix-table-entry', 'ENTRY_SIZE'),
    );
    expect(bar.registers!.NOTIFY!.size).toBe(
      constant('bar-layout', 'MAX_QUEUES') * constant('bar-layout', 'NOTIFY_OFF_MULTIPLIER'),
    );
    expect(bar.registers!.MSIX_PBA!.size * 8).toBeGreaterThanOrEqual(
      constant('bar-layout', 'MSIX_TABLE_MAX_ENTRIES'),
    );
    expect(bar.size! & (bar.size! - 1)).toBe(0);
  });

  it('the PF command write mask is the one the core expects', () => {
    const c = (n: string) => constant('pci-header', `COMMAND_${n}`);
    const cmd = get('pci-header').registers!.COMMAND!;
    expect(cmd.writeMask).toBe(
      c('IO') | c('MEMORY') | c('MASTER') | c('PARITY') | c('SERR') | c('INTX_DISABLE'),
    );
    expect(cmd.vfWriteMask).toBe(c('MASTER'));
  });

  it('the capability sizes agree with their registers', () => {
    expect(get('sriov-cap').size).toBe(constant('sriov-cap', 'SIZEOF'));
    expect(get('ari-cap').size).toBe(constant('ari-cap', 'SIZEOF'));
    expect(get('msix-cap').size).toBe(constant('msix-cap', 'CAP_MSIX_SIZEOF'));
    expect(get('pcie-cap').size).toBe(constant('pcie-cap', 'CAP_EXP_VER2_SIZEOF'));
    expect(get('virtio-pci-cap').size).toBe(constant('virtio-pci-cap', 'CAP_LEN'));
    expect(get('msix-table-entry').size).toBe(constant('msix-table-entry', 'ENTRY_SIZE'));
    expect(get('virtio-legacy').size).toBe(constant('virtio-legacy', 'CONFIG_OFF_MSIX'));
    expect(get('pci-header').size).toBe(constant('pci-header', 'STD_HEADER_SIZEOF'));
  });

  it('the PCIe capability resets describe a 2.5 GT/s x1 endpoint with FLR', () => {
    const p = (n: string) => constant('pcie-cap', n);
    const r = get('pcie-cap').registers!;
    expect(r.FLAGS!.reset! & p('FLAGS_VERS')).toBe(p('FLAGS_VERSION_2'));
    expect((r.FLAGS!.reset! & p('FLAGS_TYPE')) >> 4).toBe(p('TYPE_ENDPOINT'));
    expect(r.DEVCAP!.reset! & p('DEVCAP_FLR')).toBe(p('DEVCAP_FLR'));
    expect(r.DEVCTL!.selfClearMask).toBe(p('DEVCTL_BCR_FLR'));
    expect(r.LNKCAP!.reset! & p('LNKCAP_SLS')).toBe(p('LNKCAP_SLS_2_5GB'));
    expect(r.LNKSTA!.reset).toBe(p('LNKSTA_CLS_2_5GB') | p('LNKSTA_NLW_X1'));
  });
});
