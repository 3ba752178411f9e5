import { msixCap, msixTableEntry } from '../spec/index.js';
import { hex64, parseHex64 } from '../base/hex.js';
import type { ConfigStore } from './config-space.js';
import { NO_RECORD, RecordPool } from './record-pool.js';

const ENTRY = msixTableEntry.registers;
const ENTRY_DWORDS = msixTableEntry.constants.ENTRY_SIZE.value / 4;
const CTRL_DWORD = ENTRY.VECTOR_CTRL.offset / 4;
const LOWER_ADDR_DWORD = ENTRY.LOWER_ADDR.offset / 4;
const UPPER_ADDR_DWORD = ENTRY.UPPER_ADDR.offset / 4;
const DATA_DWORD = ENTRY.DATA.offset / 4;
const MASKBIT = msixTableEntry.constants.CTRL_MASKBIT.value;
const VECTOR_CTRL_RESET = msixTableEntry.constants.VECTOR_CTRL_RESET.value;
const VECTOR_CTRL_WRITABLE = ENTRY.VECTOR_CTRL.writeMask ?? MASKBIT;
const FLAGS = msixCap.registers.FLAGS;
const FLAGS_ENABLE = msixCap.constants.FLAGS_ENABLE.value;
const FLAGS_MASKALL = msixCap.constants.FLAGS_MASKALL.value;

/** One message an unmasked vector sends (PCI 3.0 §6.8.2.4–6: Message Address, Upper Address, Data). */
export interface MsixMessage {
  vector: number;
  addressLow: number;
  addressHigh: number;
  data: number;
}

/**
 * A function with an MSI-X capability: its config space (Message Control), the record of its
 * table's pool that holds its table and PBA (NO_RECORD while at reset), and where its messages go.
 */
export interface MsixFunction {
  readonly config: ConfigStore;
  msixRecord: number;
  deliver(message: MsixMessage): void;
  /** A vector fired while masked: its pending bit is set. */
  pending(vector: number): void;
}

/** The named form of an MSI-X table and PBA, for state snapshots. */
export interface MsixState {
  vectors: Array<{ address: string; data: number; masked: boolean }>;
  /** Vectors whose pending bit is set. */
  pending: number[];
}

/**
 * The MSI-X capability of the functions of one template (PCI 3.0 §6.8; QEMU hw/pci/msix.c):
 * Message Control in config space (Enable, Function Mask), the vector table and the pending bit
 * array in a BAR. One MsixTable serves every function of the template (flyweight); a function's
 * own table and PBA are allocated on the first write that changes them (most functions of a large
 * machine never program one). A vector signalled while the function or the vector is masked sets
 * its pending bit; unmasking delivers it and clears the bit (§6.8.2.9).
 */
export class MsixTable {
  private readonly tableDwords: number;
  private readonly pbaDwords: number;
  /** The tables and PBAs of the template's functions that programmed one. */
  private readonly records: RecordPool;

  constructor(
    readonly vectors: number,
    private readonly capability: number,
  ) {
    this.tableDwords = vectors * ENTRY_DWORDS;
    this.pbaDwords = Math.ceil(vectors / 32);
    this.records = new RecordPool(this.tableDwords + this.pbaDwords, (words, at) => {
      for (let v = 0; v < vectors; v++) words[at + v * ENTRY_DWORDS + CTRL_DWORD] = VECTOR_CTRL_RESET;
    });
  }

  private flags(f: MsixFunction): number {
    return f.config.read(this.capability + FLAGS.offset, FLAGS.size);
  }

  enabled(f: MsixFunction): boolean {
    return (this.flags(f) & FLAGS_ENABLE) !== 0;
  }

  functionMasked(f: MsixFunction): boolean {
    return (this.flags(f) & FLAGS_MASKALL) !== 0;
  }

  private dword(f: MsixFunction, index: number): number {
    const record = f.msixRecord;
    if (record !== NO_RECORD) return this.records.get(record, index);
    return index < this.tableDwords && index % ENTRY_DWORDS === CTRL_DWORD ? VECTOR_CTRL_RESET : 0;
  }

  private setDword(f: MsixFunction, index: number, value: number): void {
    if (f.msixRecord === NO_RECORD) f.msixRecord = this.records.allocate();
    this.records.set(f.msixRecord, index, value);
  }

  /** Table and PBA back to reset (FLR), or the function goes away: its record is freed. */
  release(f: MsixFunction): void {
    if (f.msixRecord === NO_RECORD) return;
    this.records.release(f.msixRecord);
    f.msixRecord = NO_RECORD;
  }

  /** Whether the function's table and PBA are as reset left them (nothing to snapshot). */
  atReset(f: MsixFunction): boolean {
    return f.msixRecord === NO_RECORD;
  }

  /** Table dword at a byte offset inside the table. */
  readTable(f: MsixFunction, offset: number): number {
    return this.dword(f, offset >>> 2);
  }

  /** Vector Control keeps only its writable bits (Mask; bits 31:1 are reserved, §6.8.2.9). */
  writeTable(f: MsixFunction, offset: number, value: number): void {
    const index = offset >>> 2;
    const isControl = index % ENTRY_DWORDS === CTRL_DWORD;
    this.setDword(f, index, (isControl ? value & VECTOR_CTRL_WRITABLE : value) >>> 0);
    if (isControl) this.deliverPending(f);
  }

  readPba(f: MsixFunction, offset: number): number {
    return this.dword(f, this.tableDwords + (offset >>> 2));
  }

  vectorMasked(f: MsixFunction, vector: number): boolean {
    return (this.dword(f, vector * ENTRY_DWORDS + CTRL_DWORD) & MASKBIT) !== 0;
  }

  isPending(f: MsixFunction, vector: number): boolean {
    return ((this.dword(f, this.tableDwords + (vector >>> 5)) >>> (vector & 31)) & 1) === 1;
  }

  private setPending(f: MsixFunction, vector: number, on: boolean): void {
    const index = this.tableDwords + (vector >>> 5);
    const bit = 1 << (vector & 31);
    const old = this.dword(f, index);
    this.setDword(f, index, (on ? old | bit : old & ~bit) >>> 0);
  }

  private message(f: MsixFunction, vector: number): MsixMessage {
    const base = vector * ENTRY_DWORDS;
    return {
      vector,
      addressLow: this.dword(f, base + LOWER_ADDR_DWORD),
      addressHigh: this.dword(f, base + UPPER_ADDR_DWORD),
      data: this.dword(f, base + DATA_DWORD),
    };
  }

  /** A vector fires: delivered now, or left pending while the function or the vector is masked. */
  signal(f: MsixFunction, vector: number): void {
    if (vector >= this.vectors) return;
    if (this.functionMasked(f) || this.vectorMasked(f, vector)) {
      this.setPending(f, vector, true);
      f.pending(vector);
      return;
    }
    f.deliver(this.message(f, vector));
  }

  /** After an unmask (entry or function), pending vectors are delivered and their bits clear. */
  deliverPending(f: MsixFunction): void {
    if (f.msixRecord === NO_RECORD || !this.enabled(f) || this.functionMasked(f)) return;
    for (let v = 0; v < this.vectors; v++) {
      if (this.isPending(f, v) && !this.vectorMasked(f, v)) {
        this.setPending(f, v, false);
        f.deliver(this.message(f, v));
      }
    }
  }

  getState(f: MsixFunction): MsixState | null {
    if (f.msixRecord === NO_RECORD) return null;
    const vectors: MsixState['vectors'] = [];
    const pending: number[] = [];
    for (let v = 0; v < this.vectors; v++) {
      const m = this.message(f, v);
      vectors.push({
        address: hex64(m.addressLow, m.addressHigh),
        data: m.data,
        masked: this.vectorMasked(f, v),
      });
      if (this.isPending(f, v)) pending.push(v);
    }
    return { vectors, pending };
  }

  /** Takes a state's table and PBA (null: at reset); a malformed state is refused, nothing kept. */
  restore(f: MsixFunction, state: MsixState | null): void {
    if (state === null) {
      this.release(f);
      return;
    }
    if (state.vectors.length !== this.vectors) {
      throw new Error(`MSI-X state has ${state.vectors.length} vectors, the function has ${this.vectors}`);
    }
    const slots = new Uint32Array(this.tableDwords + this.pbaDwords);
    state.vectors.forEach((entry, v) => {
      const base = v * ENTRY_DWORDS;
      const address = parseHex64(entry.address);
      if (!address)
        throw new Error(
          `MSI-X state: vector ${v} address ${JSON.stringify(entry.address)} is not a 64-bit hex value`,
        );
      [slots[base + LOWER_ADDR_DWORD], slots[base + UPPER_ADDR_DWORD]] = address;
      slots[base + DATA_DWORD] = entry.data >>> 0;
      slots[base + CTRL_DWORD] = entry.masked ? MASKBIT : 0;
    });
    for (const v of state.pending) {
      if (!Number.isInteger(v) || v < 0 || v >= this.vectors)
        throw new Error(`MSI-X state: pending vector ${v} out of range`);
      const index = this.tableDwords + (v >>> 5);
      slots[index] = slots[index]! | (1 << (v & 31));
    }
    slots.forEach((value, index) => this.setDword(f, index, value));
  }
}
