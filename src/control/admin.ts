/**
 * Group administration commands issued directly on a PF (docs/admin-commands.md), for a harness
 * that tests its own admin-command client: each command goes to the PF's command engine as the
 * bytes of one chain would (the same parsing, validation and truncation as the administration
 * virtqueue), without a ring in guest memory. Also the choice of a VF's translator backend.
 */
import { VmmrError } from '../base/errors.js';
import {
  ADMIN_OPCODE_NAMES,
  ADMIN_OPCODES,
  CMD_STATUS_SIZE,
  encodeCommand,
  GROUP_TYPE_SRIOV,
  opcodeName,
  qualifierName,
  statusName,
  type AdminOpcodeName,
} from '../devices/admin/wire.js';
import type { Machine } from '../machine/machine.js';
import type { TranslatorBackend, VirtioPf } from '../mmr/pf.js';
import { bytesToHex } from '../base/hex.js';

/** Largest result a direct command may ask for (the device's largest result is 64 bytes). */
export const MAX_ADMIN_RESULT = 4096;

export interface AdminRequest {
  /** A number 0..65535 or one of ADMIN_OPCODE_NAMES. */
  opcode: number | AdminOpcodeName;
  /** Default 1 (SR-IOV). */
  groupType?: number;
  /** Default 0 (commands that address no member). */
  memberId?: bigint;
  /** command_specific_data. */
  data?: Uint8Array;
  /** Bytes of command_specific_result the driver offers (the device-writable part is 8 more). */
  resultLength?: number;
}

export interface AdminAnswer {
  opcode: number;
  opcodeName: string;
  status: number;
  statusName: string;
  qualifier: number;
  qualifierName: string;
  /** Plain hex of command_specific_result as the device wrote it. */
  result: string;
  /** Why the device failed the command (not on the wire). */
  reason?: string;
}

function engineOf(pf: VirtioPf) {
  if (!pf.admin) {
    throw new VmmrError(
      'VMMR_ERR_TOPOLOGY',
      `${pf.bdf} has no admin commands: its topology entry has "adminQueue": false (VIRTIO_F_ADMIN_VQ not offered)`,
      { bdf: pf.bdf },
    );
  }
  return pf.admin;
}

function opcodeOf(opcode: number | AdminOpcodeName): number {
  if (typeof opcode === 'number') return opcode;
  const value = (ADMIN_OPCODES as Record<string, number>)[opcode];
  if (value === undefined) {
    throw new VmmrError(
      'VMMR_ERR_BAD_VALUE',
      `opcode ${JSON.stringify(opcode)}: use 0..65535 or ${ADMIN_OPCODE_NAMES.join(', ')}`,
    );
  }
  return value;
}

/** Runs commands in order as one unit; each answer says what the device wrote back. */
export function issueAdminCommands(pf: VirtioPf, requests: readonly AdminRequest[]): AdminAnswer[] {
  const engine = engineOf(pf);
  const commands = requests.map((r) => {
    const resultLength = r.resultLength ?? 0;
    if (!Number.isInteger(resultLength) || resultLength < 0 || resultLength > MAX_ADMIN_RESULT) {
      throw new VmmrError('VMMR_ERR_BAD_VALUE', `resultLength ${resultLength}: use 0..${MAX_ADMIN_RESULT}`, {
        bdf: pf.bdf,
      });
    }
    const bytes = encodeCommand({
      opcode: opcodeOf(r.opcode),
      groupType: r.groupType ?? GROUP_TYPE_SRIOV,
      memberId: r.memberId ?? 0n,
      data: r.data ?? new Uint8Array(0),
    });
    return { bytes, writable: CMD_STATUS_SIZE + resultLength };
  });
  return commands.map(({ bytes, writable }) => {
    const o = engine.execute(bytes, writable);
    return {
      opcode: o.opcode,
      opcodeName: opcodeName(o.opcode),
      status: o.status,
      statusName: statusName(o.status),
      qualifier: o.qualifier,
      qualifierName: qualifierName(o.qualifier),
      result: bytesToHex(o.result),
      ...(o.reason !== undefined ? { reason: o.reason } : {}),
    };
  });
}

/** Chooses how a VF's guest view carries legacy accesses; returns the backend now in use. */
export function setGuestBackend(
  machine: Machine,
  bdf: string,
  backend: TranslatorBackend,
): TranslatorBackend {
  const view = machine.guestView(bdf);
  view.setBackend(backend);
  return view.backend;
}
