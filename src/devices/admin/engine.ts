/**
 * The owner device's side of group administration commands (virtio 1.3 §2.12.1 "Group
 * administration commands" and its device requirements, §2.12.1.2 "Legacy Interfaces"), for the
 * SR-IOV group: LIST_QUERY and LIST_USE negotiate the commands a driver uses; the legacy
 * commands reach a member's legacy common configuration (the legacy header) and its
 * device-specific configuration; LEGACY_NOTIFY_INFO says where a legacy driver notification goes.
 * Transport-free: the owner (a PF) supplies its members; commands arrive as the bytes of a chain.
 */
import { isVmmrError, type VmmrError } from '../../base/errors.js';
import { virtioAdmin } from '../../spec/index.js';
import {
  ADMIN_OPCODES,
  ADMIN_QUALIFIER,
  ADMIN_STATUS,
  CMD_HDR_SIZE,
  CMD_STATUS_SIZE,
  decodeCommandList,
  getLe,
  encodeCommandList,
  encodeNotifyInfo,
  GROUP_TYPE_SRIOV,
  LEGACY_WR_HDR_SIZE,
  NOTIFY_INFO_FLAGS,
  opcodeName,
  qualifierName,
  statusName,
} from './wire.js';

const R = virtioAdmin.registers;
const OP = ADMIN_OPCODES;
const Q = ADMIN_QUALIFIER;

/** The two parts of a member's legacy interface an admin command addresses. */
export type LegacyRegion = 'common' | 'device';

/** A member device (an SR-IOV VF) as the owner reaches it. */
export interface AdminMember {
  /**
   * One legacy read of `length` bytes at `offset` of `region`, little-endian; throws a VmmrError
   * that names the register, offset and width when the member refuses it.
   */
  readLegacy(region: LegacyRegion, offset: number, length: number): Uint8Array;
  /** One legacy write of `data.length` bytes; refuses (VmmrError) before changing anything. */
  writeLegacy(region: LegacyRegion, offset: number, data: Uint8Array): void;
  /** The member's legacy notification address: a VF BAR and the offset of a le16 queue index. */
  notifyAddress(): { bar: number; offset: number };
}

/** The owner device of the SR-IOV group. */
export interface AdminGroupOwner {
  /** SR-IOV VF Enable: the group exists only while it is set. */
  readonly groupEnabled: boolean;
  /** NumVFs: member ids are 1..memberCount. */
  readonly memberCount: number;
  member(id: number): AdminMember | undefined;
}

/** What one command did: the wire reply, and why it failed (for traces and refusals, not on the wire). */
export interface AdminOutcome {
  opcode: number;
  /** group_member_id (exact up to 2^53 - 1). */
  memberId: number;
  status: number;
  qualifier: number;
  result: Uint8Array;
  reason?: string;
  /** The member's own refusal, when a legacy access was refused. */
  error?: VmmrError;
}

/** Opcodes vmmr's owner devices support: all legacy commands, and NOTIFY_INFO with them. */
export const SUPPORTED_OPCODES: readonly number[] = Object.freeze(Object.values(OP));
const LEGACY_ACCESS = [
  OP.LEGACY_COMMON_CFG_WRITE,
  OP.LEGACY_COMMON_CFG_READ,
  OP.LEGACY_DEV_CFG_WRITE,
  OP.LEGACY_DEV_CFG_READ,
];
/** After reset the device assumes only LIST_QUERY and LIST_USE are used (§2.12.1). */
const INITIAL_USE = [OP.LIST_QUERY, OP.LIST_USE];

class Failure {
  constructor(
    readonly qualifier: number,
    readonly reason: string,
    readonly error?: VmmrError,
  ) {}
}

function fail(qualifier: number, reason: string, error?: VmmrError): never {
  throw new Failure(qualifier, reason, error);
}

/** Readable bytes zero-extended to `length` (missing fields read as zero, §2.13). */
function padded(bytes: Uint8Array, given: number, length: number): Uint8Array {
  if (given >= length) return bytes;
  const out = new Uint8Array(length);
  out.set(bytes.subarray(0, given));
  return out;
}

export class AdminCommandEngine {
  private used = new Set<number>(INITIAL_USE);

  constructor(private readonly owner: AdminGroupOwner) {}

  /** Whether the driver's LIST_USE covers `opcode`. */
  uses(opcode: number): boolean {
    return this.used.has(opcode);
  }

  /** Device reset: the used list goes back to LIST_QUERY and LIST_USE. */
  reset(): void {
    this.used = new Set(INITIAL_USE);
  }

  /**
   * Runs one command: `readable` holds the device-readable part of its chain (its first `length`
   * bytes), `writable` is the length of the device-writable part (the result is truncated to fit).
   */
  execute(readable: Uint8Array, writable: number, length = readable.length): AdminOutcome {
    const h = padded(readable, length, CMD_HDR_SIZE);
    const opcode = getLe(h, R.OPCODE.offset, 2);
    const groupType = getLe(h, R.GROUP_TYPE.offset, 2);
    const memberId =
      getLe(h, R.GROUP_MEMBER_ID.offset, 4) + getLe(h, R.GROUP_MEMBER_ID.offset + 4, 4) * 2 ** 32;
    const data = readable.subarray(Math.min(CMD_HDR_SIZE, length), length);
    const room = Math.max(0, writable - CMD_STATUS_SIZE);
    try {
      const result = this.dispatch(opcode, groupType, memberId, data, room);
      const fits = result.length <= room ? result : result.subarray(0, room);
      return { opcode, memberId, status: ADMIN_STATUS.OK, qualifier: Q.OK, result: fits };
    } catch (e) {
      if (!(e instanceof Failure)) throw e;
      const outcome: AdminOutcome = {
        opcode,
        memberId,
        status: ADMIN_STATUS.EINVAL,
        qualifier: e.qualifier,
        result: new Uint8Array(0),
        reason: `${opcodeName(opcode)}: ${statusName(ADMIN_STATUS.EINVAL)}/${qualifierName(e.qualifier)}: ${e.reason}`,
      };
      if (e.error) outcome.error = e.error;
      return outcome;
    }
  }

  private dispatch(
    opcode: number,
    groupType: number,
    id: number,
    data: Uint8Array,
    room: number,
  ): Uint8Array {
    if (groupType !== GROUP_TYPE_SRIOV) {
      fail(Q.INVALID_GROUP, `group type ${groupType} is not supported (SR-IOV is ${GROUP_TYPE_SRIOV})`);
    }
    if (!SUPPORTED_OPCODES.includes(opcode)) fail(Q.INVALID_OPCODE, `opcode ${opcode} is not supported`);
    if (!this.used.has(opcode)) {
      fail(Q.INVALID_OPCODE, `${opcodeName(opcode)} is not in the list the driver sent with LIST_USE`);
    }
    switch (opcode) {
      case OP.LIST_QUERY:
        return encodeCommandList(SUPPORTED_OPCODES);
      case OP.LIST_USE:
        this.listUse(data);
        return new Uint8Array(0);
      default:
        return this.memberCommand(opcode, this.memberFor(id), data, room);
    }
  }

  private listUse(data: Uint8Array): void {
    const wanted = decodeCommandList(data);
    for (const op of wanted) {
      if (!SUPPORTED_OPCODES.includes(op))
        fail(Q.INVALID_FIELD, `LIST_USE names opcode ${op}, which LIST_QUERY did not report`);
    }
    const legacy = LEGACY_ACCESS.filter((op) => wanted.has(op)).length;
    if (legacy !== 0 && legacy !== LEGACY_ACCESS.length) {
      fail(
        Q.INVALID_FIELD,
        'the four legacy configuration commands are used all together or not at all (§2.12.1.2)',
      );
    }
    if (wanted.has(OP.LEGACY_NOTIFY_INFO) && legacy === 0) {
      fail(Q.INVALID_FIELD, 'LEGACY_NOTIFY_INFO needs the four legacy configuration commands (§2.12.1.2)');
    }
    this.used = wanted;
  }

  private memberFor(id: number): AdminMember {
    if (!this.owner.groupEnabled)
      fail(Q.INVALID_GROUP, 'the SR-IOV group does not exist: VF Enable is clear');
    const count = this.owner.memberCount;
    const member = id >= 1 && id <= count ? this.owner.member(id) : undefined;
    if (!member) fail(Q.INVALID_MEMBER, `member id ${id} is not a VF number 1..${count}`);
    return member;
  }

  private memberCommand(opcode: number, member: AdminMember, data: Uint8Array, room: number): Uint8Array {
    switch (opcode) {
      case OP.LEGACY_COMMON_CFG_WRITE:
        return this.legacyWrite(member, 'common', data);
      case OP.LEGACY_DEV_CFG_WRITE:
        return this.legacyWrite(member, 'device', data);
      case OP.LEGACY_COMMON_CFG_READ:
        return this.legacyRead(member, 'common', data, room);
      case OP.LEGACY_DEV_CFG_READ:
        return this.legacyRead(member, 'device', data, room);
      default: {
        const { bar, offset } = member.notifyAddress();
        return encodeNotifyInfo([{ flags: NOTIFY_INFO_FLAGS.OWNER_MEM, bar, offset: BigInt(offset) }]);
      }
    }
  }

  private legacyWrite(member: AdminMember, region: LegacyRegion, data: Uint8Array): Uint8Array {
    const offset = data[R.WR_OFFSET.offset] ?? 0;
    const bytes = data.subarray(Math.min(LEGACY_WR_HDR_SIZE, data.length));
    if (bytes.length === 0) fail(Q.INVALID_FIELD, `no data to write at ${region} offset ${offset}`);
    this.guarded(() => member.writeLegacy(region, offset, bytes));
    return new Uint8Array(0);
  }

  private legacyRead(member: AdminMember, region: LegacyRegion, data: Uint8Array, room: number): Uint8Array {
    const offset = data[R.RD_OFFSET.offset] ?? 0;
    if (room === 0)
      fail(Q.INVALID_FIELD, `no result buffer: the read at ${region} offset ${offset} has no width`);
    return this.guarded(() => member.readLegacy(region, offset, room));
  }

  /** A member's refusal fails the command with INVALID_FIELD, its state untouched (§2.12.1). */
  private guarded<T>(run: () => T): T {
    try {
      return run();
    } catch (e) {
      if (!isVmmrError(e)) throw e;
      return fail(Q.INVALID_FIELD, e.message, e);
    }
  }
}
