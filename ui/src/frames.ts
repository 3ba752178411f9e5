/**
 * The net capture as the page shows it: the classic pcap file of GET .../net/capture.pcap read
 * record by record (libpcap's file format: a 24-byte file header, then a 16-byte header per
 * record), and a one-line summary of each frame worded like `tcpdump -e -nn`: Ethernet II
 * (IEEE 802.3), ARP (RFC 826), IPv4 (RFC 791) and ICMP echo (RFC 792). No DOM: the tests run it
 * in Node against tcpdump.
 */
import ethernetTable from '../../spec-tables/ethernet.json' with { type: 'json' };
import pcapTable from '../../spec-tables/pcap.json' with { type: 'json' };

const E = ethernetTable.constants;
const P = pcapTable.constants;

const ARP_REQUEST = 1;
const ARP_REPLY = 2;
const IPPROTO_ICMP = 1;
const ICMP_ECHO_REPLY = 0;
const ICMP_ECHO_REQUEST = 8;

export interface CapturedFrame {
  /** seconds since the epoch, with microseconds */
  time: number;
  /** bytes on the wire (orig_len); `data` may be shorter (snaplen) */
  length: number;
  data: Uint8Array;
}

export function parsePcap(file: ArrayBuffer): CapturedFrame[] {
  const view = new DataView(file);
  if (file.byteLength < P.FILE_HEADER_SIZE.value)
    throw new Error(`not a pcap file: ${file.byteLength} bytes`);
  const magic = view.getUint32(0, true);
  const little = magic === P.MAGIC.value;
  if (!little && view.getUint32(0, false) !== P.MAGIC.value)
    throw new Error(`not a pcap file: magic 0x${magic.toString(16)}`);
  const frames: CapturedFrame[] = [];
  let at = P.FILE_HEADER_SIZE.value;
  while (at + P.RECORD_HEADER_SIZE.value <= file.byteLength) {
    const seconds = view.getUint32(at, little);
    const micros = view.getUint32(at + 4, little);
    const captured = view.getUint32(at + 8, little);
    const length = view.getUint32(at + 12, little);
    const start = at + P.RECORD_HEADER_SIZE.value;
    if (start + captured > file.byteLength)
      throw new Error(`pcap record at ${at} runs past the end of the file`);
    frames.push({ time: seconds + micros / 1e6, length, data: new Uint8Array(file, start, captured) });
    at = start + captured;
  }
  return frames;
}

const hex2 = (b: number): string => b.toString(16).padStart(2, '0');
export const macText = (d: Uint8Array, at: number): string =>
  Array.from(d.subarray(at, at + E.ALEN.value), hex2).join(':');
const ipText = (d: Uint8Array, at: number): string => Array.from(d.subarray(at, at + 4)).join('.');
const u16 = (d: Uint8Array, at: number): number => (d[at]! << 8) | d[at + 1]!;

const ETHERTYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [E.P_IP.value, 'IPv4'],
  [E.P_ARP.value, 'ARP'],
  [E.P_8021Q.value, '802.1Q'],
  [E.P_IPV6.value, 'IPv6'],
]);

/** RFC 826 over Ethernet and IPv4 (hardware length 6, protocol length 4). */
function arpText(d: Uint8Array, at: number): string {
  if (d.length < at + 28) return 'ARP, truncated';
  const op = u16(d, at + 6);
  if (op === ARP_REQUEST) return `Request who-has ${ipText(d, at + 24)} tell ${ipText(d, at + 14)}`;
  if (op === ARP_REPLY) return `Reply ${ipText(d, at + 14)} is-at ${macText(d, at + 8)}`;
  return `ARP op ${op}`;
}

/** RFC 791 header and, for ICMP echo (RFC 792), its id and sequence number. */
function ipv4Text(d: Uint8Array, at: number): string {
  if (d.length < at + 20) return 'IPv4, truncated';
  const headerLength = (d[at]! & 0xf) * 4;
  const total = u16(d, at + 2);
  const addresses = `${ipText(d, at + 12)} > ${ipText(d, at + 16)}`;
  const protocol = d[at + 9]!;
  const icmp = at + headerLength;
  if (protocol !== IPPROTO_ICMP || d.length < icmp + 8) return `${addresses}: ip-proto-${protocol}`;
  const type = d[icmp]!;
  const payload = total - headerLength;
  if (type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY) {
    const what = type === ICMP_ECHO_REQUEST ? 'request' : 'reply';
    return `${addresses}: ICMP echo ${what}, id ${u16(d, icmp + 4)}, seq ${u16(d, icmp + 6)}, length ${payload}`;
  }
  return `${addresses}: ICMP type ${type}, length ${payload}`;
}

/** "src > dst, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.2 tell 10.0.0.1" */
export function summarizeFrame(frame: CapturedFrame): { link: string; payload: string } {
  const d = frame.data;
  if (d.length < E.HLEN.value) return { link: `truncated frame, length ${frame.length}`, payload: '' };
  const type = u16(d, E.TYPE_OFFSET.value);
  const name = ETHERTYPE_NAMES.get(type) ?? 'Unknown';
  const link = `${macText(d, E.ALEN.value)} > ${macText(d, 0)}, ethertype ${name} (0x${type.toString(16).padStart(4, '0')}), length ${frame.length}`;
  const payload =
    type === E.P_ARP.value
      ? arpText(d, E.HLEN.value)
      : type === E.P_IP.value
        ? ipv4Text(d, E.HLEN.value)
        : '';
  return { link, payload };
}

/** Offset, 16 bytes in hex and their printable ASCII per line, like `xxd` or tcpdump -X. */
export function hexDump(data: Uint8Array): string {
  const lines: string[] = [];
  for (let at = 0; at < data.length; at += 16) {
    const row = data.subarray(at, at + 16);
    const bytes = Array.from(row, hex2).join(' ').padEnd(47, ' ');
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${at.toString(16).padStart(4, '0')}  ${bytes}  ${ascii}`);
  }
  return lines.join('\n');
}
