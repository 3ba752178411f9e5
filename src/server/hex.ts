/**
 * The API's number conventions: register values travel as hex strings zero-padded to the access
 * width ("0x1af4" for 2 bytes); inputs take a hex string ("0x1af4"), a decimal string ("6900")
 * or a JSON number (safe integers only: anything above 2^53 - 1 must be a hex string). Byte
 * blocks travel as plain lower-case hex, two digits per byte in address order ("0a1b…").
 */
import { VmmrError, type VmmrErrorCode } from '../base/errors.js';
import { HEX2 } from '../base/hex.js';

export { bytesToHex, hexToBytes } from '../base/hex.js';

/** "0x" + zero-padded hex of a width-1/2/4 value (the batch path calls this once per read). */
export function hexOfWidth(value: number, width: number): string {
  switch (width) {
    case 1:
      return `0x${HEX2[value & 0xff]!}`;
    case 2:
      return `0x${HEX2[(value >>> 8) & 0xff]!}${HEX2[value & 0xff]!}`;
    case 4:
      return `0x${HEX2[value >>> 24]!}${HEX2[(value >>> 16) & 0xff]!}${HEX2[(value >>> 8) & 0xff]!}${HEX2[value & 0xff]!}`;
    default:
      return `0x${value.toString(16).padStart(width * 2, '0')}`;
  }
}

/** Hex of any access value (bigint for 8-byte reads). */
export function hexValue(value: number | bigint, width: number): string {
  if (typeof value === 'number' && width <= 4) return hexOfWidth(value, width);
  return `0x${value.toString(16).padStart(width * 2, '0')}`;
}

const HEX_DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX_DIGIT[0x30 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX_DIGIT[0x61 + i] = 10 + i;
  HEX_DIGIT[0x41 + i] = 10 + i;
}

const HEX_RE = /^0[xX]([0-9a-fA-F]{1,16})$/;
const DEC_RE = /^[0-9]{1,20}$/;

/** "0x" + 1..13 hex digits without a regex (the batch path parses one per write); else -1. */
function shortHex(text: string): number {
  const n = text.length;
  if (n < 3 || n > 15 || text.charCodeAt(0) !== 0x30 || (text.charCodeAt(1) | 0x20) !== 0x78) return -1;
  let value = 0;
  for (let i = 2; i < n; i++) {
    const c = text.charCodeAt(i);
    const d = c < 128 ? HEX_DIGIT[c]! : -1;
    if (d < 0) return -1;
    value = value * 16 + d;
  }
  return value;
}

/**
 * A number given as a JSON number, a hex string or a decimal string. Returns a number when it
 * is a safe integer, else a bigint (up to 64 bits); undefined when the input is none of these.
 */
export function parseInteger(input: unknown): number | bigint | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : undefined;
  if (typeof input !== 'string') return undefined;
  const short = shortHex(input);
  if (short >= 0) return short;
  const hex = HEX_RE.exec(input);
  if (hex) {
    const digits = hex[1]!;
    if (digits.length <= 13) return parseInt(digits, 16);
    const big = BigInt(`0x${digits}`);
    return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  if (DEC_RE.test(input)) {
    const big = BigInt(input);
    if (big > 0xffffffffffffffffn) return undefined;
    return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  return undefined;
}

/** A value to write: JSON number, hex or decimal string; refused as VMMR_ERR_BAD_VALUE. */
export function parseValue(input: unknown, what = 'value'): number | bigint {
  const value = parseInteger(input);
  if (value === undefined) {
    throw new VmmrError(
      'VMMR_ERR_BAD_VALUE',
      `${what} ${JSON.stringify(input)} is not an unsigned integer: use a hex string ("0x1af4"), a decimal string or a JSON number up to 2^53 - 1`,
    );
  }
  return value;
}

/** An offset or index (path segment or body field): "0x1000", "4096" or 4096. */
export function parseOffset(
  input: unknown,
  what = 'offset',
  code: VmmrErrorCode = 'VMMR_ERR_BAD_OFFSET',
): number {
  const value = parseInteger(input);
  if (typeof value !== 'number') {
    throw new VmmrError(
      code,
      `${what} ${JSON.stringify(input)} is not a valid ${what}: use hex ("0x10") or decimal ("16")`,
    );
  }
  return value;
}
