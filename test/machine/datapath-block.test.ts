/**
 * virtio-blk wired into the functions: 64 MiB written and read back with checksums through a
 * legacy driver (VF guest I/O view) and a modern one (PF), on a RAM disk and on a file image;
 * the image keeps the data across a restart; FLUSH reaches fsync; CAPACITY follows the back-end.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDisk } from '../../src/devices/block/backend.js';
import { BlockDevice } from '../../src/devices/block/device.js';
import type { BlockDriver } from '../../src/driver-sim/block-driver.js';
import type { Machine } from '../../src/machine/machine.js';
import { deviceConfigs } from '../../src/spec/index.js';
import { blockDriverOn, wiredMachine, type DriverSetup } from '../support/wired.js';

const T = deviceConfigs.block.constants;
const PF = '0000:81:00.0';
const VF0 = '0000:81:00.1';
const MIB = 1 << 20;
const TOTAL = 64 * MIB;
const CHUNK = 256 * 1024;
const BATCH = 16;

const dir = mkdtempSync(join(tmpdir(), 'vmmr-blk-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pattern(offset: number, length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) b.writeUInt32LE(((offset + i) * 2654435761 + seed) >>> 0, i);
  return b;
}

/** Writes TOTAL bytes in batches of BATCH requests; returns the SHA-256 of what was written. */
function writeAll(driver: BlockDriver, seed: number): string {
  const hash = createHash('sha256');
  for (let at = 0; at < TOTAL; at += CHUNK * BATCH) {
    const requests = Array.from({ length: BATCH }, (_, k) => {
      const data = pattern(at + k * CHUNK, CHUNK, seed);
      hash.update(data);
      return { type: T.T_OUT.value, sector: (at + k * CHUNK) / 512, out: data };
    });
    for (const r of driver.submit(requests)) expect(r.status).toBe(T.S_OK.value);
  }
  return hash.digest('hex');
}

function readAll(driver: BlockDriver): string {
  const hash = createHash('sha256');
  for (let at = 0; at < TOTAL; at += CHUNK * BATCH) {
    const requests = Array.from({ length: BATCH }, (_, k) => ({
      type: T.T_IN.value,
      sector: (at + k * CHUNK) / 512,
      inLength: CHUNK,
    }));
    for (const r of driver.submit(requests)) {
      expect(r.status).toBe(T.S_OK.value);
      hash.update(r.data);
    }
  }
  return hash.digest('hex');
}

function blockOf(machine: Machine, bdf: string): BlockDevice {
  const backend = machine.dataPathOf(bdf).backend;
  if (!(backend instanceof BlockDevice)) throw new Error(`${bdf} has no block back-end`);
  return backend;
}

const drivers: Array<{ name: string; bdf: string; setup: DriverSetup }> = [
  { name: 'legacy driver on the VF guest I/O view', bdf: VF0, setup: { via: 'legacy-io', names: ['FLUSH'] } },
  { name: 'modern driver on the PF', bdf: PF, setup: { via: 'modern', names: ['VERSION_1', 'FLUSH'] } },
];

describe('block through the register model', () => {
  for (const d of drivers) {
    it(`${d.name}: 64 MiB on a RAM disk, checksums agree; CAPACITY is the RAM disk's`, () => {
      const machine = wiredMachine([
        { bdf: PF, type: 'block', totalVfs: 1, initialVfs: 1, ramDiskSize: TOTAL },
      ]);
      const { driver, transport } = blockDriverOn(machine, d.bdf, d.setup);
      // Device config: offset 20 behind the legacy header without MSI-X, else the DEVICE_CFG region.
      const capacity =
        d.setup.via === 'modern'
          ? Number(machine.find(d.bdf).readBar(0, 512, 4))
          : transport.read(20, 4) + transport.read(24, 4) * 2 ** 32;
      expect(capacity).toBe(TOTAL / 512);
      const written = writeAll(driver, 7);
      expect(readAll(driver)).toBe(written);
      const past = driver.read(TOTAL / 512, 1);
      expect(past.status).toBe(T.S_IOERR.value);
    });

    it(`${d.name}: 64 MiB on a file image survive a restart; FLUSH reaches fsync`, () => {
      const image = join(dir, `${d.setup.via}.img`);
      writeFileSync(image, Buffer.alloc(TOTAL));
      const topology = [
        {
          bdf: PF,
          type: 'block',
          totalVfs: 1,
          initialVfs: 1,
          ...(d.bdf === PF ? { image } : { vfs: { [VF0]: { image } } }),
        },
      ];
      const first = wiredMachine(topology);
      const a = blockDriverOn(first, d.bdf, d.setup).driver;
      const written = writeAll(a, 11);
      const disk = blockOf(first, d.bdf).backend as FileDisk;
      const before = disk.fsyncs;
      expect(a.flush().status).toBe(T.S_OK.value);
      expect(disk.fsyncs).toBe(before + 1);
      expect(createHash('sha256').update(readFileSync(image)).digest('hex')).toBe(written);
      disk.close();

      const second = wiredMachine(topology);
      const b = blockDriverOn(second, d.bdf, d.setup).driver;
      expect(readAll(b)).toBe(written);
    });
  }
});
