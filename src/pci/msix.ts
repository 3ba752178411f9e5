import { msixCap, msixTableEntry } from '../spec/index.js';
import { hex64, parseHex64 } from '../base/hex.js';
import type { ConfigStore } from './config-space.js';

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

/** Where a function's MSI-X messages go, and who hears of vectors left pending. */
export interface MsixSink {
  deliver(message: MsixMessage): void;
  pending(vector: number): void;
}

/** The named form of an MSI-X table and PBA, for state snapshots. */
export interface MsixState {
  vectors: Array<{ address: string; data: number; masked: boolean }>;
  /** Vectors whose pending bit is set. */
  pending: number[];
}

/**
 * The MSI-X capability of a function (PCI 3.0 §6.8; QEMU hw/pci/msix.c): Message Control in
 * config space (Enable, Function Mask), the vector table and the pending bit array in a BAR.
 * Table and PBA are allocated on the first write that changes them (most functions of a large
 * machine never program one). A vector signalled while the function or the vector is masked
 * sets its pending bit; unmasking delivers it and clears the bit (§6.8.2.9).
 */
export class MsixTable {
  private slots: Uint32Array | undefined;

  constructor(
    readonly vectors: number,
    private readonly config: ConfigStore,
    private readonly capability: number,
    private readonly sink: MsixSink,
  ) {}

  private flags(): number {
    return this.config.read(this.capability + FLAGS.offset, FLAGS.size);
  }

  get enabled(): boolean {
    return (this.flags() & FLAGS_ENABLE) !== 0;
  }

  get functionMasked(): boolean {
    return (this.flags() & FLAGS_MASKALL) !== 0;
  }

  private get tableDwords(): number {
    return this.vectors * ENTRY_DWORDS;
  }

  private get pbaDwords(): number {
    return Math.ceil(this.vectors / 32);
  }

  private dword(index: number): number {
    if (this.slots) return this.slots[index]!;
    return index < this.tableDwords && index % ENTRY_DWORDS === CTRL_DWORD ? VECTOR_CTRL_RESET : 0;
  }

  private own(): Uint32Array {
    if (!this.slots) {
      const slots = new Uint32Array(this.tableDwords + this.pbaDwords);
      for (let v = 0; v < this.vectors; v++) slots[v * ENTRY_DWORDS + CTRL_DWORD] = VECTOR_CTRL_RESET;
      this.slots = slots;
    }
    return this.slots;
  }

  /** Table dword at a byte offset inside the table. */
  readTable(offset: number): number {
    return this.dword(offset >>> 2);
  }

  /** Vector Control keeps only its writable bits (Mask; bits 31:1 are reserved, §6.8.2.9). */
  writeTable(offset: number, value: number): void {
    const index = offset >>> 2;
    const isControl = index % ENTRY_DWORDS === CTRL_DWORD;
    this.own()[index] = (isControl ? value & VECTOR_CTRL_WRITABLE : value) >>> 0;
    if (isControl) this.deliverPending();
  }

  readPba(offset: number): number {
    return this.dword(this.tableDwords + (offset >>> 2));
  }

  vectorMasked(vector: number): boolean {
    return (this.dword(vector * ENTRY_DWORDS + CTRL_DWORD) & MASKBIT) !== 0;
  }

  isPending(vector: number): boolean {
    return ((this.dword(this.tableDwords + (vector >>> 5)) >>> (vector & 31)) & 1) === 1;
  }

  private setPending(vector: number, on: boolean): void {
    const slots = this.own();
    const index = this.tableDwords + (vector >>> 5);
    const bit = 1 << (vector & 31);
    slots[index] = on ? slots[index]! | bit : slots[index]! & ~bit;
  }

  private message(vector: number): MsixMessage {
    const base = vector * ENTRY_DWORDS;
    return {
      vector,
      addressLow: this.dword(base + LOWER_ADDR_DWORD),
      addressHigh: this.dword(base + UPPER_ADDR_DWORD),
      data: this.dword(base + DATA_DWORD),
    };
  }

  /** A vector fires: delivered now, or left pending while the function or the vector is masked. */
  signal(vector: number): void {
    if (vector >= this.vectors) return;
    if (this.functionMasked || this.vectorMasked(vector)) {
      this.setPending(vector, true);
      this.sink.pending(vector);
      return;
    }
    this.sink.deliver(this.message(vector));
  }

  /** After an unmask (entry or function), pending vectors are delivered and their bits clear. */
  deliverPending(): void {
    if (!this.slots || !this.enabled || this.functionMasked) return;
    for (let v = 0; v < this.vectors; v++) {
      if (this.isPending(v) && !this.vectorMasked(v)) {
        this.setPending(v, false);
        this.sink.deliver(this.message(v));
      }
    }
  }

  /** Function reset: every vector masked, nothing pending. */
  reset(): void {
    this.slots = undefined;
  }

  get pristine(): boolean {
    return this.slots === undefined;
  }

  getState(): MsixState | null {
    if (!this.slots) return null;
    const vectors: MsixState['vectors'] = [];
    for (let v = 0; v < this.vectors; v++) {
      const m = this.message(v);
      vectors.push({
        address: hex64(m.addressLow, m.addressHigh),
        data: m.data,
        masked: this.vectorMasked(v),
      });
    }
    const pending: number[] = [];
    for (let v = 0; v < this.vectors; v++) if (this.isPending(v)) pending.push(v);
    return { vectors, pending };
  }

  setState(state: MsixState | null): void {
    if (state === null) {
      this.slots = undefined;
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
    this.slots = slots;
  }
}
