/** Paged listings (cheap with tens of thousands of VFs): limits and cursors. */
import { VmmrError } from '../base/errors.js';
import { parseBdf, type Bdf } from '../pci/bdf.js';

export const DEFAULT_PAGE_LIMIT = 256;
export const MAX_PAGE_LIMIT = 4096;

export function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new VmmrError(
      'VMMR_ERR_BAD_REQUEST',
      `limit ${String(limit)} is not allowed: use 1..${MAX_PAGE_LIMIT}`,
    );
  }
}

export function badCursor(cursor: string, why: string): VmmrError {
  return new VmmrError('VMMR_ERR_BAD_REQUEST', `cursor "${cursor}" is not valid: ${why}`);
}

export function parseCursor(cursor: string): Bdf {
  try {
    return parseBdf(cursor);
  } catch {
    throw badCursor(cursor, 'expected the nextCursor of a previous page');
  }
}
