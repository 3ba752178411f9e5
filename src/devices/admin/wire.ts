/**
 * The wire form of group administration commands (virtio 1.3 §2.12.1 "Group administration
 * commands", §2.12.1.2 "Legacy Interfaces"; Linux include/uapi/linux/virtio_pci.h >= 6.7):
 *
 *   device-readable                          device-writable
 *   +0  le16 opcode                          +0 le16 status
 *   +2  le16 group_type (1 = SR-IOV)         +2 le16 status_qualifier
 *   +4  u8   reserved1[12]                   +4 u8   reserved2[4]
 *   +16 le64 group_member_id                 +8 command_specific_result[]
 *   +24 command_specific_data[]
 *
 * Legacy write data: u8 offset, u8 reserved[7], data[] (its length is the access width);
 * legacy read data: u8 offset (the result buffer's length is the access width);
 * LEGACY_NOTIFY_INFO result: 4 × {u8 flags, u8 bar, u8 padding[6], le64 offset}.
 * Shared by the device (the command engine), the simulated driver and the translator.
 */
import { virtioAdmin } from '../../spec/index.js';

const R = virtioAdmin.registers;
const C = virtioAdmin.constants;

export const CMD_HDR_SIZE = C.CMD_HDR_SIZE.value;
export const CMD_STATUS_SIZE = C.CMD_STATUS_SIZE.value;
export const LEGACY_WR_HDR_SIZE = C.LEGACY_WR_HDR_SIZE.value;
export const NOTIFY_INFO_ENTRY_SIZE = C.NOTIFY_INFO_ENTRY_SIZE.value;
export const MAX_NOTIFY_INFO = C.MAX_NOTIFY_INFO.value;
const LIST_ENTRY_SIZE = C.CMD_LIST_ENTRY_SIZE.value;
const LIST_ENTRY_BITS = 8 * LIST_ENTRY_SIZE;

export const ADMIN_OPCODES = {
  LIST_QUERY: C.CMD_LIST_QUERY.value,
  LIST_USE: C.CMD_LIST_USE.value,
  LEGACY_COMMON_CFG_WRITE: C.CMD_LEGACY_COMMON_CFG_WRITE.value,
  LEGACY_COMMON_CFG_READ: C.CMD_LEGACY_COMMON_CFG_READ.value,
  LEGACY_DEV_CFG_WRITE: C.CMD_LEGACY_DEV_CFG_WRITE.value,
  LEGACY_DEV_CFG_READ: C.CMD_LEGACY_DEV_CFG_READ.value,
  LEGACY_NOTIFY_INFO: C.CMD_LEGACY_NOTIFY_INFO.value,
} as const;
export type AdminOpcodeName = keyof typeof ADMIN_OPCODES;
export const ADMIN_OPCODE_NAMES = Object.keys(ADMIN_OPCODES) as AdminOpcodeName[];

export const GROUP_TYPE_SRIOV = C.GROUP_TYPE_SRIOV.value;

export const ADMIN_STATUS = {
  OK: C.STATUS_OK.value,
  EAGAIN: C.STATUS_EAGAIN.value,
  ENOMEM: C.STATUS_ENOMEM.value,
  EINVAL: C.STATUS_EINVAL.value,
} as const;

export const ADMIN_QUALIFIER = {
  OK: C.STATUS_Q_OK.value,
  INVALID_COMMAND: C.STATUS_Q_INVALID_COMMAND.value,
  INVALID_OPCODE: C.STATUS_Q_INVALID_OPCODE.value,
  INVALID_FIELD: C.STATUS_Q_INVALID_FIELD.value,
  INVALID_GROUP: C.STATUS_Q_INVALID_GROUP.value,
  INVALID_MEMBER: C.STATUS_Q_INVALID_MEMBER.value,
  NORESOURCE: C.STATUS_Q_NORESOURCE.value,
  TRYAGAIN: C.STATUS_Q_TRYAGAIN.value,
} as const;

/** Names by value, built once (the translator names every command it traces). */
function namesOf(table: Readonly<Record<string, number>>): (value: number) => string {
  const names = new Map<number, string>();
  for (const [name, v] of Object.entries(table)) if (!names.has(v)) names.set(v, name);
  return (value) => names.get(value) ?? `0x${value.toString(16)}`;
}

export const opcodeName = namesOf(ADMIN_OPCODES);
export const statusName = namesOf(ADMIN_STATUS);
export const qualifierName = namesOf(ADMIN_QUALIFIER);

/** One command as a driver fills it in. */
export interface AdminCommand {
  opcode: number;
  groupType: number;
  /** SR-IOV: the VF number 1..NumVFs; 0 for commands that do not address a member. */
  memberId: bigint;
  /** command_specific_data. */
  data: Uint8Array;
}

/** What the device wrote back. */
export interface AdminReply {
  status: number;
  qualifier: number;
  /** command_specific_result, as long as the device wrote it. */
  result: Uint8Array;
}

/** The device-readable part of a command chain. */
export function encodeCommand(cmd: AdminCommand): Uint8Array {
  const out = new Uint8Array(CMD_HDR_SIZE + cmd.data.length);
  const view = new DataView(out.buffer);
  view.setUint16(R.OPCODE.offset, cmd.opcode, true);
  view.setUint16(R.GROUP_TYPE.offset, cmd.groupType, true);
  view.setBigUint64(R.GROUP_MEMBER_ID.offset, cmd.memberId, true);
  out.set(cmd.data, CMD_HDR_SIZE);
  return out;
}

/**
 * Writes the command header into `out` (reserved bytes zero); for drivers that reuse one buffer.
 * A member id above 2^53 - 1 needs encodeCommand's bigint.
 */
export function encodeHeader(out: Uint8Array, opcode: number, groupType: number, memberId: number): void {
  putLe(out, R.OPCODE.offset, 2, opcode);
  putLe(out, R.GROUP_TYPE.offset, 2, groupType);
  out.fill(0, R.RESERVED1.offset, R.RESERVED1.offset + R.RESERVED1.size);
  putLe(out, R.GROUP_MEMBER_ID.offset, 4, memberId % 2 ** 32);
  putLe(out, R.GROUP_MEMBER_ID.offset + 4, 4, Math.floor(memberId / 2 ** 32));
}

/** `width` (<= 4) little-endian bytes of `value` at `at`. */
export function putLe(out: Uint8Array, at: number, width: number, value: number): void {
  for (let i = 0; i < width; i++) out[at + i] = (value >>> (8 * i)) & 0xff;
}

/** The little-endian number of `width` (<= 4) bytes at `at`. */
export function getLe(bytes: Uint8Array, at: number, width: number): number {
  let value = 0;
  for (let i = width - 1; i >= 0; i--) value = value * 256 + bytes[at + i]!;
  return value;
}

/** The device-writable part as the device writes it: status, qualifier, reserved, result. */
export function encodeReply(reply: AdminReply): Uint8Array {
  const out = new Uint8Array(CMD_STATUS_SIZE + reply.result.length);
  const view = new DataView(out.buffer);
  view.setUint16(R.STATUS.offset, reply.status, true);
  view.setUint16(R.STATUS_QUALIFIER.offset, reply.qualifier, true);
  out.set(reply.result, CMD_STATUS_SIZE);
  return out;
}

/** The device-writable part as the device used it (`used` bytes); missing fields read as zero. */
export function decodeReply(bytes: Uint8Array, used: number): AdminReply {
  const padded = new Uint8Array(Math.max(used, CMD_STATUS_SIZE));
  padded.set(bytes.subarray(0, Math.min(used, bytes.length)));
  const view = new DataView(padded.buffer);
  return {
    status: view.getUint16(R.STATUS.offset, true),
    qualifier: view.getUint16(R.STATUS_QUALIFIER.offset, true),
    result: padded.slice(CMD_STATUS_SIZE, used),
  };
}

/** Little-endian bytes of `value` over `width` bytes (legacy data is little-endian, §2.12.1.2). */
export function leBytes(value: number, width: number): Uint8Array {
  const out = new Uint8Array(width);
  for (let i = 0; i < width; i++) out[i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  return out;
}

export function leValue(bytes: Uint8Array): number {
  let value = 0;
  for (let i = bytes.length - 1; i >= 0; i--) value = value * 256 + bytes[i]!;
  return value;
}

/** command_specific_data of LEGACY_*_CFG_WRITE. */
export function legacyWriteData(offset: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(LEGACY_WR_HDR_SIZE + data.length);
  out[R.WR_OFFSET.offset] = offset;
  out.set(data, R.WR_DATA.offset);
  return out;
}

/** command_specific_data of LEGACY_*_CFG_READ. */
export function legacyReadData(offset: number): Uint8Array {
  return Uint8Array.of(offset);
}

/** struct virtio_admin_cmd_list with a bit per opcode (§2.12.1: entry k, bit n = opcode 64k + n). */
export function encodeCommandList(opcodes: Iterable<number>): Uint8Array {
  const list = [...opcodes];
  const entries = Math.max(1, Math.ceil((Math.max(-1, ...list) + 1) / LIST_ENTRY_BITS));
  const out = new Uint8Array(entries * LIST_ENTRY_SIZE);
  for (const op of list) out[Math.floor(op / 8)]! |= 1 << (op % 8);
  return out;
}

export function decodeCommandList(bytes: Uint8Array): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < bytes.length; i++) {
    for (let bit = 0; bit < 8; bit++) if ((bytes[i]! >> bit) & 1) out.add(i * 8 + bit);
  }
  return out;
}

/** One entry of the LEGACY_NOTIFY_INFO result. */
export interface NotifyInfoEntry {
  flags: number;
  bar: number;
  offset: bigint;
}

export function encodeNotifyInfo(entries: readonly NotifyInfoEntry[]): Uint8Array {
  const out = new Uint8Array(MAX_NOTIFY_INFO * NOTIFY_INFO_ENTRY_SIZE);
  const view = new DataView(out.buffer);
  entries.slice(0, MAX_NOTIFY_INFO).forEach((e, i) => {
    const base = i * NOTIFY_INFO_ENTRY_SIZE;
    view.setUint8(base + R.NOTIFY_FLAGS.offset, e.flags);
    view.setUint8(base + R.NOTIFY_BAR.offset, e.bar);
    view.setBigUint64(base + R.NOTIFY_OFFSET.offset, e.offset, true);
  });
  return out;
}

/** The valid entries, up to the end-of-list entry (flags 0). */
export function decodeNotifyInfo(bytes: Uint8Array): NotifyInfoEntry[] {
  const out: NotifyInfoEntry[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let base = 0; base + NOTIFY_INFO_ENTRY_SIZE <= bytes.length; base += NOTIFY_INFO_ENTRY_SIZE) {
    const flags = view.getUint8(base + R.NOTIFY_FLAGS.offset);
    if (flags === C.NOTIFY_INFO_FLAGS_END.value) break;
    out.push({
      flags,
      bar: view.getUint8(base + R.NOTIFY_BAR.offset),
      offset: view.getBigUint64(base + R.NOTIFY_OFFSET.offset, true),
    });
  }
  return out;
}

export const NOTIFY_INFO_FLAGS = {
  END: C.NOTIFY_INFO_FLAGS_END.value,
  OWNER_DEV: C.NOTIFY_INFO_FLAGS_OWNER_DEV.value,
  OWNER_MEM: C.NOTIFY_INFO_FLAGS_OWNER_MEM.value,
} as const;
