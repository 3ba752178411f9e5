/**
 * The data path over vfio-user: a legacy driver (the client) brings a net VF's guest view up with
 * REGION accesses, lays its rings and buffers out in its own memory, and the device reads and
 * writes that memory through the client's DMA maps — a shared memfd, or DMA_READ/DMA_WRITE
 * messages answered by a client thread — and signals the client's INTx eventfd. A frame sent is
 * in the VF's capture; a frame injected lands in the client's receive buffer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { NetDevice } from '../../src/devices/net/device.js';
import { SplitRingDriver } from '../../src/driver-sim/rings.js';
import { native } from '../../src/vfio-user/native.js';
import { ringFeatures } from '../../src/virtqueue/queue.js';
import { BytesSpace } from '../support/bytes-space.js';
import { ethernet, mac } from '../support/frames.js';
import { VFIO, le, leBytes, type Reply, type TestClient } from '../support/vfio-user-client.js';
import { closeFds, counter, eventfds, exported, until, type Exported } from '../support/vfio-user-fixture.js';

/** <linux/virtio_pci.h> legacy register offsets (VIRTIO_PCI_*). */
const GUEST_FEATURES = 4;
const QUEUE_PFN = 8;
const QUEUE_NUM = 12;
const QUEUE_SEL = 14;
const QUEUE_NOTIFY = 16;
const STATUS = 18;
const ISR = 19;
const MSI_QUEUE_VECTOR = 22;
const CAP_ID_MSIX = 0x11;
const MSIX_ENABLE = 0x8000;
const ACK_DRIVER = 1 | 2;
const DRIVER_OK = 4;
/** struct virtio_net_hdr without MRG_RXBUF (<linux/virtio_net.h>). */
const NET_HDR = 10;
const RX = 0;
const TX = 1;
const MEMORY = 1 << 20;
const RX_PFN = 0x10;
const TX_PFN = 0x20;
const TX_BUFFER = 0x40000;
const RX_BUFFER = 0x50000;
const BAR0 = 0;

let fx: Exported | undefined;
const cleanups: Array<() => void> = [];
afterEach(() => {
  fx?.cleanup();
  fx = undefined;
  for (const f of cleanups.splice(0)) f();
});

function ok(r: Reply | undefined): void {
  expect(r && { flags: r.flags & 0x20, error: r.error }).toEqual({ flags: 0, error: 0 });
}

interface Client {
  c: TestClient;
  space: BytesSpace;
}

/** The client's memory shared through a memfd (QEMU's memory-backend-memfd,share=on). */
async function mappedClient(): Promise<Client> {
  fx = exported({ type: 'net' });
  const c = await fx.ready();
  const fd = native.memfd('guest-ram', MEMORY);
  const [buffer, handle] = native.mmap(fd, 0, MEMORY, true);
  cleanups.push(() => native.munmap(handle, buffer));
  ok(await c.dmaMap(0, MEMORY, VFIO.MAP_READ | VFIO.MAP_WRITE, fd));
  return { c, space: new BytesSpace(new Uint8Array(buffer)) };
}

/** The client's memory reached by DMA_READ/DMA_WRITE messages (QEMU without a shared backend). */
async function messageClient(): Promise<Client> {
  fx = exported({ type: 'net' });
  const memory = new SharedArrayBuffer(MEMORY);
  const c = await fx.ready({ memory, base: 0, layout: 'qemu' });
  ok(await c.dmaMap(0, MEMORY, VFIO.MAP_READ | VFIO.MAP_WRITE));
  return { c, space: new BytesSpace(new Uint8Array(memory)) };
}

const io = {
  read: async (c: TestClient, port: number, width: number) => le(await c.regionRead(BAR0, port, width)),
  write: async (c: TestClient, port: number, width: number, value: number) =>
    ok(await c.regionWrite(BAR0, port, leBytes(value, width))),
};

/** MSI-X Enable in the guest config's MSI-X capability, found by walking the list (PCI 3.0 §6.7). */
async function enableMsix(c: TestClient): Promise<void> {
  for (let at = le(await c.regionRead(VFIO.REGION_CONFIG, 0x34, 1)); at !== 0;) {
    if (le(await c.regionRead(VFIO.REGION_CONFIG, at, 1)) === CAP_ID_MSIX) {
      ok(await c.regionWrite(VFIO.REGION_CONFIG, at + 2, leBytes(MSIX_ENABLE, 2)));
      return;
    }
    at = le(await c.regionRead(VFIO.REGION_CONFIG, at + 1, 1));
  }
  throw new Error('no MSI-X capability in the guest config');
}

/**
 * Linux's legacy probe (drivers/virtio/virtio_pci_legacy.c), no features, rx and tx placed by
 * PFN; with `msix`, queue q signals vector q + 1 (VIRTIO_MSI_QUEUE_VECTOR).
 */
async function probe(
  { c, space }: Client,
  msix = false,
): Promise<{ rx: SplitRingDriver; tx: SplitRingDriver }> {
  ok(await c.regionWrite(VFIO.REGION_CONFIG, 0x04, leBytes(0x0005, 2))); // I/O Space | Bus Master
  if (msix) await enableMsix(c);
  await io.write(c, STATUS, 1, 0);
  await io.write(c, STATUS, 1, ACK_DRIVER);
  await io.write(c, GUEST_FEATURES, 4, 0);
  const rings: SplitRingDriver[] = [];
  for (const [queue, pfn] of [
    [RX, RX_PFN],
    [TX, TX_PFN],
  ] as const) {
    await io.write(c, QUEUE_SEL, 2, queue);
    const size = await io.read(c, QUEUE_NUM, 2);
    expect(size).toBe(256);
    rings.push(SplitRingDriver.legacy(space, pfn, size, ringFeatures(0, 0)));
    await io.write(c, QUEUE_PFN, 4, pfn);
    if (msix) await io.write(c, MSI_QUEUE_VECTOR, 2, queue + 1);
  }
  await io.write(c, STATUS, 1, ACK_DRIVER | DRIVER_OK);
  return { rx: rings[0]!, tx: rings[1]! };
}

function intx(c: TestClient): Promise<number> {
  const [fd] = eventfds(1);
  cleanups.push(() => closeFds([fd!]));
  return c
    .setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.DATA_EVENTFD | VFIO.ACTION_TRIGGER, { fds: [fd!] })
    .then((r) => (ok(r), fd!));
}

const modes = [
  ['a shared memfd', mappedClient],
  ['DMA_READ/DMA_WRITE messages', messageClient],
] as const;

describe.each(modes)('net VF guest view, client memory through %s', (_name, open) => {
  it('a frame the driver sends is captured; its used entry and INTx reach the client', async () => {
    const client = await open();
    const fd = await intx(client.c);
    const { tx } = await probe(client);
    const frame = ethernet(
      mac('ff:ff:ff:ff:ff:ff'),
      mac('52:54:00:00:00:01'),
      0x88b5,
      new Uint8Array(46).fill(7),
    );
    client.space.write(TX_BUFFER, new Uint8Array(NET_HDR), 0, NET_HDR);
    client.space.write(TX_BUFFER + NET_HDR, frame, 0, frame.length);
    tx.add([{ address: TX_BUFFER, length: NET_HDR + frame.length, writable: false }]);
    await io.write(client.c, QUEUE_NOTIFY, 2, TX);
    const net = fx!.machine.dataPathOf(fx!.vf.bdf).backend as NetDevice;
    await until(() => net.capture.frames().length === 1);
    expect(Buffer.from(net.capture.frames()[0]!.data)).toEqual(frame);
    await until(() => counter(fd) === 1);
    expect(tx.takeUsed()).toHaveLength(1);
    expect(await io.read(client.c, ISR, 1)).toBe(1);
  });

  it("with MSI-X: the used buffer signals the tx queue vector's eventfd, and no other", async () => {
    const client = await open();
    const fds = eventfds(3);
    cleanups.push(() => closeFds(fds));
    const { tx } = await probe(client, true);
    ok(await client.c.setIrqs(VFIO.IRQ_MSIX, 0, 3, VFIO.DATA_EVENTFD | VFIO.ACTION_TRIGGER, { fds }));
    const frame = ethernet(mac('ff:ff:ff:ff:ff:ff'), mac('52:54:00:00:00:01'), 0x88b5, new Uint8Array(46));
    client.space.write(TX_BUFFER + NET_HDR, frame, 0, frame.length);
    tx.add([{ address: TX_BUFFER, length: NET_HDR + frame.length, writable: false }]);
    await io.write(client.c, QUEUE_NOTIFY, 2, TX);
    await until(() => tx.takeUsed().length === 1);
    await until(() => counter(fds[2]!) === 1);
    expect([counter(fds[0]!), counter(fds[1]!)]).toEqual([0, 0]);
  });

  it('a frame injected into the VF lands in the receive buffer in client memory', async () => {
    const client = await open();
    const fd = await intx(client.c);
    const { rx } = await probe(client);
    rx.add([{ address: RX_BUFFER, length: 1526, writable: true }]);
    await io.write(client.c, QUEUE_NOTIFY, 2, RX);
    const net = fx!.machine.dataPathOf(fx!.vf.bdf).backend as NetDevice;
    const frame = ethernet(
      mac('52:54:00:aa:bb:cc'),
      mac('52:54:00:00:00:02'),
      0x88b5,
      new Uint8Array(50).fill(9),
    );
    expect(['delivered', 'queued']).toContain(net.inject(frame));
    fx!.machine.dataPath.drain();
    let used: Array<{ id: number; length: number }> = [];
    await until(() => (used = [...used, ...rx.takeUsed()]).length === 1);
    expect(used[0]!.length).toBe(NET_HDR + frame.length);
    const got = new Uint8Array(frame.length);
    client.space.read(RX_BUFFER + NET_HDR, got, 0, frame.length);
    expect(Buffer.from(got)).toEqual(frame);
    await until(() => counter(fd) === 1);
  });
});
