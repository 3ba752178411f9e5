import { VmmrError } from '../base/errors.js';
import { widthMask } from '../pci/config-space.js';

export interface RegisterSpec {
  readonly offset: number;
  readonly size: number;
  readonly access: string;
}

/**
 * Behaviour of one register: absent read = write-only, absent write = read-only. A write learns
 * the policy (strict refuses values the register does not take; compat takes what QEMU takes).
 */
export interface Handler<S> {
  read?: (s: S) => number;
  write?: (s: S, value: number, strict: boolean) => void;
}

/** A 64-bit register is two 32-bit halves; an 8-byte access reaches both at once. */
export interface WideHandler<S> {
  read: (s: S, half: 0 | 1) => number;
  write?: (s: S, half: 0 | 1, value: number) => void;
}

interface Slot<S> {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly read: ((s: S) => number) | undefined;
  readonly write: ((s: S, value: number, strict: boolean) => void) | undefined;
  /** For the low half of a 64-bit register: the high half. */
  readonly high: Slot<S> | undefined;
}

/** An 8-byte value from its two 32-bit halves. */
export function joinHalves(low: number, high: number): bigint {
  return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
}

/** A register's value as an access of `width` bytes sees it (its low bytes). */
function truncate(value: number, width: number): number {
  return width === 4 ? value >>> 0 : value & widthMask(width);
}

/** All-ones of an 8-byte access (what compat answers where nothing is decoded). */
export const ALL_ONES_64 = 0xffff_ffff_ffff_ffffn;

/**
 * A register block driven by its spec table (v86 / cloud-hypervisor style): dispatch by exact
 * offset, with the two access policies:
 * - strict: an access must hit one register at its own width; anything else is refused with an
 *   error naming the register;
 * - compat (QEMU): decode by exact offset only; other offsets read all-ones and ignore writes;
 *   a register reads at any width (truncated) and takes writes truncated to the access width.
 */
export class RegisterBlock<S> {
  private readonly slots: (Slot<S> | undefined)[];
  private readonly covering: (Slot<S> | undefined)[];

  constructor(
    readonly blockName: string,
    readonly length: number,
    registers: Readonly<Record<string, RegisterSpec>>,
    handlers: Readonly<Record<string, Handler<S>>>,
    wideHandlers: Readonly<Record<string, WideHandler<S>>> = {},
  ) {
    this.slots = new Array(length).fill(undefined);
    this.covering = new Array(length).fill(undefined);
    for (const [name, spec] of Object.entries(registers)) {
      if (spec.offset >= length) continue;
      if (spec.size === 8) {
        const handler = wideHandlers[name];
        if (!handler) throw new Error(`${blockName}: no behaviour for 64-bit register ${name}`);
        this.addWide(name, spec, handler);
      } else {
        const handler = handlers[name];
        if (!handler) throw new Error(`${blockName}: no behaviour for register ${name}`);
        this.add(name, spec.offset, spec.size, handler, undefined);
      }
    }
  }

  private add(name: string, offset: number, size: number, h: Handler<S>, high: Slot<S> | undefined): Slot<S> {
    const slot: Slot<S> = { name, offset, size, read: h.read, write: h.write, high };
    this.slots[offset] = slot;
    for (let i = 0; i < size; i++) this.covering[offset + i] = slot;
    return slot;
  }

  private addWide(name: string, spec: RegisterSpec, h: WideHandler<S>): void {
    const half = (which: 0 | 1): Handler<S> => ({
      read: (s) => h.read(s, which),
      write: h.write ? (s, v) => h.write!(s, which, v) : undefined,
    });
    const high = this.add(`${name}[63:32]`, spec.offset + 4, 4, half(1), undefined);
    this.add(`${name}[31:0]`, spec.offset, 4, half(0), high);
  }

  /** Name of the register at or covering an offset (for traces). */
  nameAt(offset: number): string | undefined {
    return this.covering[offset]?.name;
  }

  private strictSlot(offset: number, width: number): Slot<S> {
    const slot = this.slots[offset];
    if (slot && (slot.size === width || (width === 8 && slot.high))) return slot;
    const around = slot ?? this.covering[offset];
    if (around) {
      const wideOk = around.high || this.slots[around.offset - 4]?.high === around;
      throw new VmmrError(
        'VMMR_ERR_WIDTH_MISMATCH',
        `${this.blockName} register ${around.name} is ${around.size} bytes at +0x${around.offset.toString(16)}` +
          `${wideOk ? ' (8 bytes with its other half)' : ''}: a ${width}-byte access at +0x${offset.toString(16)} does not match it`,
        { register: around.name },
      );
    }
    throw new VmmrError(
      'VMMR_ERR_UNMAPPED',
      `${this.blockName} has no register at +0x${offset.toString(16)}`,
    );
  }

  /** A 1-, 2- or 4-byte read. */
  read(s: S, offset: number, width: number, strict: boolean): number {
    if (strict) return truncate(this.readable(this.strictSlot(offset, width)).read(s), width);
    const slot = this.slots[offset];
    if (!slot?.read) return widthMask(width);
    return truncate(slot.read(s), width);
  }

  /** An 8-byte read: one 64-bit register whole (strict), or two 4-byte reads in address order (compat). */
  read64(s: S, offset: number, strict: boolean): bigint {
    if (strict) {
      const slot = this.readable(this.strictSlot(offset, 8));
      const low = slot.read(s);
      return joinHalves(low, slot.high!.read!(s));
    }
    const low = this.read(s, offset, 4, false);
    return joinHalves(low, this.read(s, offset + 4, 4, false));
  }

  private readable(slot: Slot<S>): Slot<S> & { read: (s: S) => number } {
    if (!slot.read) {
      throw new VmmrError('VMMR_ERR_WRITE_ONLY', `${this.blockName} register ${slot.name} is write-only`, {
        register: slot.name,
      });
    }
    return slot as Slot<S> & { read: (s: S) => number };
  }

  private writable(slot: Slot<S>): Slot<S> & { write: (s: S, value: number, strict: boolean) => void } {
    if (!slot.write) {
      throw new VmmrError('VMMR_ERR_READ_ONLY', `${this.blockName} register ${slot.name} is read-only`, {
        register: slot.name,
      });
    }
    return slot as Slot<S> & { write: (s: S, value: number, strict: boolean) => void };
  }

  /** A 1-, 2- or 4-byte write. */
  write(s: S, offset: number, width: number, value: number, strict: boolean): void {
    if (strict) {
      this.writable(this.strictSlot(offset, width)).write(s, value, true);
      return;
    }
    const slot = this.slots[offset];
    if (slot?.write) slot.write(s, truncate(value, width), false);
  }

  /** An 8-byte write given as its halves: low half first, as the register pair is laid out. */
  write64(s: S, offset: number, low: number, high: number, strict: boolean): void {
    if (strict) {
      const slot = this.writable(this.strictSlot(offset, 8));
      slot.write(s, low, true);
      slot.high!.write!(s, high, true);
      return;
    }
    this.write(s, offset, 4, low, false);
    this.write(s, offset + 4, 4, high, false);
  }
}
