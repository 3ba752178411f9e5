import { pciHeader } from '../spec/index.js';
import { VmmrError, isVmmrError } from '../base/errors.js';
import type { Machine } from '../machine/machine.js';
import type { MmrVf } from '../mmr/vf.js';
import { guestView } from '../translator/guest-view.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';
import { SPACES, read, write, type AccessValue, type Space } from './index.js';

/**
 * Block accesses: 1..4096 bytes read or written as one unit, the way vfio-pci's bar_rw
 * (vfio_pci_core_do_io_rw) turns a read()/write() on a region into device accesses:
 *
 * - the range is cut in ascending address order into naturally aligned pieces, each of the
 *   largest width that the space allows (8 in a memory BAR, 4 elsewhere), that is aligned at the
 *   current offset and that still fits in the remaining length — so 13 bytes at 0x1003 become
 *   1@0x1003, 4@0x1004, 8@0x1008 in a BAR;
 * - each piece is one ordinary access through src/access (same checks, same side effects, same
 *   events as a single access of that width);
 * - nothing else runs in between (the core is synchronous);
 * - the first refused piece stops the block: the error is the piece's own (its offset and width in
 *   the context) and says how many bytes went through before it. Pieces before it have happened
 *   (a write is not rolled back; a read's bytes are dropped).
 *
 * A range that does not fit in the space is refused before any piece runs.
 */
export const MAX_BLOCK_LENGTH = 4096;

const CONFIG_SIZE = pciHeader.constants.CFG_SPACE_EXP_SIZE.value;
const SPACE_SET: ReadonlySet<string> = new Set(SPACES);

export interface Piece {
  offset: number;
  width: number;
}

/** Widest access a space takes. */
export function maxWidthOf(space: Space): number {
  return space.startsWith('bar') ? 8 : 4;
}

/** The pieces a block access at `offset` of `length` bytes is made of, in execution order. */
export function blockPieces(space: Space, offset: number, length: number): Piece[] {
  const pieces: Piece[] = [];
  const widest = maxWidthOf(space);
  let at = offset;
  const end = offset + length;
  while (at < end) {
    let width = widest;
    while (width > 1 && (at % width !== 0 || at + width > end)) width >>= 1;
    pieces.push({ offset: at, width });
    at += width;
  }
  return pieces;
}

/** Size of a space of a function, when it can be known without an access (else undefined). */
function spaceSize(fn: VirtioPciFunction, space: Space): number | undefined {
  if (space === 'config' || space === 'guest-config') return CONFIG_SIZE;
  if (space === 'io') return fn.kind === 'vf' ? guestView(fn as MmrVf).ioLength : undefined;
  const index = Number(space.slice(3));
  return fn.memoryBars().find((b) => b.index === index)?.size;
}

function where(
  fn: VirtioPciFunction,
  space: Space,
  op: 'read' | 'write',
  offset: number,
  length: number,
): string {
  return `${fn.bdf} ${space} block ${op} of ${length} bytes at 0x${offset.toString(16)}`;
}

function checkBlock(
  fn: VirtioPciFunction,
  space: Space,
  op: 'read' | 'write',
  offset: number,
  length: number,
): void {
  const context = { bdf: fn.bdf, space, offset };
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new VmmrError(
      'VMMR_ERR_BAD_OFFSET',
      `${fn.bdf} ${space}: offset ${String(offset)} is not a non-negative integer`,
      context,
    );
  }
  if (!Number.isInteger(length) || length < 1 || length > MAX_BLOCK_LENGTH) {
    throw new VmmrError(
      'VMMR_ERR_BAD_WIDTH',
      `${fn.bdf} ${space}: block length ${String(length)} is not allowed: use 1..${MAX_BLOCK_LENGTH} bytes`,
      context,
    );
  }
  const size = spaceSize(fn, space);
  if (size !== undefined && offset + length > size) {
    throw new VmmrError(
      'VMMR_ERR_OUT_OF_RANGE',
      `${where(fn, space, op, offset, length)}: runs beyond ${space} (${size} bytes)`,
      context,
    );
  }
}

function stopped(
  e: unknown,
  fn: VirtioPciFunction,
  space: Space,
  op: 'read' | 'write',
  offset: number,
  length: number,
  done: number,
): never {
  if (!isVmmrError(e)) throw e;
  throw new VmmrError(
    e.code,
    `${where(fn, space, op, offset, length)} stopped after ${done} bytes: ${e.message}`,
    e.context,
  );
}

/** Reads `length` bytes (1..4096) at `offset` of a space; see the module comment. */
export function readBlock(fn: VirtioPciFunction, space: Space, offset: number, length: number): Uint8Array {
  checkBlock(fn, space, 'read', offset, length);
  const out = new Uint8Array(length);
  const widest = maxWidthOf(space);
  const end = offset + length;
  let at = offset;
  while (at < end) {
    let width = widest;
    while (width > 1 && (at % width !== 0 || at + width > end)) width >>= 1;
    let value: AccessValue;
    try {
      value = read(fn, space, at, width);
    } catch (e) {
      stopped(e, fn, space, 'read', offset, length, at - offset);
    }
    const base = at - offset;
    if (typeof value === 'bigint') {
      const lo = Number(value & 0xffffffffn);
      const hi = Number(value >> 32n);
      for (let i = 0; i < 4; i++) out[base + i] = (lo >>> (8 * i)) & 0xff;
      for (let i = 0; i < 4; i++) out[base + 4 + i] = (hi >>> (8 * i)) & 0xff;
    } else {
      for (let i = 0; i < width; i++) out[base + i] = (value >>> (8 * i)) & 0xff;
    }
    at += width;
  }
  return out;
}

/** Writes `data` (1..4096 bytes) at `offset` of a space; see the module comment. */
export function writeBlock(fn: VirtioPciFunction, space: Space, offset: number, data: Uint8Array): void {
  const length = data.length;
  checkBlock(fn, space, 'write', offset, length);
  const widest = maxWidthOf(space);
  const end = offset + length;
  let at = offset;
  while (at < end) {
    let width = widest;
    while (width > 1 && (at % width !== 0 || at + width > end)) width >>= 1;
    const base = at - offset;
    let value: AccessValue;
    if (width === 8) {
      const lo = littleEndian(data, base, 4);
      const hi = littleEndian(data, base + 4, 4);
      value = (BigInt(hi) << 32n) | BigInt(lo);
    } else {
      value = littleEndian(data, base, width);
    }
    try {
      write(fn, space, at, width, value);
    } catch (e) {
      stopped(e, fn, space, 'write', offset, length, base);
    }
    at += width;
  }
}

function littleEndian(data: Uint8Array, at: number, width: number): number {
  let value = 0;
  for (let i = width - 1; i >= 0; i--) value = value * 256 + data[at + i]!;
  return value;
}

// ---------------------------------------------------------------------------------------------
// Batches mixing single and block accesses

/**
 * One operation of a batch. `width` > 0 is a single access; `width` 0 is a block access of
 * `length` bytes (`data` holds the bytes of a block write). `refused` marks an operation the
 * caller could not decode (a malformed value…): it fails with that error when its turn comes,
 * so results stay in order. All fields are always present (one object shape: fast to run).
 */
export interface BatchOperation {
  bdf: string;
  space: string;
  op: 'read' | 'write';
  offset: number;
  width: number;
  length: number;
  value: AccessValue;
  data: Uint8Array | undefined;
  refused: VmmrError | undefined;
}

export type BatchResult =
  | { ok: true; value: AccessValue | undefined; data: Uint8Array | undefined }
  | { ok: false; error: VmmrError };

/**
 * Runs operations in order as one unit: nothing else runs in between (no await, no callback).
 * Stops at the first refusal unless `continueOnError`. Results are in operation order; after a
 * stop there are fewer results than operations.
 */
export function runBatchOperations(
  machine: Machine,
  ops: readonly BatchOperation[],
  continueOnError: boolean,
): BatchResult[] {
  const results: BatchResult[] = [];
  let lastBdf = '';
  let lastFn: VirtioPciFunction | undefined;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    try {
      if (op.refused) throw op.refused;
      if (!SPACE_SET.has(op.space)) {
        throw new VmmrError(
          'VMMR_ERR_BAD_SPACE',
          `${op.bdf}: "${op.space}" is not a space: use ${SPACES.join(', ')}`,
          {
            bdf: op.bdf,
            space: op.space,
            offset: op.offset,
          },
        );
      }
      const space = op.space as Space;
      if (op.bdf !== lastBdf || !lastFn) {
        lastFn = undefined;
        lastFn = machine.find(op.bdf);
        lastBdf = op.bdf;
      }
      const fn = lastFn;
      if (op.op === 'read') {
        if (op.width > 0)
          results.push({ ok: true, value: read(fn, space, op.offset, op.width), data: undefined });
        else results.push({ ok: true, value: undefined, data: readBlock(fn, space, op.offset, op.length) });
      } else {
        if (op.width > 0) write(fn, space, op.offset, op.width, op.value);
        else writeBlock(fn, space, op.offset, op.data!);
        results.push({ ok: true, value: undefined, data: undefined });
        // A config write may enable, remove or reset functions: resolve the next BDF afresh.
        if (space === 'config') lastFn = undefined;
      }
    } catch (e) {
      if (!isVmmrError(e)) throw e;
      const error = e.context.bdf
        ? e
        : new VmmrError(e.code, `${op.bdf}: ${e.message}`, {
            ...e.context,
            bdf: op.bdf,
            space: op.space,
            offset: op.offset,
          });
      results.push({ ok: false, error });
      if (!continueOnError) break;
    }
  }
  return results;
}
