/**
 * vfio-user exports (docs/vfio-user.md "Starting and stopping"): one Unix socket per exported
 * function, inside VMMR_SOCKET_DIR, for a VMM's vfio-user-pci client.
 */
import { Type } from 'typebox';
import { VfioUserExportListSchema, VfioUserExportSchema } from '../../views/shapes.js';
import type { RouteModule } from '../app.js';
import { BdfParams, problems } from '../schemas.js';

const tags = ['vfio-user'];

export const vfioUserRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/vfio-user',
    {
      schema: {
        tags,
        summary: 'Every vfio-user export and its connected client',
        response: { 200: VfioUserExportListSchema },
      },
    },
    async () => ({ items: ctx.vfioUser.list() }),
  );

  app.post(
    '/api/v1/functions/:bdf/vfio-user',
    {
      schema: {
        tags,
        summary: 'Export a function over vfio-user',
        description:
          'Listens on `socket` (absolute, or a name inside VMMR_SOCKET_DIR; created with mode 0600; a path ' +
          'outside the directory is refused) for one vfio-user client at a time. `view` "guest" (the default) ' +
          'serves an MMR VF as the translator\'s transitional device with an I/O BAR0, "function" serves the ' +
          'PF or VF as it is. 409 VMMR_ERR_EXPORTED when the function is exported already, VMMR_ERR_SOCKET when ' +
          'another server listens there, VMMR_ERR_NOT_CONFIGURED without VMMR_SOCKET_DIR. The export closes ' +
          'when its VF or PF goes away and on reset or restore.',
        params: BdfParams,
        body: Type.Object(
          {
            socket: Type.String({ minLength: 1, examples: ['vf1.sock'] }),
            view: Type.Optional(Type.Union([Type.Literal('guest'), Type.Literal('function')])),
          },
          { additionalProperties: false },
        ),
        response: { 201: VfioUserExportSchema, ...problems(400, 404, 409, 410, 422) },
      },
    },
    async (request, reply) => {
      const info = ctx.vfioUser.start({
        bdf: request.params.bdf,
        socket: request.body.socket,
        view: request.body.view ?? 'guest',
      });
      return reply.code(201).header('location', `/api/v1/functions/${info.bdf}/vfio-user`).send(info);
    },
  );

  app.get(
    '/api/v1/functions/:bdf/vfio-user',
    {
      schema: {
        tags,
        summary: "A function's vfio-user export and its connected client",
        params: BdfParams,
        response: { 200: VfioUserExportSchema, ...problems(400, 404) },
      },
    },
    async (request) => ctx.vfioUser.get(request.params.bdf),
  );

  app.delete(
    '/api/v1/functions/:bdf/vfio-user',
    {
      schema: {
        tags,
        summary: 'Stop a vfio-user export',
        description: 'The connected client sees the socket close; the socket file is removed.',
        params: BdfParams,
        response: { 204: Type.Null({ description: 'stopped' }), ...problems(400, 404) },
      },
    },
    async (request, reply) => {
      ctx.vfioUser.stop(request.params.bdf);
      return reply.code(204).send(null);
    },
  );
};
