/**
 * virtio-blk back-end through real rings, on a RAM disk and on file images. Oracles that are not
 * vmmr: SHA-256 of 64 MiB written and read back; sfdisk --json reading an MBR partition table
 * (built here from the MBR format) written through the virtqueue into an image file; e2fsck and
 * debugfs reading an ext2 filesystem (made by mkfs.ext2 -d) that the device stored on a RAM disk
 * and served back. Plus the status rules: bounds, read-only, unsupported types, DISCARD /
 * WRITE_ZEROES, injected errors, malformed requests, FLUSH reaching fsync.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDisk, RamDisk, type BlockBackend, type BlockFs } from '../../src/devices/block/backend.js';
import { BlockDevice } from '../../src/devices/block/device.js';
import { BlockDriver } from '../../src/driver-sim/block-driver.js';
import { deviceConfigs } from '../../src/spec/index.js';
import type { RingFormat } from '../../src/virtqueue/index.js';
import { rigFor } from '../support/datapath-rig.js';

const B = deviceConfigs.block.constants;
const CFG = deviceConfigs.block.registers;
const OK = 0;
const IOERR = 1;
const UNSUPP = 2;
const dir = mkdtempSync(join(tmpdir(), 'vmmr-blk-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function blockRig(
  backend: BlockBackend,
  o: { legacy: boolean; format?: RingFormat; features?: string[]; indirect?: boolean; serial?: string },
) {
  const names = [
    ...(o.features ?? ['FLUSH', 'SEG_MAX', 'SIZE_MAX']),
    ...(o.legacy ? [] : ['VERSION_1']),
    ...(o.indirect ? ['RING_INDIRECT_DESC'] : []),
  ];
  const rig = rigFor(
    'block',
    names,
    o,
    (ctx) => new BlockDevice(ctx, { backend, serial: o.serial ?? 'VMMR-TEST-0001' }),
  );
  const cap = Buffer.alloc(8);
  cap.writeBigUInt64LE(BigInt(backend.sectors));
  rig.ctx.setConfig(CFG.CAPACITY.offset, cap);
  const driver = new BlockDriver(rig.transport, {
    arena: rig.arena,
    layout: o.legacy ? 'legacy' : 'modern',
    maxTransfer: 4 << 20,
    indirect: o.indirect,
  });
  return { ...rig, driver };
}

function pattern(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

function imageFile(name: string, bytes: number): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(0));
  fs.truncateSync(path, bytes);
  return path;
}

describe('64 MiB written and read back with checksums', () => {
  const TOTAL = 64 << 20;
  const CHUNK = 256 << 10;
  for (const v of [
    { name: 'RAM disk, legacy driver (split legacy ring)', legacy: true, file: false },
    {
      name: 'file image, modern driver (packed ring, indirect)',
      legacy: false,
      file: true,
      format: 'packed' as const,
      indirect: true,
    },
  ]) {
    it(v.name, () => {
      const backend = v.file ? new FileDisk(imageFile('big.img', TOTAL)) : new RamDisk(TOTAL / 512);
      const features = ['FLUSH', 'SEG_MAX', 'SIZE_MAX', ...(v.format === 'packed' ? ['RING_PACKED'] : [])];
      const r = blockRig(backend, { legacy: v.legacy, format: v.format, indirect: v.indirect, features });
      const written = createHash('sha256');
      for (let at = 0; at < TOTAL; at += 4 * CHUNK) {
        const reqs = [0, 1, 2, 3].map((k) => {
          const data = pattern(CHUNK, at / CHUNK + k + 1);
          written.update(data);
          return { type: B.T_OUT.value, sector: (at + k * CHUNK) / 512, out: data };
        });
        expect(r.driver.submit(reqs).map((x) => x.status)).toEqual([OK, OK, OK, OK]);
      }
      expect(r.driver.flush().status).toBe(OK);
      const read = createHash('sha256');
      for (let at = 0; at < TOTAL; at += 4 * CHUNK) {
        const results = r.driver.submit(
          [0, 1, 2, 3].map((k) => ({ type: B.T_IN.value, sector: (at + k * CHUNK) / 512, inLength: CHUNK })),
        );
        for (const x of results) {
          expect(x.status).toBe(OK);
          expect(x.used).toBe(CHUNK + 1);
          read.update(x.data);
        }
      }
      const digest = written.digest('hex');
      expect(read.digest('hex')).toBe(digest);
      if (backend instanceof FileDisk) {
        expect(backend.fsyncs).toBeGreaterThanOrEqual(1);
        backend.close();
        // The data is in the file: an independent reader (node's fs + crypto) agrees.
        expect(
          createHash('sha256')
            .update(readFileSync(join(dir, 'big.img')))
            .digest('hex'),
        ).toBe(digest);
        // And after a "restart" on the same image the device reads it again.
        const again = blockRig(new FileDisk(join(dir, 'big.img')), { legacy: true });
        expect(Buffer.from(again.driver.read(0, 512).data).equals(pattern(CHUNK, 1))).toBe(true);
        (again.device.backend as FileDisk).close();
      } else {
        expect((backend as RamDisk).allocatedBytes).toBe(TOTAL);
      }
    });
  }
});

describe('independent readers of what the device stored', () => {
  it('sfdisk reads an MBR partition table written through the virtqueue', () => {
    const path = imageFile('mbr.img', 64 << 20);
    const disk = new FileDisk(path);
    const r = blockRig(disk, { legacy: true });
    // MBR (sector 0): four 16-byte entries at 446, signature 55 AA at 510.
    const mbr = Buffer.alloc(512);
    const entry = (i: number, type: number, start: number, sectors: number) => {
      const at = 446 + 16 * i;
      mbr.writeUInt8(type, at + 4);
      mbr.writeUInt32LE(start, at + 8);
      mbr.writeUInt32LE(sectors, at + 12);
    };
    entry(0, 0x83, 2048, 40960);
    entry(1, 0x0c, 43008, 20480);
    mbr.writeUInt32LE(0x12345678, 440);
    mbr.writeUInt16LE(0xaa55, 510);
    expect(r.driver.write(0, mbr).status).toBe(OK);
    expect(r.driver.flush().status).toBe(OK);
    disk.close();
    const table = JSON.parse(execFileSync('sfdisk', ['--json', path], { encoding: 'utf8' })) as {
      partitiontable: {
        label: string;
        id: string;
        partitions: Array<{ start: number; size: number; type: string }>;
      };
    };
    expect(table.partitiontable.label).toBe('dos');
    expect(table.partitiontable.id).toBe('0x12345678');
    expect(table.partitiontable.partitions.map((p) => [p.start, p.size, p.type])).toEqual([
      [2048, 40960, '83'],
      [43008, 20480, 'c'],
    ]);
  });

  it('e2fsck and debugfs read an ext2 filesystem the device stored and served back', () => {
    const src = join(dir, 'tree');
    fs.mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'hello.txt'), 'hello from a virtqueue\n');
    writeFileSync(join(src, 'sub', 'blob.bin'), pattern(300_000, 42));
    const made = imageFile('made.img', 16 << 20);
    execFileSync('mkfs.ext2', ['-q', '-F', '-b', '1024', '-d', src, made], { stdio: 'pipe' });
    const image = readFileSync(made);
    const r = blockRig(new RamDisk(image.length / 512), { legacy: false });
    for (let at = 0; at < image.length; at += 1 << 20)
      expect(r.driver.write(at / 512, image.subarray(at, at + (1 << 20))).status).toBe(OK);
    const served = join(dir, 'served.img');
    const parts: Buffer[] = [];
    for (let at = 0; at < image.length; at += 1 << 20)
      parts.push(Buffer.from(r.driver.read(at / 512, (1 << 20) / 512).data));
    writeFileSync(served, Buffer.concat(parts));
    execFileSync('e2fsck', ['-f', '-n', served], { stdio: 'pipe' });
    expect(
      execFileSync('debugfs', ['-R', 'cat /hello.txt', served], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    ).toBe('hello from a virtqueue\n');
    const dumped = join(dir, 'blob.out');
    execFileSync('debugfs', ['-R', `dump /sub/blob.bin ${dumped}`, served], { stdio: 'pipe' });
    expect(readFileSync(dumped).equals(pattern(300_000, 42))).toBe(true);
  });
});

describe('request rules', () => {
  const ram = (sectors = 2048) =>
    blockRig(new RamDisk(sectors), {
      legacy: false,
      features: ['FLUSH', 'SEG_MAX', 'SIZE_MAX', 'DISCARD', 'WRITE_ZEROES'],
    });

  it('past the end is IOERR; the last sector is fine; partial sectors are IOERR', () => {
    const r = ram(100);
    expect(r.driver.read(99, 1).status).toBe(OK);
    expect(r.driver.read(99, 2)).toMatchObject({ status: IOERR, used: 0 });
    expect(r.driver.read(100, 1).status).toBe(IOERR);
    expect(r.driver.write(2 ** 40, Buffer.alloc(512)).status).toBe(IOERR);
    expect(r.driver.request({ type: B.T_IN.value, sector: 0, inLength: 100 }).status).toBe(IOERR);
    expect(r.driver.request({ type: B.T_IN.value, sector: 0xffff_ffff_ffff, inLength: 512 }).status).toBe(
      IOERR,
    );
    expect(r.device.stats.ioErrors).toBe(5);
  });

  it('GET_ID answers the 20-byte serial, NUL padded', () => {
    const r = ram();
    const id = r.driver.getId();
    expect(id.status).toBe(OK);
    expect(id.used).toBe(21);
    expect(Buffer.from(id.data).toString('latin1')).toBe('VMMR-TEST-0001\0\0\0\0\0\0');
    expect(r.driver.getId(8).data).toEqual(new Uint8Array(Buffer.from('VMMR-TES')));
  });

  it('unknown types are UNSUPP; DISCARD and WRITE_ZEROES only when negotiated', () => {
    const r = ram();
    expect(r.driver.request({ type: 77 }).status).toBe(UNSUPP);
    expect(r.driver.write(10, Buffer.alloc(1024, 0xab)).status).toBe(OK);
    expect(r.driver.ranges(B.T_WRITE_ZEROES.value, [{ sector: 10, count: 1 }]).status).toBe(OK);
    expect([...r.driver.read(10, 2).data.subarray(0, 512)].every((b) => b === 0)).toBe(true);
    expect(r.driver.read(11, 1).data[0]).toBe(0xab);
    expect(r.driver.ranges(B.T_DISCARD.value, [{ sector: 11, count: 1 }]).status).toBe(OK);
    expect(r.driver.ranges(B.T_DISCARD.value, [{ sector: 11, count: 1, flags: 1 }]).status).toBe(UNSUPP);
    expect(r.driver.ranges(B.T_WRITE_ZEROES.value, [{ sector: 11, count: 1, flags: 2 }]).status).toBe(UNSUPP);
    expect(r.driver.ranges(B.T_WRITE_ZEROES.value, [{ sector: 2047, count: 2 }]).status).toBe(IOERR);
    expect(
      r.driver.ranges(B.T_WRITE_ZEROES.value, [
        { sector: 0, count: 1 },
        { sector: 5, count: 1 },
      ]).status,
    ).toBe(IOERR);
    const plain = blockRig(new RamDisk(64), { legacy: true });
    expect(plain.driver.ranges(B.T_DISCARD.value, [{ sector: 1, count: 1 }]).status).toBe(UNSUPP);
  });

  it('a read-only disk refuses writes with IOERR and writes nothing', () => {
    const path = imageFile('ro.img', 1 << 20);
    writeFileSync(path, pattern(1 << 20, 5));
    const r = blockRig(new FileDisk(path, { readOnly: true }), { legacy: true, features: ['RO', 'FLUSH'] });
    expect(r.driver.write(0, Buffer.alloc(512)).status).toBe(IOERR);
    expect(Buffer.from(r.driver.read(0, 1).data).equals(pattern(1 << 20, 5).subarray(0, 512))).toBe(true);
    expect(readFileSync(path).equals(pattern(1 << 20, 5))).toBe(true);
  });

  it('injected errors fail the chosen sectors only', () => {
    const r = ram();
    r.device.injectErrors(100, 4, 'read');
    expect(r.device.injectedRanges).toEqual([{ first: 100, count: 4, op: 'read' }]);
    expect(r.driver.read(99, 1).status).toBe(OK);
    expect(r.driver.read(99, 2).status).toBe(IOERR);
    expect(r.driver.read(103, 1).status).toBe(IOERR);
    expect(r.driver.read(104, 8).status).toBe(OK);
    expect(r.driver.write(100, Buffer.alloc(512)).status).toBe(OK);
    r.device.clearErrors();
    expect(r.driver.read(100, 4).status).toBe(OK);
    expect(r.device.stats.injectedErrors).toBe(2);
  });

  it('seg_max and size_max are what the device enforces', () => {
    const r = ram();
    r.ctx.setConfig(CFG.SEG_MAX.offset, [2, 0, 0, 0]);
    r.ctx.setConfig(CFG.SIZE_MAX.offset, [0, 0x10, 0, 0]);
    // A second driver on the same function reprograms queue 0 with its own ring.
    const seg = new BlockDriver(r.transport, {
      arena: r.arena,
      layout: 'modern',
      segmentSize: 4096,
      queueSize: 16,
    });
    expect(seg.read(0, 16).status).toBe(OK);
    expect(seg.read(0, 17).status).toBe(IOERR);
    const big = new BlockDriver(r.transport, {
      arena: r.arena,
      layout: 'modern',
      segmentSize: 8192,
      queueSize: 16,
    });
    expect(big.read(0, 16).status).toBe(IOERR);
  });

  it('malformed requests (header too short, no status byte) break the queue', () => {
    for (const bufs of [
      [
        { length: 8, writable: false },
        { length: 1, writable: true },
      ],
      [{ length: 16, writable: false }],
    ]) {
      const r = ram();
      r.driver.queue.add(bufs.map((b) => ({ ...b, address: r.arena.alloc(16) })));
      r.transport.kick(0);
      expect(r.ctx.resetErrors).toHaveLength(1);
      expect(r.ctx.resetErrors[0]!.rule).toBe('request');
      expect(r.ctx.resetErrors[0]!.message).toMatch(/16-byte header .* and a status byte/);
    }
  });

  it('FLUSH reaches fsync; write-through without FLUSH or with writeback 0', () => {
    const calls: string[] = [];
    const counting: BlockFs = {
      openSync: fs.openSync,
      fstatSync: fs.fstatSync,
      readSync: fs.readSync,
      writeSync: (...a) => (calls.push('write'), fs.writeSync(...a)),
      fsyncSync: (fd) => (calls.push('fsync'), fs.fsyncSync(fd)),
      closeSync: fs.closeSync,
    };
    const path = imageFile('flush.img', 1 << 20);
    const withFlush = blockRig(new FileDisk(path, { fs: counting }), { legacy: false, features: ['FLUSH'] });
    withFlush.driver.write(0, Buffer.alloc(512, 1));
    expect(calls).toEqual(['write']);
    expect(withFlush.driver.flush().status).toBe(OK);
    expect(calls).toEqual(['write', 'fsync']);
    calls.length = 0;
    const legacyNoFlush = blockRig(new FileDisk(path, { fs: counting }), { legacy: true, features: [] });
    legacyNoFlush.driver.write(0, Buffer.alloc(512, 2));
    expect(calls).toEqual(['write', 'fsync']);
    calls.length = 0;
    const wce = blockRig(new FileDisk(path, { fs: counting }), {
      legacy: false,
      features: ['FLUSH', 'CONFIG_WCE'],
    });
    wce.ctx.setConfig(CFG.WRITEBACK.offset, [0]);
    wce.driver.write(0, Buffer.alloc(512, 3));
    expect(calls).toEqual(['write', 'fsync']);
    const failing = blockRig(
      new FileDisk(path, {
        fs: {
          ...counting,
          fsyncSync: () => {
            throw new Error('EIO');
          },
        },
      }),
      { legacy: false, features: ['FLUSH'] },
    );
    expect(failing.driver.flush().status).toBe(IOERR);
  });
});
