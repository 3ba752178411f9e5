/**
 * console, rng, balloon, SCSI and 9P back-ends through real rings. Expected bytes are written
 * out here from the spec texts (virtio 1.2 chapter 5, T10 SPC-4/SBC-3 layouts, 9P2000.L),
 * not taken from the device code.
 */
import { describe, expect, it } from 'vitest';
import { BalloonDevice } from '../../src/devices/balloon.js';
import { ConsoleDevice } from '../../src/devices/console.js';
import type { DeviceBackend } from '../../src/devices/context.js';
import { P9Device } from '../../src/devices/p9.js';
import { RngDevice } from '../../src/devices/rng.js';
import { ScsiDevice } from '../../src/devices/scsi.js';
import { openQueue } from '../../src/driver-sim/queues.js';
import type { DriverBuffer, DriverRing } from '../../src/driver-sim/rings.js';
import { deviceConfigs } from '../../src/spec/index.js';
import { rigFor, type Rig } from '../support/datapath-rig.js';

function ring<D extends DeviceBackend>(r: Rig<D>, index: number, size = 16): DriverRing {
  return openQueue(r.transport, r.arena, index, size, 'modern');
}

function out(r: Rig<DeviceBackend>, bytes: Uint8Array): DriverBuffer {
  const address = r.arena.alloc(Math.max(1, bytes.length));
  r.ram.write(address, bytes, 0, bytes.length);
  return { address, length: bytes.length, writable: false };
}

function into(r: Rig<DeviceBackend>, length: number): DriverBuffer {
  return { address: r.arena.alloc(Math.max(1, length)), length, writable: true };
}

function bytesAt(r: Rig<DeviceBackend>, b: DriverBuffer, length = b.length): Buffer {
  const x = Buffer.alloc(length);
  r.ram.read(b.address, x, 0, length);
  return x;
}

describe('console', () => {
  it('port 0 output is captured, input fills receive buffers in order, resize raises a config change', () => {
    const r = rigFor(
      'console',
      ['SIZE', 'VERSION_1'],
      { legacy: false },
      (ctx) => new ConsoleDevice(ctx, { captureBytes: 32 }),
    );
    const rx = ring(r, 0);
    const tx = ring(r, 1);
    tx.add([out(r, Buffer.from('hello, ')), out(r, Buffer.from('world\n'))]);
    tx.add([out(r, Buffer.from('second line\n'))]);
    r.transport.kick(1);
    expect(tx.takeUsed().map((u) => u.length)).toEqual([0, 0]);
    expect(r.device.output.contents().toString()).toBe('hello, world\nsecond line\n');
    tx.add([out(r, Buffer.from('x'.repeat(40)))]);
    r.transport.kick(1);
    expect(r.device.output.contents().toString()).toBe('x'.repeat(32));
    expect(r.device.output.total).toBe(65);
    expect(r.device.input(Buffer.from('typed text'))).toBe(10);
    expect(r.device.pendingInput).toBe(10);
    const b1 = into(r, 4);
    const b2 = into(r, 100);
    rx.add([b1]);
    rx.add([b2]);
    r.transport.kick(0);
    const used = rx.takeUsed();
    expect(used.map((u) => u.length)).toEqual([4, 6]);
    expect(bytesAt(r, b1).toString() + bytesAt(r, b2, 6).toString()).toBe('typed text');
    expect(r.device.pendingInput).toBe(0);
    r.device.resize(132, 43);
    expect(r.ctx.readConfig(deviceConfigs.console.registers.COLS.offset, 2)).toBe(132);
    expect(r.ctx.readConfig(deviceConfigs.console.registers.ROWS.offset, 2)).toBe(43);
    expect(r.ctx.configChanges).toBe(1);
    const small = rigFor(
      'console',
      [],
      { legacy: true },
      (ctx) => new ConsoleDevice(ctx, { pendingBytes: 5 }),
    );
    expect(small.device.input(Buffer.from('0123456789'))).toBe(5);
    expect(small.device.input(Buffer.from('x'))).toBe(0);
  });
});

describe('rng', () => {
  it('fills device-writable buffers with random bytes', () => {
    const r = rigFor('rng', [], { legacy: true }, (ctx) => new RngDevice(ctx));
    const q = ring(r, 0);
    const a = into(r, 64);
    const b = into(r, 5000);
    q.add([a]);
    q.add([out(r, Buffer.alloc(8)), b]);
    r.transport.kick(0);
    expect(q.takeUsed().map((u) => u.length)).toEqual([64, 5000]);
    const x = bytesAt(r, a);
    const y = bytesAt(r, b);
    expect(x.equals(Buffer.alloc(64))).toBe(false);
    expect(new Set(y).size).toBeGreaterThan(200);
    expect(r.ctx.interruptCount(0)).toBe(1);
  });
});

describe('balloon', () => {
  it('tracks inflated and deflated pages, the target and actual, and statistics', () => {
    const r = rigFor('balloon', ['STATS_VQ'], { legacy: true }, (ctx) => new BalloonDevice(ctx));
    const inflate = ring(r, 0);
    const deflate = ring(r, 1);
    const stats = ring(r, 2);
    r.device.setTarget(300);
    expect(r.ctx.configChanges).toBe(1);
    expect(r.ctx.readConfig(deviceConfigs.balloon.registers.NUM_PAGES.offset, 4)).toBe(300);
    const pfns = (list: number[]) => {
      const b = Buffer.alloc(4 * list.length);
      list.forEach((p, i) => b.writeUInt32LE(p, 4 * i));
      return b;
    };
    inflate.add([out(r, pfns([0x100, 0x101, 0x102, 0x5000]))]);
    r.transport.kick(0);
    deflate.add([out(r, pfns([0x101]))]);
    r.transport.kick(1);
    expect(r.device.pageList()).toEqual([0x100, 0x102, 0x5000]);
    r.ctx.setConfig(deviceConfigs.balloon.registers.ACTUAL.offset, [3, 0, 0, 0]);
    expect(r.device.actual).toBe(3);
    const entry = (tag: number, value: bigint) => {
      const b = Buffer.alloc(10);
      b.writeUInt16LE(tag, 0);
      b.writeBigUInt64LE(value, 2);
      return b;
    };
    stats.add([out(r, Buffer.concat([entry(4, 123456789n), entry(5, 2n ** 33n)]))]);
    r.transport.kick(2);
    expect(r.device.stats).toEqual({ memfree: 123456789, memtot: 2 ** 33 });
    expect(stats.takeUsed()).toEqual([]);
    expect(r.device.requestStats()).toBe(true);
    expect(stats.takeUsed()).toHaveLength(1);
    expect(r.device.requestStats()).toBe(false);
  });
});

describe('scsi', () => {
  const CDB = 32;
  const SENSE = 96;

  function scsiRig() {
    const r = rigFor(
      'scsi',
      ['VERSION_1'],
      { legacy: false },
      (ctx) => new ScsiDevice(ctx, { blocks: 2048 }),
    );
    const q = ring(r, 2);
    return { r, q };
  }

  function command(
    r: Rig<ScsiDevice>,
    q: DriverRing,
    cdb: number[],
    opts: { lun?: number[]; dataIn?: number; dataOut?: Uint8Array } = {},
  ) {
    const req = Buffer.alloc(19 + CDB);
    Buffer.from(opts.lun ?? [1, 0, 0x40, 0, 0, 0, 0, 0]).copy(req, 0);
    Buffer.from(cdb).copy(req, 19);
    const resp = into(r, 12 + SENSE);
    const data = opts.dataIn ? into(r, opts.dataIn) : undefined;
    q.add([out(r, req), ...(opts.dataOut ? [out(r, opts.dataOut)] : []), resp, ...(data ? [data] : [])]);
    r.transport.kick(2);
    const [used] = q.takeUsed();
    const head = bytesAt(r, resp, 12);
    return {
      used: used!.length,
      senseLen: head.readUInt32LE(0),
      resid: head.readUInt32LE(4),
      status: head[10]!,
      response: head[11]!,
      sense: bytesAt(r, resp).subarray(12, 12 + head.readUInt32LE(0)),
      data: data ? bytesAt(r, data) : Buffer.alloc(0),
    };
  }

  it('INQUIRY, TEST UNIT READY, READ CAPACITY (10)/(16), REPORT LUNS', () => {
    const { r, q } = scsiRig();
    const inq = command(r, q, [0x12, 0, 0, 0, 96, 0], { dataIn: 96 });
    expect([inq.response, inq.status]).toEqual([0, 0]);
    expect(inq.data[0]).toBe(0x00);
    expect(inq.data[4]! + 5).toBe(36);
    expect(inq.resid).toBe(96 - 36);
    expect(inq.data.subarray(8, 16).toString('latin1')).toBe('VMMR    ');
    expect(command(r, q, [0x00, 0, 0, 0, 0, 0]).status).toBe(0);
    const cap10 = command(r, q, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], { dataIn: 8 });
    expect([cap10.data.readUInt32BE(0), cap10.data.readUInt32BE(4)]).toEqual([2047, 512]);
    const cap16 = command(r, q, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], { dataIn: 32 });
    expect([cap16.data.readBigUInt64BE(0), cap16.data.readUInt32BE(8)]).toEqual([2047n, 512]);
    const luns = command(r, q, [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], { dataIn: 16 });
    expect(luns.data.readUInt32BE(0)).toBe(8);
    expect(luns.data.subarray(8, 16).equals(Buffer.alloc(8))).toBe(true);
  });

  it('READ and WRITE (10) and (16) round-trip; past the end is CHECK CONDITION', () => {
    const { r, q } = scsiRig();
    const data = Buffer.alloc(1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    expect(command(r, q, [0x2a, 0, 0, 0, 0, 10, 0, 0, 2, 0], { dataOut: data }).status).toBe(0);
    const back = command(r, q, [0x88, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0], { dataIn: 1024 });
    expect(back.data.equals(data)).toBe(true);
    expect(
      command(r, q, [0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0, 1, 0, 0], { dataOut: Buffer.alloc(512, 7) })
        .status,
    ).toBe(0);
    expect(
      command(r, q, [0x28, 0, 0, 0, 0, 11, 0, 0, 1, 0], { dataIn: 512 }).data.equals(Buffer.alloc(512, 7)),
    ).toBe(true);
    const past = command(r, q, [0x28, 0, 0, 0, 7, 0xff, 0, 0, 2, 0], { dataIn: 1024 });
    expect([past.response, past.status]).toEqual([0, 2]);
    expect([past.sense[0], past.sense[2], past.sense[12]]).toEqual([0x70, 0x05, 0x21]);
    const overrun = command(r, q, [0x28, 0, 0, 0, 0, 0, 0, 0, 4, 0], { dataIn: 1024 });
    expect(overrun.response).toBe(1);
  });

  it('unknown commands are CHECK CONDITION, ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE; bad targets and LUNs', () => {
    const { r, q } = scsiRig();
    const unknown = command(r, q, [0x5a, 0, 0, 0, 0, 0, 0, 0, 0, 0], { dataIn: 64 });
    expect([unknown.response, unknown.status, unknown.senseLen]).toEqual([0, 2, 18]);
    expect([unknown.sense[0], unknown.sense[2], unknown.sense[7], unknown.sense[12]]).toEqual([
      0x70, 0x05, 10, 0x20,
    ]);
    expect(command(r, q, [0x00, 0, 0, 0, 0, 0], { lun: [1, 3, 0x40, 0, 0, 0, 0, 0] }).response).toBe(3);
    const lun5 = command(r, q, [0x12, 0, 0, 0, 36, 0], { lun: [1, 0, 0x40, 5, 0, 0, 0, 0], dataIn: 36 });
    expect(lun5.data[0]).toBe(0x7f);
    const tur5 = command(r, q, [0x00, 0, 0, 0, 0, 0], { lun: [1, 0, 0x40, 5, 0, 0, 0, 0] });
    expect([tur5.status, tur5.sense[12]]).toEqual([2, 0x25]);
  });

  it('control queue: task management completes, event queries report nothing; short requests break it', () => {
    const { r } = scsiRig();
    const ctrl = ring(r, 0);
    const tmf = Buffer.alloc(24);
    const tmfResp = into(r, 1);
    ctrl.add([out(r, tmf), tmfResp]);
    const an = Buffer.alloc(16);
    an.writeUInt32LE(1, 0);
    const anResp = into(r, 5);
    ctrl.add([out(r, an), anResp]);
    r.transport.kick(0);
    expect(ctrl.takeUsed().map((u) => u.length)).toEqual([1, 5]);
    expect(bytesAt(r, tmfResp)[0]).toBe(0);
    expect(bytesAt(r, anResp).equals(Buffer.alloc(5))).toBe(true);
    const { r: r2, q } = scsiRig();
    q.add([out(r2, Buffer.alloc(20)), into(r2, 108)]);
    r2.transport.kick(2);
    expect(r2.ctx.resetErrors[0]!.rule).toBe('request');
  });
});

describe('9p', () => {
  function t(type: number, tag: number, body: Buffer): Buffer {
    const h = Buffer.alloc(7);
    h.writeUInt32LE(7 + body.length, 0);
    h.writeUInt8(type, 4);
    h.writeUInt16LE(tag, 5);
    return Buffer.concat([h, body]);
  }
  const str = (s: string) => Buffer.concat([Buffer.from([s.length, 0]), Buffer.from(s)]);

  it('answers Tversion and Tattach, Rlerror(EOPNOTSUPP) for the rest', () => {
    const r = rigFor('9p', ['MOUNT_TAG'], { legacy: false }, (ctx) => new P9Device(ctx));
    const q = ring(r, 0);
    const ask = (msg: Buffer) => {
      const reply = into(r, 256);
      q.add([out(r, msg), reply]);
      r.transport.kick(0);
      const [used] = q.takeUsed();
      return bytesAt(r, reply, used!.length);
    };
    const msize = Buffer.alloc(4);
    msize.writeUInt32LE(8192);
    const version = ask(t(100, 0xffff, Buffer.concat([msize, str('9P2000.L')])));
    expect(version.readUInt32LE(0)).toBe(version.length);
    expect([version[4], version.readUInt16LE(5), version.readUInt32LE(7)]).toEqual([101, 0xffff, 8192]);
    expect(version.subarray(13).toString()).toBe('9P2000.L');
    const old = ask(t(100, 0xffff, Buffer.concat([msize, str('9P2000')])));
    expect(old.subarray(13).toString()).toBe('unknown');
    const attach = ask(t(104, 1, Buffer.concat([Buffer.alloc(8), str('root'), str(''), Buffer.alloc(4)])));
    expect([attach[4], attach.readUInt16LE(5), attach.length, attach[7]]).toEqual([105, 1, 20, 0x80]);
    const walk = ask(t(110, 2, Buffer.alloc(10)));
    expect([walk.length, walk[4], walk.readUInt16LE(5), walk.readUInt32LE(7)]).toEqual([11, 7, 2, 95]);
    const bad = ask(Buffer.from([200, 0, 0, 0, 100, 3, 0]));
    expect([bad[4], bad.readUInt32LE(7)]).toEqual([7, 71]);
    expect(ask(t(120, 9, Buffer.alloc(4)))[4]).toBe(121);
  });
});
