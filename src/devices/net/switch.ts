/**
 * A learning L2 switch joining net functions (IEEE 802.1D transparent bridging, simplified):
 * each frame's source address is learned on the port it came from; broadcast, multicast and
 * unknown unicast frames are flooded to every other port; known unicast goes to its port only
 * (never back out of the port it came in on). The table holds at most `fdbLimit` addresses;
 * the least recently learned is forgotten first. Counters per port: frames and bytes in, out,
 * and refused by the port (filtered, no receive buffers, link down).
 */
import { datapath, ethernet } from '../../spec/index.js';
import type { NetHeader } from './header.js';

const ALEN = ethernet.constants.ALEN.value;
const GROUP_BIT = ethernet.constants.GROUP_BIT.value;

export type DeliveryResult = 'delivered' | 'queued' | 'dropped';

/** A device the switch can hand frames to. */
export interface SwitchPort {
  /** Stable name (the function's BDF). */
  readonly portName: string;
  /** A frame from the switch; the port copies what it keeps. */
  receive(frame: Uint8Array, header: NetHeader | undefined): DeliveryResult;
}

export interface PortCounters {
  inFrames: number;
  inBytes: number;
  outFrames: number;
  outBytes: number;
  refused: number;
}

export interface FdbEntry {
  mac: string;
  port: string;
}

export function macKey(frame: Uint8Array, at: number): number {
  let k = 0;
  for (let i = 0; i < ALEN; i++) k = k * 256 + frame[at + i]!;
  return k;
}

export function macString(key: number): string {
  const parts: string[] = [];
  for (let i = ALEN - 1; i >= 0; i--)
    parts.push((Math.floor(key / 2 ** (8 * i)) & 0xff).toString(16).padStart(2, '0'));
  return parts.join(':');
}

export class NetSwitch {
  private readonly ports: SwitchPort[] = [];
  private readonly counters = new Map<SwitchPort, PortCounters>();
  private readonly fdb = new Map<number, SwitchPort>();

  constructor(
    readonly name: string,
    readonly fdbLimit: number = datapath.constants.NET_SWITCH_FDB_ENTRIES.value,
  ) {}

  attach(port: SwitchPort): void {
    if (this.counters.has(port)) return;
    this.ports.push(port);
    this.counters.set(port, { inFrames: 0, inBytes: 0, outFrames: 0, outBytes: 0, refused: 0 });
  }

  detach(port: SwitchPort): void {
    const i = this.ports.indexOf(port);
    if (i < 0) return;
    this.ports.splice(i, 1);
    this.counters.delete(port);
    for (const [mac, p] of this.fdb) if (p === port) this.fdb.delete(mac);
  }

  get portNames(): string[] {
    return this.ports.map((p) => p.portName);
  }

  portCounters(): Record<string, PortCounters> {
    return Object.fromEntries(this.ports.map((p) => [p.portName, { ...this.counters.get(p)! }]));
  }

  table(): FdbEntry[] {
    return [...this.fdb].map(([mac, port]) => ({ mac: macString(mac), port: port.portName }));
  }

  private deliver(to: SwitchPort, frame: Uint8Array, header: NetHeader | undefined): void {
    const c = this.counters.get(to)!;
    if (to.receive(frame, header) === 'dropped') {
      c.refused++;
      return;
    }
    c.outFrames++;
    c.outBytes += frame.length;
  }

  /** A frame `from` transmitted (at least an Ethernet header; shorter frames are not switched). */
  forward(from: SwitchPort, frame: Uint8Array, header: NetHeader | undefined): void {
    const c = this.counters.get(from);
    if (!c || frame.length < ethernet.constants.HLEN.value) return;
    c.inFrames++;
    c.inBytes += frame.length;
    if ((frame[ALEN]! & GROUP_BIT) === 0) {
      const src = macKey(frame, ALEN);
      if (this.fdb.get(src) !== from) {
        this.fdb.delete(src);
        this.fdb.set(src, from);
        if (this.fdb.size > this.fdbLimit) this.fdb.delete(this.fdb.keys().next().value!);
      }
    }
    const known = (frame[0]! & GROUP_BIT) === 0 ? this.fdb.get(macKey(frame, 0)) : undefined;
    if (known) {
      if (known !== from) this.deliver(known, frame, header);
      return;
    }
    for (const port of this.ports) if (port !== from) this.deliver(port, frame, header);
  }
}
