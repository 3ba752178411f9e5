/** A function's config space: whole-space dumps and single or block accesses. */
import { Type } from 'typebox';
import { dumpDescription } from '../../views/functions.js';
import type { RouteModule } from '../app.js';
import { BdfParams, BdfParam, ConfigDump, DumpFormat, OffsetParam, problems } from '../schemas.js';
import { sendConfigDump } from './common.js';
import { registerSpaceRoutes } from './space.js';

export const configRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/functions/:bdf/config',
    {
      schema: {
        tags: ['functions'],
        summary: 'The whole config space (4096 bytes), without side effects',
        description:
          'format=lspci is the `lspci -xxxx` text that `lspci -F FILE -vvv` decodes and `setpci -F FILE` reads; ' +
          'format=hex is 16 bytes per line; json (default) is {bdf, length, data}.',
        params: BdfParams,
        querystring: Type.Object({ format: Type.Optional(DumpFormat) }, { additionalProperties: false }),
        response: {
          200: {
            description: 'the config space',
            content: {
              'application/json': { schema: ConfigDump },
              'text/plain': { schema: Type.String() },
            },
          },
          ...problems(400, 404, 410),
        },
      },
    },
    async (request, reply) => {
      const fn = ctx.emulator.machine.find(request.params.bdf);
      return sendConfigDump(reply, request.query.format, fn.bdf, dumpDescription(fn), fn.config.snapshot());
    },
  );

  registerSpaceRoutes(app, ctx, {
    url: '/api/v1/functions/:bdf/config/:offset',
    offsetParam: 'offset',
    params: Type.Object({ bdf: BdfParam, offset: OffsetParam }),
    tags: ['functions'],
    what: 'config space',
    widths: '1, 2 or 4',
    description:
      "Config-space accesses go through the function's own config path: write masks, RW1C bits, SR-IOV " +
      'control (VF Enable creates and removes VFs), MSI-X enable, FLR, the PCI_CFG access window.',
    spaceOf: () => 'config',
    targetOf: (c, bdf) => c.emulator.machine.find(bdf),
  });
};
