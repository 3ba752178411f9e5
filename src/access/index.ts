import { pciHeader } from '../spec/index.js';
import { VmmrError, describeAccess, isVmmrError, showValue } from '../errors.js';
import type { Machine } from '../machine.js';
import type { MmrVf } from '../mmr/vf.js';
import { guestView } from '../translator/guest-view.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';
import { wide } from '../virtio/registers.js';

/**
 * The one entry point for every access (design: src/access). Spaces:
 * - `config`: the function's 4 KiB config space, widths 1/2/4;
 * - `bar0`..`bar5`: a memory BAR, widths 1/2/4/8 (8 bytes delivered whole, never split);
 * - `io`: the translator's I/O BAR0 of a VF (port offsets from 0), widths 1/2/4;
 * - `guest-config`: the translator's config space of a VF, widths 1/2/4.
 * Accesses are naturally aligned. Every refusal is a VmmrError naming function, space, offset,
 * width and, where one is involved, the register.
 */
export const SPACES = ['config', 'bar0', 'bar1', 'bar2', 'bar3', 'bar4', 'bar5', 'io', 'guest-config'] as const;
export type Space = (typeof SPACES)[number];

export type AccessValue = number | bigint;

const CONFIG_SIZE = pciHeader.constants.CFG_SPACE_EXP_SIZE.value;

/** Checked on every access: one hash lookup rather than a scan of SPACES. */
const SPACE_SET: ReadonlySet<unknown> = new Set<string>(SPACES);

export function isSpace(text: string): text is Space {
  return SPACE_SET.has(text);
}

function widthsOf(space: Space): readonly number[] {
  return space.startsWith('bar') ? [1, 2, 4, 8] : [1, 2, 4];
}

/** Same answer as widthsOf(space).includes(width), without building the list on every access. */
function widthAllowed(space: Space, width: number): boolean {
  return width === 1 || width === 2 || width === 4 || (width === 8 && space.startsWith('bar'));
}

const BAR_INDEX: Readonly<Record<string, number>> = { bar0: 0, bar1: 1, bar2: 2, bar3: 3, bar4: 4, bar5: 5 };

function barIndexOf(space: Space): number {
  return BAR_INDEX[space] ?? Number(space.slice(3));
}

function asVf(fn: VirtioPciFunction, space: Space): MmrVf {
  if (fn.kind !== 'vf') {
    throw new VmmrError(
      'VMMR_ERR_NOT_TRANSITIONAL',
      `${fn.bdf} is a PF (modern device): space ${space} is the translator's guest view of an MMR VF`,
    );
  }
  return fn as MmrVf;
}

/**
 * Checks an access's shape before it reaches any register: offset, width, alignment; then the
 * caller resolves the space (which may refuse it) and checks the range with checkRange.
 */
function checkShape(space: Space, offset: number, width: number): void {
  // Callers in plain JavaScript (or a harness) may pass anything: refuse unknown spaces here
  // rather than decode "xyz2" as BAR 2 or fail on a non-string.
  if (typeof space !== 'string' || !isSpace(space)) {
    throw new VmmrError('VMMR_ERR_BAD_SPACE', `space ${showValue(space)} is not one of ${SPACES.join(', ')}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new VmmrError('VMMR_ERR_BAD_OFFSET', `offset ${String(offset)} is not a non-negative integer`);
  }
  if (!widthAllowed(space, width)) {
    throw new VmmrError('VMMR_ERR_BAD_WIDTH', `width ${String(width)} is not allowed in ${space}: use ${widthsOf(space).join(', ')}`);
  }
  if (offset % width !== 0) {
    throw new VmmrError('VMMR_ERR_UNALIGNED', `offset 0x${offset.toString(16)} is not aligned to width ${width}`);
  }
}

/**
 * A VF object that VF Enable no longer backs (cleared, or replaced by a later enable) is no
 * function any more: refused as Machine.find refuses its BDF, instead of changing orphan state.
 */
function checkLive(fn: VirtioPciFunction): void {
  if (fn.kind === 'vf' && !(fn as MmrVf).live) {
    throw new VmmrError('VMMR_ERR_VF_DISABLED', `${fn.bdf} is no longer an enabled VF (its PF's VF Enable was cleared since)`);
  }
}

function checkRange(space: Space, offset: number, width: number, size: number): void {
  if (offset + width > size) {
    throw new VmmrError('VMMR_ERR_OUT_OF_RANGE', `offset 0x${offset.toString(16)} width ${width} is beyond ${space} (${size} bytes)`);
  }
}

/** A BAR space after its checks: decode enabled (else refused), then the range. */
function checkBarAccess(fn: VirtioPciFunction, space: Space, offset: number, width: number): number {
  const index = barIndexOf(space);
  fn.checkBar(index);
  checkRange(space, offset, width, fn.barSize());
  return index;
}

const TWO_32 = 2 ** 32;
const MAX_BY_WIDTH = [0, 0xff, 0xffff, 0, 0xffffffff];

/** The upper 32 bits of the value last split by lowHalf (8-byte accesses). */
let valueHigh = 0;

/**
 * The low 32 bits of a value checked against the access width (upper half in valueHigh). Plain
 * numbers take a fast path; anything else goes through BigInt, with the same outcome.
 */
function lowHalf(value: AccessValue, width: number): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
    if (width === 8) {
      valueHigh = Math.floor(value / TWO_32);
      return value % TWO_32 || 0;
    }
    if (value <= MAX_BY_WIDTH[width]!) {
      valueHigh = 0;
      return value || 0;
    }
  }
  const max = width === 8 ? 2n ** 64n - 1n : BigInt(2 ** (8 * width) - 1);
  const big = typeof value === 'bigint' ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n;
  if (big < 0n || big > max) {
    throw new VmmrError('VMMR_ERR_BAD_VALUE', `value ${String(value)} does not fit in ${width} bytes`);
  }
  if (width === 8) {
    valueHigh = Number(big >> 32n);
    return Number(big & 0xffffffffn);
  }
  valueHigh = 0;
  return Number(big);
}

function enrich(e: unknown, fn: VirtioPciFunction | string, space: string, offset: number, width: number): never {
  if (!isVmmrError(e)) throw e;
  const bdf = typeof fn === 'string' ? fn : fn.bdf;
  const where = `${bdf} ${isSpace(space) ? space : showValue(space)} ${describeAccess(offset, width)}`;
  throw new VmmrError(e.code, e.message.startsWith(where) ? e.message : `${where}: ${e.message}`, {
    bdf,
    space,
    offset,
    width,
    ...(e.context.register !== undefined ? { register: e.context.register } : {}),
  });
}

export function read(fn: VirtioPciFunction, space: Space, offset: number, width: number): AccessValue {
  try {
    checkShape(space, offset, width);
    checkLive(fn);
    switch (space) {
      case 'config':
        checkRange(space, offset, width, CONFIG_SIZE);
        return fn.readConfig(offset, width);
      case 'io': {
        const view = guestView(asVf(fn, space));
        checkRange(space, offset, width, view.ioLength);
        return view.ioRead(offset, width);
      }
      case 'guest-config':
        checkRange(space, offset, width, CONFIG_SIZE);
        return guestView(asVf(fn, space)).readConfig(offset, width);
      default: {
        const index = checkBarAccess(fn, space, offset, width);
        const low = fn.readBar(index, offset, width);
        return width === 8 ? (BigInt(wide.high >>> 0) << 32n) | BigInt(low >>> 0) : low >>> 0;
      }
    }
  } catch (e) {
    return enrich(e, fn, space, offset, width);
  }
}

export function write(fn: VirtioPciFunction, space: Space, offset: number, width: number, value: AccessValue): void {
  try {
    checkShape(space, offset, width);
    checkLive(fn);
    switch (space) {
      case 'config': {
        checkRange(space, offset, width, CONFIG_SIZE);
        fn.events.configWrites++;
        fn.writeConfig(offset, width, lowHalf(value, width));
        return;
      }
      case 'io': {
        const view = guestView(asVf(fn, space));
        checkRange(space, offset, width, view.ioLength);
        view.ioWrite(offset, width, lowHalf(value, width));
        return;
      }
      case 'guest-config': {
        checkRange(space, offset, width, CONFIG_SIZE);
        fn.events.configWrites++;
        const low = lowHalf(value, width);
        guestView(asVf(fn, space)).writeConfig(offset, width, low);
        return;
      }
      default: {
        const index = checkBarAccess(fn, space, offset, width);
        const low = lowHalf(value, width);
        fn.writeBar(index, offset, width, low, valueHigh);
      }
    }
  } catch (e) {
    enrich(e, fn, space, offset, width);
  }
}

/** One operation of a batch. */
export type Operation =
  | { bdf: string; space: Space; op: 'read'; offset: number; width: number }
  | { bdf: string; space: Space; op: 'write'; offset: number; width: number; value: AccessValue };

export type OperationResult =
  | { ok: true; value?: AccessValue }
  | { ok: false; error: VmmrError };

/**
 * Runs operations in order as one unit (nothing else runs in between: the core is
 * single-threaded and a batch never yields). Stops at the first refusal unless `continueOnError`.
 */
export function runBatch(machine: Machine, ops: readonly Operation[], continueOnError: boolean): OperationResult[] {
  const results: OperationResult[] = [];
  let lastBdf = '';
  let lastFn: VirtioPciFunction | undefined;
  for (const op of ops) {
    try {
      if (op.bdf !== lastBdf || !lastFn) {
        lastFn = undefined;
        lastFn = machine.find(op.bdf);
        lastBdf = op.bdf;
      }
      if (op.op === 'read') results.push({ ok: true, value: read(lastFn, op.space, op.offset, op.width) });
      else {
        write(lastFn, op.space, op.offset, op.width, op.value);
        results.push({ ok: true });
        // A config write may enable or remove VFs: resolve the next BDF afresh.
        if (op.space === 'config') lastFn = undefined;
      }
    } catch (e) {
      if (!isVmmrError(e)) throw e;
      // Only a malformed BDF arrives without context.bdf, and its message already quotes it.
      const error = e.context.bdf ? e : new VmmrError(e.code, e.message, { ...e.context, bdf: op.bdf });
      results.push({ ok: false, error });
      if (!continueOnError) break;
    }
  }
  return results;
}
