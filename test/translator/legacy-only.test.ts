/**
 * The guest view's `legacyOnly` option: the VF's virtio vendor capabilities are hidden from the
 * guest (as QEMU's disable-modern=on leaves them out), so Linux's modern probe finds no common
 * configuration and the legacy driver binds. Checked with lspci -F, the spec's capability walk,
 * DriverSim's legacy and modern probes, the topology file and the state snapshot.
 */
import { describe, expect, it } from 'vitest';
import type { Space } from '../../src/access/index.js';
import { legacyProbe, modernProbe, runSim, type SimOp, type SimPort } from '../../src/driver-sim/probes.js';
import { Machine } from '../../src/machine/machine.js';
import { parseTopology, TopologyError } from '../../src/machine/topology.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import { formatLspciDump } from '../../src/views/dump.js';
import {
  IDS,
  NET_PF,
  TYPES,
  capabilityBlock,
  capsOf,
  enableVfs,
  lspci,
  rd,
  remember,
  viewOf,
  virtioCaps,
  wr,
  type TypeName,
} from '../support/functions.js';

const VF = '0000:01:00.1';
const CAP_ID_EXP = 0x10;
const CAP_ID_MSIX = 0x11;

function machineWith(type: TypeName, legacyOnly: boolean | undefined): { machine: Machine; vf: MmrVf } {
  const vfs = legacyOnly === undefined ? {} : { vfs: { [VF]: { legacyOnly } } };
  const machine = remember(
    new Machine(parseTopology({ pfs: [{ bdf: NET_PF, type, totalVfs: 4, ...vfs }] }, 'test')),
  );
  enableVfs(machine.findPf(NET_PF), 2);
  return { machine, vf: machine.findVf(VF) };
}

/** DriverSim through the guest view: config → guest-config, legacy → I/O BAR0, bar → the VF BAR. */
function guestPort(vf: MmrVf): SimPort {
  const where = (op: SimOp): [Space, number] => {
    if (op.space === 'config') return ['guest-config', op.offset];
    if (op.space === 'legacy') return ['io', op.offset];
    return [`bar${op.bar ?? 0}` as Space, op.offset];
  };
  return {
    read: (op) => rd(vf, ...where(op), op.width),
    write: (op) => wr(vf, ...where(op), op.width, op.value ?? 0),
  };
}

function guestDump(vf: MmrVf, type: TypeName): string {
  wr(vf, 'guest-config', 0x10, 4, 0xc000);
  wr(vf, 'guest-config', 0x18, 4, 0xfd00_0000);
  wr(vf, 'guest-config', 0x04, 2, 0x0007);
  return formatLspciDump(vf.bdf, `legacy-only guest view of ${type}`, viewOf(vf).snapshot());
}

describe('legacyOnly in the topology: lspci -F shows no virtio capability', () => {
  const dumps = TYPES.map((type) => guestDump(machineWith(type, true).vf, type));
  const run = lspci(dumps.join(''));
  const blocks = run.stdout.split('\n\n').filter((b) => b.trim() !== '');

  it('decodes cleanly, one device per type', () => {
    expect(run.complaints).toEqual([]);
    expect(blocks).toHaveLength(TYPES.length);
  });

  TYPES.forEach((type, i) => {
    it(`${type}: PCI Express and MSI-X only, still the transitional ${IDS[type].transitional.toString(16)}`, () => {
      const out = blocks[i]!;
      expect(out.split('\n')[0]).toContain(`[1af4:${IDS[type].transitional.toString(16)}]`);
      expect(out).toMatch(/\tRegion 0: I\/O ports at c000/);
      expect(out).not.toMatch(/VirtIO:/);
      expect(out).not.toMatch(/Vendor Specific/);
      expect(out).toMatch(/Capabilities: \[[0-9a-f]+\] Express \(v2\) Endpoint/);
      expect(capabilityBlock(out, /MSI-X: Enable- Count=\d+/)).not.toBe('');
      const headers = out.split('\n').filter((l) => /^\tCapabilities: \[/.test(l));
      expect(headers).toHaveLength(2);
    });
  });
});

describe('the hidden capabilities in the guest config space', () => {
  it('the capability walk reaches PCIe and MSI-X, and nothing else; the VF itself keeps them', () => {
    const { vf } = machineWith('net', true);
    expect(capsOf(vf, 'guest-config').map((c) => c.id)).toEqual([CAP_ID_EXP, CAP_ID_MSIX]);
    expect(virtioCaps(vf, 'guest-config')).toEqual([]);
    expect(virtioCaps(vf, 'config').map((c) => c.cfgType)).toEqual([1, 2, 3, 4, 5]);
  });

  it('every byte of a hidden capability reads 0 at every width, and writes to it are ignored', () => {
    const { vf } = machineWith('net', true);
    const hidden = virtioCaps(vf, 'config');
    expect(hidden.length).toBeGreaterThan(0);
    for (const cap of hidden) {
      for (let at = cap.at; at < cap.at + cap.capLen; at += 4) {
        expect(rd(vf, 'guest-config', at, 4)).toBe(0);
        expect(rd(vf, 'guest-config', at, 2)).toBe(0);
        expect(rd(vf, 'guest-config', at + 3, 1)).toBe(0);
      }
    }
    // VIRTIO_PCI_CAP_PCI_CFG's window (cfg_type 5): bar, offset and length are writable on the VF.
    const pciCfg = hidden.find((c) => c.cfgType === 5)!;
    const before = Array.from({ length: pciCfg.capLen / 4 }, (_, i) =>
      rd(vf, 'config', pciCfg.at + 4 * i, 4),
    );
    wr(vf, 'guest-config', pciCfg.at + 8, 4, 0x14);
    wr(vf, 'guest-config', pciCfg.at + 4, 1, 2);
    const after = Array.from({ length: pciCfg.capLen / 4 }, (_, i) => rd(vf, 'config', pciCfg.at + 4 * i, 4));
    expect(after).toEqual(before);
  });

  it('a dword read of the MSI-X header keeps Message Control and ends the list', () => {
    const { vf } = machineWith('net', true);
    const msix = capsOf(vf, 'config').find((c) => c.id === CAP_ID_MSIX)!;
    const guest = rd(vf, 'guest-config', msix.offset, 4);
    const own = rd(vf, 'config', msix.offset, 4);
    expect((own >>> 8) & 0xff).not.toBe(0);
    expect(guest & 0xff).toBe(CAP_ID_MSIX);
    expect((guest >>> 8) & 0xff).toBe(0);
    expect(guest >>> 16).toBe(own >>> 16);
    wr(vf, 'guest-config', msix.offset + 2, 2, 0x8000);
    expect(vf.msixEnabled()).toBe(true);
  });

  it('the option can be turned off and on again on a live view', () => {
    const { vf } = machineWith('block', undefined);
    const view = viewOf(vf);
    expect(view.legacyOnly).toBe(false);
    expect(virtioCaps(vf, 'guest-config')).toHaveLength(5);
    view.legacyOnly = true;
    expect(virtioCaps(vf, 'guest-config')).toEqual([]);
    view.legacyOnly = false;
    expect(virtioCaps(vf, 'guest-config').map((c) => c.cfgType)).toEqual([1, 2, 3, 4, 5]);
  });

  it('only the VF named in the topology is legacy-only', () => {
    const { machine } = machineWith('net', true);
    expect(viewOf(machine.findVf(VF)).legacyOnly).toBe(true);
    expect(viewOf(machine.findVf('0000:01:00.2')).legacyOnly).toBe(false);
  });
});

describe('Linux probes through a legacy-only guest view', () => {
  for (const type of TYPES) {
    for (const msix of [false, true]) {
      it(`${type}, MSI-X ${msix ? 'on' : 'off'}: the legacy probe reaches DRIVER_OK`, () => {
        const { vf } = machineWith(type, true);
        wr(vf, 'guest-config', 0x04, 2, 0x0001);
        const queues = IDS[type].queues;
        runSim(
          legacyProbe({ msix, notify: [], configBytes: vf.device.model.config.size, teardown: false }),
          guestPort(vf),
        );
        expect(vf.device.status).toBe(1 | 2 | 4);
        expect(vf.msixEnabled()).toBe(msix);
        expect(vf.device.queueStates().filter((q) => q.enabled)).toHaveLength(queues);
      });
    }
  }

  it('the modern probe finds no common configuration (the modern driver leaves the device alone)', () => {
    const { vf } = machineWith('net', true);
    wr(vf, 'guest-config', 0x04, 2, 0x0006);
    expect(() => runSim(modernProbe({ msix: false }), guestPort(vf))).toThrow(/missing virtio capabilities/);
    expect(vf.device.status).toBe(0);
  });
});

describe('legacyOnly in the topology file and the state', () => {
  it('a value other than true or false is refused, naming the path', () => {
    expect(() =>
      parseTopology(
        { pfs: [{ bdf: NET_PF, type: 'net', totalVfs: 4, vfs: { [VF]: { legacyOnly: 1 } } }] },
        'f',
      ),
    ).toThrow(TopologyError);
    expect(() =>
      parseTopology(
        { pfs: [{ bdf: NET_PF, type: 'net', totalVfs: 4, vfs: { [VF]: { legacyOnly: 'yes' } } }] },
        'f',
      ),
    ).toThrow(/pfs\[0\]\.vfs\["0000:01:00\.1"\]\.legacyOnly: expected true or false/);
  });

  it('a view changed at run time keeps its option across a snapshot and restore', () => {
    const { machine, vf } = machineWith('net', undefined);
    viewOf(vf).legacyOnly = true;
    const state = machine.snapshot();
    expect(state.functions.find((f) => f.bdf === VF)?.legacyOnly).toBe(true);
    const restored = Machine.restore(JSON.parse(JSON.stringify(state)));
    expect(restored.translator.view(restored.findVf(VF)).legacyOnly).toBe(true);
    expect(restored.translator.view(restored.findVf('0000:01:00.2')).legacyOnly).toBe(false);
  });

  it('a view as the topology says is pristine: the snapshot carries no legacyOnly', () => {
    const { machine, vf } = machineWith('net', true);
    expect(viewOf(vf).legacyOnly).toBe(true);
    expect(machine.snapshot().functions.find((f) => f.bdf === VF)).toBeUndefined();
  });
});
