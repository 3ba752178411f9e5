import { pciHeader } from '../spec/index.js';
import { VmmrError, describeAccess, isVmmrError } from '../errors.js';
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

export function isSpace(text: string): text is Space {
  return (SPACES as readonly string[]).includes(text);
}

function widthsOf(space: Space): readonly number[] {
  return space.startsWith('bar') ? [1, 2, 4, 8] : [1, 2, 4];
}

function spaceSize(fn: VirtioPciFunction, space: Space): number {
  if (space === 'config' || space === 'guest-config') return CONFIG_SIZE;
  if (space === 'io') return guestView(asVf(fn, space)).ioLength;
  const index = Number(space.slice(3));
  fn.checkBar(index);
  return fn.barSize();
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

/** Checks an access's shape before it reaches any register. */
function check(fn: VirtioPciFunction, space: Space, offset: number, width: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new VmmrError('VMMR_ERR_BAD_OFFSET', `offset ${String(offset)} is not a non-negative integer`);
  }
  if (!widthsOf(space).includes(width)) {
    throw new VmmrError('VMMR_ERR_BAD_WIDTH', `width ${String(width)} is not allowed in ${space}: use ${widthsOf(space).join(', ')}`);
  }
  if (offset % width !== 0) {
    throw new VmmrError('VMMR_ERR_UNALIGNED', `offset 0x${offset.toString(16)} is not aligned to width ${width}`);
  }
  const size = spaceSize(fn, space);
  if (offset + width > size) {
    throw new VmmrError('VMMR_ERR_OUT_OF_RANGE', `offset 0x${offset.toString(16)} width ${width} is beyond ${space} (${size} bytes)`);
  }
}

function splitValue(value: AccessValue, width: number): [number, number] {
  const max = width === 8 ? 2n ** 64n - 1n : BigInt(2 ** (8 * width) - 1);
  const big = typeof value === 'bigint' ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n;
  if (big < 0n || big > max) {
    throw new VmmrError('VMMR_ERR_BAD_VALUE', `value ${String(value)} does not fit in ${width} bytes`);
  }
  if (width === 8) return [Number(big & 0xffffffffn), Number(big >> 32n)];
  return [Number(big), 0];
}

function enrich(e: unknown, fn: VirtioPciFunction | string, space: string, offset: number, width: number): never {
  if (!isVmmrError(e)) throw e;
  const bdf = typeof fn === 'string' ? fn : fn.bdf;
  const where = `${bdf} ${space} ${describeAccess(offset, width)}`;
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
    check(fn, space, offset, width);
    switch (space) {
      case 'config':
        return fn.readConfig(offset, width);
      case 'io':
        return guestView(asVf(fn, space)).ioRead(offset, width);
      case 'guest-config':
        return guestView(asVf(fn, space)).readConfig(offset, width);
      default: {
        const low = fn.readBar(Number(space.slice(3)), offset, width);
        return width === 8 ? (BigInt(wide.high >>> 0) << 32n) | BigInt(low >>> 0) : low >>> 0;
      }
    }
  } catch (e) {
    return enrich(e, fn, space, offset, width);
  }
}

export function write(fn: VirtioPciFunction, space: Space, offset: number, width: number, value: AccessValue): void {
  try {
    check(fn, space, offset, width);
    const [low, high] = splitValue(value, width);
    switch (space) {
      case 'config':
        fn.writeConfig(offset, width, low);
        return;
      case 'io':
        guestView(asVf(fn, space)).ioWrite(offset, width, low);
        return;
      case 'guest-config':
        guestView(asVf(fn, space)).writeConfig(offset, width, low);
        return;
      default:
        fn.writeBar(Number(space.slice(3)), offset, width, low, high);
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
      const error = e.context.bdf ? e : new VmmrError(e.code, `${op.bdf}: ${e.message}`, { ...e.context, bdf: op.bdf });
      results.push({ ok: false, error });
      if (!continueOnError) break;
    }
  }
  return results;
}
