/**
 * The native addon's system calls, checked against the kernel's own behaviour: SCM_RIGHTS
 * descriptors arrive as new descriptors of the same open file, truncation closes the excess,
 * a read stops after the send that carried descriptors (unix(7)), shared mappings see each
 * other's writes, munmap detaches the ArrayBuffer, eventfds count writes made with fs.writeSync.
 */
import { fstatSync, readSync, writeSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native, POLLIN, READABLE } from '../../src/vfio-user/native.js';
import { openFds } from '../support/vfio-user-fixture.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

function pair(): [number, number] {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-native-'));
  const path = join(dir, 's');
  const l = native.listen(path, 1);
  const c = native.connect(path);
  const s = native.accept(l);
  native.close(l);
  rmSync(dir, { recursive: true, force: true });
  cleanup.push(() => {
    native.close(c);
    native.close(s);
  });
  return [c, s];
}

describe('SCM_RIGHTS', () => {
  it('descriptors arrive as new descriptors of the same files, with the read that reaches their send', () => {
    const [c, s] = pair();
    const e = native.eventfd(0, true);
    const m = native.memfd('t', 4096);
    cleanup.push(() => {
      native.close(e);
      native.close(m);
    });
    expect(native.send(c, new Uint8Array([1, 2]), null)).toBe(2);
    expect(native.send(c, new Uint8Array([3, 4, 5]), Int32Array.from([e, m]))).toBe(3);
    expect(native.send(c, new Uint8Array([6]), null)).toBe(1);
    const buf = new Uint8Array(64);
    const fds = new Int32Array(18);
    // One read takes the plain bytes and the send with descriptors, and stops there.
    expect(native.recv(s, buf, fds)).toBe(5);
    expect(fds[0]).toBe(2);
    const [e2, m2] = [fds[2]!, fds[3]!];
    cleanup.push(() => {
      native.close(e2);
      native.close(m2);
    });
    expect([e2, m2]).not.toContain(e);
    expect(fstatSync(e2).ino).toBe(fstatSync(e).ino);
    expect(fstatSync(m2).ino).toBe(fstatSync(m).ino);
    expect(native.recv(s, buf, fds)).toBe(1);
    expect(fds[0]).toBe(0);
    expect(native.recv(s, buf, fds)).toBe(-11);
  });

  it('more descriptors than the buffer holds: flagged, and the kernel closes the rest', () => {
    const [c, s] = pair();
    const sent = Array.from({ length: 6 }, () => native.eventfd(0, true));
    cleanup.push(() => sent.forEach((fd) => native.close(fd)));
    const before = openFds();
    native.send(c, new Uint8Array([1]), Int32Array.from(sent));
    const fds = new Int32Array(2 + 4);
    expect(native.recv(s, new Uint8Array(8), fds)).toBe(1);
    expect([fds[0], fds[1]]).toEqual([4, 1]);
    expect(openFds()).toBe(before + 4);
    for (let i = 0; i < 4; i++) native.close(fds[2 + i]!);
    expect(openFds()).toBe(before);
  });

  it('end of stream reads 0; send to a closed peer is -EPIPE (no SIGPIPE)', () => {
    const [c, s] = pair();
    native.close(c);
    cleanup.unshift(() => undefined);
    expect(native.recv(s, new Uint8Array(4), new Int32Array(2))).toBe(0);
    const [c2, s2] = pair();
    native.close(s2);
    expect(native.send(c2, new Uint8Array(4), null)).toBe(-32);
  });
});

describe('readiness', () => {
  it('poll waits for data or the time-out; watch calls back on the event loop', async () => {
    const [c, s] = pair();
    const t0 = Date.now();
    expect(native.poll(s, POLLIN, 30)).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
    const fired = new Promise<number>((resolve) => {
      const w = native.watch(s, READABLE, (status, events) => {
        native.unwatch(w);
        resolve(status === 0 ? events : status);
      });
    });
    native.send(c, new Uint8Array([1]), null);
    expect(await fired).toBe(READABLE);
    expect(native.poll(s, POLLIN, 0) & POLLIN).toBe(POLLIN);
  });
});

describe('shared mappings and eventfds', () => {
  it('two mappings of one memfd see each other; an unaligned offset works; munmap detaches', () => {
    const m = native.memfd('t', 3 * 4096);
    cleanup.push(() => native.close(m));
    const [a, ha] = native.mmap(m, 0, 3 * 4096, true);
    const [b, hb] = native.mmap(m, 4096 + 16, 100, true);
    new Uint8Array(a)[4096 + 16] = 0x42;
    expect(new Uint8Array(b)[0]).toBe(0x42);
    new Uint8Array(b)[99] = 7;
    expect(new Uint8Array(a)[4096 + 16 + 99]).toBe(7);
    native.munmap(hb, b);
    expect(b.byteLength).toBe(0);
    native.munmap(hb, b);
    // Another mapping's (detached) buffer never unmaps this one: `a` stays usable.
    expect(() => native.munmap(ha, b)).toThrow(/detached/);
    expect(() => native.munmap(hb, a)).not.toThrow();
    expect(new Uint8Array(a)[4096 + 16]).toBe(0x42);
    native.munmap(ha, a);
    expect(a.byteLength).toBe(0);
  });

  it('mmap of something that cannot be mapped throws with the errno name', () => {
    const e = native.eventfd(0, true);
    cleanup.push(() => native.close(e));
    expect(() => native.mmap(e, 0, 4096, true)).toThrow(expect.objectContaining({ code: 'ENODEV' }));
  });

  it('fs.writeSync of a little-endian 1 signals an eventfd; reads return and clear the count', () => {
    const e = native.eventfd(0, true);
    cleanup.push(() => native.close(e));
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    writeSync(e, one);
    writeSync(e, one);
    const out = Buffer.alloc(8);
    readSync(e, out, 0, 8, null);
    expect(out.readBigUInt64LE()).toBe(2n);
    expect(() => readSync(e, out, 0, 8, null)).toThrow(expect.objectContaining({ code: 'EAGAIN' }));
  });
});
