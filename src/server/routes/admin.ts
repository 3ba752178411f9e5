/**
 * Group administration commands issued directly on a PF, and the translator backend of a VF's
 * guest view (docs/admin-commands.md).
 */
import { Type } from 'typebox';
import { VmmrError } from '../../base/errors.js';
import {
  issueAdminCommands,
  MAX_ADMIN_RESULT,
  setGuestBackend,
  type AdminRequest,
} from '../../control/admin.js';
import { ADMIN_OPCODE_NAMES, type AdminOpcodeName } from '../../devices/admin/wire.js';
import { TRANSLATOR_BACKENDS } from '../../mmr/pf.js';
import { AdminAnswersSchema, GuestBackendSchema } from '../../views/shapes.js';
import type { RouteModule } from '../app.js';
import { hexToBytes, parseValue } from '../hex.js';
import { BdfParams, NumberInput, PfBdfParams, problems } from '../schemas.js';

const MAX_COMMANDS = 256;

const AdminCommandSchema = Type.Object(
  {
    opcode: Type.Union([Type.Integer({ minimum: 0, maximum: 0xffff }), Type.Enum([...ADMIN_OPCODE_NAMES])], {
      description: `0..65535 or one of ${ADMIN_OPCODE_NAMES.join(', ')}`,
    }),
    groupType: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 0xffff, description: 'default 1 (SR-IOV)' }),
    ),
    memberId: Type.Optional(NumberInput('group_member_id (SR-IOV: the VF number 1..NumVFs), default 0')),
    data: Type.Optional(
      Type.String({
        description: 'command_specific_data as plain hex ("0c" for a read at offset 12), default none',
      }),
    ),
    resultLength: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_ADMIN_RESULT,
        description: 'bytes of result the driver offers, default 0',
      }),
    ),
  },
  { additionalProperties: false },
);

function toRequest(c: {
  opcode: number | string;
  groupType?: number;
  memberId?: number | string;
  data?: string;
  resultLength?: number;
}): AdminRequest {
  const data = c.data === undefined ? new Uint8Array(0) : hexToBytes(c.data);
  if (!data) throw new VmmrError('VMMR_ERR_BAD_VALUE', `data ${JSON.stringify(c.data)} is not plain hex`);
  const request: AdminRequest = { opcode: c.opcode as number | AdminOpcodeName, data };
  if (c.groupType !== undefined) request.groupType = c.groupType;
  if (c.memberId !== undefined) request.memberId = BigInt(parseValue(c.memberId, 'memberId'));
  if (c.resultLength !== undefined) request.resultLength = c.resultLength;
  return request;
}

export const adminRoutes: RouteModule = (app, ctx) => {
  app.post(
    '/api/v1/pfs/:bdf/admin',
    {
      schema: {
        tags: ['pfs'],
        summary: 'Issue group administration commands on a PF',
        description:
          "Commands run in order as one unit through the PF's command engine, parsed as the administration " +
          'virtqueue parses a chain. Each answer is what the device wrote back: status, status_qualifier and the ' +
          'result; a failed command is an answer (status EINVAL), not an HTTP error. 409 VMMR_ERR_TOPOLOGY when the ' +
          'PF does not offer admin commands (topology "adminQueue").',
        params: PfBdfParams,
        body: Type.Object(
          { commands: Type.Array(AdminCommandSchema, { minItems: 1, maxItems: MAX_COMMANDS }) },
          { additionalProperties: false },
        ),
        response: { 200: AdminAnswersSchema, ...problems(400, 404, 409) },
      },
    },
    async (request) => {
      const pf = ctx.emulator.machine.findPf(request.params.bdf);
      return { answers: issueAdminCommands(pf, request.body.commands.map(toRequest)) };
    },
  );

  app.get(
    '/api/v1/functions/:bdf/guest/backend',
    {
      schema: {
        tags: ['guest'],
        summary: "How a VF's guest view carries legacy accesses",
        params: BdfParams,
        response: { 200: GuestBackendSchema, ...problems(400, 404, 410, 422) },
      },
    },
    async (request) => ({ backend: ctx.emulator.machine.guestView(request.params.bdf).backend }),
  );

  app.put(
    '/api/v1/functions/:bdf/guest/backend',
    {
      schema: {
        tags: ['guest'],
        summary: "Choose how a VF's guest view carries legacy accesses",
        description:
          "mmr: each guest I/O access is one MMIO access on the VF's MMR block; admin: one legacy admin command on " +
          'the PF (needs "adminQueue" on the PF, else 400 VMMR_ERR_BAD_VALUE). The PF\'s topology "translator" is ' +
          'the default.',
        params: BdfParams,
        body: Type.Object(
          { backend: Type.Enum([...TRANSLATOR_BACKENDS], { description: TRANSLATOR_BACKENDS.join(' or ') }) },
          { additionalProperties: false },
        ),
        response: { 200: GuestBackendSchema, ...problems(400, 404, 410, 422) },
      },
    },
    async (request) => ({
      backend: setGuestBackend(ctx.emulator.machine, request.params.bdf, request.body.backend),
    }),
  );
};
