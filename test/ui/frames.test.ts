/**
 * The dashboard's capture list (ui/src/frames.ts) against tcpdump: the pcap vmmr writes
 * (writePcap, what GET .../net/capture.pcap sends) read back by the page's parser gives the
 * bytes tcpdump reads, and each summary line says what `tcpdump -e -nn` says of the frame.
 */
import { describe, expect, it } from 'vitest';
import { writePcap } from '../../src/devices/net/capture.js';
import { hexDump, parsePcap, summarizeFrame } from '../../ui/src/frames.js';
import {
  arp,
  ethernet,
  icmpEcho,
  ip,
  ipv4,
  mac,
  tcpdumpPackets,
  tcpdumpSummaries,
} from '../support/frames.js';

const A = mac('02:00:00:00:01:01');
const B = mac('02:00:00:00:01:02');
const BROADCAST = mac('ff:ff:ff:ff:ff:ff');
const IP_A = ip('10.0.0.1');
const IP_B = ip('10.0.0.2');

const FRAMES = [
  ethernet(BROADCAST, A, 0x0806, arp(1, A, IP_A, mac('00:00:00:00:00:00'), IP_B)),
  ethernet(A, B, 0x0806, arp(2, B, IP_B, A, IP_A)),
  ethernet(B, A, 0x0800, ipv4(IP_A, IP_B, 1, icmpEcho(8, 0x1234, 7, Buffer.alloc(56, 0xab)))),
  ethernet(A, B, 0x0800, ipv4(IP_B, IP_A, 1, icmpEcho(0, 0x1234, 7, Buffer.alloc(56, 0xab)), 2)),
  ethernet(B, A, 0x88b5, Buffer.from('local experimental ethertype payload')),
];

const file = writePcap(
  FRAMES.map((data, i) => ({ time: 1_700_000_000_000_000 + i * 1500, length: data.length, data })),
);
const arrayBuffer = (b: Buffer): ArrayBuffer =>
  b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

describe('capture list of the dashboard against tcpdump', () => {
  const frames = parsePcap(arrayBuffer(file));
  const lines = tcpdumpSummaries(file);

  it('reads every record: bytes as tcpdump reads them, timestamps as tcpdump prints them', () => {
    const packets = tcpdumpPackets(file);
    expect(frames).toHaveLength(FRAMES.length);
    frames.forEach((f, i) => {
      expect(Buffer.from(f.data).equals(packets[i]!), `frame ${i}`).toBe(true);
      expect(f.time.toFixed(6)).toBe(lines[i]!.split(' ')[0]);
    });
  });

  it('summaries: each part is what tcpdump -e -nn prints for the frame', () => {
    expect(lines).toHaveLength(FRAMES.length);
    frames.forEach((f, i) => {
      const { link, payload } = summarizeFrame(f);
      expect(lines[i], link).toContain(link);
      if (payload !== '') expect(lines[i], payload).toContain(payload);
    });
    expect(summarizeFrame(frames[0]!).payload).toBe('Request who-has 10.0.0.2 tell 10.0.0.1');
    expect(summarizeFrame(frames[1]!).payload).toBe('Reply 10.0.0.2 is-at 02:00:00:00:01:02');
    expect(summarizeFrame(frames[2]!).payload).toBe(
      '10.0.0.1 > 10.0.0.2: ICMP echo request, id 4660, seq 7, length 64',
    );
  });

  it('hex dump: 16 bytes a line with their offset', () => {
    const dump = hexDump(frames[0]!.data).split('\n');
    expect(dump).toHaveLength(Math.ceil(frames[0]!.data.length / 16));
    expect(dump[0]).toBe('0000  ff ff ff ff ff ff 02 00 00 00 01 01 08 06 00 01  ................');
  });

  it('refuses what is not a pcap file, and a record cut short, with the reason', () => {
    expect(() => parsePcap(new ArrayBuffer(10))).toThrow('not a pcap file: 10 bytes');
    expect(() => parsePcap(arrayBuffer(Buffer.alloc(24, 1)))).toThrow('not a pcap file: magic 0x1010101');
    expect(() => parsePcap(arrayBuffer(file.subarray(0, file.length - 3)))).toThrow(
      /runs past the end of the file/,
    );
  });
});
