import { VmmrError } from '../base/errors.js';

/**
 * Stable per-function identities, derived from the BDF so that they are unique across a
 * topology and identical across restarts (vmmr decision): a locally administered unicast MAC
 * 02:00:<domain>:<bus>:<devfn> and a virtio-blk serial "VMMR<domain><rid>".
 */
export const MAC_BYTES = 6;
const LOCAL_ADMIN_UNICAST = 0x02;

export function derivedMacByte(domain: number, rid: number, k: number): number {
  switch (k) {
    case 0:
      return LOCAL_ADMIN_UNICAST;
    case 1:
      return 0;
    case 2:
      return domain >> 8;
    case 3:
      return domain & 0xff;
    case 4:
      return rid >> 8;
    default:
      return rid & 0xff;
  }
}

export function derivedSerial(domain: number, rid: number): string {
  return `VMMR${domain.toString(16).padStart(4, '0')}${rid.toString(16).padStart(4, '0')}`;
}

const MAC_RE = /^([0-9a-fA-F]{2})(?::([0-9a-fA-F]{2})){5}$/;

/** The accepted form, for messages and schema descriptions. */
export const MAC_FORM = 'six hex octets separated by ":" such as "52:54:00:12:34:56"';

export function isMacText(text: unknown): text is string {
  return typeof text === 'string' && MAC_RE.test(text);
}

export function parseMac(text: string): Uint8Array {
  if (!isMacText(text)) {
    throw new VmmrError(
      'VMMR_ERR_BAD_VALUE',
      `${JSON.stringify(text)} is not a MAC address: expected ${MAC_FORM}`,
    );
  }
  return Uint8Array.from(text.split(':').map((octet) => parseInt(octet, 16)));
}

/** Why a MAC cannot be a function's own address (multicast, or all zeros), or undefined. */
export function notUnicast(mac: Uint8Array): 'multicast' | 'all-zero' | undefined {
  if ((mac[0]! & 1) !== 0) return 'multicast';
  return mac.every((b) => b === 0) ? 'all-zero' : undefined;
}

export function formatMac(byte: (k: number) => number): string {
  return Array.from({ length: MAC_BYTES }, (_, k) => byte(k).toString(16).padStart(2, '0')).join(':');
}

/** Per-VF identity given in the topology. */
export interface IdentityOverride {
  mac?: Uint8Array;
  serial?: string;
}
