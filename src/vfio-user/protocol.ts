import { constants as osConstants } from 'node:os';
import { vfioPci, vfioUserMessages, vfioUserProtocol } from '../spec/index.js';

/**
 * vfio-user wire format (qemu docs/interop/vfio-user.rst "Header", "Commands"; QEMU 10.2
 * hw/vfio-user/protocol.h). Every number comes from spec-tables/vfio-user-*.json and vfio-pci.json.
 * All fields are in host byte order, little-endian on every host vmmr runs on.
 */
const P = vfioUserProtocol.constants;
const H = vfioUserProtocol.registers;

export const HEADER_SIZE = P.HEADER_SIZE.value;
/** Payload fields of every command (offsets after the header). */
export const MSG = vfioUserMessages.registers;
/** Payload sizes and data offsets. */
export const MSG_CONST = vfioUserMessages.constants;
/** Header flags, command numbers, versions and capability values. */
export const PROTO = P;
/** <linux/vfio.h> region/IRQ indexes and structure flags. */
export const VFIO = vfioPci.constants;

export const Command = {
  VERSION: P.CMD_VERSION.value,
  DMA_MAP: P.CMD_DMA_MAP.value,
  DMA_UNMAP: P.CMD_DMA_UNMAP.value,
  DEVICE_GET_INFO: P.CMD_DEVICE_GET_INFO.value,
  DEVICE_GET_REGION_INFO: P.CMD_DEVICE_GET_REGION_INFO.value,
  DEVICE_GET_REGION_IO_FDS: P.CMD_DEVICE_GET_REGION_IO_FDS.value,
  DEVICE_GET_IRQ_INFO: P.CMD_DEVICE_GET_IRQ_INFO.value,
  DEVICE_SET_IRQS: P.CMD_DEVICE_SET_IRQS.value,
  REGION_READ: P.CMD_REGION_READ.value,
  REGION_WRITE: P.CMD_REGION_WRITE.value,
  DMA_READ: P.CMD_DMA_READ.value,
  DMA_WRITE: P.CMD_DMA_WRITE.value,
  DEVICE_RESET: P.CMD_DEVICE_RESET.value,
  DIRTY_PAGES: P.CMD_DIRTY_PAGES.value,
  REGION_WRITE_MULTI: P.CMD_REGION_WRITE_MULTI.value,
  DEVICE_FEATURE: P.CMD_DEVICE_FEATURE.value,
  MIG_DATA_READ: P.CMD_MIG_DATA_READ.value,
  MIG_DATA_WRITE: P.CMD_MIG_DATA_WRITE.value,
} as const;

const COMMAND_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(Command).map(([name, value]) => [value, `VFIO_USER_${name}`] as const),
);

/** "VFIO_USER_REGION_READ (9)", or "command 77" for a number the protocol does not define. */
export function commandName(command: number): string {
  const name = COMMAND_NAMES.get(command);
  return name ? `${name} (${command})` : `command ${command}`;
}

export const TYPE_MASK = P.FLAGS_TYPE_MASK.value;
export const TYPE_COMMAND = P.TYPE_COMMAND.value;
export const TYPE_REPLY = P.TYPE_REPLY.value;
export const NO_REPLY = P.FLAG_NO_REPLY.value;
export const ERROR = P.FLAG_ERROR.value;

/** Linux errno values (Node's os.constants.errno): what error replies carry. */
export const Errno = osConstants.errno;

/** The header of one message. */
export interface Header {
  id: number;
  command: number;
  size: number;
  flags: number;
  error: number;
}

export function readHeader(bytes: Uint8Array, at: number): Header {
  const v = new DataView(bytes.buffer, bytes.byteOffset + at, HEADER_SIZE);
  return {
    id: v.getUint16(H.ID.offset, true),
    command: v.getUint16(H.COMMAND.offset, true),
    size: v.getUint32(H.SIZE.offset, true),
    flags: v.getUint32(H.FLAGS.offset, true),
    error: v.getUint32(H.ERROR.offset, true),
  };
}

export function writeHeader(view: DataView, h: Header): void {
  view.setUint16(H.ID.offset, h.id, true);
  view.setUint16(H.COMMAND.offset, h.command, true);
  view.setUint32(H.SIZE.offset, h.size, true);
  view.setUint32(H.FLAGS.offset, h.flags, true);
  view.setUint32(H.ERROR.offset, h.error, true);
}

/** A message of `payload` bytes after the header, header filled in; write the payload through `view`. */
export function newMessage(
  id: number,
  command: number,
  flags: number,
  payload: number,
): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(HEADER_SIZE + payload);
  const view = new DataView(bytes.buffer);
  writeHeader(view, { id, command, size: bytes.length, flags, error: 0 });
  return { bytes, view };
}

/** The reply to command `h` with `payload` bytes (their content written by the caller). */
export function newReply(h: Header, payload: number): { bytes: Uint8Array; view: DataView } {
  return newMessage(h.id, h.command, TYPE_REPLY, payload);
}

/** An error reply: the header alone, Error flag and errno (document "Header": no payload on error). */
export function errorReply(h: Header, errno: number): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE);
  writeHeader(new DataView(bytes.buffer), {
    id: h.id,
    command: h.command,
    size: HEADER_SIZE,
    flags: TYPE_REPLY | ERROR,
    error: errno,
  });
  return bytes;
}

const TWO_32 = 2 ** 32;
/** Beyond every exact JS integer: a u64 field at or above 2^53 reads as this, so range checks fail. */
export const TOO_LARGE = Number.POSITIVE_INFINITY;

/** A le64 field as an exact number, or TOO_LARGE when it is 2^53 or more. */
export function getU64(view: DataView, at: number): number {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  return hi >= 0x200000 ? TOO_LARGE : hi * TWO_32 + lo;
}

/** Writes an exact non-negative integer below 2^53 as le64. */
export function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % TWO_32, true);
  view.setUint32(at + 4, Math.floor(value / TWO_32), true);
}
