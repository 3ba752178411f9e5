/**
 * Fuzzing the server with fast-check: thousands of random and mutated messages (any command,
 * flags, size field and payload, with or without descriptors). The server must never crash or
 * hang, must leak no descriptor, must not touch another function, and must still serve a fresh
 * client correctly afterwards.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMD, TestClient, VFIO, dv, regionAccess } from '../support/vfio-user-client.js';
import { closeFds, eventfds, exported, openFds, until, type Exported } from '../support/vfio-user-fixture.js';

let fx: Exported;
let other: Exported;
beforeAll(() => {
  fx = exported();
  other = exported();
});
afterAll(() => {
  fx.cleanup();
  other.cleanup();
});

/** Valid messages of every client command, for the mutations to start from. */
function seeds(): Uint8Array[] {
  const u32 = (...v: number[]): Uint8Array => {
    const p = new Uint8Array(v.length * 4);
    v.forEach((x, i) => dv(p).setUint32(i * 4, x, true));
    return p;
  };
  const version = new Uint8Array([
    0,
    0,
    0,
    0,
    ...new TextEncoder().encode('{"capabilities":{"max_msg_fds":16,"write_multiple":true}}'),
    0,
  ]);
  const write = new Uint8Array(20);
  write.set(regionAccess(18, 0, 4));
  return [
    TestClient.message(1, CMD.VERSION, version),
    TestClient.message(2, CMD.DMA_MAP, u32(32, 3, 0, 0, 0x10000, 0, 0x1000, 0)),
    TestClient.message(3, CMD.DMA_UNMAP, u32(24, 0, 0x10000, 0, 0x1000, 0)),
    TestClient.message(4, CMD.DEVICE_GET_INFO, u32(16, 0, 0, 0)),
    TestClient.message(5, CMD.DEVICE_GET_REGION_INFO, u32(32, 0, 2, 0, 0, 0, 0, 0)),
    TestClient.message(6, CMD.DEVICE_GET_IRQ_INFO, u32(16, 0, 2, 0)),
    TestClient.message(
      7,
      CMD.DEVICE_SET_IRQS,
      u32(20, VFIO.ACTION_TRIGGER | VFIO.DATA_EVENTFD, VFIO.IRQ_MSIX, 0, 1),
    ),
    TestClient.message(8, CMD.REGION_READ, regionAccess(0, VFIO.REGION_CONFIG, 4)),
    TestClient.message(9, CMD.REGION_WRITE, write),
    TestClient.message(10, CMD.DEVICE_RESET, new Uint8Array(0)),
    TestClient.message(
      11,
      CMD.REGION_WRITE_MULTI,
      new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, ...write, 0, 0, 0, 0]),
    ),
  ];
}

const randomMessage = fc
  .record({
    command: fc.integer({ min: 0, max: 20 }),
    flags: fc.oneof(fc.constant(0), fc.constant(0x10), fc.integer({ min: 0, max: 0x3f })),
    payload: fc.uint8Array({ maxLength: 96 }),
    sizeDelta: fc.oneof(
      { weight: 24, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: -20, max: 20 }) },
    ),
  })
  .map(({ command, flags, payload, sizeDelta }) => {
    const m = TestClient.message(0xff00, command, payload, flags);
    if (sizeDelta) dv(m).setUint32(4, Math.max(0, m.length + sizeDelta), true);
    return m;
  });

const mutatedMessage = fc
  .record({
    seed: fc.constantFrom(...seeds()),
    flips: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 6 }),
    keepSize: fc.boolean(),
  })
  .map(({ seed, flips, keepSize }) => {
    const m = seed.slice();
    for (const f of flips) {
      const at = f.at % m.length;
      if (keepSize && at >= 4 && at < 8) continue;
      m[at] = f.value;
    }
    return m;
  });

const session = fc.array(
  fc.record({
    message: fc.oneof(randomMessage, mutatedMessage),
    fds: fc.oneof(
      { weight: 4, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
    ),
  }),
  { minLength: 1, maxLength: 40 },
);

/**
 * A reply to a final message proves every message before it was handled, unless the server closed
 * the connection or a message's size field promised more bytes than came (the server then waits
 * for them, taking the probe as part of that message): false after a short wait.
 */
async function settle(c: TestClient): Promise<boolean> {
  const probe = c.request(CMD.REGION_READ, regionAccess(0, VFIO.REGION_CONFIG, 4)).then(() => true);
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 100)));
  const answered = await Promise.race([probe, c.eof().then(() => true), waited]);
  clearTimeout(timer);
  return answered;
}

describe('fuzzing', () => {
  it('thousands of random and mutated messages: no crash, no leak, the device still answers', async () => {
    const otherBefore = other.vf.getState();
    const fdsBefore = openFds();
    let messages = 0;
    let closes = 0;
    let incomplete = 0;
    await fc.assert(
      fc.asyncProperty(session, async (steps) => {
        const c = fx.connect();
        const v = await c.version();
        expect(v.flags & 0x20).toBe(0);
        for (const step of steps) {
          if (c.closedByServer) break;
          const fds = step.fds ? eventfds(step.fds) : [];
          try {
            c.raw(step.message, fds);
          } catch {
            closeFds(fds);
            break;
          }
          closeFds(fds);
          messages++;
        }
        if (!c.closedByServer && !(await settle(c))) incomplete++;
        if (c.closedByServer) closes++;
        await c.closeAndWait();
        await until(() => !fx.server.connected);
      }),
      { numRuns: 500, seed: 0x7f1e },
    );
    console.log(
      `vfio-user fuzz: ${messages} messages in 500 sessions, ${closes} closed by the server, ${incomplete} left waiting for bytes`,
    );
    expect(messages).toBeGreaterThan(2000);
    // Whatever happened, a fresh client finds the device working and nothing is left open.
    const c = await fx.ready();
    expect(dv(await c.regionRead(VFIO.REGION_CONFIG, 0, 4)).getUint32(0, true)).toBe(0x10001af4);
    await c.closeAndWait();
    await until(() => !fx.server.connected);
    expect(openFds()).toBe(fdsBefore);
    expect(other.vf.getState()).toEqual(otherBefore);
    expect(closes + incomplete).toBeLessThan(500);
  }, 120_000);
});
