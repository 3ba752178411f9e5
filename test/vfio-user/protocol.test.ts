/**
 * Every client-to-server message of qemu docs/interop/vfio-user.rst against a real socket, for
 * the guest view of a net VF, the VF as it is and the PF as it is. Expected values come from the
 * document, <linux/vfio.h> (typed into the client) and the reference's device tables (net:
 * transitional 1af4:1000, legacy block of 64 bytes, 16 KiB memory BAR, 3 queues + 1 vectors).
 */
import { statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { formatLspciDump } from '../../src/views/dump.js';
import { viewOf as guestView } from '../support/functions.js';
import { lspci } from '../support/functions.js';
import {
  CMD,
  ERROR,
  NO_REPLY,
  QEMU_CAPS,
  REPLY,
  TestClient,
  dv,
  getU64,
  le,
  leBytes,
  regionAccess,
  VFIO,
  type Reply,
} from '../support/vfio-user-client.js';
import { E, exported, type Exported } from '../support/vfio-user-fixture.js';

let fx: Exported | undefined;
afterEach(() => {
  fx?.cleanup();
  fx = undefined;
});

function u32s(p: Uint8Array): number[] {
  const v = dv(p);
  return Array.from({ length: p.length / 4 }, (_, i) => v.getUint32(i * 4, true));
}

function payload(...u32: number[]): Uint8Array {
  const p = new Uint8Array(u32.length * 4);
  u32.forEach((x, i) => dv(p).setUint32(i * 4, x, true));
  return p;
}

function expectError(r: Reply, errno: number): void {
  expect({ flags: r.flags, error: r.error, size: r.size }).toEqual({
    flags: REPLY | ERROR,
    error: errno,
    size: 16,
  });
}

async function regionInfo(
  c: TestClient,
  index: number,
): Promise<{ argsz: number; flags: number; index: number; capOffset: number; size: number; offset: number }> {
  const r = await c.ok(CMD.DEVICE_GET_REGION_INFO, payload(32, 0, index, 0, 0, 0, 0, 0));
  const v = dv(r.payload);
  return {
    argsz: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    index: v.getUint32(8, true),
    capOffset: v.getUint32(12, true),
    size: getU64(v, 16),
    offset: getU64(v, 24),
  };
}

describe('the socket', () => {
  it('is created with mode 0600 inside the socket directory', () => {
    fx = exported();
    const st = statSync(fx.server.socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('serves one client at a time: a second connection is closed at once', async () => {
    fx = exported();
    const first = await fx.ready();
    const second = fx.connect();
    await second.eof();
    expect(fx.server.status().refusedClients).toBe(1);
    expect(await first.regionRead(VFIO.REGION_CONFIG, 0, 2)).toEqual(leBytes(0x1af4, 2));
  });

  it('takes the next client once the first one has gone; device state stays', async () => {
    fx = exported();
    const first = await fx.ready();
    await first.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
    first.close();
    await new Promise((r) => setTimeout(r, 20));
    expect(fx.server.connected).toBe(false);
    const second = await fx.ready();
    expect(le(await second.regionRead(VFIO.REGION_CONFIG, 4, 2)) & 1).toBe(1);
  });
});

describe('VFIO_USER_VERSION', () => {
  it('answers QEMU 10.2 with version 0.0 and the subset of capabilities it proposed', async () => {
    fx = exported();
    const c = fx.connect();
    const r = await c.version(QEMU_CAPS, 0, 0);
    expect(r.flags).toBe(REPLY);
    const v = dv(r.payload);
    expect([v.getUint16(0, true), v.getUint16(2, true)]).toEqual([0, 0]);
    // The version data is NUL-terminated JSON filling the rest of the message (QEMU checks both).
    expect(r.payload[r.payload.length - 1]).toBe(0);
    const caps = JSON.parse(new TextDecoder().decode(r.payload.subarray(4, -1))) as {
      capabilities: Record<string, unknown>;
    };
    expect(caps.capabilities).toEqual({
      max_msg_fds: 16,
      max_data_xfer_size: 1048576,
      pgsizes: 4096,
      max_dma_maps: 1024,
      write_multiple: true,
    });
    // QEMU refuses a reply longer than its own request (proxy.c: reply larger than recv buffer).
    expect(r.size).toBeLessThanOrEqual(16 + 4 + JSON.stringify(QEMU_CAPS).length + 1);
  });

  it('answers 0.1 to a client proposing a later minor, and no capabilities to one that proposes none', async () => {
    fx = exported();
    const r = await fx.connect().version(null, 0, 7);
    const v = dv(r.payload);
    expect([v.getUint16(0, true), v.getUint16(2, true)]).toEqual([0, 1]);
    expect(JSON.parse(new TextDecoder().decode(r.payload.subarray(4, -1)))).toEqual({ capabilities: {} });
  });

  it('must come first, and only once', async () => {
    fx = exported();
    const c = fx.connect();
    expectError(await c.request(CMD.DEVICE_GET_INFO, payload(16, 0, 0, 0)), E.EINVAL);
    expect((await c.version()).flags).toBe(REPLY);
    expectError(await c.version(), E.EINVAL);
  });

  it('refuses malformed version data with EINVAL and accepts a good VERSION afterwards', async () => {
    fx = exported();
    const c = fx.connect();
    const bad = (json: string, nul = true): Uint8Array => {
      const text = new TextEncoder().encode(json);
      const p = new Uint8Array(4 + text.length + (nul ? 1 : 0));
      p.set(text, 4);
      return p;
    };
    for (const p of [
      bad('{"capabilities":{}}', false),
      bad('{not json'),
      bad('[1,2]'),
      bad('{"capabilities":{"max_msg_fds":"16"}}'),
      bad('{"capabilities":{"write_multiple":1}}'),
      bad('{"capabilities":{"pgsizes":512}}'),
      new Uint8Array(2),
    ]) {
      expectError(await c.request(CMD.VERSION, p), E.EINVAL);
    }
    expect((await c.version()).flags).toBe(REPLY);
  });

  it('closes the connection on a major version it does not speak, after an error reply', async () => {
    fx = exported();
    const c = fx.connect();
    expectError(await c.version(QEMU_CAPS, 1, 0), E.ENOTSUP);
    await c.eof();
  });
});

describe('device, region and IRQ information (guest view of a net VF)', () => {
  it('DEVICE_GET_INFO: a resettable PCI device with 9 regions and 5 IRQ indexes', async () => {
    fx = exported();
    const c = await fx.ready();
    const r = await c.ok(CMD.DEVICE_GET_INFO, payload(16, 0, 0, 0));
    expect(r.size).toBe(32);
    expect(u32s(r.payload)).toEqual([16, 0x1 | 0x2, 9, 5]);
    expectError(await c.request(CMD.DEVICE_GET_INFO, payload(8, 0, 0, 0)), E.EINVAL);
    expectError(await c.request(CMD.DEVICE_GET_INFO, payload(16, 0)), E.EINVAL);
  });

  it('DEVICE_GET_REGION_INFO: I/O BAR0 of the legacy length, BAR2 of 16 KiB, config of 4 KiB, nothing else', async () => {
    fx = exported();
    const c = await fx.ready();
    const rw = 0x1 | 0x2;
    const expected: Record<number, [number, number]> = { 0: [rw, 64], 2: [rw, 0x4000], 7: [rw, 4096] };
    for (let i = 0; i < 9; i++) {
      const info = await regionInfo(c, i);
      const [flags, size] = expected[i] ?? [0, 0];
      // No MMAP: every access has to reach the access entry point.
      expect(info, `region ${i}`).toEqual({ argsz: 32, flags, index: i, capOffset: 0, size, offset: 0 });
    }
    expectError(await c.request(CMD.DEVICE_GET_REGION_INFO, payload(32, 0, 9, 0, 0, 0, 0, 0)), E.EINVAL);
    expectError(await c.request(CMD.DEVICE_GET_REGION_INFO, payload(16, 0, 0, 0, 0, 0, 0, 0)), E.EINVAL);
  });

  it('BAR0 is an I/O BAR and BAR2 a 64-bit memory BAR in the config space the client reads', async () => {
    fx = exported();
    const c = await fx.ready();
    expect(le(await c.regionRead(VFIO.REGION_CONFIG, 0x10, 4)) & 1).toBe(1);
    expect(le(await c.regionRead(VFIO.REGION_CONFIG, 0x18, 4)) & 0x7).toBe(0x4);
  });

  it('DEVICE_GET_IRQ_INFO: INTx 1 (maskable, automasked), MSI 0, MSI-X 4, ERR 1, REQ 1', async () => {
    fx = exported();
    const c = await fx.ready();
    const eventfd = 0x1;
    const expected = [
      [eventfd | 0x2 | 0x4, 1],
      [eventfd | 0x8, 0],
      [eventfd | 0x8, 4],
      [eventfd | 0x8, 1],
      [eventfd | 0x8, 1],
    ];
    for (let i = 0; i < 5; i++) {
      const r = await c.ok(CMD.DEVICE_GET_IRQ_INFO, payload(16, 0, i, 0));
      expect(u32s(r.payload), `index ${i}`).toEqual([16, expected[i]![0], i, expected[i]![1]]);
    }
    expectError(await c.request(CMD.DEVICE_GET_IRQ_INFO, payload(16, 0, 5, 0)), E.EINVAL);
  });

  it('the whole config space read in one REGION_READ decodes in lspci as a transitional net device with an I/O BAR', async () => {
    fx = exported();
    const c = await fx.ready();
    const config = await c.regionRead(VFIO.REGION_CONFIG, 0, 4096);
    const out = lspci(
      formatLspciDump('0000:00:04.0', 'Ethernet controller: Red Hat, Inc. Virtio network device', config),
    ).stdout;
    expect(out).toMatch(/\[1af4:1000\]/);
    expect(out).toMatch(/Subsystem: .*\[1af4:0001\]/);
    expect(out).toMatch(/Region 0: I\/O ports at <unassigned> \[disabled\]/);
    expect(out).toMatch(/Region 2: Memory at <unassigned> \(64-bit, non-prefetchable\) \[disabled\]/);
    expect(out).toMatch(/MSI-X: Enable- Count=4/);
    expect(out).not.toMatch(/Vendor Specific Information: ID=000a/);
  });
});

describe('the function views', () => {
  it('the MMR VF as it is: SR-IOV IDs (0xffff), no INTx, the MMR locator', async () => {
    fx = exported({ view: 'function' });
    const c = await fx.ready();
    expect(le(await c.regionRead(VFIO.REGION_CONFIG, 0, 4))).toBe(0xffffffff);
    expect(u32s((await c.ok(CMD.DEVICE_GET_IRQ_INFO, payload(16, 0, 0, 0))).payload)[3]).toBe(0);
    expect((await regionInfo(c, 0)).size).toBe(0);
    expect((await regionInfo(c, 2)).size).toBe(0x4000);
    const config = await c.regionRead(VFIO.REGION_CONFIG, 0, 4096);
    const out = lspci(
      formatLspciDump('0000:01:00.1', 'Ethernet controller: Red Hat, Inc. Device 10f9', config),
    ).stdout;
    expect(out).toMatch(/Vendor Specific Information: ID=000a Rev=0 Len=01c/);
  });

  it('the PF as it is: 1af4:1041, BAR0 of 16 KiB (BAR1 its upper half, absent), INTx pin A', async () => {
    fx = exported({ view: 'pf' });
    const c = await fx.ready();
    expect(le(await c.regionRead(VFIO.REGION_CONFIG, 0, 4))).toBe(0x10411af4);
    expect((await regionInfo(c, 0)).size).toBe(0x4000);
    expect((await regionInfo(c, 1)).size).toBe(0);
    expect(u32s((await c.ok(CMD.DEVICE_GET_IRQ_INFO, payload(16, 0, 0, 0))).payload)[3]).toBe(1);
  });
});

describe('REGION_READ / REGION_WRITE', () => {
  /** Guest view with I/O decode on and the translator's trace ring recording accesses. */
  async function traced(policy: 'strict' | 'compat' = 'strict'): Promise<TestClient> {
    fx = exported({ pf: { policy } });
    const c = await fx.ready();
    await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
    guestView(fx.vf).enableTrace(64);
    return c;
  }

  const accesses = () =>
    guestView(fx!.vf)
      .trace!.list()
      .map((e) => [e.op, e.port, e.width]);

  it('1, 2 and 4 bytes on the I/O BAR are one access of that width each', async () => {
    const c = await traced();
    await c.regionRead(0, 0, 4);
    await c.regionRead(0, 12, 2);
    await c.regionWrite(0, 18, leBytes(1, 1));
    await c.regionRead(0, 18, 1);
    expect(accesses()).toEqual([
      ['read', 0, 4],
      ['read', 12, 2],
      ['write', 18, 1],
      ['read', 18, 1],
    ]);
    expect(le(await c.regionRead(0, 18, 1))).toBe(1);
  });

  it('other lengths are a block access: naturally aligned pieces in ascending order', async () => {
    const c = await traced('compat');
    await c.regionRead(0, 1, 7);
    expect(accesses()).toEqual([
      ['read', 1, 1],
      ['read', 2, 2],
      ['read', 4, 4],
    ]);
  });

  it('8 bytes on the memory BAR arrive whole; on the I/O BAR they are refused (no 8-byte port access)', async () => {
    const c = await traced();
    // common cfg queue_desc (offset 32, 8 bytes) of queue 0.
    await c.regionWrite(2, 32, leBytes(0x1234_5678_9a00, 8));
    expect(le(await c.regionRead(2, 32, 8))).toBe(0x1234_5678_9a00);
    expectError(await c.request(CMD.REGION_READ, regionAccess(0, 0, 8)), E.EINVAL);
  });

  it('a write with No_reply gets no reply and takes effect before a later read', async () => {
    const c = await traced();
    c.regionWrite(0, 18, leBytes(3, 1), true);
    expect(le(await c.regionRead(0, 18, 1))).toBe(3);
    expect(c.unsolicited).toEqual([]);
  });

  it('the read reply carries offset, region, count and the data; the write reply offset, region, count', async () => {
    const c = await traced();
    const r = await c.ok(CMD.REGION_READ, regionAccess(12, 0, 2));
    expect(r.size).toBe(16 + 16 + 2);
    expect(u32s(r.payload.subarray(0, 16))).toEqual([12, 0, 0, 2]);
    const w = (await c.regionWrite(0, 14, leBytes(0, 2)))!;
    expect(w.size).toBe(32);
    expect(u32s(w.payload)).toEqual([14, 0, 0, 2]);
  });

  it('refusals: absent region, beyond the region, count 0, size mismatch, strict width mismatch, I/O disabled', async () => {
    fx = exported();
    const c = await fx.ready();
    expectError(await c.request(CMD.REGION_READ, regionAccess(0, 0, 4)), E.EIO);
    await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
    expectError(await c.request(CMD.REGION_READ, regionAccess(0, 1, 4)), E.EINVAL);
    expectError(await c.request(CMD.REGION_READ, regionAccess(0, 9, 4)), E.EINVAL);
    expectError(await c.request(CMD.REGION_READ, regionAccess(62, 0, 4)), E.EINVAL);
    expectError(await c.request(CMD.REGION_READ, regionAccess(2 ** 53, 2, 4)), E.EINVAL);
    expectError(await c.request(CMD.REGION_READ, regionAccess(0, 0, 0)), E.EINVAL);
    expectError(await c.request(CMD.REGION_READ, regionAccess(0, 0, 2)), E.EINVAL);
    const p = new Uint8Array(16 + 3);
    p.set(regionAccess(0, 0, 4));
    expectError(await c.request(CMD.REGION_WRITE, p), E.EINVAL);
    expectError(await c.request(CMD.REGION_READ, new Uint8Array(12)), E.EINVAL);
    expect(fx.server.status().session?.lastRefusal).toMatch(
      /REGION_READ \(9\) id \d+: payload of 12 bytes: VFIO_USER_REGION_READ \(9\) takes exactly 16/,
    );
  });

  it('refused accesses are logged with the register, offset and width', async () => {
    fx = exported();
    const c = await fx.ready();
    await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
    expectError(await c.request(CMD.REGION_READ, regionAccess(0, 0, 2)), E.EINVAL);
    expect(fx.logs.join('\n')).toMatch(/HOST_FEATURES.*offset 0x0 width 2|offset 0x0 width 2.*HOST_FEATURES/);
  });

  it('REGION_WRITE_MULTI: only when negotiated; the writes run in order, the reply counts them', async () => {
    fx = exported();
    const none = fx.connect();
    await none.version({ capabilities: { write_multiple: false } });
    const entry = (offset: number, region: number, count: number, value: number): Uint8Array => {
      const e = new Uint8Array(24);
      e.set(regionAccess(offset, region, count), 0);
      e.set(leBytes(value, count), 16);
      return e;
    };
    const multi = (...entries: Uint8Array[]): Uint8Array => {
      const p = new Uint8Array(8 + 24 * entries.length);
      dv(p).setUint32(0, entries.length, true);
      entries.forEach((e, i) => p.set(e, 8 + 24 * i));
      return p;
    };
    expectError(await none.request(CMD.REGION_WRITE_MULTI, multi(entry(4, 7, 2, 1))), E.ENOTSUP);
    none.close();
    await new Promise((r) => setTimeout(r, 20));
    const c = await fx.ready();
    const r = await c.ok(
      CMD.REGION_WRITE_MULTI,
      multi(entry(4, 7, 2, 1), entry(18, 0, 1, 1), entry(18, 0, 1, 3)),
    );
    expect(getU64(dv(r.payload), 0)).toBe(3);
    expect(le(await c.regionRead(0, 18, 1))).toBe(3);
    // A refused write stops the run: the reply says how many went through.
    const stopped = await c.ok(
      CMD.REGION_WRITE_MULTI,
      multi(entry(18, 0, 1, 0), entry(0, 0, 2, 0), entry(18, 0, 1, 1)),
    );
    expect(getU64(dv(stopped.payload), 0)).toBe(1);
    expect(le(await c.regionRead(0, 18, 1))).toBe(0);
    expectError(await c.request(CMD.REGION_WRITE_MULTI, multi(entry(18, 0, 1, 0)).subarray(0, 20)), E.EINVAL);
    c.raw(TestClient.message(99, CMD.REGION_WRITE_MULTI, multi(entry(18, 0, 1, 5)), NO_REPLY));
    expect(le(await c.regionRead(0, 18, 1))).toBe(5);
  });
});

describe('other commands', () => {
  it('DEVICE_RESET: the function and the guest header go back to reset', async () => {
    fx = exported();
    const c = await fx.ready();
    await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
    await c.regionWrite(0, 18, leBytes(3, 1));
    const r = await c.ok(CMD.DEVICE_RESET);
    expect(r.size).toBe(16);
    expect(le(await c.regionRead(VFIO.REGION_CONFIG, 4, 2)) & 1).toBe(0);
    await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
    expect(le(await c.regionRead(0, 18, 1))).toBe(0);
    expectError(await c.request(CMD.DEVICE_RESET, new Uint8Array(4)), E.EINVAL);
  });

  it('unknown commands get ENOSYS, migration ENOTSUP, region I/O fds ENOTSUP, DMA_READ/WRITE from a client EINVAL', async () => {
    fx = exported();
    const c = await fx.ready();
    expectError(await c.request(99), E.ENOSYS);
    expectError(await c.request(CMD.DEVICE_FEATURE, payload(8, 0x10001)), E.ENOTSUP);
    expectError(await c.request(CMD.DEVICE_GET_REGION_IO_FDS, payload(16, 0, 0, 0)), E.ENOTSUP);
    expectError(await c.request(CMD.DMA_READ, new Uint8Array(16)), E.EINVAL);
    expectError(await c.request(CMD.DMA_WRITE, new Uint8Array(20)), E.EINVAL);
  });

  it('a message of another type than command or reply gets EINVAL; a stray reply is dropped', async () => {
    fx = exported();
    const c = await fx.ready();
    c.raw(TestClient.message(500, CMD.DEVICE_GET_INFO, payload(16, 0, 0, 0), 0x1));
    expectError(await c.request(CMD.DEVICE_GET_INFO, payload(16, 0, 0, 0), { flags: 0x3 }), E.EINVAL);
    expect((await c.ok(CMD.DEVICE_GET_INFO, payload(16, 0, 0, 0))).size).toBe(32);
  });
});
