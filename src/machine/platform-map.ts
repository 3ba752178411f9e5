/**
 * The address map of the machine a guest (or a host) sees: where I/O BARs, 32-bit memory BARs
 * and 64-bit BARs get their addresses, where the ECAM window sits and which interrupt lines INTx
 * pins are routed to. Defaults are q35 under SeaBIOS (spec-tables/pc-platform.json).
 *
 * The option shape is what a topology file may carry (all fields optional, addresses as numbers
 * or "0x…" strings); resolvePlatformOptions fills the defaults and refuses a map that cannot
 * work, with one message naming the field.
 */
import { DMA_ADDRESS_LIMIT } from '../dma/space.js';
import { VmmrError } from '../base/errors.js';
import { pcPlatform } from '../spec/index.js';

const P = pcPlatform.constants;

/** A window [base, base + size). */
export interface AddressWindow {
  readonly base: number;
  readonly size: number;
}

export interface PlatformMap {
  /** Ports for I/O BARs. */
  readonly io: AddressWindow;
  /** Non-prefetchable memory (below 4 GiB): every vmmr BAR, as Linux and SeaBIOS place them. */
  readonly mem32: AddressWindow;
  /** 64-bit prefetchable window: 64-bit BARs that do not fit below 4 GiB. */
  readonly mem64: AddressWindow;
  /** ECAM window of PCI segment 0 (256 buses × 1 MiB). */
  readonly ecamBase: number;
  /** Interrupt Line values for PIRQ A..D (see intxLine). */
  readonly intxLines: readonly [number, number, number, number];
}

/** A number, or a string in hex ("0xc000") or decimal. */
export type AddressOption = number | string;

export interface WindowOption {
  base?: AddressOption;
  size?: AddressOption;
}

/** What a topology file may say about the address map (every field optional). */
export interface PlatformOptions {
  io?: WindowOption;
  mem32?: WindowOption;
  mem64?: WindowOption;
  ecamBase?: AddressOption;
  intxLines?: readonly number[];
}

export const DEFAULT_PLATFORM_MAP: PlatformMap = Object.freeze({
  io: Object.freeze({ base: P.IO_WINDOW_BASE.value, size: P.IO_WINDOW_LIMIT.value - P.IO_WINDOW_BASE.value }),
  mem32: Object.freeze({
    base: P.MEM32_WINDOW_BASE.value,
    size: P.MEM32_WINDOW_LIMIT.value - P.MEM32_WINDOW_BASE.value,
  }),
  mem64: Object.freeze({
    base: P.MEM64_WINDOW_BASE.value,
    size: P.MEM64_WINDOW_LIMIT.value - P.MEM64_WINDOW_BASE.value,
  }),
  ecamBase: P.ECAM_BASE.value,
  intxLines: Object.freeze([
    P.INTX_LINE_A.value,
    P.INTX_LINE_B.value,
    P.INTX_LINE_C.value,
    P.INTX_LINE_D.value,
  ]) as unknown as [number, number, number, number],
});

const TWO_32 = 2 ** 32;

function refuse(field: string, why: string): never {
  throw new VmmrError('VMMR_ERR_TOPOLOGY', `platform.${field}: ${why}`);
}

function parseAddress(value: AddressOption, field: string): number {
  const n =
    typeof value === 'number'
      ? value
      : /^0[xX][0-9a-fA-F]+$/.test(value)
        ? Number.parseInt(value.slice(2), 16)
        : /^(0|[1-9][0-9]*)$/.test(value)
          ? Number(value)
          : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0 || n >= DMA_ADDRESS_LIMIT) {
    refuse(
      field,
      `${JSON.stringify(value)} is not an address: expected an integer 0..2^53-1, as a number or a "0x…" string`,
    );
  }
  return n;
}

function resolveWindow(
  option: WindowOption | undefined,
  fallback: AddressWindow,
  field: string,
  limit: number,
): AddressWindow {
  const base = option?.base === undefined ? fallback.base : parseAddress(option.base, `${field}.base`);
  const size = option?.size === undefined ? fallback.size : parseAddress(option.size, `${field}.size`);
  if (size === 0) refuse(`${field}.size`, 'must not be 0');
  if (base + size > limit) {
    refuse(
      field,
      `[0x${base.toString(16)}, 0x${(base + size).toString(16)}) runs past 0x${limit.toString(16)}`,
    );
  }
  return { base, size };
}

function overlaps(a: AddressWindow, b: AddressWindow): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

/** The defaults with `options` applied; a window that cannot work is VMMR_ERR_TOPOLOGY naming it. */
export function resolvePlatformOptions(options: PlatformOptions = {}): PlatformMap {
  const d = DEFAULT_PLATFORM_MAP;
  const io = resolveWindow(options.io, d.io, 'io', P.IO_WINDOW_LIMIT.value);
  const mem32 = resolveWindow(options.mem32, d.mem32, 'mem32', TWO_32);
  const mem64 = resolveWindow(options.mem64, d.mem64, 'mem64', DMA_ADDRESS_LIMIT);
  const ecamBase = options.ecamBase === undefined ? d.ecamBase : parseAddress(options.ecamBase, 'ecamBase');
  const ecam = { base: ecamBase, size: P.ECAM_SIZE.value };
  if (ecamBase % P.ECAM_SIZE.value !== 0)
    refuse('ecamBase', `0x${ecamBase.toString(16)} is not aligned to the window size 256 MiB`);
  if (ecamBase + ecam.size > DMA_ADDRESS_LIMIT) refuse('ecamBase', 'the window runs past 2^53');
  if (overlaps(mem32, mem64)) refuse('mem64', 'overlaps mem32');
  if (overlaps(ecam, mem32)) refuse('ecamBase', 'the ECAM window overlaps mem32');
  if (overlaps(ecam, mem64)) refuse('ecamBase', 'the ECAM window overlaps mem64');
  const lines = options.intxLines ?? d.intxLines;
  if (
    lines.length !== P.INTX_ROUTE_COUNT.value ||
    !lines.every((l) => Number.isInteger(l) && l >= 0 && l <= 0xff)
  ) {
    refuse(
      'intxLines',
      `expected ${P.INTX_ROUTE_COUNT.value} interrupt lines 0..255 (PIRQ A..D), got ${JSON.stringify(lines)}`,
    );
  }
  return Object.freeze({
    io: Object.freeze(io),
    mem32: Object.freeze(mem32),
    mem64: Object.freeze(mem64),
    ecamBase,
    intxLines: Object.freeze([...lines]) as unknown as [number, number, number, number],
  });
}

/**
 * The Interrupt Line firmware writes for INTx `pin` (1 = INTA) of a function at `device`, as
 * SeaBIOS does on q35 (src/fw/pciinit.c mch_pci_slot_get_irq): slots 0..24 rotate the pin by the
 * slot number, higher slots do not. vmmr has no bridges, so the slot is the function's own device.
 */
export function intxLine(map: PlatformMap, device: number, pin: number): number {
  const rotation = device <= P.INTX_SLOT_ROTATION_MAX.value ? device : 0;
  return map.intxLines[(pin - 1 + rotation) & (P.INTX_ROUTE_COUNT.value - 1)]!;
}
