import { endianness } from 'node:os';
import { hex, parseHex64 } from '../base/hex.js';
import { pciHeader } from '../spec/index.js';

if (endianness() !== 'LE') {
  throw new Error(
    'vmmr models little-endian PCI registers with typed-array views and needs a little-endian host',
  );
}

export const CONFIG_SPACE_SIZE = pciHeader.constants.CFG_SPACE_EXP_SIZE.value;

/** All-ones of an access width in bytes (1, 2 or 4). */
export function widthMask(width: number): number {
  return width === 4 ? 0xffffffff : (1 << (width * 8)) - 1;
}

/**
 * The immutable image a function's config space starts from: reset values, the write mask
 * (bits a write may change) and the RW1C mask (bits a written 1 clears), as QEMU keeps them in
 * config/wmask/w1cmask. One template serves every VF of a PF (flyweight).
 */
export class ConfigTemplate {
  readonly bytes = new Uint8Array(CONFIG_SPACE_SIZE);
  readonly wmask = new Uint8Array(CONFIG_SPACE_SIZE);
  readonly w1cmask = new Uint8Array(CONFIG_SPACE_SIZE);
  readonly dwords = new Uint32Array(this.bytes.buffer);
  readonly wmaskDwords = new Uint32Array(this.wmask.buffer);
  readonly w1cDwords = new Uint32Array(this.w1cmask.buffer);

  /** Sets a little-endian field of 1..8 bytes; 8-byte values are given as two halves. */
  set(offset: number, size: number, value: number, high = 0): void {
    setField(this.bytes, offset, size, value, high);
  }

  setMasks(offset: number, size: number, writeMask: number, rw1cMask = 0): void {
    setField(this.wmask, offset, size, writeMask, 0);
    setField(this.w1cmask, offset, size, rw1cMask, 0);
  }

  get(offset: number, size: number): number {
    return getField(this.bytes, offset, size);
  }

  clone(): ConfigTemplate {
    const copy = new ConfigTemplate();
    copy.bytes.set(this.bytes);
    copy.wmask.set(this.wmask);
    copy.w1cmask.set(this.w1cmask);
    return copy;
  }
}

function setField(target: Uint8Array, offset: number, size: number, value: number, high: number): void {
  for (let i = 0; i < size; i++) {
    const source = i < 4 ? value : high;
    target[offset + i] = Math.floor(source / 2 ** ((i % 4) * 8)) & 0xff;
  }
}

function getField(source: Uint8Array, offset: number, size: number): number {
  let value = 0;
  for (let i = size - 1; i >= 0; i--) value = value * 256 + source[offset + i]!;
  return value;
}

/** One config dword that differs from the template, as a state file names it. */
export interface ConfigChange {
  /** Dword offset, "0x0004". */
  offset: string;
  /** The dword, "0x00100406". */
  value: string;
}

/**
 * Past this many changed dwords the overlay is a Map; up to it, a chain of small entries (about
 * 36 bytes each where a Map costs about 200 and an array 64: a driven VF changes one or two).
 */
const SMALL_OVERLAY = 8;

class OverlayEntry {
  constructor(
    readonly index: number,
    public value: number,
    readonly next: OverlayEntry | undefined,
  ) {}
}

type Overlay = OverlayEntry | Map<number, number>;

function overlayGet(overlay: Overlay, index: number): number | undefined {
  if (overlay instanceof Map) return overlay.get(index);
  for (let e: OverlayEntry | undefined = overlay; e; e = e.next) if (e.index === index) return e.value;
  return undefined;
}

function chainLength(chain: OverlayEntry): number {
  let n = 0;
  for (let e: OverlayEntry | undefined = chain; e; e = e.next) n++;
  return n;
}

/** The overlay with `index` set to `value`. */
function overlaySet(overlay: Overlay | undefined, index: number, value: number): Overlay {
  if (overlay instanceof Map) return overlay.set(index, value);
  for (let e = overlay; e; e = e.next) {
    if (e.index !== index) continue;
    e.value = value;
    return overlay!;
  }
  if (!overlay || chainLength(overlay) < SMALL_OVERLAY) return new OverlayEntry(index, value, overlay);
  return new Map(overlayEntries(overlay)).set(index, value);
}

/** The overlay without `index`; undefined once empty. */
function overlayDelete(overlay: Overlay, index: number): Overlay | undefined {
  if (overlay instanceof Map) {
    overlay.delete(index);
    return overlay.size === 0 ? undefined : overlay;
  }
  if (overlayGet(overlay, index) === undefined) return overlay;
  let rest: OverlayEntry | undefined;
  for (const [i, v] of overlayEntries(overlay).reverse())
    if (i !== index) rest = new OverlayEntry(i, v, rest);
  return rest;
}

function overlayEntries(overlay: Overlay): Array<[number, number]> {
  if (overlay instanceof Map) return [...overlay];
  const out: Array<[number, number]> = [];
  for (let e: OverlayEntry | undefined = overlay; e; e = e.next) out.push([e.index, e.value]);
  return out;
}

/**
 * A function's live config space: the template plus a sparse overlay of the dwords that differ
 * from it, allocated on the first write that changes anything. Accesses are naturally aligned
 * and never cross a dword, so every access touches exactly one dword.
 */
export class ConfigStore {
  private overlay: Overlay | undefined;

  constructor(readonly template: ConfigTemplate) {}

  readDword(offset: number): number {
    const index = offset >>> 2;
    const own = this.overlay && overlayGet(this.overlay, index);
    return own ?? this.template.dwords[index]!;
  }

  read(offset: number, width: number): number {
    const dword = this.readDword(offset);
    if (width === 4) return dword;
    return (dword >>> ((offset & 3) * 8)) & widthMask(width);
  }

  /** A driver write: bits outside the write mask keep their value, RW1C bits clear on 1. */
  write(offset: number, width: number, value: number): void {
    const index = offset >>> 2;
    const shift = (offset & 3) * 8;
    const lanes = width === 4 ? 0xffffffff : (widthMask(width) << shift) >>> 0;
    const shifted = width === 4 ? value >>> 0 : (value << shift) >>> 0;
    const wmask = this.template.wmaskDwords[index]! & lanes;
    const w1c = this.template.w1cDwords[index]! & lanes;
    const old = this.readDword(offset);
    const next = (((old & ~wmask) | (shifted & wmask)) & ~(shifted & w1c)) >>> 0;
    this.store(index, next);
  }

  /** A device-side update that ignores the masks (status bits, NumVFs bookkeeping, …). */
  poke(offset: number, width: number, value: number): void {
    const index = offset >>> 2;
    const shift = (offset & 3) * 8;
    const lanes = width === 4 ? 0xffffffff : (widthMask(width) << shift) >>> 0;
    const shifted = width === 4 ? value >>> 0 : (value << shift) >>> 0;
    const old = this.readDword(offset);
    this.store(index, ((old & ~lanes) | (shifted & lanes)) >>> 0);
  }

  private store(index: number, value: number): void {
    if (value === this.template.dwords[index]) {
      if (this.overlay) this.overlay = overlayDelete(this.overlay, index);
      return;
    }
    this.overlay = overlaySet(this.overlay, index, value);
  }

  /** Back to the template (function reset). */
  clear(): void {
    this.overlay = undefined;
  }

  /** The 4 KiB image, read without side effects. */
  snapshot(): Uint8Array {
    const out = new Uint8Array(CONFIG_SPACE_SIZE);
    out.set(this.template.bytes);
    if (this.overlay) {
      const view = new DataView(out.buffer);
      for (const [index, value] of overlayEntries(this.overlay)) view.setUint32(index * 4, value, true);
    }
    return out;
  }

  /** The dwords that differ from the template, by offset, for state snapshots. */
  changes(): ConfigChange[] {
    if (!this.overlay) return [];
    return overlayEntries(this.overlay)
      .sort((a, b) => a[0] - b[0])
      .map(([index, value]) => ({ offset: hex(index * 4, 2), value: hex(value, 4) }));
  }

  /** Back to the template plus the given changes (a malformed entry is refused, nothing applied). */
  restoreChanges(changes: readonly ConfigChange[]): void {
    const parsed = changes.map((c) => {
      const offset = parseHex64(c.offset);
      const value = parseHex64(c.value);
      if (!offset || offset[1] !== 0 || offset[0] % 4 !== 0 || offset[0] >= CONFIG_SPACE_SIZE) {
        throw new Error(
          `config change offset ${JSON.stringify(c.offset)} is not a dword offset below 0x${CONFIG_SPACE_SIZE.toString(16)}`,
        );
      }
      if (!value || value[1] !== 0)
        throw new Error(`config change value ${JSON.stringify(c.value)} is not a 32-bit hex value`);
      return [offset[0] >>> 2, value[0]] as const;
    });
    this.overlay = undefined;
    for (const [index, value] of parsed) this.store(index, value);
  }

  get overlaySize(): number {
    const overlay = this.overlay;
    if (!overlay) return 0;
    return overlay instanceof Map ? overlay.size : chainLength(overlay);
  }
}
