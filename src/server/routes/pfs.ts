/**
 * PFs: list, create, describe, remove; SR-IOV state and the REST twin of sysfs sriov_numvfs.
 */
import { Type } from 'typebox';
import { VmmrError } from '../../base/errors.js';
import { setNumVfs } from '../../control/sriov.js';
import { pfSummary, sriovState } from '../../views/pfs.js';
import { TopologyError, TopologyPfSchema, parseTopology } from '../../machine/topology.js';
import type { RouteModule } from '../app.js';
import { PfListSchema, PfSummarySchema, SriovStateSchema } from '../../views/shapes.js';
import { PageQuery, PfBdfParams, problems } from '../schemas.js';

const tags = ['pfs'];

export const pfRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/pfs',
    {
      schema: {
        tags,
        summary: 'List the PFs',
        response: { 200: PfListSchema },
      },
    },
    async () => ({ items: ctx.emulator.machine.pfs.map(pfSummary) }),
  );

  app.post(
    '/api/v1/pfs',
    {
      schema: {
        tags,
        summary: 'Add a PF',
        description:
          'The body is a PF entry of the topology file (same fields, defaults and rules). Its routing ID and ' +
          'those of all its TotalVFs VFs must be free: a collision is 409 VMMR_ERR_TOPOLOGY. The PF starts ' +
          'with VFs disabled. POST /api/v1/reset removes it again (back to the startup topology).',
        body: TopologyPfSchema,
        response: { 201: PfSummarySchema, ...problems(400, 409) },
      },
    },
    async (request, reply) => {
      let resolved;
      try {
        resolved = parseTopology({ pfs: [request.body] }, 'body').pfs[0]!;
      } catch (e) {
        if (!(e instanceof TopologyError)) throw e;
        const prefix = e.path === undefined ? `${e.source}: ` : `${e.source}: ${e.path}: `;
        const path = (e.path ?? '').replace(/^pfs\[0\]/, '');
        throw new VmmrError('VMMR_ERR_BAD_REQUEST', `body${path}: ${e.message.slice(prefix.length)}`);
      }
      const pf = ctx.emulator.machine.addPf(resolved);
      ctx.emulator.topologyChanged({ kind: 'pf-added', bdf: pf.bdf });
      return reply.code(201).header('location', `/api/v1/pfs/${pf.bdf}`).send(pfSummary(pf));
    },
  );

  app.get(
    '/api/v1/pfs/:bdf',
    {
      schema: {
        tags,
        summary: 'One PF',
        params: PfBdfParams,
        response: { 200: PfSummarySchema, ...problems(400, 404) },
      },
    },
    async (request) => pfSummary(ctx.emulator.machine.findPf(request.params.bdf)),
  );

  app.delete(
    '/api/v1/pfs/:bdf',
    {
      schema: {
        tags,
        summary: 'Remove a PF and its VFs',
        description: 'Event streams filtered on the PF or one of its VFs end with `event: end`.',
        params: PfBdfParams,
        response: { 204: Type.Null({ description: 'removed' }), ...problems(400, 404) },
      },
    },
    async (request, reply) => {
      const pf = ctx.emulator.machine.removePf(request.params.bdf);
      ctx.emulator.topologyChanged({ kind: 'pf-removed', bdf: pf.bdf });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/api/v1/pfs/:bdf/sriov',
    {
      schema: {
        tags,
        summary: 'SR-IOV state and the enabled VFs (paged)',
        params: PfBdfParams,
        querystring: PageQuery,
        response: { 200: SriovStateSchema, ...problems(400, 404) },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      return sriovState(ctx.emulator.machine.findPf(request.params.bdf), limit, cursor);
    },
  );

  app.put(
    '/api/v1/pfs/:bdf/sriov',
    {
      schema: {
        tags,
        summary: 'Set the number of VFs (sysfs sriov_numvfs)',
        description:
          "What writing N to /sys/bus/pci/devices/<pf>/sriov_numvfs does, through the PF's own config-space " +
          'writes (the outcome is exactly that of the same writes to the SR-IOV capability): N > 0 writes NumVFs, ' +
          'then sets VF Enable and VF MSE in SR-IOV Control; 0 clears VF Enable and VF MSE, then NumVFs. ' +
          'Changing a nonzero count to another nonzero count without going to 0 first is 409 ' +
          'VMMR_ERR_SRIOV_STATE (sysfs: EBUSY); above TotalVFs is 400 VMMR_ERR_SRIOV_RANGE; above the process ' +
          'VF limit (VMMR_MAX_VFS) is 409 VMMR_ERR_LIMIT. Setting the current count again changes nothing.',
        params: PfBdfParams,
        querystring: PageQuery,
        body: Type.Object(
          { numVfs: Type.Integer({ minimum: 0, description: 'VFs to enable, 0 to disable' }) },
          { additionalProperties: false },
        ),
        response: { 200: SriovStateSchema, ...problems(400, 404, 409) },
      },
    },
    async (request) => {
      const pf = ctx.emulator.machine.findPf(request.params.bdf);
      setNumVfs(pf, request.body.numVfs);
      return sriovState(pf, request.query.limit, request.query.cursor);
    },
  );
};
