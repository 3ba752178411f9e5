import { VmmrError } from '../errors.js';

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

export const MAX_RID = 0xffff;
const MAX_DEVICE = 0x1f;

export function parseBdf(text: string): Bdf {
  const m = BDF_RE.exec(text);
  if (!m) {
    throw new VmmrError(
      'VMMR_ERR_BAD_BDF',
      `"${text}" is not a PCI address: expected [dddd:]bb:dd.f with hex domain, bus and device and a function 0-7`,
    );
  }
  const domain = m[1] === undefined ? 0 : parseInt(m[1], 16);
  const bus = parseInt(m[2]!, 16);
  const device = parseInt(m[3]!, 16);
  const fn = parseInt(m[4]!, 10);
  if (device > MAX_DEVICE) {
    throw new VmmrError('VMMR_ERR_BAD_BDF', `"${text}": device number 0x${device.toString(16)} exceeds 0x1f`);
  }
  return { domain, rid: (bus << 8) | (device << 3) | fn };
}

function hex(value: number, digits: number): string {
  return value.toString(16).padStart(digits, '0');
}

export function formatBdf(domain: number, rid: number): string {
  return `${hex(domain, 4)}:${hex(rid >> 8, 2)}:${hex((rid >> 3) & MAX_DEVICE, 2)}.${rid & 7}`;
}

export function bdfKey(domain: number, rid: number): number {
  return domain * 0x10000 + rid;
}

export function normalizeBdf(text: string): string {
  const b = parseBdf(text);
  return formatBdf(b.domain, b.rid);
}
