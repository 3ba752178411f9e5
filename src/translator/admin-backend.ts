/**
 * The translator's `admin` backend (as Linux drivers/vfio/pci/virtio does, virtio 1.3 §2.12.1.2
 * "Legacy Interfaces"): a guest's legacy I/O access becomes one group administration command
 * on the VF's PF, sent as the bytes of one command chain — ports below the legacy header's end
 * (20, or 24 with MSI-X enabled) as LEGACY_COMMON_CFG_READ/WRITE at that offset, the rest as
 * LEGACY_DEV_CFG_READ/WRITE at port - header end. A QUEUE_NOTIFY write goes to the address
 * LEGACY_NOTIFY_INFO reported. Before its first command the channel negotiates the legacy
 * commands with LIST_QUERY and LIST_USE, and again after a reset of the PF dropped them.
 */
import { VmmrError } from '../base/errors.js';
import type { AdminCommandEngine, AdminOutcome } from '../devices/admin/engine.js';
import {
  ADMIN_OPCODES,
  ADMIN_STATUS,
  CMD_STATUS_SIZE,
  decodeCommandList,
  decodeNotifyInfo,
  encodeCommand,
  encodeCommandList,
  encodeHeader,
  CMD_HDR_SIZE,
  GROUP_TYPE_SRIOV,
  LEGACY_WR_HDR_SIZE,
  leValue,
  putLe,
  MAX_NOTIFY_INFO,
  NOTIFY_INFO_ENTRY_SIZE,
  NOTIFY_INFO_FLAGS,
  opcodeName,
  qualifierName,
  statusName,
} from '../devices/admin/wire.js';
import type { MmrVf } from '../mmr/vf.js';
import { legacyHeaderLength } from '../virtio/memory-bar.js';

const OP = ADMIN_OPCODES;
/** What the channel uses (and what Linux's virtio_pci_admin_legacy_io.c uses). */
const WANTED = [
  OP.LIST_QUERY,
  OP.LIST_USE,
  OP.LEGACY_COMMON_CFG_WRITE,
  OP.LEGACY_COMMON_CFG_READ,
  OP.LEGACY_DEV_CFG_WRITE,
  OP.LEGACY_DEV_CFG_READ,
  OP.LEGACY_NOTIFY_INFO,
];

/** The admin command one guest access became, as the trace shows it. */
export interface AdminTrace {
  opcode: string;
  member: number;
  /** Offset in the command's region (legacy header or device config). */
  offset: number;
  status: string;
  qualifier: string;
}

export interface AdminAccess<T> {
  value: T;
  /** The command the access became, and the offset in its region (named only when traced). */
  outcome: AdminOutcome;
  offset: number;
}

/** How the trace names the command an access became. */
export function traced(outcome: AdminOutcome, offset: number): AdminTrace {
  return {
    opcode: opcodeName(outcome.opcode),
    member: outcome.memberId,
    offset,
    status: statusName(outcome.status),
    qualifier: qualifierName(outcome.qualifier),
  };
}

/** Room for the header, the legacy write header and 4 bytes of data: every legacy command the channel sends. */
const SCRATCH_SIZE = CMD_HDR_SIZE + LEGACY_WR_HDR_SIZE + 4;

export class AdminChannel {
  private notify: { bar: number; offset: number } | undefined;
  /** One command buffer, reused (each command completes before the next is built). */
  private readonly scratch = new Uint8Array(SCRATCH_SIZE);

  constructor(
    private readonly engine: AdminCommandEngine,
    readonly vf: MmrVf,
  ) {}

  /** VF number of the member (1..NumVFs). */
  get member(): number {
    return this.vf.index + 1;
  }

  private send(
    opcode: number,
    data: Uint8Array,
    resultLength: number,
    memberId = BigInt(this.member),
  ): AdminOutcome {
    const bytes = encodeCommand({ opcode, groupType: GROUP_TYPE_SRIOV, memberId, data });
    return this.engine.execute(bytes, CMD_STATUS_SIZE + resultLength);
  }

  /** A legacy access as a command in the reused buffer: offset, then a write's reserved bytes and data. */
  private legacy(opcode: number, offset: number, width: number, write: boolean, value: number): AdminOutcome {
    const b = this.scratch;
    encodeHeader(b, opcode, GROUP_TYPE_SRIOV, this.member);
    b[CMD_HDR_SIZE] = offset;
    if (!write) return this.engine.execute(b, CMD_STATUS_SIZE + width, CMD_HDR_SIZE + 1);
    const at = CMD_HDR_SIZE + LEGACY_WR_HDR_SIZE;
    b.fill(0, CMD_HDR_SIZE + 1, at);
    putLe(b, at, width, value);
    return this.engine.execute(b, CMD_STATUS_SIZE, at + width);
  }

  /** A failed command as a refusal: the member's own when it refused the access, else the admin status. */
  private refuse(outcome: AdminOutcome, what: string): never {
    const prefix = `${what}: admin command ${opcodeName(outcome.opcode)} for member ${this.member} failed`;
    if (outcome.error) {
      throw new VmmrError(outcome.error.code, `${prefix}: ${outcome.error.message}`, outcome.error.context);
    }
    throw new VmmrError('VMMR_ERR_ADMIN_STATUS', `${prefix} (${outcome.reason ?? 'no reason given'})`);
  }

  private negotiate(): void {
    if (WANTED.every((op) => this.engine.uses(op))) return;
    const query = this.send(OP.LIST_QUERY, new Uint8Array(0), 8, 0n);
    if (query.status !== ADMIN_STATUS.OK) this.refuse(query, 'negotiating the legacy commands');
    const supported = decodeCommandList(query.result);
    const use = this.send(OP.LIST_USE, encodeCommandList(WANTED.filter((op) => supported.has(op))), 0, 0n);
    if (use.status !== ADMIN_STATUS.OK) this.refuse(use, 'negotiating the legacy commands');
  }

  private region(port: number): { read: number; write: number; offset: number } {
    const end = legacyHeaderLength(this.vf.msixEnabled());
    return port < end
      ? { read: OP.LEGACY_COMMON_CFG_READ, write: OP.LEGACY_COMMON_CFG_WRITE, offset: port }
      : { read: OP.LEGACY_DEV_CFG_READ, write: OP.LEGACY_DEV_CFG_WRITE, offset: port - end };
  }

  read(port: number, width: number): AdminAccess<number> {
    this.negotiate();
    const r = this.region(port);
    const outcome = this.legacy(r.read, r.offset, width, false, 0);
    if (outcome.status !== ADMIN_STATUS.OK)
      this.refuse(outcome, `I/O read at port 0x${port.toString(16)} width ${width}`);
    return { value: leValue(outcome.result), outcome, offset: r.offset };
  }

  write(port: number, width: number, value: number): AdminAccess<undefined> {
    this.negotiate();
    const r = this.region(port);
    const outcome = this.legacy(r.write, r.offset, width, true, value);
    if (outcome.status !== ADMIN_STATUS.OK) {
      this.refuse(outcome, `I/O write at port 0x${port.toString(16)} width ${width}`);
    }
    return { value: undefined, outcome, offset: r.offset };
  }

  /**
   * The member's notification address, asked with LEGACY_NOTIFY_INFO on first use (the VF's
   * layout does not change); `command` is the command when this call sent it.
   */
  notifyAddress(): { address: { bar: number; offset: number }; command?: AdminTrace } {
    if (this.notify) return { address: this.notify };
    this.negotiate();
    const outcome = this.send(
      OP.LEGACY_NOTIFY_INFO,
      new Uint8Array(0),
      MAX_NOTIFY_INFO * NOTIFY_INFO_ENTRY_SIZE,
    );
    if (outcome.status !== ADMIN_STATUS.OK) this.refuse(outcome, 'asking for the notification address');
    const entry = decodeNotifyInfo(outcome.result).find((e) => e.flags === NOTIFY_INFO_FLAGS.OWNER_MEM);
    if (!entry)
      throw new VmmrError(
        'VMMR_ERR_ADMIN_STATUS',
        'LEGACY_NOTIFY_INFO named no member-device notification address',
      );
    this.notify = { bar: entry.bar, offset: Number(entry.offset) };
    return { address: this.notify, command: traced(outcome, 0) };
  }
}
