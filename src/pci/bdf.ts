import { VmmrError } from '../base/errors.js';
import { HEX2 } from '../base/hex.js';

/**
 * PCI addresses. A routing ID (RID) is bus[15:8] | device[7:3] | function[2:0]; with ARI the
 * low 8 bits are one function number, which formats the same way (Linux prints devfn as
 * dev.fn either way). The domain is not part of the RID.
 */
export interface Bdf {
  readonly domain: number;
  readonly rid: number;
}

const BDF_RE = /^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/;

/** The accepted form, for messages and schema descriptions. */
export const BDF_FORM = 'a PCI address [dddd:]bb:dd.f (hex domain, bus and device <= 1f, function 0-7)';

export const MAX_RID = 0xffff;
const MAX_DEVICE = 0x1f;

/** Value of a hex digit's character code, or -1. */
function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/**
 * The long form "dddd:bb:dd.f" (what vmmr prints and clients send back) parsed without a regex;
 * -1 when the text is not exactly that form or its device exceeds 0x1f (parseBdf then takes the
 * general path, which accepts or refuses it).
 */
function parseLongForm(text: string): number {
  if (
    text.length !== 12 ||
    text.charCodeAt(4) !== 0x3a ||
    text.charCodeAt(7) !== 0x3a ||
    text.charCodeAt(10) !== 0x2e
  ) {
    return -1;
  }
  const fn = text.charCodeAt(11) - 0x30;
  if (fn < 0 || fn > 7) return -1;
  let domain = 0;
  for (let i = 0; i < 4; i++) {
    const d = hexDigit(text.charCodeAt(i));
    if (d < 0) return -1;
    domain = domain * 16 + d;
  }
  const b1 = hexDigit(text.charCodeAt(5));
  const b0 = hexDigit(text.charCodeAt(6));
  const d1 = hexDigit(text.charCodeAt(8));
  const d0 = hexDigit(text.charCodeAt(9));
  if (b1 < 0 || b0 < 0 || d1 < 0 || d0 < 0) return -1;
  const device = d1 * 16 + d0;
  if (device > MAX_DEVICE) return -1;
  return domain * 0x10000 + (((b1 * 16 + b0) << 8) | (device << 3) | fn);
}

export function parseBdf(text: string): Bdf {
  if (typeof text !== 'string') {
    throw new VmmrError(
      'VMMR_ERR_BAD_BDF',
      `a PCI address is a string [dddd:]bb:dd.f, not ${text === null ? 'null' : typeof text}`,
    );
  }
  const fast = parseLongForm(text);
  if (fast >= 0) return { domain: Math.floor(fast / 0x10000), rid: fast & 0xffff };
  const m = BDF_RE.exec(text);
  if (!m) {
    throw new VmmrError(
      'VMMR_ERR_BAD_BDF',
      `${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text)} is not a PCI address: expected ${BDF_FORM}`,
    );
  }
  const domain = m[1] === undefined ? 0 : parseInt(m[1], 16);
  const bus = parseInt(m[2]!, 16);
  const device = parseInt(m[3]!, 16);
  const fn = parseInt(m[4]!, 10);
  if (device > MAX_DEVICE) {
    throw new VmmrError(
      'VMMR_ERR_BAD_BDF',
      `${JSON.stringify(text)}: device number 0x${device.toString(16)} exceeds 0x1f`,
    );
  }
  return { domain, rid: (bus << 8) | (device << 3) | fn };
}

function hex4(value: number): string {
  return value >= 0 && value <= 0xffff
    ? HEX2[value >> 8]! + HEX2[value & 0xff]!
    : value.toString(16).padStart(4, '0');
}

export function formatBdf(domain: number, rid: number): string {
  const bus = rid >> 8;
  const busHex = bus >= 0 && bus <= 0xff ? HEX2[bus]! : bus.toString(16).padStart(2, '0');
  return `${hex4(domain)}:${busHex}:${HEX2[(rid >> 3) & MAX_DEVICE]!}.${rid & 7}`;
}

export function bdfKey(domain: number, rid: number): number {
  return domain * 0x10000 + rid;
}

export function normalizeBdf(text: string): string {
  const b = parseBdf(text);
  return formatBdf(b.domain, b.rid);
}
