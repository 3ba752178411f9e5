/**
 * A simulated owner-device driver for the administration virtqueue (virtio 1.3 §2.13, as Linux
 * drivers/virtio/virtio_pci_modern.c and virtio_pci_admin_legacy_io.c use it): each command is
 * one chain of a device-readable buffer (header and command data) and a device-writable buffer
 * (status and result); the driver notifies, waits for the chain to come back and reads the reply
 * truncated to the used length. Helpers build the SR-IOV legacy commands.
 */
import type { LegacyRegion } from '../devices/admin/engine.js';
import {
  ADMIN_OPCODES,
  CMD_STATUS_SIZE,
  decodeCommandList,
  decodeNotifyInfo,
  decodeReply,
  encodeCommand,
  encodeCommandList,
  GROUP_TYPE_SRIOV,
  leBytes,
  legacyReadData,
  legacyWriteData,
  leValue,
  MAX_NOTIFY_INFO,
  NOTIFY_INFO_ENTRY_SIZE,
  type AdminCommand,
  type AdminReply,
  type NotifyInfoEntry,
} from '../devices/admin/wire.js';
import type { DmaArena } from './memory.js';
import { openQueue, type RingLayout } from './queues.js';
import type { DriverRing } from './rings.js';
import type { DriverTransport } from './transport.js';

const OP = ADMIN_OPCODES;
/** Largest command or reply this driver sends (header + data, status + result). */
const SLOT_SIZE = 4096;

export interface AdminDriverOptions {
  arena: DmaArena;
  layout: RingLayout;
  /** admin_queue_index of the owner device. */
  queueIndex: number;
  queueSize?: number;
}

export interface AdminDriverReply extends AdminReply {
  /** Used length the device reported. */
  used: number;
}

export class AdminDriver {
  readonly queue: DriverRing;
  private readonly command: number;
  private readonly reply: number;

  constructor(
    private readonly transport: DriverTransport,
    private readonly options: AdminDriverOptions,
  ) {
    this.queue = openQueue(
      transport,
      options.arena,
      options.queueIndex,
      options.queueSize ?? 64,
      options.layout,
    );
    this.command = options.arena.alloc(SLOT_SIZE, 8);
    this.reply = options.arena.alloc(SLOT_SIZE, 8);
  }

  /** Sends one command and waits for it (commands complete in order, §2.13). */
  send(cmd: AdminCommand, resultLength: number): AdminDriverReply {
    const bytes = encodeCommand(cmd);
    const replyLength = CMD_STATUS_SIZE + resultLength;
    if (bytes.length > SLOT_SIZE || replyLength > SLOT_SIZE) {
      throw new RangeError(
        `admin command of ${bytes.length} bytes or reply of ${replyLength} exceeds ${SLOT_SIZE}`,
      );
    }
    const dma = this.transport.dma;
    dma.write(this.command, bytes, 0, bytes.length);
    dma.write(this.reply, new Uint8Array(replyLength), 0, replyLength);
    const id = this.queue.add([
      { address: this.command, length: bytes.length, writable: false },
      { address: this.reply, length: replyLength, writable: true },
    ]);
    if (this.queue.kickNeeded()) this.transport.kick(this.options.queueIndex);
    const used = this.queue.takeUsed().find((u) => u.id === id);
    if (!used) throw new Error(`admin command ${cmd.opcode} was not completed`);
    const written = new Uint8Array(replyLength);
    dma.read(this.reply, written, 0, replyLength);
    return { ...decodeReply(written, used.length), used: used.length };
  }

  private owner(opcode: number, data: Uint8Array, resultLength: number): AdminDriverReply {
    return this.send({ opcode, groupType: GROUP_TYPE_SRIOV, memberId: 0n, data }, resultLength);
  }

  private forMember(
    opcode: number,
    member: number,
    data: Uint8Array,
    resultLength: number,
  ): AdminDriverReply {
    return this.send({ opcode, groupType: GROUP_TYPE_SRIOV, memberId: BigInt(member), data }, resultLength);
  }

  listQuery(): { reply: AdminDriverReply; opcodes: Set<number> } {
    const reply = this.owner(OP.LIST_QUERY, new Uint8Array(0), 8);
    return { reply, opcodes: decodeCommandList(reply.result) };
  }

  listUse(opcodes: Iterable<number>): AdminDriverReply {
    return this.owner(OP.LIST_USE, encodeCommandList(opcodes), 0);
  }

  /** LIST_QUERY, then LIST_USE of everything reported (as Linux's virtio_pci_admin_cmd_list_init). */
  negotiate(): AdminDriverReply {
    return this.listUse(this.listQuery().opcodes);
  }

  legacyRead(
    member: number,
    region: LegacyRegion,
    offset: number,
    width: number,
  ): AdminDriverReply & { value: number } {
    const opcode = region === 'common' ? OP.LEGACY_COMMON_CFG_READ : OP.LEGACY_DEV_CFG_READ;
    const reply = this.forMember(opcode, member, legacyReadData(offset), width);
    return { ...reply, value: leValue(reply.result) };
  }

  legacyWrite(
    member: number,
    region: LegacyRegion,
    offset: number,
    width: number,
    value: number,
  ): AdminDriverReply {
    const opcode = region === 'common' ? OP.LEGACY_COMMON_CFG_WRITE : OP.LEGACY_DEV_CFG_WRITE;
    return this.forMember(opcode, member, legacyWriteData(offset, leBytes(value, width)), 0);
  }

  notifyInfo(member: number): { reply: AdminDriverReply; entries: NotifyInfoEntry[] } {
    const reply = this.forMember(
      OP.LEGACY_NOTIFY_INFO,
      member,
      new Uint8Array(0),
      MAX_NOTIFY_INFO * NOTIFY_INFO_ENTRY_SIZE,
    );
    return { reply, entries: decodeNotifyInfo(reply.result) };
  }
}
