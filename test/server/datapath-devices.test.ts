/**
 * The other device types wired into functions, driven through the register transport and
 * checked over REST: console output and input, entropy, balloon inflate and target, block
 * error injection seen by the driver.
 */
import { describe, expect, it } from 'vitest';
import { BlockDriver } from '../../src/driver-sim/block-driver.js';
import { DmaArena } from '../../src/driver-sim/memory.js';
import { openQueue } from '../../src/driver-sim/queues.js';
import { deviceConfigs } from '../../src/spec/index.js';
import { ok, testApp, call } from '../support/server.js';
import { parseTopology } from '../../src/machine/topology.js';
import type { VmmrApp } from '../../src/server/app.js';
import { RegisterTransport } from '../../src/driver-sim/register-transport.js';
import { bits } from '../support/wired.js';

const CON = '0000:41:00.0';
const RNG = '0000:42:00.0';
const BAL = '0000:43:00.0';
const BLK = '0000:81:00.0';

async function app(): Promise<VmmrApp> {
  return testApp({
    topology: parseTopology(
      {
        pfs: [
          { bdf: CON, type: 'console', totalVfs: 0 },
          { bdf: RNG, type: 'rng', totalVfs: 0 },
          { bdf: BAL, type: 'balloon', totalVfs: 0 },
          { bdf: BLK, type: 'block', totalVfs: 0, ramDiskSize: 1 << 20 },
        ],
      },
      'test',
    ),
  });
}

function modern(
  a: VmmrApp,
  bdf: string,
  type: Parameters<typeof bits>[0],
  names: string[] = [],
): RegisterTransport {
  return new RegisterTransport({
    machine: a.vmmr.emulator.machine,
    bdf,
    via: 'modern',
    wanted: bits(type, ['VERSION_1', ...names]),
  });
}

describe('other devices through the register model', () => {
  it('console: port 0 output reaches REST, REST input reaches the receive buffers', async () => {
    const a = await app();
    const t = modern(a, CON, 'console');
    const arena = new DmaArena(0x10_0000, 0x100_0000);
    const rx = openQueue(t, arena, 0, 64, 'modern');
    const tx = openQueue(t, arena, 1, 64, 'modern');
    t.ready();
    const out = arena.alloc(16);
    t.dma.write(out, Buffer.from('hello'), 0, 5);
    tx.add([{ address: out, length: 5, writable: false }]);
    t.kick(1);
    expect(tx.takeUsed()).toHaveLength(1);
    const state = await ok<{ output: string }>(a, 'GET', `/api/v1/functions/${CON}/console`);
    expect(Buffer.from(state.output, 'hex').toString()).toBe('hello');

    const typed = await ok<{ accepted: number; pendingInput: number }>(
      a,
      'POST',
      `/api/v1/functions/${CON}/console/rx`,
      {
        data: Buffer.from('ls\n').toString('hex'),
      },
    );
    expect(typed).toMatchObject({ accepted: 3, pendingInput: 3 });
    const inBuf = arena.alloc(64);
    rx.add([{ address: inBuf, length: 64, writable: true }]);
    t.kick(0);
    const used = rx.takeUsed();
    expect(used).toEqual([{ id: expect.any(Number), length: 3 }]);
    const got = new Uint8Array(3);
    t.dma.read(inBuf, got, 0, 3);
    expect(Buffer.from(got).toString()).toBe('ls\n');
  });

  it('rng: device-writable buffers come back filled', async () => {
    const a = await app();
    const t = modern(a, RNG, 'rng');
    const arena = new DmaArena(0x10_0000, 0x100_0000);
    const q = openQueue(t, arena, 0, 16, 'modern');
    t.ready();
    const at = arena.alloc(4096);
    q.add([{ address: at, length: 4096, writable: true }]);
    t.kick(0);
    expect(q.takeUsed()).toEqual([{ id: expect.any(Number), length: 4096 }]);
    const bytes = new Uint8Array(4096);
    t.dma.read(at, bytes, 0, 4096);
    expect(new Set(bytes).size).toBeGreaterThan(200);
  });

  it('balloon: the REST target raises a config change; inflated pages are counted', async () => {
    const a = await app();
    const t = modern(a, BAL, 'balloon');
    const arena = new DmaArena(0x10_0000, 0x100_0000);
    const inflate = openQueue(t, arena, 0, 16, 'modern');
    t.ready();
    t.readIsr();
    const target = await ok<{ numPages: number }>(a, 'PUT', `/api/v1/functions/${BAL}/balloon`, {
      numPages: 3,
    });
    expect(target.numPages).toBe(3);
    expect(t.readIsr() & 2).toBe(2);
    const list = arena.alloc(12);
    for (let i = 0; i < 3; i++) t.dma.writeU32(list + 4 * i, 0x1000 + i);
    inflate.add([{ address: list, length: 12, writable: false }]);
    t.kick(0);
    const actual = deviceConfigs.balloon.registers.ACTUAL.offset;
    const fn = a.vmmr.emulator.machine.find(BAL);
    fn.writeBar(0, 512 + actual, 4, 3);
    const state = await ok<{ pages: number; actual: number }>(a, 'GET', `/api/v1/functions/${BAL}/balloon`);
    expect(state).toMatchObject({ pages: 3, actual: 3 });
  });

  it('block: injected sector errors reach the driver as IOERR until cleared', async () => {
    const a = await app();
    await ok(a, 'POST', `/api/v1/functions/${BLK}/block/errors`, { first: 8, count: 8, op: 'read' });
    const t = modern(a, BLK, 'block');
    const driver = new BlockDriver(t, { arena: new DmaArena(0x10_0000, 0x1000_0000), layout: 'modern' });
    t.ready();
    const B = deviceConfigs.block.constants;
    expect(driver.read(0, 8).status).toBe(B.S_OK.value);
    expect(driver.read(12, 1).status).toBe(B.S_IOERR.value);
    expect(driver.write(12, new Uint8Array(512)).status).toBe(B.S_OK.value);
    expect((await call(a, 'DELETE', `/api/v1/functions/${BLK}/block/errors`)).statusCode).toBe(200);
    expect(driver.read(12, 1).status).toBe(B.S_OK.value);
    const state = await ok<{ sectors: number; injected: unknown[] }>(
      a,
      'GET',
      `/api/v1/functions/${BLK}/block`,
    );
    expect(state).toMatchObject({ sectors: 2048, injected: [] });
  });
});
