import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { normalizeBdf } from '../../src/pci/bdf.js';
import {
  DEFAULT_TOPOLOGY,
  loadTopologyFile,
  parseTopology,
  TopologyError,
  type ResolvedTopology,
} from '../../src/machine/topology.js';

const SRC = 't.json';

function pf(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { bdf: '0000:01:00.0', type: 'net', totalVfs: 4, ...extra };
}

function topologyError(json: unknown): TopologyError {
  try {
    parseTopology(json, SRC);
  } catch (err) {
    expect(err).toBeInstanceOf(TopologyError);
    const e = err as TopologyError;
    expect(e.message).not.toContain('\n');
    expect(e.message.startsWith(`${SRC}: `)).toBe(true);
    return e;
  }
  throw new Error('expected a TopologyError');
}

describe('parseTopology: defaults and normalisation', () => {
  it('fills every optional field', () => {
    const t = parseTopology({ pfs: [{ bdf: '0000:01:00.0', type: 'block', totalVfs: 8 }] }, SRC);
    expect(t).toEqual<ResolvedTopology>({
      pfs: [
        {
          bdf: '0000:01:00.0',
          type: 'block',
          totalVfs: 8,
          initialVfs: 8,
          firstVfOffset: 1,
          vfStride: 1,
          queueSize: 256,
          policy: 'strict',
          notify: 'notify-region',
          vfs: {},
        },
      ],
    });
  });

  it('keeps explicit values', () => {
    const t = parseTopology(
      {
        pfs: [
          pf({
            initialVfs: 2,
            firstVfOffset: 8,
            vfStride: 2,
            queueSize: 1024,
            policy: 'compat',
            notify: 'legacy-register',
          }),
        ],
      },
      SRC,
    );
    expect(t.pfs[0]).toMatchObject({
      initialVfs: 2,
      firstVfOffset: 8,
      vfStride: 2,
      queueSize: 1024,
      policy: 'compat',
      notify: 'legacy-register',
    });
  });

  it('normalises short and upper-case BDFs to the long lower-case form (as every vmmr address is parsed)', () => {
    const t = parseTopology(
      { pfs: [pf({ bdf: '0A:1F.7' }), pf({ bdf: 'ABCD:ff:00.0' }), pf({ bdf: '2:0.0' })] },
      SRC,
    );
    expect(t.pfs.map((p) => p.bdf)).toEqual(['0000:0a:1f.7', 'abcd:ff:00.0', '0000:02:00.0']);
    expect(t.pfs.map((p) => p.bdf)).toEqual(t.pfs.map((p) => normalizeBdf(p.bdf)));
  });

  it('accepts every virtio type name', () => {
    const types = ['net', 'block', 'balloon', 'console', 'scsi', 'rng', '9p'];
    const t = parseTopology(
      { pfs: types.map((type, i) => ({ bdf: `0${i + 1}:00.0`, type, totalVfs: 1 })) },
      SRC,
    );
    expect(t.pfs.map((p) => p.type)).toEqual(types);
  });

  it('accepts the limits', () => {
    const t = parseTopology(
      {
        pfs: [
          pf({ totalVfs: 0 }),
          pf({ bdf: '02:00.0', totalVfs: 65535, initialVfs: 0, firstVfOffset: 65535, vfStride: 65535 }),
          pf({ bdf: '03:00.0', totalVfs: 1, vfStride: 0, queueSize: 1 }),
          pf({ bdf: '04:00.0', queueSize: 32768 }),
        ],
      },
      SRC,
    );
    expect(t.pfs).toHaveLength(4);
    expect(t.pfs[0]?.initialVfs).toBe(0);
  });

  it('accepts an empty PF list and a $schema key', () => {
    expect(parseTopology({ $schema: './topology.schema.json', pfs: [] }, SRC)).toEqual({ pfs: [] });
  });

  it('normalises VF override keys and MACs', () => {
    const t = parseTopology(
      {
        pfs: [
          pf({ vfs: { '01:00.1': { mac: '52:54:00:AB:CD:EF' }, '0000:01:00.4': {} } }),
          { bdf: '81:00.0', type: 'block', totalVfs: 2, vfs: { '81:00.2': { serial: 'disk-0001' } } },
        ],
      },
      SRC,
    );
    expect(t.pfs[0]?.vfs).toEqual({ '0000:01:00.1': { mac: '52:54:00:ab:cd:ef' }, '0000:01:00.4': {} });
    expect(t.pfs[1]?.vfs).toEqual({ '0000:81:00.2': { serial: 'disk-0001' } });
  });

  it('locates VFs with offset and stride, across buses', () => {
    // PF 01:00.0 RID 0x0100; VF n at 0x0100 + 0x80 + (n-1)*4; VF 96 -> 0x0100+0x80+0x17c = 0x02fc = 02:1f.4
    const t = parseTopology(
      {
        pfs: [pf({ totalVfs: 96, firstVfOffset: 0x80, vfStride: 4, vfs: { '02:1f.4': {}, '01:10.0': {} } })],
      },
      SRC,
    );
    expect(Object.keys(t.pfs[0]?.vfs ?? {})).toEqual(['0000:02:1f.4', '0000:01:10.0']);
  });

  it('does not share state between calls', () => {
    const json = { pfs: [pf()] };
    const a = parseTopology(json, SRC);
    const b = parseTopology(json, SRC);
    expect(a).toEqual(b);
    expect(a.pfs[0]).not.toBe(b.pfs[0]);
  });
});

describe('parseTopology: refusals name the path and the source', () => {
  it.each<[string, unknown, string]>([
    ['a non-object', 5, 't.json: (top level): expected an object with a "pfs" array, got 5'],
    ['a missing pfs', {}, 't.json: (top level): missing required property "pfs"'],
    ['pfs not an array', { pfs: {} }, 't.json: pfs: expected an array of PF objects, got {}'],
    ['an unknown top-level key', { pfs: [], pf: [] }, 't.json: (top level): unknown property "pf"'],
    [
      'a PF missing fields',
      { pfs: [{ bdf: '01:00.0' }] },
      't.json: pfs[0]: missing required property "type", "totalVfs"',
    ],
    ['an unknown PF key', { pfs: [pf({ totalVF: 3 })] }, 't.json: pfs[0]: unknown property "totalVF"'],
    [
      'a bad type',
      { pfs: [pf({ type: 'gpu' })] },
      't.json: pfs[0].type: expected one of net, block, balloon, console, scsi, rng, 9p, got "gpu"',
    ],
    [
      'a fractional totalVfs',
      { pfs: [pf({ totalVfs: 1.5 })] },
      't.json: pfs[0].totalVfs: expected an integer 0..65535, got 1.5',
    ],
    [
      'a too large totalVfs',
      { pfs: [pf({ totalVfs: 65536 })] },
      't.json: pfs[0].totalVfs: expected an integer 0..65535, got 65536',
    ],
    [
      'a negative totalVfs',
      { pfs: [pf({ totalVfs: -1 })] },
      't.json: pfs[0].totalVfs: expected an integer 0..65535, got -1',
    ],
    [
      'a string totalVfs',
      { pfs: [pf({ totalVfs: '4' })] },
      't.json: pfs[0].totalVfs: expected an integer 0..65535, got "4"',
    ],
    [
      'initialVfs > totalVfs',
      { pfs: [pf({ initialVfs: 5 })] },
      't.json: pfs[0].initialVfs: expected at most totalVfs (4), got 5',
    ],
    [
      'firstVfOffset 0',
      { pfs: [pf({ firstVfOffset: 0 })] },
      't.json: pfs[0].firstVfOffset: expected an integer 1..65535, got 0',
    ],
    [
      'firstVfOffset too large',
      { pfs: [pf({ firstVfOffset: 65536 })] },
      't.json: pfs[0].firstVfOffset: expected an integer 1..65535, got 65536',
    ],
    [
      'vfStride 0 with several VFs',
      { pfs: [pf({ vfStride: 0 })] },
      't.json: pfs[0].vfStride: expected an integer 1..65535 when totalVfs > 1 (totalVfs is 4), got 0',
    ],
    [
      'a queueSize that is not a power of two',
      { pfs: [pf({ queueSize: 100 })] },
      't.json: pfs[0].queueSize: expected a power of two 1..32768, got 100',
    ],
    [
      'a queueSize above 32768',
      { pfs: [pf({ queueSize: 65536 })] },
      't.json: pfs[0].queueSize: expected a power of two 1..32768, got 65536',
    ],
    [
      'a queueSize of 0',
      { pfs: [pf({ queueSize: 0 })] },
      't.json: pfs[0].queueSize: expected a power of two 1..32768, got 0',
    ],
    [
      'a bad policy',
      { pfs: [pf({ policy: 'lax' })] },
      't.json: pfs[0].policy: expected one of strict, compat, got "lax"',
    ],
    [
      'a bad notify mode',
      { pfs: [pf({ notify: 'doorbell' })] },
      't.json: pfs[0].notify: expected one of notify-region, legacy-register, got "doorbell"',
    ],
  ])('rejects %s', (_name, json, message) => {
    expect(topologyError(json).message).toBe(message);
  });

  it.each(['zz', '01:00', '01:20.0', '01:00.8', '0000:01:00.0.1', '00000:01:00.0', ' 01:00.0', ''])(
    'rejects PF bdf %j',
    (bdf) => {
      const e = topologyError({ pfs: [pf({ bdf })] });
      expect(e.message).toBe(
        `t.json: pfs[0].bdf: expected a PCI address [dddd:]bb:dd.f (hex domain, bus and device <= 1f, function 0-7), got ${JSON.stringify(bdf)}`,
      );
      expect(e.path).toBe('pfs[0].bdf');
    },
  );

  it('rejects duplicate PF BDFs, also when spelled differently', () => {
    expect(topologyError({ pfs: [pf(), pf({ bdf: '81:00.0' }), pf({ bdf: '01:00.0' })] }).message).toBe(
      't.json: pfs[2].bdf: duplicate PF address 0000:01:00.0 (also pfs[0])',
    );
  });

  it.each([
    [
      '52:54:00:12:34',
      'expected six hex octets separated by ":" such as "52:54:00:12:34:56", got "52:54:00:12:34"',
    ],
    [
      '52-54-00-12-34-56',
      'expected six hex octets separated by ":" such as "52:54:00:12:34:56", got "52-54-00-12-34-56"',
    ],
    [
      '52:54:00:12:34:5g',
      'expected six hex octets separated by ":" such as "52:54:00:12:34:56", got "52:54:00:12:34:5g"',
    ],
    [
      '525400123456',
      'expected six hex octets separated by ":" such as "52:54:00:12:34:56", got "525400123456"',
    ],
    [
      '01:00:5e:00:00:01',
      '01:00:5e:00:00:01 is a multicast address: expected a unicast MAC (first octet even)',
    ],
    [
      'ff:ff:ff:ff:ff:ff',
      'ff:ff:ff:ff:ff:ff is a multicast address: expected a unicast MAC (first octet even)',
    ],
    [
      '53:54:00:12:34:56',
      '53:54:00:12:34:56 is a multicast address: expected a unicast MAC (first octet even)',
    ],
    ['00:00:00:00:00:00', 'expected a unicast MAC, got the all-zero address'],
  ])('rejects MAC %s', (mac, problem) => {
    const e = topologyError({ pfs: [pf({ vfs: { '01:00.1': { mac } } })] });
    expect(e.message).toBe(`t.json: pfs[0].vfs["01:00.1"].mac: ${problem}`);
  });

  it('rejects a non-string MAC', () => {
    expect(topologyError({ pfs: [pf({ vfs: { '01:00.1': { mac: 5 } } })] }).message).toBe(
      't.json: pfs[0].vfs["01:00.1"].mac: expected a unicast MAC address: six hex octets separated by ":" such as "52:54:00:12:34:56", got 5',
    );
  });

  it('rejects duplicate MACs across PFs', () => {
    const json = {
      pfs: [
        pf({ vfs: { '01:00.1': { mac: '52:54:00:00:00:01' } } }),
        pf({ bdf: '02:00.0', vfs: { '02:00.1': { mac: '52:54:00:00:00:01' } } }),
      ],
    };
    expect(topologyError(json).message).toBe(
      't.json: pfs[1].vfs["02:00.1"].mac: duplicate MAC 52:54:00:00:00:01 (also pfs[0] VF 0000:01:00.1)',
    );
  });

  it('rejects a MAC on a non-net PF and a serial on a non-block PF', () => {
    expect(
      topologyError({ pfs: [pf({ type: 'block', vfs: { '01:00.1': { mac: '52:54:00:00:00:01' } } })] })
        .message,
    ).toBe('t.json: pfs[0].vfs["01:00.1"].mac: "mac" applies only to a net PF, this PF is block');
    expect(topologyError({ pfs: [pf({ vfs: { '01:00.1': { serial: 'abc' } } })] }).message).toBe(
      't.json: pfs[0].vfs["01:00.1"].serial: "serial" applies only to a block PF, this PF is net',
    );
  });

  it('rejects long or non-ASCII serials', () => {
    for (const serial of ['x'.repeat(21), 'disk\u00e9', 'tab\there']) {
      expect(topologyError({ pfs: [pf({ type: 'block', vfs: { '01:00.1': { serial } } })] }).message).toBe(
        `t.json: pfs[0].vfs["01:00.1"].serial: expected printable ASCII of at most 20 characters, got ${JSON.stringify(serial)}`,
      );
    }
    const ok = parseTopology(
      { pfs: [pf({ type: 'block', vfs: { '01:00.1': { serial: 'x'.repeat(20) } } })] },
      SRC,
    );
    expect(ok.pfs[0]?.vfs['0000:01:00.1']?.serial).toHaveLength(20);
  });

  it('rejects unknown VF override keys and non-object overrides', () => {
    expect(topologyError({ pfs: [pf({ vfs: { '01:00.1': { colour: 'red' } } })] }).message).toBe(
      't.json: pfs[0].vfs["01:00.1"]: unknown property "colour"',
    );
    expect(topologyError({ pfs: [pf({ vfs: { '01:00.1': 'x' } })] }).message).toBe(
      't.json: pfs[0].vfs["01:00.1"]: expected an object with optional "mac", "serial", "switch", "image" and "readOnly", got "x"',
    );
  });

  it('rejects VF keys that are not addresses, duplicates, and addresses that are not VFs of the PF', () => {
    expect(topologyError({ pfs: [pf({ vfs: { vf1: {} } })] }).message).toBe(
      't.json: pfs[0].vfs["vf1"]: expected the key to be a VF address: a PCI address [dddd:]bb:dd.f (hex domain, bus and device <= 1f, function 0-7), got "vf1"',
    );
    expect(topologyError({ pfs: [pf({ vfs: { '01:00.1': {}, '0000:01:00.1': {} } })] }).message).toBe(
      't.json: pfs[0].vfs["0000:01:00.1"]: duplicate VF address 0000:01:00.1',
    );
    const notVf = (vfs: Record<string, unknown>, extra: Record<string, unknown> = {}): string =>
      topologyError({ pfs: [pf({ vfs, ...extra })] }).message;
    // the PF itself, past totalVfs, another domain, off-stride
    expect(notVf({ '01:00.0': {} })).toBe(
      't.json: pfs[0].vfs["01:00.0"]: 0000:01:00.0 is not a VF of PF 0000:01:00.0 (totalVfs 4, firstVfOffset 1, vfStride 1)',
    );
    expect(notVf({ '01:00.5': {} })).toMatch(/0000:01:00\.5 is not a VF of PF 0000:01:00\.0/);
    expect(notVf({ '0001:01:00.1': {} })).toMatch(/0001:01:00\.1 is not a VF of PF/);
    expect(notVf({ '01:00.2': {} }, { vfStride: 2 })).toMatch(/0000:01:00\.2 is not a VF of PF/);
    expect(notVf({ '01:00.2': {} }, { totalVfs: 0 })).toMatch(/totalVfs 0/);
  });

  it('reports the JSON path on TopologyError', () => {
    const e = topologyError({ pfs: [pf(), pf({ bdf: '02:00.0', queueSize: 3 })] });
    expect(e.path).toBe('pfs[1].queueSize');
    expect(e.source).toBe(SRC);
  });
});

describe('loadTopologyFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-topology-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  function fileError(path: string): TopologyError {
    try {
      loadTopologyFile(path);
    } catch (err) {
      expect(err).toBeInstanceOf(TopologyError);
      expect((err as Error).message).not.toContain('\n');
      return err as TopologyError;
    }
    throw new Error('expected a TopologyError');
  }

  it('loads and resolves a valid file (with a BOM)', () => {
    const path = write('ok.json', '\ufeff' + JSON.stringify({ pfs: [pf({ initialVfs: 1 })] }, null, 2));
    const t = loadTopologyFile(path);
    expect(t.pfs[0]).toMatchObject({ bdf: '0000:01:00.0', initialVfs: 1, queueSize: 256 });
  });

  it('names a missing file', () => {
    const path = join(dir, 'missing.json');
    expect(fileError(path).message).toBe(`topology file ${path}: cannot read: no such file`);
  });

  it('names a directory', () => {
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    expect(fileError(sub).message).toBe(`topology file ${sub}: cannot read: is a directory`);
  });

  it.each<[string, string, string]>([
    ['trailing comma', '{\n  "pfs": [\n  ],\n}', 'invalid JSON at line 4 column 1: '],
    ['bare word', 'pfs: []', 'invalid JSON at line 1 column 1: '],
    ['garbage after a value', '{"pfs": []}\n\n  x', 'invalid JSON at line 3 column 3: '],
    ['bad token mid-file', '{\n "pfs": [ nope ]\n}', 'invalid JSON at line 2 column 12: '],
  ])('gives the position of invalid JSON (%s)', (name, text, prefix) => {
    const path = write(`${name.replace(/ /g, '-')}.json`, text);
    expect(fileError(path).message.startsWith(`topology file ${path}: ${prefix}`)).toBe(true);
  });

  it('reports an empty or truncated file', () => {
    expect(fileError(write('empty.json', '')).message).toMatch(
      /: invalid JSON: Unexpected end of JSON input$/,
    );
    expect(fileError(write('cut.json', '{"pfs": [')).message).toMatch(
      /: invalid JSON: Unexpected end of JSON input$/,
    );
  });

  it('names the file and the path for schema errors', () => {
    const path = write('bad.json', JSON.stringify({ pfs: [pf({ totalVfs: 70000 })] }));
    const e = fileError(path);
    expect(e.message).toBe(`topology file ${path}: pfs[0].totalVfs: expected an integer 0..65535, got 70000`);
    expect(e.path).toBe('pfs[0].totalVfs');
  });
});

describe('DEFAULT_TOPOLOGY', () => {
  // InitialVFs = TotalVFs (SR-IOV: no VF Migration); VFs start disabled because NumVFs and VF Enable reset to 0.
  it('is a net PF at 0000:01:00.0 and a block PF at 0000:81:00.0 with TotalVFs = InitialVFs = 1024', () => {
    expect(
      DEFAULT_TOPOLOGY.pfs.map((p) => [p.bdf, p.type, p.totalVfs, p.initialVfs, p.firstVfOffset, p.vfStride]),
    ).toEqual([
      ['0000:01:00.0', 'net', 1024, 1024, 1, 1],
      ['0000:81:00.0', 'block', 1024, 1024, 1, 1],
    ]);
  });

  it('matches the shipped JSON file resolved by parseTopology', () => {
    const json: unknown = JSON.parse(
      readFileSync(new URL('../../src/machine/topology-default.json', import.meta.url), 'utf8'),
    );
    expect(parseTopology(json, 'x')).toEqual(DEFAULT_TOPOLOGY);
  });

  it('is frozen', () => {
    expect(Object.isFrozen(DEFAULT_TOPOLOGY)).toBe(true);
    expect(Object.isFrozen(DEFAULT_TOPOLOGY.pfs[0])).toBe(true);
    expect(() => {
      (DEFAULT_TOPOLOGY.pfs[0] as { initialVfs: number }).initialVfs = 3;
    }).toThrow(TypeError);
    expect(structuredClone(DEFAULT_TOPOLOGY)).toEqual(DEFAULT_TOPOLOGY);
  });
});

describe('README', () => {
  it('has a topology example that parses', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Topology file'));
    const example = /```json\n([\s\S]*?)```/.exec(section)?.[1];
    expect(example).toBeDefined();
    const t = parseTopology(JSON.parse(example ?? ''), 'README.md');
    expect(t.pfs.map((p) => p.bdf)).toEqual(['0000:01:00.0', '0000:81:00.0']);
    expect(t.pfs[1]?.vfs['0000:81:01.0']?.serial).toBe('disk-0001');
  });
});
