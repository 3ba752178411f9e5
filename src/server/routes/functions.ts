/** Functions (PFs and live VFs): paged listing and full descriptions. */
import { Type } from 'typebox';
import { describeFunction, listFunctions } from '../../views/functions.js';
import type { RouteModule } from '../app.js';
import { functionRegisters } from '../../views/registers.js';
import {
  FunctionDescriptionSchema,
  FunctionPageSchema,
  FunctionRegistersSchema,
} from '../../views/shapes.js';
import { BdfParams, Cursor, Limit, problems } from '../schemas.js';

const tags = ['functions'];

export const functionRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/functions',
    {
      schema: {
        tags,
        summary: 'List live functions, a page at a time',
        description:
          'PFs in address order, each followed by its enabled VFs in VF order. `total` counts every match; ' +
          'pass `nextCursor` back as `cursor` for the next page (null on the last page). A page costs its own ' +
          'size, not the number of VFs.',
        querystring: Type.Object(
          {
            pf: Type.Optional(Type.String({ description: 'only this PF and its VFs' })),
            kind: Type.Optional(Type.Union([Type.Literal('pf'), Type.Literal('vf')])),
            limit: Type.Optional(Limit),
            cursor: Type.Optional(Cursor),
          },
          { additionalProperties: false },
        ),
        response: {
          200: FunctionPageSchema,
          ...problems(400, 404),
        },
      },
    },
    async (request) => listFunctions(ctx.emulator.machine, request.query),
  );

  app.get(
    '/api/v1/functions/:bdf',
    {
      schema: {
        tags,
        summary: 'Describe a function',
        description:
          "Logical identity (a VF reports its PF's Vendor ID and the VF Device ID; configVendorId/configDeviceId " +
          'show what its config space reads: 0xffff), BARs, capabilities by name, the MMR locator (VF), SR-IOV ' +
          '(PF), virtio state (status bits, features, queues, MSI-X, ISR, config generation), identity (net MAC, ' +
          'blk serial) and the guest view once opened. Reading it has no side effect.',
        params: BdfParams,
        response: { 200: FunctionDescriptionSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const machine = ctx.emulator.machine;
      return describeFunction(machine.find(request.params.bdf), machine.translator);
    },
  );

  app.get(
    '/api/v1/functions/:bdf/registers',
    {
      schema: {
        tags,
        summary: 'Registers decoded like lspci -vvv',
        description:
          'Each capability with its registers from the spec tables and its summary and detail lines as ' +
          '`lspci -vvv` words them; the legacy block header of a transitional VF and the modern common ' +
          'configuration (the selected queue) as register tables; device and driver feature bits by name; ' +
          'the device status bits. Reading it has no side effect (ISR is shown as held, not read-cleared).',
        params: BdfParams,
        response: { 200: FunctionRegistersSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => functionRegisters(ctx.emulator.machine.find(request.params.bdf)),
  );
};
