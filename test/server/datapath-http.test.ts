/**
 * The data path driven over HTTP only, as a harness in another language would: a legacy
 * driver's bring-up through the guest I/O view in batches, its transmit ring and frames laid out
 * in the VF's DMA memory with batch `dma` writes, QUEUE_NOTIFY, and the pcap downloaded and read
 * by tcpdump -r (an independent decoder): exactly the frames, the 10-byte header stripped.
 */
import { describe, expect, it } from 'vitest';
import { SparseRam } from '../../src/dma/sparse-ram.js';
import { SplitRingDriver } from '../../src/driver-sim/rings.js';
import { legacy, virtioStatus } from '../../src/spec/index.js';
import { legacyLayout, legacyRingBytes, ringFeatures } from '../../src/virtqueue/index.js';
import { mac, tcpdumpPackets } from '../support/frames.js';
import { NET_PF, VF1, call, ok, testApp } from '../support/server.js';

const L = legacy.registers;
const ST = virtioStatus.constants;
const QUEUE_SIZE = 256;
const TX = 1;

function frames(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => {
    const b = Buffer.alloc(60 + ((i * 13) % 300));
    for (let k = 14; k < b.length; k++) b[k] = (i + k) & 0xff;
    mac('02:00:00:00:00:99').copy(b, 0);
    mac('02:00:00:00:00:01').copy(b, 6);
    b.writeUInt16BE(0x88b5, 12);
    b.writeUInt16BE(i, 14);
    return b;
  });
}

/** Every touched page of the local image as batch `dma` block writes of at most 4096 bytes. */
function uploads(ram: SparseRam): Array<['wb', number, string]> {
  const state = ram.getState();
  return Object.entries(state.pages).map(([address, base64]) => [
    'wb',
    Number(address),
    Buffer.from(base64, 'base64').toString('hex'),
  ]);
}

describe('data path over HTTP', () => {
  it("a legacy driver's frames through REST batches; tcpdump reads exactly them from the pcap", async () => {
    const app = await testApp();
    await ok(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, { numVfs: 1 });
    const io = (ops: unknown[]) => ok(app, 'POST', '/api/v1/access', { bdf: VF1, space: 'io', ops });
    await ok(app, 'POST', '/api/v1/access', { bdf: VF1, space: 'guest-config', ops: [['w', 4, 2, 0x5]] });
    const pfn = 0x200;
    await io([
      ['w', L.STATUS.offset, 1, 0],
      ['w', L.STATUS.offset, 1, ST.ACKNOWLEDGE.value],
      ['w', L.STATUS.offset, 1, ST.ACKNOWLEDGE.value | ST.DRIVER.value],
      ['w', L.GUEST_FEATURES.offset, 4, 0],
      ['w', L.QUEUE_SEL.offset, 2, TX],
      ['w', L.QUEUE_PFN.offset, 4, pfn],
      ['w', L.STATUS.offset, 1, ST.ACKNOWLEDGE.value | ST.DRIVER.value | ST.DRIVER_OK.value],
    ]);

    // The driver's side, laid out locally then copied into the VF's DMA memory.
    const ram = new SparseRam();
    const ring = new SplitRingDriver(ram, QUEUE_SIZE, legacyLayout(pfn, QUEUE_SIZE), ringFeatures(0, 0));
    expect(legacyRingBytes(QUEUE_SIZE)).toBeLessThan(0x10_0000);
    const sent = frames(200);
    let at = 0x40_0000;
    for (const f of sent) {
      const chain = Buffer.concat([Buffer.alloc(10), f]);
      ram.write(at, chain, 0, chain.length);
      ring.add([{ address: at, length: chain.length, writable: false }]);
      at += 2048;
    }
    const dma = await ok(app, 'POST', '/api/v1/access', { bdf: VF1, space: 'dma', ops: uploads(ram) });
    expect(dma.failed).toBe(0);
    await io([['w', L.QUEUE_NOTIFY.offset, 2, TX]]);

    const queues = await ok<{ items: Array<{ run: { requests: number } | null }> }>(
      app,
      'GET',
      `/api/v1/functions/${VF1}/queues`,
    );
    expect(queues.items[TX]!.run!.requests).toBe(sent.length);
    const pcap = await call(app, 'GET', `/api/v1/functions/${VF1}/net/capture.pcap`);
    expect(pcap.statusCode).toBe(200);
    expect(pcap.headers['content-type']).toBe('application/vnd.tcpdump.pcap');
    expect(tcpdumpPackets(pcap.rawPayload)).toEqual(sent);
    const used = await ok<{ data: string }>(
      app,
      'GET',
      `/api/v1/functions/${VF1}/dma/${legacyLayout(pfn, QUEUE_SIZE).device}?length=4`,
    );
    expect(Buffer.from(used.data, 'hex').readUInt16LE(2)).toBe(sent.length);
  });

  it('DMA memory reads back what PUT wrote, as JSON or raw bytes; values in batches are little-endian', async () => {
    const app = await testApp();
    await ok(app, 'PUT', `/api/v1/functions/${NET_PF}/dma/0x1000`, { data: '0102030405060708' });
    const raw = await call(app, 'GET', `/api/v1/functions/${NET_PF}/dma/0x1000?length=8`, undefined, {
      accept: 'application/octet-stream',
    });
    expect([...raw.rawPayload]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const batch = await ok<{ results: Array<{ ok: boolean; value?: string }> }>(
      app,
      'POST',
      '/api/v1/access',
      {
        bdf: NET_PF,
        space: 'dma',
        ops: [
          ['r', 0x1000, 4],
          ['r', 0x1000, 8],
          ['w', 0x1004, 2, 0xbeef],
          ['r', 0x1004, 2],
        ],
      },
    );
    expect(batch.results.map((r) => r.value)).toEqual([
      '0x04030201',
      '0x0807060504030201',
      undefined,
      '0xbeef',
    ]);
  });
});
