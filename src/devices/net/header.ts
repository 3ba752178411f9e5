/**
 * The virtio-net packet header (virtio 1.2 §5.1.6, struct virtio_net_hdr):
 *
 *   +0 u8 flags  +1 u8 gso_type  +2 le16 hdr_len  +4 le16 gso_size
 *   +6 le16 csum_start  +8 le16 csum_offset  [+10 le16 num_buffers]
 *
 * 10 bytes for a legacy driver without VIRTIO_NET_F_MRG_RXBUF, 12 with it or with
 * VIRTIO_F_VERSION_1 (§5.1.6.1, the header-size difference the MMR cover letter names). Legacy
 * fields are guest-endian: little-endian here, like the modern ones.
 */
import { features, virtioNetHdr } from '../../spec/index.js';
import { hasFeature, type FeatureBits } from '../context.js';

const H = virtioNetHdr.registers;
const NET = features.byType.net.constants;
const COMMON = features.common.constants;

export interface NetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export const EMPTY_HEADER: Readonly<NetHeader> = Object.freeze({
  flags: 0,
  gsoType: 0,
  hdrLen: 0,
  gsoSize: 0,
  csumStart: 0,
  csumOffset: 0,
});

/** Header size for the negotiated features (§5.1.6.1). */
export function netHeaderSize(negotiated: FeatureBits, legacy: boolean): number {
  const c = virtioNetHdr.constants;
  if (!legacy || hasFeature(negotiated, COMMON.VERSION_1.value)) return c.SIZE_V1.value;
  return hasFeature(negotiated, NET.MRG_RXBUF.value) ? c.SIZE_MRG_RXBUF.value : c.SIZE_LEGACY.value;
}

/** Whether the header carries num_buffers (12-byte headers). */
export function hasNumBuffers(size: number): boolean {
  return size >= H.NUM_BUFFERS.offset + H.NUM_BUFFERS.size;
}

function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

/** The header whose bytes start at `b[at]`. */
export function decodeHeader(b: Uint8Array, at = 0): NetHeader {
  return {
    flags: b[at + H.FLAGS.offset]!,
    gsoType: b[at + H.GSO_TYPE.offset]!,
    hdrLen: u16(b, at + H.HDR_LEN.offset),
    gsoSize: u16(b, at + H.GSO_SIZE.offset),
    csumStart: u16(b, at + H.CSUM_START.offset),
    csumOffset: u16(b, at + H.CSUM_OFFSET.offset),
  };
}

/** The header bytes (size 10 or 12; num_buffers only in a 12-byte header). */
export function encodeHeader(h: NetHeader, size: number, numBuffers: number): Uint8Array {
  const b = new Uint8Array(size);
  const put16 = (at: number, v: number) => {
    b[at] = v & 0xff;
    b[at + 1] = (v >>> 8) & 0xff;
  };
  b[H.FLAGS.offset] = h.flags;
  b[H.GSO_TYPE.offset] = h.gsoType;
  put16(H.HDR_LEN.offset, h.hdrLen);
  put16(H.GSO_SIZE.offset, h.gsoSize);
  put16(H.CSUM_START.offset, h.csumStart);
  put16(H.CSUM_OFFSET.offset, h.csumOffset);
  if (hasNumBuffers(size)) put16(H.NUM_BUFFERS.offset, numBuffers);
  return b;
}

/**
 * Completes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM, §5.1.6.2): the ones' complement
 * sum of the frame from `csumStart` to its end, stored big-endian at csumStart + csumOffset.
 * The field holds the pseudo-header sum the driver put there. Returns false when the offsets
 * do not fit the frame.
 */
export function completeChecksum(frame: Uint8Array, csumStart: number, csumOffset: number): boolean {
  const at = csumStart + csumOffset;
  if (csumStart >= frame.length || at + 2 > frame.length) return false;
  let sum = 0;
  for (let i = csumStart; i + 1 < frame.length; i += 2) sum += (frame[i]! << 8) | frame[i + 1]!;
  if ((frame.length - csumStart) % 2 === 1) sum += frame[frame.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  const result = ~sum & 0xffff;
  frame[at] = result >>> 8;
  frame[at + 1] = result & 0xff;
  return true;
}
