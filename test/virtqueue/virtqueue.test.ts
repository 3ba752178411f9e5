/**
 * Split and packed virtqueues driven by the driver-side ring builder: chains, gather/scatter,
 * used entries, indirect tables, event suppression in both directions, IN_ORDER, NOTIFY_ON_EMPTY,
 * state across "notifies", and every broken-chain rule reported with queue, descriptor and rule.
 */
import { describe, expect, it } from 'vitest';
import { SparseRam } from '../../src/dma/sparse-ram.js';
import { DmaArena } from '../../src/driver-sim/memory.js';
import {
  PackedRingDriver,
  SplitRingDriver,
  type DriverBuffer,
  type DriverRing,
} from '../../src/driver-sim/rings.js';
import {
  createQueue,
  legacyLayout,
  ringFeatures,
  VirtqueueError,
  type ChainRule,
  type RingAddresses,
  type RingFeatures,
  type RingFormat,
  type Virtqueue,
} from '../../src/virtqueue/index.js';

const NONE: RingFeatures = { indirect: false, eventIdx: false, inOrder: false, notifyOnEmpty: false };
const ALL: RingFeatures = { indirect: true, eventIdx: true, inOrder: false, notifyOnEmpty: false };

interface Rig {
  ram: SparseRam;
  arena: DmaArena;
  driver: DriverRing;
  queue: Virtqueue;
  addresses: RingAddresses;
  reopen(): Virtqueue;
}

function rig(
  format: RingFormat,
  features: RingFeatures = ALL,
  size = 8,
  index = 3,
  ramSize = 0x100_0000,
): Rig {
  const ram = new SparseRam({ size: ramSize });
  const arena = new DmaArena(0x10000, 0xf0_0000);
  const addresses =
    format === 'packed'
      ? { desc: arena.alloc(16 * size, 16), driver: arena.alloc(4, 4), device: arena.alloc(4, 4) }
      : {
          desc: arena.alloc(16 * size, 16),
          driver: arena.alloc(6 + 2 * size, 2),
          device: arena.alloc(6 + 8 * size, 4),
        };
  const driver =
    format === 'packed'
      ? new PackedRingDriver(ram, size, addresses, features)
      : new SplitRingDriver(ram, size, addresses, features);
  const setup = { index, size, format, addresses, features };
  const r: Rig = {
    ram,
    arena,
    driver,
    addresses,
    queue: createQueue(ram, setup),
    reopen() {
      r.queue = createQueue(ram, setup, r.queue.getState());
      return r.queue;
    },
  };
  return r;
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

function out(r: Rig, data: Uint8Array): DriverBuffer {
  const address = r.arena.alloc(data.length, 1);
  r.ram.write(address, data, 0, data.length);
  return { address, length: data.length, writable: false };
}

function into(r: Rig, length: number): DriverBuffer {
  return { address: r.arena.alloc(length, 1), length, writable: true };
}

function readBack(r: Rig, b: DriverBuffer, length = b.length): Uint8Array {
  const got = new Uint8Array(length);
  r.ram.read(b.address, got, 0, length);
  return got;
}

function broken(r: Rig): VirtqueueError {
  try {
    r.queue.pop();
  } catch (e) {
    expect(e).toBeInstanceOf(VirtqueueError);
    return e as VirtqueueError;
  }
  throw new Error('expected a VirtqueueError');
}

function expectRule(
  r: Rig,
  rule: ChainRule,
  descriptor: number | null,
  table: 'ring' | 'indirect' = 'ring',
): VirtqueueError {
  const e = broken(r);
  expect(e.rule).toBe(rule);
  expect(e.queue).toBe(r.queue.index);
  expect(e.descriptor).toBe(descriptor);
  expect(e.table).toBe(table);
  expect(e.message).toContain(`queue ${r.queue.index}`);
  expect(r.queue.broken).toBe(e);
  // A broken queue stops: nothing more comes out of it, and the state says why.
  expect(r.queue.pop()).toBeUndefined();
  expect(r.queue.getState().error?.rule).toBe(rule);
  expect(r.queue.getState().errors).toBe(1);
  return e;
}

for (const format of ['split', 'packed'] as const) {
  describe(`${format} virtqueue`, () => {
    it('gathers readable bytes across buffers and scatters into writable ones', () => {
      const r = rig(format);
      const a = bytes(100, 1);
      const b = bytes(50, 2);
      const w1 = into(r, 30);
      const w2 = into(r, 200);
      const id = r.driver.add([out(r, a), out(r, b), w1, w2]);
      expect(r.driver.kickNeeded()).toBe(true);
      const chain = r.queue.pop()!;
      expect(chain.head).toBe(id);
      expect(chain.readable).toBe(150);
      expect(chain.writable).toBe(230);
      expect([...chain.gather()]).toEqual([...a, ...b]);
      expect([...chain.gather(95, 10)]).toEqual([...a.subarray(95), ...b.subarray(0, 5)]);
      expect(chain.readUint(98, 4)).toBe(Buffer.from([...a, ...b]).readUInt32LE(98));
      const payload = bytes(60, 9);
      chain.scatter(0, payload, 0, 60);
      expect(chain.written).toBe(60);
      expect(r.queue.pop()).toBeUndefined();
      r.queue.push(chain);
      expect(r.queue.needsInterrupt()).toBe(true);
      expect(r.driver.takeUsed()).toEqual([{ id, length: 60 }]);
      expect([...readBack(r, w1)]).toEqual([...payload.subarray(0, 30)]);
      expect([...readBack(r, w2, 30)]).toEqual([...payload.subarray(30)]);
      expect(() => chain.scatter(200, payload, 0, 31)).toThrow(RangeError);
      expect(() => chain.copyTo(140, new Uint8Array(20), 0, 11)).toThrow(RangeError);
    });

    it('indirect tables', () => {
      const r = rig(format);
      const table = r.arena.alloc(64, 16);
      const w = into(r, 8);
      const id = r.driver.add([out(r, bytes(10, 3)), out(r, bytes(5, 4)), w], { indirect: table });
      const chain = r.queue.pop()!;
      expect(chain.head).toBe(id);
      expect(chain.buffers().map((b) => [b.indirect, b.descriptor, b.writable])).toEqual([
        [true, 0, false],
        [true, 1, false],
        [true, 2, true],
      ]);
      chain.writeUint(0, 4, 0xa1b2c3d4);
      r.queue.push(chain);
      r.queue.flush();
      expect(r.driver.takeUsed()).toEqual([{ id, length: 4 }]);
      expect(r.ram.readU32(w.address)).toBe(0xa1b2c3d4);
    });

    it('wraps around the ring many times and keeps its state across queue objects', () => {
      const r = rig(format, ALL, 4);
      for (let round = 0; round < 50; round++) {
        const ids = [r.driver.add([out(r, bytes(4, round)), into(r, 4)]), r.driver.add([into(r, 8)])];
        const got: number[] = [];
        for (let chain = r.queue.pop(); chain; chain = r.queue.pop()) {
          got.push(chain.head);
          chain.fill(0, chain.writable, round);
          r.queue.push(chain);
        }
        expect(got).toEqual(ids);
        r.queue.needsInterrupt();
        expect(r.driver.takeUsed().map((u) => u.length)).toEqual([4, 8]);
        if (round % 7 === 0) r.reopen();
      }
      expect(r.queue.getState().requests).toBe(100);
    });

    it('unpop gives chains back in order', () => {
      const r = rig(format);
      const ids = [r.driver.add([into(r, 4)]), r.driver.add([into(r, 4)])];
      const a = r.queue.pop()!;
      const b = r.queue.pop()!;
      r.queue.unpop([a, b]);
      expect(r.queue.pop()!.head).toBe(ids[0]);
      expect(r.queue.pop()!.head).toBe(ids[1]);
    });

    it('interrupt suppression from the driver side', () => {
      const r = rig(format, NONE);
      r.driver.suppressInterrupts(true);
      r.driver.add([into(r, 4)]);
      r.queue.push(r.queue.pop()!);
      expect(r.queue.needsInterrupt()).toBe(false);
      r.driver.suppressInterrupts(false);
      r.driver.add([into(r, 4)]);
      r.queue.push(r.queue.pop()!);
      expect(r.queue.needsInterrupt()).toBe(true);
      expect(r.queue.needsInterrupt()).toBe(false);
    });

    it('EVENT_IDX: an interrupt only when the used position crosses the driver event', () => {
      const r = rig(format, ALL, 8);
      // The first decision always interrupts (there is no earlier one to compare with).
      r.driver.add([into(r, 4)]);
      r.queue.push(r.queue.pop()!);
      expect(r.queue.needsInterrupt()).toBe(true);
      r.driver.takeUsed();
      for (let round = 0; round < 5; round++) {
        for (let k = 0; k < 3; k++) r.driver.add([into(r, 4)]);
        r.driver.interruptAfter(3);
        r.queue.push(r.queue.pop()!);
        expect(r.queue.needsInterrupt()).toBe(false);
        r.queue.push(r.queue.pop()!);
        expect(r.queue.needsInterrupt()).toBe(false);
        r.queue.push(r.queue.pop()!);
        expect(r.queue.needsInterrupt()).toBe(true);
        expect(r.driver.takeUsed()).toHaveLength(3);
      }
    });

    it('a chain with a readable buffer after a writable one is refused', () => {
      const r = rig(format);
      r.driver.add([into(r, 4), out(r, bytes(4, 1))]);
      const e = expectRule(r, 'order', 1);
      expect(e.message).toContain('device-readable descriptor after a device-writable one');
    });

    it('an indirect table of a bad size is refused', () => {
      const r = rig(format);
      r.driver.add([out(r, bytes(4, 1))], { indirect: r.arena.alloc(32, 16) });
      if (r.driver instanceof SplitRingDriver) r.driver.writeRaw(0, 0x20000, 24, 4, 0);
      else
        (r.driver as PackedRingDriver).writeRaw(
          0,
          0x20000,
          24,
          0,
          4 | (r.driver as PackedRingDriver).availableBits,
        );
      expectRule(r, 'indirect-size', 0);
    });

    it('INDIRECT without the feature is refused', () => {
      const r = rig(format, NONE);
      r.driver.add([out(r, bytes(4, 1))], { indirect: r.arena.alloc(16, 16) });
      expectRule(r, 'indirect-feature', 0);
    });

    it('a buffer outside DMA memory is refused before the device sees any byte', () => {
      const r = rig(format);
      r.driver.add([out(r, bytes(4, 1)), { address: 0xfffff0, length: 32, writable: true }]);
      expectRule(r, 'dma', 1);
    });

    it('a buffer address at or above 2^53 is refused', () => {
      const r = rig(format);
      r.driver.add([into(r, 4)]);
      r.ram.writeU32(r.addresses.desc + 4, 0x0020_0000);
      const e = expectRule(r, 'dma', 0);
      expect(e.message).toContain('2^53');
    });

    it('a ring outside DMA memory is refused', () => {
      const ram = new SparseRam({ size: 0x10000 });
      const setup = {
        index: 1,
        size: 8,
        format,
        addresses: { desc: 0xfff0, driver: 0x8000, device: 0x9000 },
        features: ALL,
      };
      const q = createQueue(ram, setup);
      const r = { queue: q } as Rig;
      if (format === 'split') {
        ram.writeU16(0x8004, 1);
        ram.writeU16(0x8002, 1);
        expectRule(r, 'dma', 1);
      } else {
        expect(() => q.pop()).not.toThrow();
        const e = (() => {
          const q2 = createQueue(ram, { ...setup, addresses: { ...setup.addresses, desc: 0x10000 } });
          try {
            q2.pop();
          } catch (err) {
            return err as VirtqueueError;
          }
          return undefined;
        })();
        expect(e?.rule).toBe('dma');
      }
    });

    it('misaligned parts are refused when the queue is created', () => {
      const ram = new SparseRam();
      const make = (addresses: RingAddresses) => () =>
        createQueue(ram, { index: 2, size: 8, format, addresses, features: ALL });
      expect(make({ desc: 0x1008, driver: 0x2000, device: 0x3000 })).toThrow(
        /descriptor (table|ring) at 0x1008 is not 16-byte aligned/,
      );
      expect(make({ desc: 0x1000, driver: 0x2001, device: 0x3000 })).toThrow(VirtqueueError);
      expect(make({ desc: 0x1000, driver: 0x2000, device: 0x3002 })).toThrow(/not 4-byte aligned/);
    });
  });
}

describe('split-only rules', () => {
  function raw(features: RingFeatures = ALL, size = 8) {
    const r = rig('split', features, size);
    return { r, d: r.driver as SplitRingDriver };
  }

  it('a loop in the descriptor table', () => {
    const { r, d } = raw();
    d.writeRaw(0, 0x20000, 4, 1, 1);
    d.writeRaw(1, 0x20000, 4, 1, 2);
    d.writeRaw(2, 0x20000, 4, 1, 0);
    d.putAvail(0);
    const e = expectRule(r, 'loop', 2);
    expect(e.message).toContain('chain from descriptor 0');
  });

  it('a loop inside an indirect table', () => {
    const { r, d } = raw();
    const t = r.arena.alloc(32, 16);
    r.ram.writeU64(t, 0x20000);
    r.ram.writeU32(t + 8, 4);
    r.ram.writeU16(t + 12, 1);
    r.ram.writeU16(t + 14, 1);
    r.ram.writeU64(t + 16, 0x20000);
    r.ram.writeU32(t + 24, 4);
    r.ram.writeU16(t + 28, 1);
    r.ram.writeU16(t + 30, 0);
    d.writeRaw(5, t, 32, 4, 0);
    d.putAvail(5);
    expectRule(r, 'loop', 0, 'indirect');
  });

  it('an indirect table longer than the queue size', () => {
    const { r, d } = raw(ALL, 4);
    const t = r.arena.alloc(16 * 6, 16);
    for (let i = 0; i < 6; i++) {
      r.ram.writeU64(t + 16 * i, 0x20000);
      r.ram.writeU32(t + 16 * i + 8, 4);
      r.ram.writeU16(t + 16 * i + 12, i < 5 ? 1 : 0);
      r.ram.writeU16(t + 16 * i + 14, i + 1);
    }
    d.writeRaw(0, t, 96, 4, 0);
    d.putAvail(0);
    expectRule(r, 'chain-length', 4, 'indirect');
  });

  it('indirect inside indirect, and INDIRECT with NEXT', () => {
    const a = raw();
    const t = a.r.arena.alloc(16, 16);
    a.r.ram.writeU64(t, 0x30000);
    a.r.ram.writeU32(t + 8, 16);
    a.r.ram.writeU16(t + 12, 4);
    a.d.writeRaw(1, t, 16, 4, 0);
    a.d.putAvail(1);
    expectRule(a.r, 'indirect-nested', 0, 'indirect');
    const b = raw();
    b.d.writeRaw(1, t, 16, 4 | 1, 2);
    b.d.putAvail(1);
    expectRule(b.r, 'indirect-next', 1);
  });

  it('direct descriptors followed by one indirect descriptor are one chain', () => {
    const { r, d } = raw();
    const t = r.arena.alloc(16, 16);
    r.ram.writeU64(t, 0x30000);
    r.ram.writeU32(t + 8, 8);
    r.ram.writeU16(t + 12, 2);
    d.writeRaw(0, 0x20000, 4, 1, 3);
    d.writeRaw(3, t, 16, 4, 0);
    d.putAvail(0);
    const chain = r.queue.pop()!;
    expect(chain.buffers().map((b) => [b.address, b.writable, b.indirect])).toEqual([
      [0x20000, false, false],
      [0x30000, true, true],
    ]);
  });

  it('head and next outside the table, avail index jumping ahead', () => {
    const a = raw();
    a.d.putAvail(8);
    expectRule(a.r, 'head-range', 8);
    const b = raw();
    b.d.writeRaw(2, 0x20000, 4, 1, 9);
    b.d.putAvail(2);
    expectRule(b.r, 'next-range', 2);
    const c = raw();
    c.d.setAvailIdx(9);
    const e = expectRule(c.r, 'avail-index', null);
    expect(e.message).toContain('9 entries ahead');
    expect(c.r.queue.hasAvailable()).toBe(false);
  });

  it('a chain of more than 2^32 bytes', () => {
    const r = rig('split', ALL, 8, 3, 2 ** 40);
    const d = r.driver as SplitRingDriver;
    d.writeRaw(0, 0x1_0000_0000, 0xffff_ffff, 1, 1);
    d.writeRaw(1, 0x2_0000_0000, 2, 0, 0);
    d.putAvail(0);
    expectRule(r, 'chain-bytes', 1);
  });

  it('EVENT_IDX: the device writes avail_event so the driver knows when to kick', () => {
    const { r, d } = raw(ALL, 8);
    d.add([into(r, 4)]);
    expect(d.kickNeeded()).toBe(true);
    r.queue.push(r.queue.pop()!);
    expect(r.queue.pop()).toBeUndefined();
    expect(r.ram.readU16(r.addresses.device + 4 + 8 * 8)).toBe(1);
    d.add([into(r, 4)]);
    expect(d.kickNeeded()).toBe(true);
    expect(d.kickNeeded()).toBe(false);
    r.ram.writeU16(r.addresses.device + 4 + 8 * 8, 5);
    d.add([into(r, 4)]);
    expect(d.kickNeeded()).toBe(false);
  });

  it('NOTIFY_ON_EMPTY interrupts when the ring runs empty even if suppressed', () => {
    const { r, d } = raw({ ...NONE, notifyOnEmpty: true });
    d.suppressInterrupts(true);
    d.add([into(r, 4)]);
    d.add([into(r, 4)]);
    r.queue.push(r.queue.pop()!);
    expect(r.queue.needsInterrupt()).toBe(false);
    r.queue.push(r.queue.pop()!);
    expect(r.queue.needsInterrupt()).toBe(true);
  });

  it('IN_ORDER: chains in ring order pass, others are refused', () => {
    const features = { ...ALL, inOrder: true };
    const ok = raw(features, 4);
    for (let k = 0; k < 9; k++) {
      ok.d.add([out(ok.r, bytes(2, k)), into(ok.r, 2)]);
      const chain = ok.r.queue.pop()!;
      expect(chain.head).toBe((2 * k) % 4);
      ok.r.queue.push(chain);
      ok.r.queue.flush();
      ok.d.takeUsed();
    }
    const bad = raw(features, 4);
    bad.d.writeRaw(2, 0x20000, 4, 0, 0);
    bad.d.putAvail(2);
    expectRule(bad.r, 'in-order', 2);
    const next = raw(features, 4);
    next.d.writeRaw(0, 0x20000, 4, 1, 2);
    next.d.putAvail(0);
    expectRule(next.r, 'in-order', 0);
  });

  it('legacy layout from a PFN', () => {
    const ram = new SparseRam();
    const d = SplitRingDriver.legacy(ram, 0x12, 256, NONE);
    expect(d.addresses).toEqual(legacyLayout(0x12, 256));
    expect(d.addresses.device % 4096).toBe(0);
    const q = createQueue(ram, {
      index: 0,
      size: 256,
      format: 'split',
      addresses: legacyLayout(0x12, 256),
      features: NONE,
    });
    const id = d.add([{ address: 0x100000, length: 10, writable: true }]);
    const chain = q.pop()!;
    expect(chain.head).toBe(id);
  });

  it('queue sizes the format does not allow', () => {
    const ram = new SparseRam();
    const addresses = { desc: 0x1000, driver: 0x2000, device: 0x3000 };
    expect(() => createQueue(ram, { index: 0, size: 6, format: 'split', addresses, features: NONE })).toThrow(
      /power of 2/,
    );
    expect(() =>
      createQueue(ram, { index: 0, size: 6, format: 'packed', addresses, features: NONE }),
    ).not.toThrow();
    expect(() =>
      createQueue(ram, { index: 0, size: 65536, format: 'packed', addresses, features: NONE }),
    ).toThrow(RangeError);
  });
});

describe('packed-only rules', () => {
  function raw(features: RingFeatures = ALL, size = 8) {
    const r = rig('packed', features, size);
    return { r, d: r.driver as PackedRingDriver };
  }

  it('a chain continuing into a descriptor not made available', () => {
    const { r, d } = raw();
    d.writeRaw(1, 0x20000, 4, 0, 0);
    d.writeRaw(0, 0x20000, 4, 0, 1 | d.availableBits);
    expectRule(r, 'not-available', 1);
  });

  it('a chain longer than the queue size (it wraps onto itself)', () => {
    const { r, d } = raw(ALL, 2);
    d.writeRaw(1, 0x20000, 4, 0, 1 | d.availableBits);
    d.writeRaw(0, 0x20000, 4, 0, 1 | d.availableBits);
    const e = broken(r);
    expect(['not-available', 'chain-length']).toContain(e.rule);
  });

  it('an indirect descriptor inside a NEXT list', () => {
    const { r, d } = raw();
    d.writeRaw(1, r.arena.alloc(16, 16), 16, 0, 4 | d.availableBits);
    d.writeRaw(0, 0x20000, 4, 0, 1 | d.availableBits);
    expectRule(r, 'indirect-next', 1);
  });

  it('flags other than WRITE inside an indirect table are ignored (§2.8.7)', () => {
    const { r, d } = raw();
    const t = r.arena.alloc(32, 16);
    r.ram.writeU64(t, 0x20000);
    r.ram.writeU32(t + 8, 4);
    r.ram.writeU16(t + 14, 1 | 4);
    r.ram.writeU64(t + 16, 0x30000);
    r.ram.writeU32(t + 24, 4);
    r.ram.writeU16(t + 30, 2);
    d.writeRaw(0, t, 32, 7, 4 | d.availableBits);
    const chain = r.queue.pop()!;
    expect(chain.head).toBe(7);
    expect(chain.buffers().map((b) => b.writable)).toEqual([false, true]);
  });

  it('pushAll marks the first chain used last', () => {
    const { r, d } = raw();
    const ids = [d.add([into(r, 4)]), d.add([into(r, 4)]), d.add([into(r, 4)])];
    const chains = [r.queue.pop()!, r.queue.pop()!, r.queue.pop()!];
    const writes: number[] = [];
    const original = r.ram.writeU16.bind(r.ram);
    r.ram.writeU16 = (address: number, value: number) => {
      if ((address - r.addresses.desc) % 16 === 14) writes.push((address - r.addresses.desc - 14) / 16);
      original(address, value);
    };
    r.queue.pushAll(chains, [4, 4, 4]);
    expect(writes).toEqual([1, 2, 0]);
    expect(d.takeUsed().map((u) => u.id)).toEqual(ids);
  });
});

describe('ring features from negotiated bits', () => {
  it('reads bits 24, 28, 29, 34, 35', () => {
    expect(ringFeatures((1 << 28) | (1 << 29), 0)).toEqual({
      indirect: true,
      eventIdx: true,
      inOrder: false,
      notifyOnEmpty: false,
      format: 'split',
    });
    expect(ringFeatures(1 << 24, (1 << 2) | (1 << 3))).toEqual({
      indirect: false,
      eventIdx: false,
      inOrder: true,
      notifyOnEmpty: true,
      format: 'packed',
    });
  });
});

describe('queue state', () => {
  it('is small, JSON-safe and restores the error of a broken queue', () => {
    const r = rig('split');
    (r.driver as SplitRingDriver).putAvail(9);
    broken(r);
    const state = r.queue.getState();
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
    expect(JSON.stringify(state).length).toBeLessThan(400);
    const again = r.reopen();
    expect(again.broken?.rule).toBe('head-range');
    expect(again.broken?.message).toBe(state.error!.message);
    expect(again.pop()).toBeUndefined();
  });

  it('refuses malformed state', () => {
    const ram = new SparseRam();
    const setup = {
      index: 0,
      size: 8,
      format: 'split' as const,
      addresses: { desc: 0x1000, driver: 0x2000, device: 0x3000 },
      features: NONE,
    };
    const good = createQueue(ram, setup).getState();
    for (const bad of [
      { ...good, lastAvail: 70000 },
      { ...good, format: 'packed' },
      { ...good, requests: -1 },
      { ...good, error: { rule: 'nope' } },
    ]) {
      expect(() => createQueue(ram, setup, bad as never)).toThrow(/state/);
    }
    const packedSetup = { ...setup, format: 'packed' as const, size: 6 };
    const p = createQueue(ram, packedSetup).getState();
    expect(() => createQueue(ram, packedSetup, { ...p, used: 7 })).toThrow(/outside the 6-entry ring/);
  });
});
