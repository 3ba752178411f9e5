/**
 * DMA_MAP / DMA_UNMAP and the device's DmaSpace behind them: regions shared with a memfd (the
 * server mmaps it; both sides see each other's writes), and regions reached only by the server's
 * DMA_READ/DMA_WRITE messages, answered by a client thread from its own memory, in QEMU 10.2's
 * layout and in the document's.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DmaFault } from '../../src/dma/space.js';
import { native } from '../../src/vfio-user/native.js';
import { CMD, ERROR, REPLY, VFIO, dv, regionAccess, type Reply } from '../support/vfio-user-client.js';
import { E, exported, openFds, until, type Exported } from '../support/vfio-user-fixture.js';

let fx: Exported | undefined;
const cleanups: Array<() => void> = [];
afterEach(() => {
  fx?.cleanup();
  fx = undefined;
  for (const f of cleanups.splice(0)) f();
});

const RW = VFIO.MAP_READ | VFIO.MAP_WRITE;
const MiB = 1 << 20;

function ok(r: Reply): void {
  expect({ flags: r.flags, error: r.error }).toEqual({ flags: REPLY, error: 0 });
}

function refused(r: Reply, errno: number): void {
  expect({ flags: r.flags, error: r.error }).toEqual({ flags: REPLY | ERROR, error: errno });
}

/** A memfd of `size` bytes and the client's own shared view of it. */
function guestMemory(size: number): { fd: number; bytes: Uint8Array } {
  const fd = native.memfd('guest-ram', size);
  const [buffer, handle] = native.mmap(fd, 0, size, true);
  cleanups.push(() => {
    native.munmap(handle, buffer);
    native.close(fd);
  });
  return { fd, bytes: new Uint8Array(buffer) };
}

function dma(): NonNullable<Exported['device']['dma']> {
  const space = fx!.device.dma;
  if (!space) throw new Error('no client attached');
  return space;
}

function fault(f: () => unknown): DmaFault {
  try {
    f();
  } catch (e) {
    if (e instanceof DmaFault) return e;
    throw e;
  }
  throw new Error('expected a DmaFault');
}

describe('regions shared with a file descriptor', () => {
  it('the device reads what the client wrote and the client sees what the device wrote', async () => {
    fx = exported();
    const c = await fx.ready();
    const ram = guestMemory(2 * MiB);
    ok(await c.dmaMap(0x4000_0000, 2 * MiB, RW, ram.fd));
    ram.bytes.set([1, 2, 3, 4, 5, 6, 7, 8], 0x1000);
    const into = new Uint8Array(8);
    dma().read(0x4000_1000, into, 0, 8);
    expect([...into]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(dma().readU16(0x4000_1000)).toBe(0x0201);
    expect(dma().readU32(0x4000_1004)).toBe(0x08070605);
    // 0x0807060504030201 is beyond 2^53: the DmaSpace contract makes that a fault, not a rounded number.
    expect(fault(() => dma().readU64(0x4000_1000)).reason).toBe('address');
    ram.bytes[0x1007] = 0;
    expect(dma().readU64(0x4000_1000)).toBe(Number(0x0007060504030201n));
    dma().writeU64(0x4000_2000, 2 ** 40 + 7);
    dma().writeU16(0x4000_2008, 0xbeef);
    dma().write(0x4000_3000, new Uint8Array([9, 9, 9]), 1, 2);
    const v = dv(ram.bytes);
    expect(v.getUint32(0x2000, true)).toBe(7);
    expect(v.getUint32(0x2004, true)).toBe(256);
    expect(v.getUint16(0x2008, true)).toBe(0xbeef);
    expect([...ram.bytes.subarray(0x3000, 0x3003)]).toEqual([9, 9, 0]);
  });

  it('a file offset is honoured, and an access may span two adjacent maps', async () => {
    fx = exported();
    const c = await fx.ready();
    const ram = guestMemory(4 * 4096);
    ram.bytes.fill(0xaa, 0, 4096);
    ram.bytes.fill(0xbb, 3 * 4096, 4 * 4096);
    ok(await c.dmaMap(0x10000, 4096, RW, ram.fd, 3 * 4096));
    ok(await c.dmaMap(0x11000, 4096, RW, ram.fd, 0));
    const into = new Uint8Array(4);
    dma().read(0x10ffe, into, 0, 4);
    expect([...into]).toEqual([0xbb, 0xbb, 0xaa, 0xaa]);
    expect(dma().readU32(0x10ffe)).toBe(0xaaaabbbb);
  });

  it('faults outside every map and on writes to a read-only map, naming the address and the maps', async () => {
    fx = exported();
    const c = await fx.ready();
    const ram = guestMemory(8192);
    ok(await c.dmaMap(0x20000, 4096, VFIO.MAP_READ, ram.fd));
    expect(fault(() => dma().readU32(0x1ffff)).message).toMatch(
      /DMA read of 4 bytes at 0x1ffff: 0x1ffff is in no DMA map \(maps: 0x20000\.\.0x20fff \(mapped, read-only\)\)/,
    );
    expect(fault(() => dma().read(0x20ffe, new Uint8Array(4), 0, 4)).message).toMatch(
      /0x21000 is in no DMA map/,
    );
    expect(fault(() => dma().writeU32(0x20000, 1)).message).toMatch(/without the writeable flag/);
    expect(fault(() => dma().readU32(2 ** 53)).reason).toBe('address');
    expect(dma().readU32(0x20000)).toBe(0);
  });

  it('DMA_UNMAP takes exactly a map (the reply echoes it); afterwards its addresses fault and its mapping is gone', async () => {
    fx = exported();
    const c = await fx.ready();
    const ram = guestMemory(8192);
    ok(await c.dmaMap(0x30000, 8192, RW, ram.fd));
    refused(await c.dmaUnmap(0x30000, 4096), E.ENOENT);
    const r = await c.dmaUnmap(0x30000, 8192);
    ok(r);
    expect(r.size).toBe(16 + 24);
    expect(dv(r.payload).getUint32(8, true)).toBe(0x30000);
    expect(fault(() => dma().readU32(0x30000)).reason).toBe('unmapped');
    ok(await c.dmaMap(0x30000, 4096, RW));
    ok(await c.dmaMap(0x40000, 4096, RW));
    ok(await c.dmaUnmap(0, 0, VFIO.UNMAP_ALL));
    expect(fx.server.status().session?.dmaMaps).toBe(0);
    refused(await c.dmaUnmap(0x1000, 0x1000, VFIO.UNMAP_ALL), E.EINVAL);
    refused(await c.dmaUnmap(0, 0, 0x1), E.ENOTSUP);
  });

  it('refusals: overlap (EEXIST), alignment, empty, flags, two fds, an fd that cannot be mapped, the map limit (ENOSPC)', async () => {
    fx = exported();
    const c = fx.connect();
    await c.version({ capabilities: { max_dma_maps: 2, max_msg_fds: 16 } });
    const ram = guestMemory(8192);
    ok(await c.dmaMap(0x10000, 8192, RW, ram.fd));
    refused(await c.dmaMap(0x11000, 8192, RW), E.EEXIST);
    refused(await c.dmaMap(0xf000, 8192, RW), E.EEXIST);
    refused(await c.dmaMap(0x20800, 4096, RW), E.EINVAL);
    refused(await c.dmaMap(0x20000, 100, RW), E.EINVAL);
    refused(await c.dmaMap(0x20000, 0, RW), E.EINVAL);
    refused(await c.dmaMap(0x20000, 4096, 0), E.EINVAL);
    refused(await c.dmaMap(0x20000, 4096, 0x4 | RW), E.EINVAL);
    refused(await c.dmaMap(0x20000, 4096, RW, undefined, 4096), E.EINVAL);
    refused(await c.dmaMap(2 ** 53 - 4096, 8192, RW), E.EINVAL);
    const efd = native.eventfd(0, true);
    cleanups.push(() => native.close(efd));
    refused(await c.dmaMap(0x20000, 4096, RW, efd), E.ENODEV);
    const p = new Uint8Array(32);
    dv(p).setUint32(0, 32, true);
    dv(p).setUint32(4, RW, true);
    dv(p).setUint32(16, 0x20000, true);
    dv(p).setUint32(24, 4096, true);
    refused(await c.request(CMD.DMA_MAP, p, { fds: [ram.fd, ram.fd] }), E.EINVAL);
    ok(await c.dmaMap(0x20000, 4096, RW));
    refused(await c.dmaMap(0x30000, 4096, RW), E.ENOSPC);
    expect(fx.server.status().session?.dmaMaps).toBe(2);
  });

  it('disconnecting unmaps everything and closes every received descriptor', async () => {
    fx = exported();
    const before = openFds();
    const c = await fx.ready();
    const ram = guestMemory(MiB);
    const afterSetup = openFds();
    for (let i = 0; i < 8; i++) ok(await c.dmaMap(0x100000 * (i + 1), MiB, RW, ram.fd));
    // The server closes each descriptor once it has mapped it.
    expect(openFds()).toBe(afterSetup);
    await c.closeAndWait();
    await until(() => !fx!.server.connected);
    expect(openFds() - before).toBe(1);
    expect(fx.device.dma).toBeUndefined();
  });
});

describe('regions reached by DMA_READ / DMA_WRITE messages', () => {
  for (const layout of ['qemu', 'spec'] as const) {
    it(`${layout} layout: reads and writes round-trip through the client, cut at max_data_xfer_size`, async () => {
      fx = exported({ dmaLayout: layout });
      const memory = new SharedArrayBuffer(64 * 1024);
      const mem = new Uint8Array(memory);
      for (let i = 0; i < mem.length; i++) mem[i] = (i * 7) & 0xff;
      const c = fx.connect({ memory, base: 0x8000_0000, layout });
      const v = await c.version({ capabilities: { max_data_xfer_size: 4096, max_msg_fds: 16 } });
      expect(v.flags).toBe(REPLY);
      ok(await c.dmaMap(0x8000_0000, memory.byteLength, RW));
      const into = new Uint8Array(10000);
      dma().read(0x8000_0010, into, 0, 10000);
      expect([...into.subarray(0, 4)]).toEqual([...mem.subarray(0x10, 0x14)]);
      expect(into).toEqual(mem.subarray(0x10, 0x10 + 10000));
      expect(dma().readU32(0x8000_0100)).toBe(dv(mem).getUint32(0x100, true));
      dma().write(0x8000_2000, new Uint8Array(5000).fill(0x5a), 0, 5000);
      dma().writeU16(0x8000_0002, 0x1234);
      expect(mem[0x2000]).toBe(0x5a);
      expect(mem[0x2000 + 4999]).toBe(0x5a);
      expect(mem[0x2000 + 5000]).toBe((0x3388 * 7) & 0xff);
      expect(dv(mem).getUint16(2, true)).toBe(0x1234);
      await until(() => c.dmaRequests.length === 7);
      expect(c.dmaRequests.map((r) => [r.command, r.count])).toEqual([
        [CMD.DMA_READ, 4096],
        [CMD.DMA_READ, 4096],
        [CMD.DMA_READ, 1808],
        [CMD.DMA_READ, 4],
        [CMD.DMA_WRITE, 4096],
        [CMD.DMA_WRITE, 904],
        [CMD.DMA_WRITE, 2],
      ]);
      await c.closeAndWait();
    });
  }

  it('a client refusal of a DMA message is a DmaFault; commands arriving during the wait are answered afterwards, in order', async () => {
    fx = exported();
    const memory = new SharedArrayBuffer(4096);
    const c = fx.connect({ memory, base: 0x10000, layout: 'qemu' });
    expect((await c.version()).flags).toBe(REPLY);
    ok(await c.dmaMap(0x10000, 8192, RW));
    // 0x11000 is mapped on the server's side but beyond the client's memory: it answers EFAULT.
    expect(fault(() => dma().readU32(0x11000)).message).toMatch(
      /DMA_READ of 4 bytes at 0x11000: the client refused it \(EFAULT\)/,
    );
    const pending = c.request(CMD.REGION_READ, regionAccess(0, 7, 2));
    const second = c.request(CMD.REGION_READ, regionAccess(2, 7, 2));
    expect(dv((await pending).payload).getUint16(16, true)).toBe(0x1af4);
    expect(dv((await second).payload).getUint16(16, true)).toBe(0x1000);
    await c.closeAndWait();
  });

  it('a client that never answers: the round trip times out, the device gets a DmaFault and the connection closes', async () => {
    fx = exported({ dmaTimeoutMs: 150 });
    const memory = new SharedArrayBuffer(4096);
    const c = fx.connect({ memory, base: 0, layout: 'qemu', answer: false });
    expect((await c.version()).flags).toBe(REPLY);
    ok(await c.dmaMap(0, 4096, RW));
    const started = Date.now();
    expect(fault(() => dma().readU32(0x10)).message).toMatch(
      /DMA_READ of 4 bytes at 0x10: no reply within the time-out/,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await c.eof();
    expect(fx.server.connected).toBe(false);
    await c.closeAndWait();
  });
});

describe('the DMA table itself', () => {
  it('keeps regions sorted whatever order they are mapped in, and finds each byte in the right one', async () => {
    fx = exported();
    const c = await fx.ready();
    const ram = guestMemory(16 * 4096);
    for (let i = 0; i < 16; i++) ram.bytes[i * 4096] = i;
    const order = [9, 2, 14, 0, 7, 11, 4, 15, 1, 12, 5, 8, 3, 13, 10, 6];
    for (const i of order) ok(await c.dmaMap(0x100000 + i * 0x10000, 4096, RW, ram.fd, i * 4096));
    expect(fx.server.status().session?.dmaMaps).toBe(16);
    for (let i = 0; i < 16; i++) expect(dma().readU16(0x100000 + i * 0x10000)).toBe(i);
    expect(fault(() => dma().readU16(0x100000 + 0x1000)).reason).toBe('unmapped');
  });
});

describe('message sequencing (unrelated to DMA)', () => {
  it('a client may pipeline commands: replies come back in order', async () => {
    fx = exported();
    const c = await fx.ready();
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        c.request(CMD.REGION_READ, regionAccess(i % 2 === 0 ? 0 : 2, 7, 2)),
      ),
    );
    expect(replies.map((r) => dv(r.payload).getUint16(16, true))).toEqual(
      Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? 0x1af4 : 0x1000)),
    );
  });
});
