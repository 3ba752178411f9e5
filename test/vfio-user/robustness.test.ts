/**
 * Bad input and bad clients: truncated, undersized and oversized messages, more descriptors than
 * announced, disconnects in the middle of a message, a client that never reads its replies, and
 * socket paths outside the socket directory. Each gets an error reply or a clean close; no
 * descriptor leaks (counted in /proc/self/fd); other exports keep answering.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/vfio-user/native.js';
import { VfioUserServer, VfioUserSetupError, checkSocketPath } from '../../src/vfio-user/server.js';
import {
  CMD,
  ERROR,
  REPLY,
  TestClient,
  VFIO,
  dv,
  leBytes,
  regionAccess,
  type Reply,
} from '../support/vfio-user-client.js';
import {
  E,
  closeFds,
  eventfds,
  exported,
  openFds,
  until,
  type Exported,
} from '../support/vfio-user-fixture.js';

const fixtures: Exported[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const f of fixtures.splice(0)) f.cleanup();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function make(options?: Parameters<typeof exported>[0]): Exported {
  const f = exported(options);
  fixtures.push(f);
  return f;
}

function refused(r: Reply, errno: number): void {
  expect({ flags: r.flags, error: r.error }).toEqual({ flags: REPLY | ERROR, error: errno });
}

describe('framing', () => {
  it('a size below the header gets EINVAL and the connection is closed', async () => {
    const fx = make();
    const c = await fx.ready();
    const r = c.request(CMD.DEVICE_GET_INFO);
    c.raw(TestClient.message(77, CMD.DEVICE_GET_INFO, new Uint8Array(0), 0, 8));
    await c.eof();
    expect(
      c.unsolicited.some((m) => m.id === 77 && m.flags === (REPLY | ERROR) && m.error === E.EINVAL),
    ).toBe(true);
    expect((await r).flags).toBe(REPLY | ERROR);
    expect(fx.logs.join('\n')).toMatch(/message size 8 is smaller than the 16-byte header/);
  });

  it('a size above the largest message gets E2BIG and the connection is closed', async () => {
    const fx = make();
    const c = await fx.ready();
    c.raw(TestClient.message(78, CMD.REGION_WRITE, new Uint8Array(0), 0, 64 * 1024 * 1024));
    await c.eof();
    expect(c.unsolicited).toContainEqual(expect.objectContaining({ id: 78, error: E.E2BIG }));
  });

  it('a message split over many sends is reassembled; one large REGION_READ/WRITE works', async () => {
    const fx = make();
    const c = await fx.ready();
    const msg = TestClient.message(5, CMD.REGION_READ, regionAccess(0, VFIO.REGION_CONFIG, 4096));
    const reply = new Promise<Reply>((resolve) => {
      const poll = setInterval(() => {
        const m = c.unsolicited.find((u) => u.id === 5);
        if (m) {
          clearInterval(poll);
          resolve(m);
        }
      }, 1);
    });
    for (const b of msg) {
      c.raw(new Uint8Array([b]));
      await new Promise((r) => setImmediate(r));
    }
    const r = await reply;
    expect(r.size).toBe(16 + 16 + 4096);
    expect(dv(r.payload).getUint32(16, true)).toBe(0x10001af4);
  });

  it('a client that disconnects in the middle of a message leaves no descriptor behind', async () => {
    const fx = make();
    const before = openFds();
    const c = await fx.ready();
    const [fd] = eventfds(1);
    c.raw(TestClient.message(9, CMD.DEVICE_SET_IRQS, new Uint8Array(20)).subarray(0, 24), [fd!]);
    native.close(fd!);
    await new Promise((r) => setTimeout(r, 10));
    await c.closeAndWait();
    await until(() => !fx.server.connected);
    expect(openFds()).toBe(before);
  });
});

describe('file descriptors', () => {
  it('more than max_msg_fds: the message is refused and every descriptor closed', async () => {
    const fx = make();
    const c = await fx.ready();
    const fds = eventfds(20);
    const before = openFds();
    const p = new Uint8Array(20);
    const v = dv(p);
    v.setUint32(0, 20, true);
    v.setUint32(4, VFIO.ACTION_TRIGGER | VFIO.DATA_EVENTFD, true);
    v.setUint32(8, VFIO.IRQ_MSIX, true);
    v.setUint32(16, 20, true);
    refused(await c.request(CMD.DEVICE_SET_IRQS, p, { fds }), E.EINVAL);
    expect(openFds()).toBe(before);
    closeFds(fds);
  });

  it('descriptors with a command that takes none are refused and closed', async () => {
    const fx = make();
    const c = await fx.ready();
    const fds = eventfds(3);
    const before = openFds();
    refused(await c.request(CMD.REGION_READ, regionAccess(0, VFIO.REGION_CONFIG, 4), { fds }), E.EINVAL);
    refused(await c.request(CMD.VERSION, new Uint8Array(4), { fds }), E.EINVAL);
    expect(openFds()).toBe(before);
    closeFds(fds);
  });
});

describe('slow and stuck clients', () => {
  it('a client that never reads: the server stops reading it at the high-water mark; another export keeps answering', async () => {
    const stuck = make();
    const other = make();
    const d = await other.ready();
    // A bare socket nobody reads: VERSION, then 4 KiB reads whose replies pile up.
    const fd = native.connect(stuck.server.socketPath);
    const caps = new TextEncoder().encode('{"capabilities":{}}\0');
    const version = new Uint8Array(4 + caps.length);
    version.set(caps, 4);
    native.send(fd, TestClient.message(0, CMD.VERSION, version), null);
    const request = TestClient.message(1, CMD.REGION_READ, regionAccess(0, VFIO.REGION_CONFIG, 4096));
    let sent = 0;
    for (; sent < 4000; sent++) {
      const n = native.send(fd, request, null);
      if (n !== request.length) break;
      if (sent % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(sent).toBeLessThan(4000);
    // Bounded: at most the high-water mark (1 MiB + 64 KiB) plus the reply that crossed it.
    const queued = stuck.server.status().queuedBytes;
    expect(queued).toBeGreaterThan(1024 * 1024);
    expect(queued).toBeLessThanOrEqual(1114112 + 16 + 16 + 4096);
    const started = Date.now();
    expect(dv(await d.regionRead(VFIO.REGION_CONFIG, 0, 4)).getUint32(0, true)).toBe(0x10001af4);
    expect(Date.now() - started).toBeLessThan(500);
    native.close(fd);
    await until(() => !stuck.server.connected);
  });

  it('a second client is turned away while the first one is stuck', async () => {
    const fx = make();
    await fx.ready();
    const second = fx.connect();
    await second.eof();
    expect(fx.server.status().refusedClients).toBe(1);
  });
});

describe('socket paths', () => {
  function dir(): string {
    const d = mkdtempSync(join(tmpdir(), 'vmmr-vu-path-'));
    dirs.push(d);
    return d;
  }

  it('must be absolute and inside the socket directory, symlinks resolved', () => {
    const root = dir();
    const outside = dir();
    symlinkSync(outside, join(root, 'escape'));
    const code = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        return (e as VfioUserSetupError).code + ': ' + (e as Error).message;
      }
      return 'accepted';
    };
    expect(code(() => checkSocketPath('relative.sock', root))).toMatch(
      /VFIO_USER_ERR_SOCKET_PATH: .*must be an absolute path/,
    );
    expect(code(() => checkSocketPath(join(outside, 'x.sock'), root))).toMatch(
      /is outside the socket directory/,
    );
    expect(code(() => checkSocketPath(join(root, '..', 'x.sock'), root))).toMatch(
      /is outside the socket directory/,
    );
    expect(code(() => checkSocketPath(join(root, 'escape', 'x.sock'), root))).toMatch(
      /is outside the socket directory/,
    );
    expect(code(() => checkSocketPath(join(root, 'missing', 'x.sock'), root))).toMatch(/does not exist/);
    expect(code(() => checkSocketPath(join(root, 'x'.repeat(120)), root))).toMatch(
      /longer than the 107 bytes/,
    );
    expect(checkSocketPath(join(root, 'ok.sock'), root)).toBe(join(root, 'ok.sock'));
  });

  it('a stale socket is replaced, a live one or another file is refused', () => {
    const fx = make();
    const d = dir();
    writeFileSync(join(d, 'file'), 'x');
    const server = (path: string): VfioUserServer =>
      new VfioUserServer({ socketPath: path, socketDir: fx.dir, device: fx.device });
    expect(() => server(fx.server.socketPath)).toThrow(/another server is listening there/);
    expect(
      () => new VfioUserServer({ socketPath: join(d, 'file'), socketDir: d, device: fx.device }),
    ).toThrow(/not a socket/);
    const stalePath = join(fx.dir, 'stale.sock');
    const fd = native.listen(stalePath, 1);
    native.close(fd);
    const replaced = server(stalePath);
    replaced.close();
  });
});

describe('the server keeps its state apart', () => {
  it('closing the server disconnects the client and removes the socket', async () => {
    const fx = make();
    const c = await fx.ready();
    fx.server.close();
    await c.eof();
    expect(() => native.connect(fx.server.socketPath)).toThrow();
  });

  it('errors on one export change nothing on another function', async () => {
    const a = make();
    const b = make();
    const ca = await a.ready();
    const before = b.vf.getState();
    for (const cmd of [CMD.REGION_WRITE, CMD.DEVICE_RESET, CMD.DEVICE_SET_IRQS, 99])
      await ca.request(cmd, new Uint8Array(3));
    await ca.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
    expect(b.vf.getState()).toEqual(before);
  });
});
