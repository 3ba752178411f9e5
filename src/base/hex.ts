/**
 * Hex conventions shared by every layer: register values as "0x" + hex zero-padded to their
 * width ("0x1af4" for 2 bytes), 64-bit values as "0x" + 16 digits, byte blocks as plain
 * lower-case hex in address order ("0a1b…").
 */

/** "00".."ff" (formatting 60,000 addresses or a batch of reads formats as many bytes). */
export const HEX2: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** "0x" + value in hex, zero-padded to `bytes` bytes. */
export function hex(value: number | bigint, bytes: number): string {
  return `0x${value.toString(16).padStart(bytes * 2, '0')}`;
}

/** "0x" + 16 hex digits of a 64-bit value given as its 32-bit halves. */
export function hex64(low: number, high: number): string {
  return `0x${(high >>> 0).toString(16).padStart(8, '0')}${(low >>> 0).toString(16).padStart(8, '0')}`;
}

const HEX64_RE = /^0[xX][0-9a-fA-F]{1,16}$/;

/** The 32-bit halves of a "0x…" value of up to 64 bits; undefined when the text is not one. */
export function parseHex64(text: unknown): [low: number, high: number] | undefined {
  if (typeof text !== 'string' || !HEX64_RE.test(text)) return undefined;
  const digits = text.slice(2).padStart(16, '0');
  return [parseInt(digits.slice(8), 16) >>> 0, parseInt(digits.slice(0, 8), 16) >>> 0];
}

export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

const PLAIN_HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

/** Plain hex ("0a1B…", two digits per byte) as bytes; undefined for anything else. */
export function hexToBytes(text: string): Uint8Array | undefined {
  if (!PLAIN_HEX_RE.test(text)) return undefined;
  const buf = Buffer.from(text, 'hex');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
