/**
 * Two net functions on one learning switch, each with its own simulated driver and rings, do
 * what two guests do when one pings the other: ARP request (broadcast), ARP reply (unicast),
 * ICMP echo request and reply. The "guests" answer from the frames their drivers receive. Oracle:
 * tshark decodes the two functions' transmit captures, merged by time (ARP opcodes and addresses,
 * ICMP types, ids, sequence numbers, checksums); the switch's table and counters are checked too.
 */
import { describe, expect, it } from 'vitest';
import { writePcap } from '../../src/devices/net/capture.js';
import { NetSwitch } from '../../src/devices/net/switch.js';
import { arp, ethernet, icmpEcho, ip, ipv4, mac, tsharkFields } from '../support/frames.js';
import { netRig, type NetRig } from '../support/datapath-rig.js';

const BROADCAST = mac('ff:ff:ff:ff:ff:ff');

interface Guest {
  rig: NetRig;
  mac: Buffer;
  ip: Buffer;
  arpTable: Map<string, Buffer>;
}

function guest(name: string, macText: string, ipText: string, legacy: boolean, sw: NetSwitch): Guest {
  const rig = netRig({
    legacy,
    name,
    mac: macText,
    format: legacy ? 'split' : 'packed',
    features: legacy ? [] : ['RING_PACKED'],
  });
  rig.device.attach(sw);
  return { rig, mac: mac(macText), ip: ip(ipText), arpTable: new Map() };
}

/** The guest's network stack: answers ARP requests for its address and echo requests. */
function respond(g: Guest): number {
  let answered = 0;
  for (const { frame } of g.rig.driver.receive()) {
    const f = Buffer.from(frame);
    const type = f.readUInt16BE(12);
    if (type === 0x0806) {
      const op = f.readUInt16BE(20);
      const senderMac = f.subarray(22, 28);
      const senderIp = f.subarray(28, 32);
      const targetIp = f.subarray(38, 42);
      g.arpTable.set(senderIp.join('.'), Buffer.from(senderMac));
      if (op === 1 && targetIp.equals(g.ip)) {
        g.rig.driver.send([
          ethernet(
            Buffer.from(senderMac),
            g.mac,
            0x0806,
            arp(2, g.mac, g.ip, Buffer.from(senderMac), Buffer.from(senderIp)),
          ),
        ]);
        answered++;
      }
    } else if (type === 0x0800 && f[23] === 1 && f[34] === 8) {
      const src = f.subarray(26, 30);
      const icmp = f.subarray(34);
      const reply = icmpEcho(0, icmp.readUInt16BE(4), icmp.readUInt16BE(6), icmp.subarray(8));
      g.rig.driver.send([
        ethernet(Buffer.from(f.subarray(6, 12)), g.mac, 0x0800, ipv4(g.ip, Buffer.from(src), 1, reply, 100)),
      ]);
      answered++;
    }
  }
  return answered;
}

describe('two functions on one switch', () => {
  it('exchange ARP and ICMP echo through their rings (legacy split on one side, modern packed on the other)', () => {
    const sw = new NetSwitch('sw0');
    const a = guest('0000:01:00.1', '02:00:00:00:01:01', '10.0.0.1', true, sw);
    const b = guest('0000:01:00.2', '02:00:00:00:01:02', '10.0.0.2', false, sw);
    const c = guest('0000:01:00.3', '02:00:00:00:01:03', '10.0.0.3', true, sw);

    // A asks who has 10.0.0.2: flooded to B and C; only B answers, unicast back to A.
    a.rig.driver.send([ethernet(BROADCAST, a.mac, 0x0806, arp(1, a.mac, a.ip, Buffer.alloc(6), b.ip))]);
    expect(respond(c)).toBe(0);
    expect(respond(b)).toBe(1);
    expect(respond(a)).toBe(0);
    expect(a.arpTable.get('10.0.0.2')).toEqual(b.mac);

    // Four pings A -> B, each answered.
    for (let seq = 1; seq <= 4; seq++) {
      const echo = icmpEcho(8, 0x1234, seq, Buffer.from(`ping ${seq} `.repeat(6)));
      a.rig.driver.send([
        ethernet(a.arpTable.get('10.0.0.2')!, a.mac, 0x0800, ipv4(a.ip, b.ip, 1, echo, seq)),
      ]);
      expect(respond(b)).toBe(1);
      expect(respond(a)).toBe(0);
    }
    // C saw only the broadcast: unicast to learned addresses is not flooded.
    expect(c.rig.device.stats.rxFrames).toBe(1);
    expect(a.rig.device.stats.rxFrames).toBe(5);
    expect(b.rig.device.stats.rxFrames).toBe(5);

    const merged = [...a.rig.device.capture.frames(), ...b.rig.device.capture.frames()].sort(
      (x, y) => x.time - y.time || x.seq - y.seq,
    );
    const fields = tsharkFields(
      writePcap(merged),
      [
        'eth.src',
        'eth.dst',
        'arp.opcode',
        'arp.src.proto_ipv4',
        'arp.dst.proto_ipv4',
        'ip.src',
        'ip.dst',
        'icmp.type',
        'icmp.seq',
        'icmp.checksum.status',
        'ip.checksum.status',
      ],
      ['-o', 'ip.check_checksum:TRUE'],
    );
    expect(fields[0]).toEqual([
      '02:00:00:00:01:01',
      'ff:ff:ff:ff:ff:ff',
      '1',
      '10.0.0.1',
      '10.0.0.2',
      '',
      '',
      '',
      '',
      '',
      '',
    ]);
    expect(fields[1]).toEqual([
      '02:00:00:00:01:02',
      '02:00:00:00:01:01',
      '2',
      '10.0.0.2',
      '10.0.0.1',
      '',
      '',
      '',
      '',
      '',
      '',
    ]);
    const pings = fields.slice(2).map((f) => [f[5], f[6], f[7], f[8], f[9], f[10]]);
    expect(pings).toEqual(
      [1, 2, 3, 4].flatMap((s) => [
        ['10.0.0.1', '10.0.0.2', '8', String(s), '1', '1'],
        ['10.0.0.2', '10.0.0.1', '0', String(s), '1', '1'],
      ]),
    );

    expect(sw.table()).toEqual(
      expect.arrayContaining([
        { mac: '02:00:00:00:01:01', port: '0000:01:00.1' },
        { mac: '02:00:00:00:01:02', port: '0000:01:00.2' },
      ]),
    );
    const counters = sw.portCounters();
    expect(counters['0000:01:00.1']).toMatchObject({ inFrames: 5, outFrames: 5, refused: 0 });
    expect(counters['0000:01:00.2']).toMatchObject({ inFrames: 5, outFrames: 5, refused: 0 });
    expect(counters['0000:01:00.3']).toMatchObject({ inFrames: 0, outFrames: 1 });
  });

  it('counts frames a port refuses, forgets ports that leave, and bounds its table', () => {
    const sw = new NetSwitch('sw1', 2);
    const a = guest('a', '02:00:00:00:02:01', '10.0.1.1', false, sw);
    const b = guest('b', '02:00:00:00:02:02', '10.0.1.2', false, sw);
    b.rig.device.setLink(false);
    a.rig.driver.send([ethernet(BROADCAST, a.mac, 0x88b5, Buffer.alloc(46))]);
    expect(sw.portCounters().b!.refused).toBe(1);
    for (let k = 3; k < 8; k++) {
      a.rig.driver.send([ethernet(BROADCAST, mac(`02:00:00:00:02:0${k}`), 0x88b5, Buffer.alloc(46))]);
    }
    expect(sw.table()).toHaveLength(2);
    b.rig.device.attach(undefined);
    expect(sw.portNames).toEqual(['a']);
  });
});
