/**
 * setpci's register syntax as `vmmr cfg/bar/io` parse it, and capability names resolved by
 * walking a config space: every resolution is checked against setpci reading the same dump.
 */
import { describe, expect, it } from 'vitest';
import { CFG_SYNTAX } from '../../src/cli/cfg.js';
import { BAR_SYNTAX } from '../../src/cli/bar.js';
import { UsageError } from '../../src/cli/errors.js';
import { parseLspciDump } from '../../src/cli/format.js';
import { IO_SYNTAX } from '../../src/cli/io.js';
import {
  CAPABILITY_NAMES,
  findCapability,
  formatValue,
  parseSpec,
  resolveOffset,
} from '../../src/cli/regspec.js';
import { capabilityIds, legacy, sriovCap } from '../../src/spec/index.js';
import { setpci, tmpFile, vmmr } from '../support/cli.js';

describe('parseSpec', () => {
  it('reads hex offsets with or without 0x and the width letters in either case', () => {
    expect(parseSpec('4.w', CFG_SYNTAX)).toEqual({
      text: '4.w',
      base: { kind: 'offset', offset: 4 },
      plus: 0,
      width: 2,
    });
    expect(parseSpec('0x10.L', CFG_SYNTAX)).toMatchObject({ base: { offset: 0x10 }, width: 4 });
    expect(parseSpec('3c.b', CFG_SYNTAX)).toMatchObject({ base: { offset: 0x3c }, width: 1 });
    expect(parseSpec('ff0.l', CFG_SYNTAX)).toMatchObject({ base: { offset: 0xff0 }, width: 4 });
  });

  it('takes register names with their natural width, and setpci aliases', () => {
    expect(parseSpec('command', CFG_SYNTAX)).toMatchObject({
      base: { kind: 'register', offset: 4 },
      width: 2,
    });
    expect(parseSpec('COMMAND.l', CFG_SYNTAX)).toMatchObject({ base: { offset: 4 }, width: 4 });
    expect(parseSpec('VENDOR_ID+1.b', CFG_SYNTAX)).toMatchObject({ base: { offset: 0 }, plus: 1, width: 1 });
    expect(parseSpec('REVISION', CFG_SYNTAX)).toMatchObject({ base: { offset: 8 }, width: 1 });
    expect(parseSpec('CAPABILITIES', CFG_SYNTAX)).toMatchObject({ base: { offset: 0x34 }, width: 1 });
    expect(parseSpec('BASE_ADDRESS_2', CFG_SYNTAX)).toMatchObject({ base: { offset: 0x18 }, width: 4 });
  });

  it('takes capability names, CAPid/ECAPid and @instance', () => {
    expect(parseSpec('CAP_EXP+8.w', CFG_SYNTAX)).toMatchObject({
      base: {
        kind: 'capability',
        extended: false,
        id: capabilityIds.constants.CAP_ID_EXP.value,
        instance: 0,
      },
      plus: 8,
      width: 2,
    });
    expect(parseSpec('ecap_sriov+0x10.w', CFG_SYNTAX)).toMatchObject({
      base: {
        kind: 'capability',
        name: 'ECAP_SRIOV',
        extended: true,
        id: capabilityIds.constants.EXT_CAP_ID_SRIOV.value,
      },
      plus: 0x10,
    });
    expect(parseSpec('ECAP10+10.w', CFG_SYNTAX)).toMatchObject({ base: { extended: true, id: 0x10 } });
    expect(parseSpec('CAP0x11.w', CFG_SYNTAX)).toMatchObject({ base: { extended: false, id: 0x11 } });
    expect(parseSpec('CAP_VNDR@2+3.b', CFG_SYNTAX)).toMatchObject({
      base: { id: 9, instance: 2 },
      plus: 3,
      width: 1,
    });
    expect(parseSpec('CAP_VNDR+3.b@2', CFG_SYNTAX)).toMatchObject({
      base: { id: 9, instance: 2 },
      plus: 3,
      width: 1,
    });
    expect(parseSpec('CAP_VNDR+3.b@a=1', CFG_SYNTAX)).toMatchObject({
      base: { instance: 10 },
      writes: [{ value: 1n }],
    });
    expect(CAPABILITY_NAMES.get('ECAP_AER')).toEqual({ extended: true, id: 1 });
    expect(CAPABILITY_NAMES.get('CAP_MSIX')).toEqual({ extended: false, id: 0x11 });
  });

  it('parses writes: several values, DATA:MASK', () => {
    expect(parseSpec('4.w=6', CFG_SYNTAX).writes).toEqual([{ value: 6n }]);
    expect(parseSpec('10.l=ffffffff,0', CFG_SYNTAX).writes).toEqual([{ value: 0xffffffffn }, { value: 0n }]);
    expect(parseSpec('COMMAND=0x400:0x400', CFG_SYNTAX).writes).toEqual([{ value: 0x400n, mask: 0x400n }]);
    expect(parseSpec('20.q=ffffffffffffffff', BAR_SYNTAX).writes).toEqual([{ value: 2n ** 64n - 1n }]);
  });

  it('takes BAR region names and legacy register names', () => {
    expect(parseSpec('LEGACY+12.b', BAR_SYNTAX)).toMatchObject({
      base: { offset: 0x1000 },
      plus: 0x12,
      width: 1,
    });
    expect(parseSpec('STATUS', IO_SYNTAX)).toMatchObject({
      base: { offset: legacy.registers.STATUS.offset },
      width: 1,
    });
    expect(parseSpec('queue_pfn=1', IO_SYNTAX)).toMatchObject({
      base: { offset: 8 },
      width: 4,
      writes: [{ value: 1n }],
    });
  });

  it.each([
    ['4', CFG_SYNTAX, '4: missing width: append one of .B .W .L (e.g. 4.B)'],
    ['4.q', CFG_SYNTAX, '4.q: width .q is not one of .B .W .L'],
    ['4.x', BAR_SYNTAX, '4.x: width .x is not one of .B .W .L .Q'],
    ['LEGACY.', BAR_SYNTAX, 'LEGACY.: width . is not one of .B .W .L .Q'],
    ['LEGACY', BAR_SYNTAX, 'LEGACY: missing width: append one of .B .W .L .Q (e.g. LEGACY.B)'],
    ['4.b=100', CFG_SYNTAX, '4.b=100: value 100 is too large (at most 0xff)'],
    ['4.w=xyz', CFG_SYNTAX, '4.w=xyz: value "xyz" is not a hex number (setpci syntax: hex, 0x optional)'],
    ['4.w=', CFG_SYNTAX, '4.w=: missing value after "="'],
    ['.w', CFG_SYNTAX, '.w: missing config register'],
    [
      'CAP_NOPE.w',
      CFG_SYNTAX,
      'CAP_NOPE.w: unknown capability CAP_NOPE (see setpci --dumpregs; or use CAP<hex id>)',
    ],
    ['FOO.w', CFG_SYNTAX, 'FOO.w: "FOO" is not a hex offset, a register name or a capability'],
    ['COMMAND@1', CFG_SYNTAX, 'COMMAND@1: @N selects a capability instance and needs a CAP_/ECAP_ name'],
    ['COMMAND.w@1', CFG_SYNTAX, 'COMMAND.w@1: @N selects a capability instance and needs a CAP_/ECAP_ name'],
    ['CAP_VNDR@1.b@1', CFG_SYNTAX, 'CAP_VNDR@1.b@1: more than one @N'],
    ['CAP_EXP.w', IO_SYNTAX, 'CAP_EXP.w: "CAP_EXP" is not a hex offset, a register name or a capability'],
  ])('refuses %s as a usage error', (spec, syntax, message) => {
    expect(() => parseSpec(spec, syntax)).toThrow(new UsageError(message));
  });

  it('formats values like setpci: zero-padded hex of the width', () => {
    expect(formatValue(0x10n, 2)).toBe('0010');
    expect(formatValue(0n, 1)).toBe('00');
    expect(formatValue(0xdeadbeefn, 8)).toBe('00000000deadbeef');
  });
});

describe('capability names resolve as setpci resolves them', () => {
  const cases: Array<[string, string[]]> = [
    // PF with 4 VFs enabled: PCIe, MSI-X, virtio vendor caps, ARI, SR-IOV.
    [
      '01:00.0',
      [
        'CAP_EXP.b',
        'CAP_EXP+2.w',
        'CAP_EXP+8.w',
        'CAP_MSIX+2.w',
        'CAP_VNDR+3.b',
        'CAP_VNDR+3.b@1',
        'CAP_VNDR+3.b@4',
        'CAP_VNDR.l@2',
        'ECAP_ARI.l',
        'ECAP_SRIOV+10.w',
        'ECAP_SRIOV+8.w',
        'ECAP_SRIOV+e.w',
        'ECAP10+1a.w',
        'ECAP0x0e+4.w',
        'CAP10+2.w',
      ],
    ],
    // VF: the MMR locator is the Vendor-Specific Extended Capability.
    [
      '01:00.1',
      ['ECAP_VNDR.l', 'ECAP_VNDR+4.l', 'ECAP_VNDR+8.b', 'ECAP_VNDR+c.l', 'ECAP_VNDR+14.l', 'CAP_EXP+2.w'],
    ],
  ];
  it.each(cases)('%s', async (bdf, specs) => {
    const r = await vmmr(['dump', bdf, '--offline', '--num-vfs', '4']);
    const file = tmpFile(r.stdout);
    const { bytes } = parseLspciDump(r.stdout);
    const expected = setpci(file, bdf, ...specs)
      .trim()
      .split('\n');
    const ours: string[] = [];
    for (const text of specs) {
      const spec = parseSpec(text, CFG_SYNTAX);
      const offset = await resolveOffset(spec, async () => bytes, bdf);
      let value = 0n;
      for (let i = spec.width - 1; i >= 0; i--) value = value * 256n + BigInt(bytes[offset + i]!);
      ours.push(formatValue(value, spec.width));
    }
    expect(ours).toEqual(expected);
  });

  it('finds the SR-IOV capability where the dump has it, and reports a missing one', async () => {
    const r = await vmmr(['dump', '01:00.0', '--offline']);
    const { bytes } = parseLspciDump(r.stdout);
    const at = findCapability(bytes, true, capabilityIds.constants.EXT_CAP_ID_SRIOV.value);
    expect(at).toBeDefined();
    expect(bytes[at! + sriovCap.registers.TOTAL_VF.offset]).toBe(0x00);
    expect(findCapability(bytes, true, capabilityIds.constants.EXT_CAP_ID_DPC.value)).toBeUndefined();
    await expect(
      resolveOffset(parseSpec('ECAP_DPC.l', CFG_SYNTAX), async () => bytes, '0000:01:00.0'),
    ).rejects.toThrow('0000:01:00.0 has no capability ECAP_DPC (extended ID 0x1d)');
  });
});
