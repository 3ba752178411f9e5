/**
 * Device-specific configuration of the seven types (virtio 1.2 §5.x layouts): values at
 * the spec's offsets through the modern window (BAR + 0x200) and the legacy block (BAR2 + 0x1000
 * + 20), driver-writable fields, read-only refusals, per-function identities (MAC, serial) and
 * their topology overrides.
 */
import { describe, expect, it } from 'vitest';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';
import {
  TYPES,
  enableMemory,
  enableVfs,
  machineOf,
  record,
  rd,
  rd64,
  refusal,
  setCfg,
  singlePf,
  withVfs,
  wr,
  type TypeName,
} from '../support/functions.js';

const DEVICE_CFG = 0x200;
const LEGACY_CFG = 0x1000 + 20; // MSI-X disabled

/** A field at a spec offset: [offset, width, expected little-endian value]. */
type Field = [name: string, offset: number, width: 1 | 2 | 4, value: number];

/**
 * Expected contents. Offsets are the virtio spec's / <linux/virtio_*.h> struct layouts; values are
 * the device's defaults (net status = VIRTIO_NET_S_LINK_UP; scsi sense/cdb sizes are
 * VIRTIO_SCSI_SENSE_DEFAULT_SIZE / VIRTIO_SCSI_CDB_DEFAULT_SIZE from <linux/virtio_scsi.h>).
 */
const LAYOUT: Record<TypeName, Field[]> = {
  net: [
    ['status', 6, 2, 1],
    ['max_virtqueue_pairs', 8, 2, 1],
    ['mtu', 10, 2, 1500],
  ],
  block: [
    ['capacity lo', 0, 4, 2097152],
    ['capacity hi', 4, 4, 0],
    ['size_max', 8, 4, 65536],
    ['seg_max', 12, 4, 254],
    ['geometry.cylinders', 16, 2, 2080],
    ['geometry.heads', 18, 1, 16],
    ['geometry.sectors', 19, 1, 63],
    ['blk_size', 20, 4, 512],
    ['physical_block_exp', 24, 1, 0],
    ['alignment_offset', 25, 1, 0],
    ['min_io_size', 26, 2, 0],
    ['opt_io_size', 28, 4, 0],
    ['wce', 32, 1, 1],
    ['num_queues', 34, 2, 1],
  ],
  balloon: [
    ['num_pages', 0, 4, 0],
    ['actual', 4, 4, 0],
  ],
  console: [
    ['cols', 0, 2, 80],
    ['rows', 2, 2, 25],
    ['max_nr_ports', 4, 4, 1],
    ['emerg_wr', 8, 4, 0],
  ],
  scsi: [
    ['num_queues', 0, 4, 1],
    ['seg_max', 4, 4, 254],
    ['max_sectors', 8, 4, 0xffff],
    ['cmd_per_lun', 12, 4, 128],
    ['event_info_size', 16, 4, 16],
    ['sense_size', 20, 4, 96],
    ['cdb_size', 24, 4, 32],
    ['max_channel', 28, 2, 0],
    ['max_target', 30, 2, 255],
    ['max_lun', 32, 4, 16383],
  ],
  rng: [],
  '9p': [
    ['tag_len', 0, 2, 4],
    ['tag[0..3] = "vmmr"', 2, 2, 0x6d76],
    ['tag[2..3]', 4, 2, 0x726d],
    ['tag[4..]', 6, 2, 0],
  ],
};

/** Driver-writable fields (virtio 1.2: net mac (legacy), blk writeback, balloon actual, console emerg_wr, scsi sense/cdb size). */
const WRITABLE: Partial<Record<TypeName, Array<[string, number, 1 | 2 | 4, number]>>> = {
  net: [['mac[0..3]', 0, 4, 0x5600_5452]],
  block: [['wce', 32, 1, 0]],
  balloon: [['actual', 4, 4, 1234]],
  console: [['emerg_wr', 8, 4, 0x41]],
  scsi: [
    ['sense_size', 20, 4, 252],
    ['cdb_size', 24, 4, 16],
  ],
};

function views(
  type: TypeName,
): Array<{ what: string; fn: VirtioPciFunction; bar: 'bar0' | 'bar2'; base: number }> {
  const { pf, vf } = withVfs(type);
  enableMemory(pf);
  return [
    { what: 'PF device cfg', fn: pf, bar: 'bar0', base: DEVICE_CFG },
    { what: 'VF device cfg', fn: vf, bar: 'bar2', base: DEVICE_CFG },
    { what: 'VF legacy block', fn: vf, bar: 'bar2', base: LEGACY_CFG },
  ];
}

describe('device configuration layouts', () => {
  for (const type of TYPES) {
    it(`${type}: every field reads its value at the spec offset, at its width and byte by byte`, () => {
      for (const v of views(type)) {
        for (const [name, offset, width, value] of LAYOUT[type]) {
          expect(rd(v.fn, v.bar, v.base + offset, width), `${v.what} ${name}`).toBe(value);
          let bytes = 0;
          for (let i = width - 1; i >= 0; i--) bytes = bytes * 256 + rd(v.fn, v.bar, v.base + offset + i, 1);
          expect(bytes, `${v.what} ${name} bytewise`).toBe(value);
        }
      }
    });
  }

  it('block: capacity as one 8-byte access of the modern window', () => {
    const { pf } = singlePf('block');
    enableMemory(pf);
    expect(rd64(pf, 'bar0', DEVICE_CFG)).toBe(2097152n);
  });

  it('rng has no device configuration: the legacy block ends at its header', () => {
    const { vf } = withVfs('rng');
    refusal(() => rd(vf, 'bar2', LEGACY_CFG, 1), 'VMMR_ERR_UNMAPPED');
    refusal(() => rd(vf, 'bar2', DEVICE_CFG, 1), 'VMMR_ERR_UNMAPPED');
  });

  it('accesses past the end of the device config are refused (strict) or read all-ones (compat)', () => {
    const strict = withVfs('console').vf;
    refusal(() => rd(strict, 'bar2', DEVICE_CFG + 12, 4), 'VMMR_ERR_UNMAPPED');
    refusal(() => rd(strict, 'bar2', DEVICE_CFG + 8, 8), 'VMMR_ERR_UNMAPPED');
    const compat = withVfs('console', 1, { policy: 'compat' }).vf;
    expect(rd(compat, 'bar2', LEGACY_CFG + 12, 4)).toBe(0xffffffff);
    wr(compat, 'bar2', LEGACY_CFG + 12, 4, 0);
  });
});

describe('driver-writable fields and read-only refusals', () => {
  for (const [type, fields] of Object.entries(WRITABLE) as Array<
    [TypeName, Array<[string, number, 1 | 2 | 4, number]>]
  >) {
    it(`${type}: ${fields.map((f) => f[0]).join(', ')} take writes and go back to their default on reset`, () => {
      // the net MAC is writable by a legacy driver only: not through the PF (test/virtio/net-mac.test.ts)
      for (const v of views(type).filter((view) => type !== 'net' || view.fn.kind === 'vf')) {
        for (const [name, offset, width, value] of fields) {
          const before = rd(v.fn, v.bar, v.base + offset, width);
          wr(v.fn, v.bar, v.base + offset, width, value);
          expect(rd(v.fn, v.bar, v.base + offset, width), `${v.what} ${name}`).toBe(value);
          v.fn.device.writeStatus(0, 'modern');
          expect(rd(v.fn, v.bar, v.base + offset, width), `${v.what} ${name} after reset`).toBe(before);
        }
      }
    });
  }

  it('strict: writes touching a read-only field are refused with the field name, nothing changes', () => {
    const { vf } = withVfs('net');
    const macLo = rd(vf, 'bar2', LEGACY_CFG, 4);
    refusal(() => wr(vf, 'bar2', LEGACY_CFG + 6, 2, 0), 'VMMR_ERR_READ_ONLY', 'STATUS');
    // a write spanning mac[4..5] (writable by this legacy driver) and status (read-only) is refused as a whole
    const macHi = rd(vf, 'bar2', LEGACY_CFG + 4, 2);
    refusal(() => wr(vf, 'bar2', LEGACY_CFG + 4, 4, 0xffff_ffff), 'VMMR_ERR_READ_ONLY', 'STATUS');
    expect(rd(vf, 'bar2', LEGACY_CFG + 4, 2)).toBe(macHi);
    expect(rd(vf, 'bar2', LEGACY_CFG + 6, 2)).toBe(1);
    expect(rd(vf, 'bar2', LEGACY_CFG, 4)).toBe(macLo);
    const blk = withVfs('block').vf;
    refusal(() => wr(blk, 'bar2', LEGACY_CFG, 4, 0), 'VMMR_ERR_READ_ONLY', 'CAPACITY');
    refusal(() => wr(blk, 'bar2', LEGACY_CFG + 34, 2, 4), 'VMMR_ERR_READ_ONLY', 'NUM_QUEUES');
  });

  it('compat: read-only bytes ignore writes, writable bytes of the same access take them', () => {
    const { vf } = withVfs('net', 1, { policy: 'compat' });
    wr(vf, 'bar2', LEGACY_CFG + 4, 4, 0xffff_aabb);
    expect(rd(vf, 'bar2', LEGACY_CFG + 4, 2)).toBe(0xaabb);
    expect(rd(vf, 'bar2', LEGACY_CFG + 6, 2)).toBe(1);
  });

  it('a device-side change raises a config change: generation, ISR bit 1, event', () => {
    const { machine, pf } = singlePf('net');
    enableMemory(pf);
    const events = record(machine);
    pf.device.setConfigField(6, [0, 0]); // link down
    expect(rd(pf, 'bar0', DEVICE_CFG + 6, 2)).toBe(0);
    expect(rd(pf, 'bar0', 0x15, 1)).toBe(1);
    expect(events[0]).toEqual({ type: 'config-change', bdf: pf.bdf, generation: 1 });
    expect(rd(pf, 'bar0', 0x100, 1)).toBe(2);
  });
});

describe('identities: MAC and serial', () => {
  const macOf = (fn: VirtioPciFunction, bar: 'bar0' | 'bar2'): string =>
    Array.from({ length: 6 }, (_, i) =>
      rd(fn, bar, DEVICE_CFG + i, 1)
        .toString(16)
        .padStart(2, '0'),
    ).join(':');

  it('net MACs are locally administered unicast, derived from the BDF, unique and stable', () => {
    const machine = machineOf([
      { bdf: '0000:01:00.0', type: 'net', totalVfs: 300 },
      { bdf: '0001:01:00.0', type: 'net', totalVfs: 8 },
    ]);
    const macs = new Map<string, string>();
    for (const pf of machine.pfs) {
      enableMemory(pf);
      enableVfs(pf, pf.definition.totalVfs);
      macs.set(pf.bdf, macOf(pf, 'bar0'));
      for (const vf of pf.vfs) macs.set(vf.bdf, macOf(vf, 'bar2'));
    }
    expect(macs.size).toBe(1 + 300 + 1 + 8);
    expect(new Set(macs.values()).size).toBe(macs.size);
    for (const mac of macs.values()) {
      const first = parseInt(mac.slice(0, 2), 16);
      expect(first & 1).toBe(0); // unicast
      expect(first & 2).toBe(2); // locally administered
    }
    // 02:00:<domain>:<bus>:<devfn> (documented derivation)
    expect(macs.get('0000:01:00.1')).toBe('02:00:00:00:01:01');
    expect(macs.get('0000:02:05.4')).toBe('02:00:00:00:02:2c');
    expect(macs.get('0001:01:00.2')).toBe('02:00:00:01:01:02');
    // stable: a fresh machine derives the same
    const again = withVfs('net', 2).vf;
    expect(macOf(again, 'bar2')).toBe('02:00:00:00:01:01');
  });

  it('topology overrides: a VF MAC and a block VF serial; the others keep derived ones', () => {
    const machine = machineOf([
      {
        bdf: '0000:01:00.0',
        type: 'net',
        totalVfs: 4,
        vfs: { '0000:01:00.3': { mac: '52:54:00:AA:BB:CC' } },
      },
      { bdf: '0000:81:00.0', type: 'block', totalVfs: 4, vfs: { '81:00.2': { serial: 'disk-two' } } },
    ]);
    const net = machine.findPf('01:00.0');
    const blk = machine.findPf('81:00.0');
    enableVfs(net, 4);
    enableVfs(blk, 4);
    expect(macOf(machine.findVf('01:00.3'), 'bar2')).toBe('52:54:00:aa:bb:cc');
    expect(macOf(machine.findVf('01:00.2'), 'bar2')).toBe('02:00:00:00:01:02');
    expect(machine.findVf('81:00.2').serial()).toBe('disk-two');
    const derived = [machine.findVf('81:00.1').serial(), machine.findVf('81:00.3').serial(), blk.serial()];
    expect(new Set(derived).size).toBe(3);
    for (const s of derived) expect(s.length).toBeLessThanOrEqual(20); // VIRTIO_BLK_ID_BYTES
    // the override survives a device reset and a VF disable/enable cycle
    const vf = machine.findVf('01:00.3');
    wr(vf, 'bar2', LEGACY_CFG, 4, 0);
    vf.device.writeStatus(0, 'legacy');
    expect(macOf(vf, 'bar2')).toBe('52:54:00:aa:bb:cc');
    setCfg(net, net.sriov + 8, 2, 0);
    enableVfs(net, 4);
    expect(macOf(machine.findVf('01:00.3'), 'bar2')).toBe('52:54:00:aa:bb:cc');
  });
});
