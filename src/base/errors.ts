/**
 * Every refusal vmmr makes is a VmmrError with a stable code and the access it refused.
 * Transports map codes to their own status values in one place (src/server/errors.ts).
 */
export type VmmrErrorCode =
  | 'VMMR_ERR_BAD_BDF'
  | 'VMMR_ERR_NO_FUNCTION'
  | 'VMMR_ERR_VF_DISABLED'
  | 'VMMR_ERR_BAD_SPACE'
  | 'VMMR_ERR_BAD_OFFSET'
  | 'VMMR_ERR_BAD_WIDTH'
  | 'VMMR_ERR_UNALIGNED'
  | 'VMMR_ERR_OUT_OF_RANGE'
  | 'VMMR_ERR_BAD_VALUE'
  | 'VMMR_ERR_UNMAPPED'
  | 'VMMR_ERR_WIDTH_MISMATCH'
  | 'VMMR_ERR_READ_ONLY'
  | 'VMMR_ERR_WRITE_ONLY'
  | 'VMMR_ERR_DECODE_DISABLED'
  | 'VMMR_ERR_IO_DISABLED'
  | 'VMMR_ERR_NOT_TRANSITIONAL'
  | 'VMMR_ERR_SRIOV_STATE'
  | 'VMMR_ERR_SRIOV_RANGE'
  | 'VMMR_ERR_TOPOLOGY'
  | 'VMMR_ERR_LIMIT'
  | 'VMMR_ERR_STATE'
  // A DMA access outside the function's DMA space (or its address above 2^53).
  | 'VMMR_ERR_DMA'
  // Transport-level codes (src/server): a malformed request, a missing or wrong bearer token,
  // an unknown route, a body or batch above the configured limits, a bug of vmmr's own.
  | 'VMMR_ERR_BAD_REQUEST'
  | 'VMMR_ERR_UNAUTHORIZED'
  | 'VMMR_ERR_NOT_FOUND'
  | 'VMMR_ERR_TOO_LARGE'
  // A bounded resource is full (event-stream subscribers): retry later.
  | 'VMMR_ERR_TOO_MANY'
  // The request needs a setting this server was started without (VMMR_STATE_FILE).
  | 'VMMR_ERR_NOT_CONFIGURED'
  | 'VMMR_ERR_INTERNAL';

/** The access (or object) a refusal is about. */
export interface ErrorContext {
  bdf?: string;
  space?: string;
  offset?: number;
  width?: number;
  register?: string;
}

export class VmmrError extends Error {
  override readonly name = 'VmmrError';
  constructor(
    readonly code: VmmrErrorCode,
    message: string,
    readonly context: ErrorContext = {},
  ) {
    super(message);
  }
}

export function isVmmrError(e: unknown): e is VmmrError {
  return e instanceof VmmrError;
}

/** "offset 0x14 width 2" — the common tail of refusal messages. */
export function describeAccess(offset: number, width: number): string {
  // Refusals of malformed accesses describe them too: offset may be NaN, a string, undefined…
  const at =
    typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0
      ? `0x${offset.toString(16)}`
      : showValue(offset);
  return `offset ${at} width ${showValue(width)}`;
}

/** Any value shown on one short line (strings quoted and cut, so a newline cannot split a message). */
export function showValue(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  return value === null ? 'null' : typeof value;
}
