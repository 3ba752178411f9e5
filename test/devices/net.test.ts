/**
 * virtio-net back-end through real rings: transmit capture read back by tcpdump -r and tshark -r
 * (exactly the frames sent, header stripped: 10 bytes for a legacy driver, 12 for a modern one),
 * receive with and without mergeable buffers, frames waiting for buffers, the control queue, link
 * and MAC changes, broken requests.
 */
import { describe, expect, it } from 'vitest';
import { writePcap } from '../../src/devices/net/capture.js';
import { deviceConfigs, virtioNetCtrl } from '../../src/spec/index.js';
import { ethernet, mac, tcpdumpPackets, tsharkFields } from '../support/frames.js';
import { netRig } from '../support/datapath-rig.js';

const K = virtioNetCtrl.constants;
const CFG = deviceConfigs.net.registers;

function randomFrames(n: number, seed: number): Buffer[] {
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) >>> 0) >>> 8;
  return Array.from({ length: n }, (_, i) => {
    const len = 60 + (rnd() % 1455);
    const b = Buffer.alloc(len);
    for (let k = 0; k < len; k++) b[k] = rnd() & 0xff;
    mac('02:00:00:00:00:02').copy(b, 0);
    mac('02:00:00:00:00:01').copy(b, 6);
    b.writeUInt16BE(0x88b5, 12);
    b.writeUInt32BE(i, 14);
    return b;
  });
}

describe('net transmit capture, read back by tcpdump and tshark', () => {
  for (const variant of [
    { name: 'legacy driver, split legacy ring, 10-byte header', legacy: true, count: 1000 },
    { name: 'legacy driver with MRG_RXBUF, 12-byte header', legacy: true, mergeable: true, count: 300 },
    { name: 'modern driver, split ring, 12-byte header', legacy: false, count: 1000 },
    {
      name: 'modern driver, packed ring, indirect transmit chains',
      legacy: false,
      format: 'packed' as const,
      count: 500,
      indirect: true,
    },
  ]) {
    it(`${variant.name}: exactly the frames sent`, () => {
      const r = netRig({
        legacy: variant.legacy,
        mergeable: variant.mergeable,
        format: variant.format,
        indirectTx: variant.indirect,
        features: variant.indirect
          ? ['RING_INDIRECT_DESC', 'RING_PACKED']
          : variant.format === 'packed'
            ? ['RING_PACKED']
            : [],
        net: { captureFrames: 2048, captureBytes: 4 << 20 },
      });
      expect(r.device.headerSize).toBe(r.headerSize);
      const frames = randomFrames(variant.count, variant.count);
      for (let i = 0; i < frames.length; i += 50)
        r.driver.send(frames.slice(i, i + 50), { csumStart: 34, csumOffset: 16, flags: i % 2 });
      const pcapFile = r.device.capture.toPcap();
      const packets = tcpdumpPackets(pcapFile);
      expect(packets).toHaveLength(frames.length);
      packets.forEach((p, i) => expect(p.equals(frames[i]!), `frame ${i}`).toBe(true));
      const lengths = tsharkFields(pcapFile, ['frame.len', 'frame.cap_len', 'eth.type']);
      expect(lengths.map((l) => Number(l[0]))).toEqual(frames.map((f) => f.length));
      expect(lengths.every((l) => l[2] === '0x88b5')).toBe(true);
      const records = r.device.capture.frames();
      expect(records[0]!.header).toMatchObject({ flags: 0, csumStart: 34, csumOffset: 16 });
      expect(records[50]!.header.flags).toBe(0);
      expect(records[51]!.header.flags).toBe(0);
      expect(r.device.stats.txFrames).toBe(frames.length);
      expect(r.driver.tx.free).toBe(r.driver.tx.size);
    });
  }

  it('the capture ring keeps the newest frames within its bounds', () => {
    const r = netRig({ legacy: false, net: { captureFrames: 16, captureBytes: 8192 } });
    const frames = randomFrames(100, 7);
    r.driver.send(frames.slice(0, 50));
    r.driver.send(frames.slice(50));
    const kept = r.device.capture.frames();
    expect(kept.length).toBeLessThanOrEqual(16);
    expect(kept.reduce((n, f) => n + f.data.length, 0)).toBeLessThanOrEqual(8192);
    const tail = frames.slice(100 - kept.length);
    kept.forEach((f, i) => expect(Buffer.from(f.data).equals(tail[i]!)).toBe(true));
    expect(kept[kept.length - 1]!.seq).toBe(99);
    const packets = tcpdumpPackets(r.device.capture.toPcap());
    expect(packets.map((p) => p.readUInt32BE(14))).toEqual(kept.map((_, i) => 100 - kept.length + i));
  });

  it('a transmit chain shorter than the header breaks the queue (DEVICE_NEEDS_RESET)', () => {
    const r = netRig({ legacy: true });
    const a = r.arena.alloc(16);
    r.driver.tx.add([{ address: a, length: 9, writable: false }]);
    r.transport.kick(1);
    expect(r.ctx.resetErrors).toHaveLength(1);
    expect(r.ctx.resetErrors[0]!.rule).toBe('request');
    expect(r.ctx.resetErrors[0]!.message).toMatch(
      /queue 1, descriptor \d+: request: .*9 device-readable bytes, less than the 10-byte/,
    );
    // Receiving still works: another queue is untouched.
    expect(
      r.device.inject(ethernet(mac('02:00:00:00:00:01'), mac('02:00:00:00:00:09'), 0x88b5, Buffer.alloc(46))),
    ).toBe('delivered');
  });
});

describe('net receive', () => {
  const frame = (n: number, tag = 0) => {
    const f = ethernet(mac('02:00:00:00:00:01'), mac('02:00:00:00:00:09'), 0x88b5, Buffer.alloc(n - 14, tag));
    return f;
  };

  it('legacy 10-byte header, one buffer per frame, fields passed as given', () => {
    const r = netRig({ legacy: true });
    const f = frame(1000, 3);
    expect(
      r.device.inject(f, { flags: 2, gsoType: 0, hdrLen: 5, gsoSize: 6, csumStart: 7, csumOffset: 8 }),
    ).toBe('delivered');
    const [got] = r.driver.receive();
    expect(Buffer.from(got!.frame).equals(f)).toBe(true);
    expect(got!.header).toEqual({ flags: 2, gsoType: 0, hdrLen: 5, gsoSize: 6, csumStart: 7, csumOffset: 8 });
    expect(got!.buffers).toBe(1);
    expect(r.ctx.interruptCount(0)).toBe(1);
  });

  it('modern header: num_buffers is 1 without MRG_RXBUF; a frame too big for a buffer is dropped', () => {
    const r = netRig({ legacy: false, rxBufferSize: 600 });
    expect(r.device.inject(frame(588))).toBe('delivered');
    const [got] = r.driver.receive();
    expect(got!.numBuffers).toBe(1);
    expect(r.device.inject(frame(589))).toBe('dropped');
    expect(r.device.stats.rxDropped['too-big']).toBe(1);
    expect(r.device.inject(frame(100))).toBe('delivered');
    expect(r.driver.receive()).toHaveLength(1);
  });

  it('mergeable buffers: a frame spans buffers, num_buffers counts them, all but the last are full', () => {
    const r = netRig({ legacy: true, mergeable: true, rxBufferSize: 256 });
    const f = frame(1500, 9);
    expect(r.device.inject(f)).toBe('delivered');
    const [got] = r.driver.receive();
    expect(got!.numBuffers).toBe(Math.ceil((1500 + 12) / 256));
    expect(got!.buffers).toBe(got!.numBuffers);
    expect(Buffer.from(got!.frame).equals(f)).toBe(true);
  });

  it('frames without receive buffers wait, in order, and arrive when buffers are posted', () => {
    const r = netRig({ legacy: false, queueSize: 4, rxBufferSize: 2048 });
    const frames = Array.from({ length: 7 }, (_, i) => frame(100 + i, i));
    const results = frames.map((f) => r.device.inject(f));
    expect(results).toEqual([
      'delivered',
      'delivered',
      'delivered',
      'delivered',
      'queued',
      'queued',
      'queued',
    ]);
    expect(r.device.state().pendingRx).toBe(3);
    const first = r.driver.receive();
    expect(first).toHaveLength(4);
    const second = r.driver.receive();
    expect(second.map((g) => g.frame.length)).toEqual([104, 105, 106]);
    expect(r.device.state().pendingRx).toBe(0);
  });

  it('a full waiting queue drops and counts', () => {
    const r = netRig({ legacy: false, queueSize: 2, net: { rxPendingFrames: 2 } });
    const results = Array.from({ length: 6 }, () => r.device.inject(frame(64)));
    expect(results).toEqual(['delivered', 'delivered', 'queued', 'queued', 'dropped', 'dropped']);
    expect(r.device.stats.rxDropped['no-buffers']).toBe(2);
  });

  it('link down drops received frames; link changes raise a config change', () => {
    const r = netRig({ legacy: false, features: ['STATUS'] });
    r.device.setLink(false);
    expect(r.ctx.configChanges).toBe(1);
    expect(r.ctx.readConfig(CFG.STATUS.offset, 2) & 1).toBe(0);
    expect(r.device.inject(frame(64))).toBe('dropped');
    expect(r.device.stats.rxDropped['link-down']).toBe(1);
    r.device.setLink(false);
    expect(r.ctx.configChanges).toBe(1);
    r.device.setLink(true);
    expect(r.ctx.configChanges).toBe(2);
    r.device.setMac([2, 0, 0, 0, 0, 0x42]);
    expect(r.ctx.configChanges).toBe(3);
    expect(r.device.state().mac).toBe('02:00:00:00:00:42');
  });

  it('a received frame with a partial checksum is completed for a driver without GUEST_CSUM (tshark checks it)', () => {
    const r = netRig({ legacy: false });
    // Built by frames.ts from RFC 768: a UDP datagram whose checksum holds only the pseudo-header sum.
    return import('../support/frames.js').then(({ ipv4, udpPartial }) => {
      const src = Buffer.from([10, 0, 0, 1]);
      const dst = Buffer.from([10, 0, 0, 2]);
      const udp = udpPartial(src, dst, 4000, 5000, Buffer.from('checksum me, please'));
      const f = ethernet(mac('02:00:00:00:00:01'), mac('02:00:00:00:00:09'), 0x0800, ipv4(src, dst, 17, udp));
      expect(
        r.device.receive(f, { flags: 1, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 34, csumOffset: 6 }),
      ).toBe('delivered');
      const [got] = r.driver.receive();
      expect(got!.header.flags).toBe(0);
      const status = tsharkFields(
        writePcap([{ time: 0, length: got!.frame.length, data: got!.frame }]),
        ['udp.checksum.status'],
        ['-o', 'udp.check_checksum:TRUE'],
      );
      expect(status).toEqual([['1']]);
    });
  });
});

describe('net control queue', () => {
  const CTRL = ['CTRL_VQ', 'CTRL_RX', 'CTRL_RX_EXTRA', 'CTRL_VLAN', 'CTRL_MAC_ADDR', 'GUEST_ANNOUNCE', 'MQ'];

  it('RX modes, MAC tables, VLANs, MQ pairs and announce are acknowledged and reflected', () => {
    const r = netRig({ legacy: false, features: CTRL });
    r.ctx.setConfig(CFG.MAX_VIRTQUEUE_PAIRS.offset, [4, 0]);
    // With MQ the control queue moves to 2 × max_virtqueue_pairs; this driver opened queue 2,
    // so use one pair here and check the MQ command separately below.
    r.ctx.setConfig(CFG.MAX_VIRTQUEUE_PAIRS.offset, [1, 0]);
    const d = r.driver;
    expect(d.command(K.CLASS_RX.value, K.RX_PROMISC.value, Uint8Array.of(0))).toBe(K.OK.value);
    expect(d.command(K.CLASS_RX.value, K.RX_ALLMULTI.value, Uint8Array.of(1))).toBe(K.OK.value);
    expect(d.command(K.CLASS_RX.value, K.RX_NOBCAST.value, Uint8Array.of(1))).toBe(K.OK.value);
    expect(d.command(K.CLASS_RX.value, K.RX_PROMISC.value, Uint8Array.of(2))).toBe(K.ERR.value);
    const table = Buffer.concat([
      Buffer.from([1, 0, 0, 0]),
      mac('02:00:00:00:00:77'),
      Buffer.from([2, 0, 0, 0]),
      mac('01:00:5e:00:00:01'),
      mac('33:33:00:00:00:01'),
    ]);
    expect(d.command(K.CLASS_MAC.value, K.MAC_TABLE_SET.value, table)).toBe(K.OK.value);
    expect(d.command(K.CLASS_MAC.value, K.MAC_TABLE_SET.value, table.subarray(0, table.length - 1))).toBe(
      K.ERR.value,
    );
    expect(d.command(K.CLASS_MAC.value, K.MAC_ADDR_SET.value, mac('02:00:00:00:00:55'))).toBe(K.OK.value);
    expect(d.command(K.CLASS_VLAN.value, K.VLAN_ADD.value, Uint8Array.of(100, 0))).toBe(K.OK.value);
    expect(d.command(K.CLASS_VLAN.value, K.VLAN_ADD.value, Uint8Array.of(0, 0x10))).toBe(K.ERR.value);
    expect(d.command(K.CLASS_MQ.value, K.MQ_VQ_PAIRS_SET.value, Uint8Array.of(2, 0))).toBe(K.ERR.value);
    expect(d.command(K.CLASS_MQ.value, K.MQ_VQ_PAIRS_SET.value, Uint8Array.of(1, 0))).toBe(K.OK.value);
    expect(d.command(99, 0)).toBe(K.ERR.value);
    expect(r.device.announce()).toBe(true);
    expect(r.ctx.readConfig(CFG.STATUS.offset, 2)).toBe(3);
    expect(d.command(K.CLASS_ANNOUNCE.value, K.ANNOUNCE_ACK.value)).toBe(K.OK.value);
    expect(r.ctx.readConfig(CFG.STATUS.offset, 2)).toBe(1);
    const s = r.device.state();
    expect(s.mac).toBe('02:00:00:00:00:55');
    expect(s.filter).toMatchObject({
      promisc: false,
      allmulti: true,
      nobcast: true,
      unicast: ['02:00:00:00:00:77'],
      multicast: ['01:00:5e:00:00:01', '33:33:00:00:00:01'],
      vlans: [100],
    });
    // The filter now applies: broadcast suppressed, own (new) MAC and table entries accepted.
    const to = (dst: string) => ethernet(mac(dst), mac('02:00:00:00:00:09'), 0x88b5, Buffer.alloc(50));
    expect(r.device.inject(to('ff:ff:ff:ff:ff:ff'))).toBe('dropped');
    expect(r.device.inject(to('02:00:00:00:00:55'))).toBe('delivered');
    expect(r.device.inject(to('02:00:00:00:00:77'))).toBe('delivered');
    expect(r.device.inject(to('02:00:00:00:00:01'))).toBe('dropped');
    expect(r.device.stats.rxDropped.filtered).toBe(2);
  });

  it('commands of features the driver did not negotiate get ERR', () => {
    const r = netRig({ legacy: true, features: ['CTRL_VQ'] });
    expect(r.driver.command(K.CLASS_RX.value, K.RX_PROMISC.value, Uint8Array.of(0))).toBe(K.ERR.value);
    expect(r.driver.command(K.CLASS_VLAN.value, K.VLAN_ADD.value, Uint8Array.of(1, 0))).toBe(K.ERR.value);
    expect(r.driver.command(K.CLASS_ANNOUNCE.value, K.ANNOUNCE_ACK.value)).toBe(K.ERR.value);
    expect(r.device.announce()).toBe(false);
  });

  it('a control chain without an ack byte breaks the control queue', () => {
    const r = netRig({ legacy: false, features: ['CTRL_VQ'] });
    const a = r.arena.alloc(16);
    r.driver.ctrl!.add([{ address: a, length: 3, writable: false }]);
    r.transport.kick(2);
    expect(r.ctx.resetErrors.map((e) => [e.queue, e.rule])).toEqual([[2, 'request']]);
  });
});
