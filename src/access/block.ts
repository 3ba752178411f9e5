import { pciHeader } from '../spec/index.js';
import { VmmrError, isVmmrError } from '../base/errors.js';
import { GuestView } from '../translator/guest-view.js';
import { read, write, type AccessTarget, type AccessValue, type Space } from './index.js';

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

/** Size of a space of a target, when it can be known without an access (else undefined). */
function spaceSize(target: AccessTarget, space: Space): number | undefined {
  if (space === 'config' || space === 'guest-config') return CONFIG_SIZE;
  if (target instanceof GuestView) return space === 'io' ? target.ioLength : undefined;
  if (space === 'io') return undefined;
  const index = Number(space.slice(3));
  return target.memoryBars().find((b) => b.index === index)?.size;
}

function where(
  target: AccessTarget,
  space: Space,
  op: 'read' | 'write',
  offset: number,
  length: number,
): string {
  return `${target.bdf} ${space} block ${op} of ${length} bytes at 0x${offset.toString(16)}`;
}

function checkBlock(
  target: AccessTarget,
  space: Space,
  op: 'read' | 'write',
  offset: number,
  length: number,
): void {
  const bdf = target.bdf;
  const context = { bdf, space, offset };
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new VmmrError(
      'VMMR_ERR_BAD_OFFSET',
      `${bdf} ${space}: offset ${String(offset)} is not a non-negative integer`,
      context,
    );
  }
  if (!Number.isInteger(length) || length < 1 || length > MAX_BLOCK_LENGTH) {
    throw new VmmrError(
      'VMMR_ERR_BAD_WIDTH',
      `${bdf} ${space}: block length ${String(length)} is not allowed: use 1..${MAX_BLOCK_LENGTH} bytes`,
      context,
    );
  }
  const size = spaceSize(target, space);
  if (size !== undefined && offset + length > size) {
    throw new VmmrError(
      'VMMR_ERR_OUT_OF_RANGE',
      `${where(target, space, op, offset, length)}: runs beyond ${space} (${size} bytes)`,
      context,
    );
  }
}

function stopped(
  e: unknown,
  target: AccessTarget,
  space: Space,
  op: 'read' | 'write',
  offset: number,
  length: number,
  done: number,
): never {
  if (!isVmmrError(e)) throw e;
  throw new VmmrError(
    e.code,
    `${where(target, space, op, offset, length)} stopped after ${done} bytes: ${e.message}`,
    e.context,
  );
}

/** Reads `length` bytes (1..4096) at `offset` of a space; see the module comment. */
export function readBlock(target: AccessTarget, space: Space, offset: number, length: number): Uint8Array {
  checkBlock(target, space, 'read', offset, length);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  for (const piece of blockPieces(space, offset, length)) {
    const at = piece.offset - offset;
    let value: AccessValue;
    try {
      value = read(target, space, piece.offset, piece.width);
    } catch (e) {
      stopped(e, target, space, 'read', offset, length, at);
    }
    if (typeof value === 'bigint') view.setBigUint64(at, value, true);
    else if (piece.width === 4) view.setUint32(at, value, true);
    else if (piece.width === 2) view.setUint16(at, value, true);
    else view.setUint8(at, value);
  }
  return out;
}

/** Writes `data` (1..4096 bytes) at `offset` of a space; see the module comment. */
export function writeBlock(target: AccessTarget, space: Space, offset: number, data: Uint8Array): void {
  const length = data.length;
  checkBlock(target, space, 'write', offset, length);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (const piece of blockPieces(space, offset, length)) {
    const at = piece.offset - offset;
    const value: AccessValue =
      piece.width === 8
        ? view.getBigUint64(at, true)
        : piece.width === 4
          ? view.getUint32(at, true)
          : piece.width === 2
            ? view.getUint16(at, true)
            : view.getUint8(at);
    try {
      write(target, space, piece.offset, piece.width, value);
    } catch (e) {
      stopped(e, target, space, 'write', offset, length, at);
    }
  }
}
