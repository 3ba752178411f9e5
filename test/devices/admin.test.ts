/**
 * Group administration commands of a PF (virtio 1.3 §2.12.1, §2.12.1.2, §2.13): the bytes are
 * laid out here from the spec text (offsets 0 opcode, 2 group_type, 16 group_member_id, 24
 * data; reply 0 status, 2 status_qualifier, 8 result) and the numbers are the spec's tables
 * (opcodes 0..6, group type 1, status EINVAL 22, qualifiers 1..7), not the engine's encoders.
 */
import { describe, expect, it } from 'vitest';
import { AdminCommandEngine, type AdminOutcome } from '../../src/devices/admin/engine.js';
import { AdminQueue } from '../../src/devices/admin/queue.js';
import { StandaloneContext } from '../../src/devices/standalone.js';
import { SparseRam } from '../../src/dma/sparse-ram.js';
import { AdminDriver } from '../../src/driver-sim/admin-driver.js';
import { DmaArena } from '../../src/driver-sim/memory.js';
import type { DriverTransport } from '../../src/driver-sim/transport.js';
import { barLayout } from '../../src/spec/index.js';
import { ringFeatures } from '../../src/virtqueue/index.js';
import { enableMemory, rd, record, setCfg, withVfs, wr } from '../support/functions.js';

const EINVAL = 22;
const Q = { INVALID_OPCODE: 2, INVALID_FIELD: 3, INVALID_GROUP: 4, INVALID_MEMBER: 5 };

function command(opcode: number, member: number, data: number[] = [], groupType = 1): Uint8Array {
  const out = new Uint8Array(24 + data.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, opcode, true);
  v.setUint16(2, groupType, true);
  v.setBigUint64(16, BigInt(member), true);
  out.set(data, 24);
  return out;
}

const write = (offset: number, bytes: number[]): number[] => [offset, 0, 0, 0, 0, 0, 0, 0, ...bytes];

function pfWithAdmin(numVfs = 2) {
  const fixture = withVfs('net', numVfs, { adminQueue: true });
  const engine = fixture.pf.admin!;
  return { ...fixture, engine };
}

/** LIST_USE of LIST_QUERY, LIST_USE and the five legacy commands (bits 0..6). */
function useLegacy(engine: AdminCommandEngine): void {
  expect(engine.execute(command(1, 0, [0x7f, 0, 0, 0, 0, 0, 0, 0]), 8).status).toBe(0);
}

const failed = (o: AdminOutcome) => [o.status, o.qualifier];

describe('LIST_QUERY and LIST_USE (§2.12.1)', () => {
  it('LIST_QUERY reports opcodes 0..6 as one le64; the result is truncated to the writable length', () => {
    const { engine } = pfWithAdmin();
    const full = engine.execute(command(0, 0), 8 + 16);
    expect(full.status).toBe(0);
    expect(Array.from(full.result)).toEqual([0x7f, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(engine.execute(command(0, 0), 8 + 3).result)).toEqual([0x7f, 0, 0]);
    expect(engine.execute(command(0, 0), 8).result).toHaveLength(0);
  });

  it('until LIST_USE only LIST_QUERY and LIST_USE are used: a legacy command is INVALID_OPCODE', () => {
    const { engine, vf } = pfWithAdmin();
    const status = vf.device.status;
    expect(failed(engine.execute(command(2, 1, write(18, [1])), 8))).toEqual([EINVAL, Q.INVALID_OPCODE]);
    expect(vf.device.status).toBe(status);
    useLegacy(engine);
    expect(engine.execute(command(2, 1, write(18, [1])), 8).status).toBe(0);
    expect(vf.device.status).toBe(1);
  });

  it('LIST_USE naming an unsupported opcode, or part of the legacy set, is INVALID_FIELD and changes nothing', () => {
    const { engine } = pfWithAdmin();
    expect(failed(engine.execute(command(1, 0, [0xff]), 8))).toEqual([EINVAL, Q.INVALID_FIELD]);
    expect(failed(engine.execute(command(1, 0, [0x0f]), 8))).toEqual([EINVAL, Q.INVALID_FIELD]);
    expect(failed(engine.execute(command(1, 0, [0x43]), 8))).toEqual([EINVAL, Q.INVALID_FIELD]);
    expect(engine.uses(2)).toBe(false);
    // all four legacy configuration commands without NOTIFY_INFO is a valid list
    expect(engine.execute(command(1, 0, [0x3f]), 8).status).toBe(0);
    expect(failed(engine.execute(command(6, 1), 8 + 64))).toEqual([EINVAL, Q.INVALID_OPCODE]);
  });

  it('a PF device reset drops the list back to LIST_QUERY and LIST_USE', () => {
    const { engine, pf } = pfWithAdmin();
    useLegacy(engine);
    enableMemory(pf);
    wr(pf, 'bar0', barLayout.registers.COMMON_CFG.offset + 20, 1, 1);
    wr(pf, 'bar0', barLayout.registers.COMMON_CFG.offset + 20, 1, 0);
    expect(failed(engine.execute(command(3, 1, [0]), 8 + 4))).toEqual([EINVAL, Q.INVALID_OPCODE]);
  });
});

describe('validation order (§2.12.1 device requirements)', () => {
  it('group type first, then opcode, then member', () => {
    const { engine } = pfWithAdmin();
    useLegacy(engine);
    expect(failed(engine.execute(command(0x40, 9, [], 2), 8))).toEqual([EINVAL, Q.INVALID_GROUP]);
    expect(failed(engine.execute(command(0x40, 9), 8))).toEqual([EINVAL, Q.INVALID_OPCODE]);
    expect(failed(engine.execute(command(3, 9, [0]), 12))).toEqual([EINVAL, Q.INVALID_MEMBER]);
  });

  it('member ids are the VF numbers 1..NumVFs; VF Enable clear means no group at all', () => {
    const { engine, pf } = pfWithAdmin(3);
    useLegacy(engine);
    for (const member of [0, 4, 2 ** 40]) {
      expect(failed(engine.execute(command(3, member, [12]), 10)), `member ${member}`).toEqual([
        EINVAL,
        Q.INVALID_MEMBER,
      ]);
    }
    expect(engine.execute(command(3, 3, [12]), 10).status).toBe(0);
    setCfg(pf, pf.sriov + 0x08, 2, 0);
    expect(failed(engine.execute(command(3, 1, [12]), 10))).toEqual([EINVAL, Q.INVALID_GROUP]);
  });

  it('a short device-readable part reads as zeros: 2 bytes of opcode 0 are LIST_QUERY of group 0', () => {
    const { engine } = pfWithAdmin();
    expect(failed(engine.execute(Uint8Array.of(0, 0), 16))).toEqual([EINVAL, Q.INVALID_GROUP]);
  });
});

describe('legacy configuration commands (§2.12.1.2)', () => {
  it('COMMON_CFG_READ is a read of the legacy header: QUEUE_NUM, HOST_FEATURES, ISR read-to-clear', () => {
    const { engine, vf } = pfWithAdmin();
    useLegacy(engine);
    expect(Array.from(engine.execute(command(3, 1, [12]), 8 + 2).result)).toEqual([0x00, 0x01]);
    const features = vf.device.deviceFeatures(0);
    const bytes = engine.execute(command(3, 1, [0]), 8 + 4).result;
    expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true)).toBe(features);
    vf.device.raiseConfigChange();
    expect(Array.from(engine.execute(command(3, 1, [19]), 8 + 1).result)).toEqual([2]);
    expect(Array.from(engine.execute(command(3, 1, [19]), 8 + 1).result)).toEqual([0]);
  });

  it('DEV_CFG_READ reads device config from its own offset 0, any width (the 6-byte MAC)', () => {
    const { engine, vf } = pfWithAdmin();
    useLegacy(engine);
    const mac = Array.from({ length: 6 }, (_, i) => vf.device.configByte(i));
    expect(Array.from(engine.execute(command(5, 1, [0]), 8 + 6).result)).toEqual(mac);
    expect(Array.from(engine.execute(command(5, 2, [0]), 8 + 6).result)).toEqual(
      Array.from({ length: 6 }, (_, i) => vf.pf.vfs[1]!.device.configByte(i)),
    );
  });

  it('an access that is not one field, or leaves its region, fails with INVALID_FIELD and no side effect', () => {
    const { engine, vf } = pfWithAdmin();
    useLegacy(engine);
    vf.device.raiseConfigChange();
    const isr = vf.device.isr;
    for (const [opcode, data, reply] of [
      [3, [18], 8 + 4], // STATUS and ISR and past the header's end (20 without MSI-X)
      [3, [19], 8 + 2], // ISR and beyond
      [3, [18], 8 + 2], // STATUS is 1 byte
      [3, [12], 8 + 3], // a 3-byte header access
      [3, [0], 8], // no width
      [2, write(0, [1, 2, 3, 4]), 8], // HOST_FEATURES is read-only
      [2, [16, 0, 0, 0, 0, 0, 0, 0], 8], // no data
      [5, [200], 8 + 1], // past the device config
      [4, write(6, [1, 0]), 8], // the net status field is read-only
    ] as const) {
      const o = engine.execute(command(opcode, 1, [...data]), reply);
      expect(failed(o), `${opcode} ${data.join(',')}`).toEqual([EINVAL, Q.INVALID_FIELD]);
      expect(o.reason).toMatch(/INVALID_FIELD/);
    }
    expect(vf.device.isr).toBe(isr);
  });

  it('COMMON_CFG_WRITE has the legacy effect: GUEST_FEATURES, QUEUE_SEL + QUEUE_PFN, STATUS 0 resets', () => {
    const { machine, engine, vf } = pfWithAdmin();
    useLegacy(engine);
    const events = record(machine);
    engine.execute(command(2, 1, write(4, [0x20, 0, 0, 0])), 8);
    expect(vf.device.driverFeatures(0)).toBe(0x20);
    engine.execute(command(2, 1, write(14, [1, 0])), 8);
    engine.execute(command(2, 1, write(8, [0x34, 0x12, 0, 0])), 8);
    expect(vf.device.queuePfn()).toBe(0x1234);
    engine.execute(command(2, 1, write(18, [0])), 8);
    expect(events.map((e) => e.type)).toEqual(['reset']);
    expect(vf.device.driverFeatures(0)).toBe(0);
  });

  it('with MSI-X enabled the header is 24 bytes: offset 20 is MSI_CONFIG_VECTOR, device config still starts at 0', () => {
    const { engine, vf } = pfWithAdmin();
    useLegacy(engine);
    wr(vf, 'config', vf.template.caps.msix + 2, 2, 0x8000);
    expect(Array.from(engine.execute(command(3, 1, [20]), 8 + 2).result)).toEqual([0xff, 0xff]);
    expect(engine.execute(command(5, 1, [0]), 8 + 1).result[0]).toBe(vf.device.configByte(0));
  });
});

describe('LEGACY_NOTIFY_INFO (§2.12.1.2 "Legacy Driver Notification")', () => {
  it('one member-device entry (flags 2) in VF BAR2 at the legacy QUEUE_NOTIFY, then end of list', () => {
    const { machine, engine, vf } = pfWithAdmin();
    useLegacy(engine);
    const r = engine.execute(command(6, 1), 8 + 64).result;
    const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
    expect(r).toHaveLength(64);
    expect([v.getUint8(0), v.getUint8(1), Number(v.getBigUint64(8, true))]).toEqual([2, 2, 0x1010]);
    expect(v.getUint8(16)).toBe(0);
    expect(Number(v.getBigUint64(8, true)) % 2).toBe(0);
    // a le16 queue index written there notifies that queue (the VF BAR0 is not implemented)
    const events = record(machine);
    wr(vf, 'bar2', 0x1010, 2, 1);
    expect(events).toEqual([{ type: 'notify', bdf: vf.bdf, queue: 1, via: 'legacy-register' }]);
    expect(rd(vf, 'config', 0x10, 4)).toBe(0);
  });
});

describe('the administration virtqueue (§2.13) with the simulated driver', () => {
  function rig() {
    const fixture = pfWithAdmin();
    const ram = new SparseRam();
    const ctx = new StandaloneContext({ type: 'net', dma: ram });
    const index = fixture.pf.device.adminQueueIndex;
    const queue = new AdminQueue(ctx, index, fixture.engine);
    const transport: DriverTransport = {
      dma: ram,
      format: 'split',
      features: ringFeatures(0, 0),
      setupQueue: (i, size, addresses) =>
        ctx.setQueue({ index: i, size, format: 'split', addresses, features: ringFeatures(0, 0) }),
      kick: (i) => queue.notify(i),
    };
    const driver = new AdminDriver(transport, {
      arena: new DmaArena(0x10_0000, 0x100_0000),
      layout: 'modern',
      queueIndex: index,
    });
    return { ...fixture, ctx, queue, driver };
  }

  it('negotiates, reads and writes a member, gets the notify address; used lengths are status + result', () => {
    const { driver, vf, queue, ctx } = rig();
    const { reply, opcodes } = driver.listQuery();
    expect(reply).toMatchObject({ status: 0, qualifier: 0, used: 16 });
    expect([...opcodes]).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(driver.listUse(opcodes)).toMatchObject({ status: 0, used: 8 });
    expect(driver.legacyRead(1, 'common', 12, 2)).toMatchObject({ status: 0, value: 256, used: 10 });
    expect(driver.legacyWrite(1, 'common', 18, 1, 3)).toMatchObject({ status: 0, used: 8 });
    expect(vf.device.status).toBe(3);
    expect(driver.legacyRead(1, 'device', 0, 1).value).toBe(vf.device.configByte(0));
    expect(driver.notifyInfo(1).entries).toEqual([{ flags: 2, bar: 2, offset: 0x1010n }]);
    expect(driver.legacyRead(3, 'common', 0, 4)).toMatchObject({
      status: EINVAL,
      qualifier: Q.INVALID_MEMBER,
      used: 8,
    });
    expect(queue.commands).toBe(7);
    expect(ctx.interruptCount(queue.index)).toBeGreaterThan(0);
  });

  it('is queue numQueues on the PF: admin_queue_index, admin_queue_num and VIRTIO_F_ADMIN_VQ in the common cfg', () => {
    const { pf, vf } = rig();
    enableMemory(pf);
    const common = barLayout.registers.COMMON_CFG.offset;
    expect(rd(pf, 'bar0', common + 18, 2)).toBe(3); // num_queues: rx, tx, ctrl
    expect(rd(pf, 'bar0', common + 60, 2)).toBe(3);
    expect(rd(pf, 'bar0', common + 62, 2)).toBe(1);
    wr(pf, 'bar0', common + 0, 4, 1);
    expect((rd(pf, 'bar0', common + 4, 4) >>> (41 - 32)) & 1).toBe(1);
    wr(pf, 'bar0', common + 22, 2, 3);
    expect(rd(pf, 'bar0', common + 24, 2)).toBe(256);
    expect(pf.device.queueStates().map((q) => q.name)).toEqual([
      'receiveq0',
      'transmitq0',
      'controlq',
      'adminq',
    ]);
    // a VF, and a PF without the option, offer none
    expect(vf.device.model.adminQueues).toBe(0);
    const plain = withVfs('net', 1).pf;
    enableMemory(plain);
    expect(rd(plain, 'bar0', common + 62, 2)).toBe(0);
    wr(plain, 'bar0', common + 0, 4, 1);
    expect((rd(plain, 'bar0', common + 4, 4) >>> 9) & 1).toBe(0);
    expect(plain.admin).toBeUndefined();
  });
});
