/**
 * The translator's guest view of an MMR VF: the classic transitional device a legacy guest
 * driver sees (config space with an I/O BAR0) and that I/O BAR0 itself.
 */
import { Type } from 'typebox';
import { describeGuestView, dumpDescription } from '../../views/functions.js';
import { GuestSummarySchema } from '../../views/shapes.js';
import type { RouteModule } from '../app.js';
import { BdfParam, BdfParams, ConfigDump, DumpFormat, OffsetParam, problems } from '../schemas.js';
import { sendConfigDump } from './common.js';
import { registerSpaceRoutes } from './space.js';

const tags = ['guest'];

export const guestRoutes: RouteModule = (app, ctx) => {
  app.put(
    '/api/v1/functions/:bdf/guest',
    {
      schema: {
        tags,
        summary: "Set a VF's guest view options",
        description:
          "`legacyOnly: true` hides the VF's virtio vendor capabilities from the guest (as QEMU's disable-modern=on " +
          "leaves them out): Linux's modern virtio_pci probe finds no common configuration and the legacy driver " +
          'binds without virtio_pci.force_legacy. Takes effect at once; a guest reads the capability list at probe ' +
          'time. Opens the guest view; answers its state.',
        params: BdfParams,
        body: Type.Object({ legacyOnly: Type.Boolean() }, { additionalProperties: false }),
        response: { 200: GuestSummarySchema, ...problems(400, 404, 410, 422) },
      },
    },
    async (request) => {
      const view = ctx.emulator.machine.guestView(request.params.bdf);
      view.legacyOnly = request.body.legacyOnly;
      return describeGuestView(view);
    },
  );

  app.get(
    '/api/v1/functions/:bdf/guest/config',
    {
      schema: {
        tags,
        summary: "The guest's whole config space of a VF, without side effects",
        description:
          'A transitional virtio device (Device ID 0x1000 + n, revision 0) with BAR0 an I/O BAR of the legacy block ' +
          'length and the VF memory BAR passed through; the MMR locator is hidden. Opens the guest view.',
        params: BdfParams,
        querystring: Type.Object({ format: Type.Optional(DumpFormat) }, { additionalProperties: false }),
        response: {
          200: {
            description: 'the guest config space',
            content: { 'application/json': { schema: ConfigDump }, 'text/plain': { schema: Type.String() } },
          },
          ...problems(400, 404, 410, 422),
        },
      },
    },
    async (request, reply) => {
      const view = ctx.emulator.machine.guestView(request.params.bdf);
      return sendConfigDump(
        reply,
        request.query.format,
        view.vf.bdf,
        dumpDescription(view.vf, 'guest'),
        view.snapshot(),
      );
    },
  );

  registerSpaceRoutes(app, ctx, {
    url: '/api/v1/functions/:bdf/guest/config/:offset',
    offsetParam: 'offset',
    params: Type.Object({ bdf: BdfParam, offset: OffsetParam }),
    tags,
    what: "the guest's config space of a VF",
    widths: '1, 2 or 4',
    description:
      "Header bytes are the guest's own (set Command.IO at 0x04 before I/O accesses); the standard capabilities " +
      'pass through to the VF.',
    spaceOf: () => 'guest-config',
    targetOf: (c, bdf) => c.emulator.machine.guestView(bdf),
  });

  registerSpaceRoutes(app, ctx, {
    url: '/api/v1/functions/:bdf/guest/io/:port',
    offsetParam: 'port',
    params: Type.Object({
      bdf: BdfParam,
      port: Type.String({
        description: 'port offset inside I/O BAR0, hex ("0x12") or decimal',
        examples: ['0x12'],
      }),
    }),
    tags,
    what: "the guest's legacy I/O BAR0 of a VF",
    widths: '1, 2 or 4',
    description:
      'Each I/O access of width 1, 2 or 4 at port p becomes exactly one MMIO access of the same width at the VF ' +
      'BAR + legacy block offset + p (QUEUE_NOTIFY goes to the notify region unless the PF says legacy-register). ' +
      'Refused with 409 VMMR_ERR_IO_DISABLED while the guest Command.IO bit is clear.',
    spaceOf: () => 'io',
    targetOf: (c, bdf) => c.emulator.machine.guestView(bdf),
  });
};
