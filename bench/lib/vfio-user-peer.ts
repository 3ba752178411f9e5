/**
 * The processes of the vfio-user section (bench/vfio-user.ts), one role each:
 *
 *   node dist/bench/lib/vfio-user-peer.js vfio-server DIR   vmmr's vfio-user server exporting the
 *                                                           guest view of a net VF at DIR/vfio.sock
 *   node dist/bench/lib/vfio-user-peer.js native-echo DIR   an echo at DIR/echo.sock on the same
 *                                                           native socket calls (uv_poll, recvmsg,
 *                                                           sendmsg): the cost of the transport alone
 *   node dist/bench/lib/vfio-user-peer.js net-echo DIR      the same echo on node:net at DIR/net.sock
 *   node dist/bench/lib/vfio-user-peer.js client DIR ROUNDS ROUND_MS WARMUP_MS
 *
 * The echoes frame messages by the 16-byte vfio-user header and answer each with as many bytes
 * as the request's error field says (the client puts the size of the vfio-user reply there),
 * nothing for a No_reply message. The client is a blocking loop, as a QEMU vCPU thread waits for
 * its reply; it measures every case in interleaved rounds and prints the rates as JSON.
 */
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Machine } from '../../src/machine/machine.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import { exportFunction, InterruptRouter } from '../../src/vfio-user/adapter.js';
import { native, POLLIN, POLLOUT, READABLE } from '../../src/vfio-user/native.js';
import {
  Command,
  HEADER_SIZE,
  NO_REPLY,
  TYPE_REPLY,
  newMessage,
  readHeader,
  setU64,
  VFIO,
} from '../../src/vfio-user/protocol.js';
import { VfioUserServer } from '../../src/vfio-user/server.js';
import { enableGuestIo, enableVfs } from './machine.js';
import { measureRates, type RateCase } from './measure.js';
import { runIfScript } from './script.js';

export const SOCKETS = { vfio: 'vfio.sock', echo: 'echo.sock', net: 'net.sock' } as const;

const EAGAIN = -11;

/** A reply of `length` bytes (a header saying so, then zeros), built once per length. */
function replyOf(length: number, cache: Map<number, Uint8Array>): Uint8Array {
  let r = cache.get(length);
  if (!r) {
    r = newMessage(0, 0, TYPE_REPLY, length - HEADER_SIZE).bytes;
    cache.set(length, r);
  }
  return r;
}

/** Frames messages in `buffer` and returns the reply bytes to send and the bytes consumed. */
function echoFrames(
  buffer: Uint8Array,
  cache: Map<number, Uint8Array>,
): { replies: Uint8Array[]; used: number } {
  const replies: Uint8Array[] = [];
  let at = 0;
  while (buffer.length - at >= HEADER_SIZE) {
    const h = readHeader(buffer, at);
    if (buffer.length - at < h.size) break;
    if (!(h.flags & NO_REPLY)) replies.push(replyOf(h.error, cache));
    at += h.size;
  }
  return { replies, used: at };
}

function vfioServer(dir: string): void {
  const machine = new Machine(DEFAULT_TOPOLOGY);
  const pf = machine.findPf('0000:01:00.0');
  enableVfs(pf, 1);
  const vf = machine.findVf(pf.vfs[0]!.bdf);
  enableGuestIo(machine.translator.view(vf));
  new VfioUserServer({
    socketPath: join(dir, SOCKETS.vfio),
    socketDir: dir,
    device: exportFunction(machine, vf, 'guest', new InterruptRouter(machine.events)),
  });
}

function nativeEcho(dir: string): void {
  const listen = native.listen(join(dir, SOCKETS.echo), 4);
  const cache = new Map<number, Uint8Array>();
  native.watch(listen, READABLE, () => {
    const fd = native.accept(listen);
    if (fd < 0) return;
    let pending = new Uint8Array(0);
    const rx = new Uint8Array(1 << 16);
    const fds = new Int32Array(2);
    const w = native.watch(fd, READABLE, () => {
      const n = native.recv(fd, rx, fds);
      if (n === EAGAIN) return;
      if (n <= 0) {
        native.unwatch(w);
        native.close(fd);
        return;
      }
      const data = pending.length === 0 ? rx.subarray(0, n) : concat(pending, rx.subarray(0, n));
      const { replies, used } = echoFrames(data, cache);
      pending = data.slice(used);
      for (const r of replies) native.send(fd, r, null);
    });
  });
}

function netEcho(dir: string): void {
  const cache = new Map<number, Uint8Array>();
  createServer((socket) => {
    let pending: Uint8Array = new Uint8Array(0);
    socket.on('data', (chunk: Buffer) => {
      const data =
        pending.length === 0
          ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)
          : concat(pending, chunk);
      const { replies, used } = echoFrames(data, cache);
      pending = data.slice(used);
      for (const r of replies) socket.write(r);
    });
  }).listen(join(dir, SOCKETS.net));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** A blocking client on one socket: whole messages out, whole messages in. */
export class BlockingClient {
  readonly fd: number;
  private rx = new Uint8Array(1 << 20);
  private start = 0;
  private end = 0;
  private readonly fds = new Int32Array(2);

  constructor(path: string) {
    this.fd = native.connect(path);
  }

  send(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length;) {
      const n = native.send(this.fd, at === 0 ? bytes : bytes.subarray(at), null);
      if (n === EAGAIN) native.poll(this.fd, POLLOUT, -1);
      else if (n < 0) throw new Error(`send failed: ${n}`);
      else at += n;
    }
  }

  /** The next message (header included): a view, valid until the next receive. */
  receive(): Uint8Array {
    for (;;) {
      if (this.end - this.start >= HEADER_SIZE) {
        const size = readHeader(this.rx, this.start).size;
        if (size < HEADER_SIZE)
          throw new Error(`a reply of size ${size}: the peer does not frame its replies`);
        if (this.end - this.start >= size) {
          const message = this.rx.subarray(this.start, this.start + size);
          this.start += size;
          return message;
        }
      }
      if (this.start === this.end) this.start = this.end = 0;
      else if (this.end === this.rx.length) {
        this.rx.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      }
      if (native.poll(this.fd, POLLIN, 10_000) <= 0) throw new Error('no reply within 10 s');
      const n = native.recv(this.fd, this.rx.subarray(this.end), this.fds);
      if (n === EAGAIN) continue;
      if (n <= 0) throw new Error(`recv failed: ${n}`);
      this.end += n;
    }
  }

  roundTrip(bytes: Uint8Array): Uint8Array {
    this.send(bytes);
    return this.receive();
  }

  close(): void {
    native.close(this.fd);
  }
}

/** The VERSION QEMU 10.2 sends. */
export function versionMessage(): Uint8Array {
  const json = new TextEncoder().encode(
    '{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,"write_multiple":true}}\0',
  );
  const m = newMessage(0, Command.VERSION, 0, 4 + json.length);
  m.bytes.set(json, HEADER_SIZE + 4);
  return m.bytes;
}

/** REGION_READ of `count` bytes at `offset` of `region`; `replySize` in the error field (for the echoes). */
export function regionRead(region: number, offset: number, count: number, replySize = 0): Uint8Array {
  const m = newMessage(1, Command.REGION_READ, 0, 16);
  setU64(m.view, 16, offset);
  m.view.setUint32(24, region, true);
  m.view.setUint32(28, count, true);
  m.view.setUint32(12, replySize, true);
  return m.bytes;
}

/** A posted REGION_WRITE of `data`. */
export function postedWrite(region: number, offset: number, data: Uint8Array): Uint8Array {
  const m = newMessage(2, Command.REGION_WRITE, NO_REPLY, 16 + data.length);
  setU64(m.view, 16, offset);
  m.view.setUint32(24, region, true);
  m.view.setUint32(28, data.length, true);
  m.bytes.set(data, 32);
  return m.bytes;
}

/** BAR2 common cfg queue_select (virtio 1.2 §4.1.4.3: 2 bytes at 22): a write with no side effect. */
export const QUEUE_SELECT = { region: 2, offset: 22 };
export const CONFIG_REGION = VFIO.CONFIG_REGION_INDEX.value;

export interface ClientResult {
  cases: Array<{ name: string; opsPerSec: number; samples: number[] }>;
}

function client(dir: string, rounds: number, roundMs: number, warmupMs: number): void {
  const vfio = new BlockingClient(join(dir, SOCKETS.vfio));
  vfio.roundTrip(versionMessage());
  const echo = new BlockingClient(join(dir, SOCKETS.echo));
  const net = new BlockingClient(join(dir, SOCKETS.net));
  const replySize = HEADER_SIZE + 16 + 4;
  const read = regionRead(CONFIG_REGION, 0, 4);
  const echoRead = regionRead(CONFIG_REGION, 0, 4, replySize);
  const check = vfio.roundTrip(read);
  if (
    check.length !== replySize ||
    new DataView(check.buffer, check.byteOffset).getUint32(32, true) !== 0x10001af4
  ) {
    throw new Error('the vfio-user server did not answer the REGION_READ as expected');
  }
  const write = postedWrite(QUEUE_SELECT.region, QUEUE_SELECT.offset, new Uint8Array([0, 0]));
  const BURST = 256;
  const roundTrips = (name: string, c: BlockingClient, message: Uint8Array): RateCase => ({
    name,
    opsPerIteration: 1,
    run(iterations) {
      for (let i = 0; i < iterations; i++) c.roundTrip(message);
    },
  });
  const posted = (name: string, c: BlockingClient, sync: Uint8Array): RateCase => ({
    name,
    opsPerIteration: BURST,
    run(iterations) {
      for (let i = 0; i < iterations; i++) {
        for (let k = 0; k < BURST; k++) c.send(write);
        c.roundTrip(sync);
      }
    },
  });
  const results = measureRates(
    [
      roundTrips('vfio-user REGION_READ (4 bytes, config)', vfio, read),
      roundTrips('echo, same native socket calls', echo, echoRead),
      roundTrips('echo, node:net', net, echoRead),
      posted('vfio-user posted REGION_WRITE (2 bytes, BAR2)', vfio, read),
      posted('echo, same native socket calls, posted', echo, echoRead),
    ],
    { rounds, roundMs, warmupMs },
  );
  const out: ClientResult = {
    cases: results.map((r) => ({ name: r.name, opsPerSec: r.opsPerSec, samples: [...r.samples] })),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  for (const c of [vfio, echo, net]) c.close();
}

async function main(argv: readonly string[]): Promise<void> {
  const [role, dir] = argv;
  if (!dir) throw new Error('usage: vfio-user-peer.js vfio-server|native-echo|net-echo|client DIR ...');
  mkdirSync(dir, { recursive: true });
  if (role === 'client') {
    client(dir, Number(argv[2]), Number(argv[3]), Number(argv[4]));
    return;
  }
  if (role === 'vfio-server') vfioServer(dir);
  else if (role === 'native-echo') nativeEcho(dir);
  else if (role === 'net-echo') netEcho(dir);
  else throw new Error(`unknown role ${String(role)}`);
  process.send?.('ready');
  process.on('disconnect', () => process.exit(0));
}

runIfScript(import.meta.url, 'vfio-user-peer', main);
