import type { AdminTrace } from './admin-backend.js';

/** One translated access, as recorded by a VF's trace ring. */
export interface TraceEntry {
  seq: number;
  /** Milliseconds since the epoch, sub-millisecond resolution. */
  time: number;
  op: 'read' | 'write';
  port: number;
  width: number;
  value: number;
  /** Which backend carried it: one MMIO access (mmr) or one admin command on the PF (admin). */
  backend: 'mmr' | 'admin';
  /** The VF BAR access it became (mmr; admin: a QUEUE_NOTIFY written to the LEGACY_NOTIFY_INFO address). */
  bar?: number;
  offset?: number;
  /** The admin command it became (admin backend). */
  admin?: AdminTrace;
  register: string;
  outcome: string;
}

export const DEFAULT_TRACE_DEPTH = 4096;

/** A bounded ring of translated accesses; the oldest entry gives way to the newest. */
export class TraceRing {
  private readonly entries: (TraceEntry | undefined)[];
  private next = 0;
  private seq = 0;

  constructor(readonly depth: number = DEFAULT_TRACE_DEPTH) {
    if (!Number.isInteger(depth) || depth < 1)
      throw new RangeError(`trace depth ${depth} must be a positive integer`);
    this.entries = new Array(depth).fill(undefined);
  }

  record(entry: Omit<TraceEntry, 'seq' | 'time'>): void {
    this.seq += 1;
    this.entries[this.next] = { seq: this.seq, time: performance.timeOrigin + performance.now(), ...entry };
    this.next = (this.next + 1) % this.depth;
  }

  /** Entries oldest first, optionally only those after a sequence number. */
  list(afterSeq = 0): TraceEntry[] {
    const out: TraceEntry[] = [];
    for (let i = 0; i < this.depth; i++) {
      const e = this.entries[(this.next + i) % this.depth];
      if (e && e.seq > afterSeq) out.push(e);
    }
    return out;
  }

  get recorded(): number {
    return this.seq;
  }
}
