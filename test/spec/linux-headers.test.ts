import { beforeAll, describe, expect, it } from 'vitest';
import {
  compare,
  formatMismatch,
  loadRawTables,
  runHeaders,
  tableChecks,
  type Check,
  type RawTableFile,
} from '../support/spec-oracle.js';

const MIN_CHECKS = 150;

describe('spec tables agree with the Linux UAPI headers', () => {
  let tables: RawTableFile[];
  let checks: Check[];
  let header: Map<string, bigint>;

  beforeAll(() => {
    tables = loadRawTables();
    checks = tables.flatMap((t) => tableChecks(t.data));
    header = runHeaders(checks);
  });

  it('every linux reference matches the header value', () => {
    const mismatches = compare(checks, header);
    console.log(`linux header oracle: ${checks.length} values cross-checked across ${tables.length} tables`);
    expect(mismatches.map(formatMismatch)).toEqual([]);
  });

  it(`cross-checks at least ${MIN_CHECKS} values`, () => {
    expect(checks.length).toBeGreaterThanOrEqual(MIN_CHECKS);
    expect(new Set(checks.map((c) => c.name)).size).toBe(checks.length);
  });

  it('every table that names a Linux header definition is checked', () => {
    const checkedTables = new Set(checks.map((c) => c.name.split('/')[0]));
    for (const { data } of tables) {
      if (JSON.stringify(data).includes('"linux"')) expect(checkedTables).toContain(data.id);
    }
  });

  it('reports a table value that disagrees with the header', () => {
    const legacy = tables.find((t) => t.data.id === 'virtio-legacy');
    expect(legacy).toBeDefined();
    const flipped = structuredClone(legacy!.data) as {
      registers: Record<string, { offset: number }>;
      constants: Record<string, { value: number }>;
    };
    flipped.registers.QUEUE_PFN!.offset = 9;
    flipped.constants.NO_VECTOR!.value = 0xfffe;
    const before = new Set(compare(tableChecks(legacy!.data), header).map((m) => m.check.name));
    const mismatches = compare(tableChecks(flipped), header)
      .filter((m) => !before.has(m.check.name))
      .map(formatMismatch);
    expect(mismatches).toHaveLength(2);
    expect(mismatches[0]).toContain('table virtio-legacy');
    expect(mismatches[0]).toContain('QUEUE_PFN');
    expect(mismatches[0]).toContain('table value 9, header value 8');
    expect(mismatches[1]).toContain('NO_VECTOR');
  });

  it('fails to compile when a table names a macro the headers do not define', () => {
    const bogus = tableChecks({
      id: 'bogus',
      title: 't',
      source: 's',
      registers: {},
      constants: { X: { value: 1, source: 's', linux: { macro: 'VIRTIO_PCI_NO_SUCH_MACRO' } } },
    });
    expect(() => runHeaders(bogus)).toThrow(/VIRTIO_PCI_NO_SUCH_MACRO is not defined/);
  });

  it('fails to compile when a table names a struct field the headers do not define', () => {
    const bogus = tableChecks({
      id: 'bogus',
      title: 't',
      source: 's',
      registers: {
        X: {
          offset: 0,
          size: 4,
          access: 'ro',
          source: 's',
          linux: { struct: 'virtio_pci_cap', field: 'no_such_field' },
        },
        Y: { offset: 0, size: 4, access: 'ro', source: 's', linux: { struct: 'no_such_struct', field: 'x' } },
      },
      constants: {},
    });
    expect(() => runHeaders(bogus)).toThrow(/no_such_field/);
  });
});
