/**
 * Test frames built by hand from the RFCs (Ethernet II, ARP RFC 826, IPv4 RFC 791, ICMP RFC 792,
 * UDP RFC 768), and the external decoders used as oracles: tcpdump -r (packet bytes) and
 * tshark -r (protocol fields). An oracle that cannot run fails the test.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function mac(s: string): Buffer {
  return Buffer.from(s.split(':').map((h) => Number.parseInt(h, 16)));
}

export function ip(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

export function inetChecksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ethernet(dst: Buffer, src: Buffer, type: number, payload: Uint8Array): Buffer {
  const t = Buffer.alloc(2);
  t.writeUInt16BE(type);
  return Buffer.concat([dst, src, t, payload]);
}

export function arp(
  op: 1 | 2,
  senderMac: Buffer,
  senderIp: Buffer,
  targetMac: Buffer,
  targetIp: Buffer,
): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(1, 0);
  h.writeUInt16BE(0x0800, 2);
  h.writeUInt8(6, 4);
  h.writeUInt8(4, 5);
  h.writeUInt16BE(op, 6);
  return Buffer.concat([h, senderMac, senderIp, targetMac, targetIp]);
}

export function ipv4(src: Buffer, dst: Buffer, protocol: number, payload: Uint8Array, id = 1): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt8(0x45, 0);
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(id, 4);
  h.writeUInt8(64, 8);
  h.writeUInt8(protocol, 9);
  src.copy(h, 12);
  dst.copy(h, 16);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

export function icmpEcho(type: 0 | 8, id: number, seq: number, data: Uint8Array): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt8(type, 0);
  h.writeUInt16BE(id, 4);
  h.writeUInt16BE(seq, 6);
  const m = Buffer.concat([h, data]);
  m.writeUInt16BE(inetChecksum(m), 2);
  return m;
}

/** A UDP datagram whose checksum field holds only the pseudo-header sum (a partial checksum). */
export function udpPartial(src: Buffer, dst: Buffer, sport: number, dport: number, data: Uint8Array): Buffer {
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(8 + data.length, 4);
  const pseudo = Buffer.concat([
    src,
    dst,
    Buffer.from([0, 17]),
    Buffer.from([(8 + data.length) >> 8, (8 + data.length) & 0xff]),
  ]);
  let sum = 0;
  for (let i = 0; i < pseudo.length; i += 2) sum += (pseudo[i]! << 8) | pseudo[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  u.writeUInt16BE(sum, 6);
  return Buffer.concat([u, data]);
}

function withFile<T>(bytes: Uint8Array, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-pcap-'));
  try {
    const path = join(dir, 'capture.pcap');
    writeFileSync(path, bytes);
    return fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Packets as tcpdump -r reads them: every byte (-xx) of every record, and its timestamp line (-tt). */
export function tcpdumpPackets(pcapFile: Uint8Array): Buffer[] {
  const out = withFile(pcapFile, (path) =>
    execFileSync('tcpdump', ['-r', path, '-nn', '-tt', '-xx', '-s', '0'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 1 << 28,
    }),
  );
  const packets: number[][] = [];
  for (const line of out.split('\n')) {
    const m = /^\s+0x[0-9a-f]+:\s+((?:[0-9a-f]{2,4}\s?)+)/.exec(line);
    if (m) {
      const hex = m[1]!.replace(/\s+/g, '');
      const last = packets[packets.length - 1]!;
      for (let i = 0; i < hex.length; i += 2) last.push(Number.parseInt(hex.slice(i, i + 2), 16));
    } else if (/^\d+\.\d{6} /.test(line)) packets.push([]);
  }
  return packets.map((p) => Buffer.from(p));
}

/** Fields per packet as tshark -r decodes them (-T fields, tab separated). */
export function tsharkFields(pcapFile: Uint8Array, fields: string[], extra: string[] = []): string[][] {
  const out = withFile(pcapFile, (path) =>
    execFileSync('tshark', ['-r', path, ...extra, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 1 << 28,
    }),
  );
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

/** One summary line per packet as `tcpdump -r FILE -e -nn -tt` prints it. */
export function tcpdumpSummaries(pcapFile: Uint8Array): string[] {
  const out = withFile(pcapFile, (path) =>
    execFileSync('tcpdump', ['-r', path, '-e', '-nn', '-tt'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 1 << 28,
    }),
  );
  return out.split('\n').filter((l) => /^\d+\.\d{6} /.test(l));
}
