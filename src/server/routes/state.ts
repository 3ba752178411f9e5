/** Snapshot, restore and reset of the whole machine. */
import { Type } from 'typebox';
import { VmmrError } from '../../base/errors.js';
import type { Machine } from '../../machine/machine.js';
import {
  MachineStateSchema,
  migrateStateV1,
  stateProblem,
  STATE_FORMAT,
  STATE_VERSION,
  type MachineState,
} from '../../machine/state.js';
import type { RouteModule } from '../app.js';
import { problems } from '../schemas.js';

const tags = ['state'];

/** A PUT body: a snapshot of this version, or of version 1 (converted); anything else is told apart below. */
const StateBody = Type.Object(
  {
    format: Type.String({ description: '"vmmr-state"' }),
    version: Type.Integer({
      description: `snapshot format version (${STATE_VERSION}; version 1 is converted)`,
    }),
    pfs: Type.Array(Type.Unknown(), { description: 'PF definitions, as in a topology file' }),
    functions: Type.Array(Type.Unknown(), {
      description: 'function states, as GET /api/v1/state gives them',
    }),
  },
  { description: 'a machine snapshot (the schema of GET /api/v1/state)' },
);

const Counts = Type.Object({
  pfs: Type.Integer(),
  vfs: Type.Integer({ description: 'VFs enabled' }),
});

function counts(machine: Machine): { pfs: number; vfs: number } {
  return { pfs: machine.pfs.length, vfs: machine.enabledVfCount() };
}

export const stateRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/state',
    {
      schema: {
        tags,
        summary: 'Snapshot of the whole machine',
        description:
          'PF definitions, then the state of every PF and of every VF that changed: config dwords that differ ' +
          'from reset and the virtio device state. PUT it back to restore.',
        response: { 200: MachineStateSchema },
      },
    },
    async () => ctx.emulator.machine.snapshot(),
  );

  app.put(
    '/api/v1/state',
    {
      schema: {
        tags,
        summary: 'Restore a snapshot (replaces the machine)',
        description:
          'A malformed document is 400 VMMR_ERR_BAD_REQUEST (with the JSON path); one that does not restore ' +
          '(PF rules, unknown format or version, a function state that fits no function…) is 422 VMMR_ERR_STATE, and ' +
          'the current machine stays. The new machine replaces the old one at once; event streams filtered on a ' +
          'function that no longer exists end.',
        body: StateBody,
        response: { 200: Counts, ...problems(400, 413, 422) },
      },
    },
    async (request) => {
      const body = request.body as unknown as MachineState;
      // The same checks as a state file (value ranges: a status of 256 is not truncated to 0).
      const state = migrateStateV1(body) ?? body;
      if (state.format === STATE_FORMAT && state.version === STATE_VERSION) {
        const problem = stateProblem(state);
        if (problem !== undefined) throw new VmmrError('VMMR_ERR_STATE', `state not restored: ${problem}`);
      }
      return counts(ctx.emulator.restore(state));
    },
  );

  app.post(
    '/api/v1/reset',
    {
      schema: {
        tags,
        summary: 'Back to the startup topology',
        description: 'Every PF of the startup topology, fresh, with VFs disabled; PFs added since are gone.',
        response: { 200: Counts },
      },
    },
    async () => counts(ctx.emulator.reset()),
  );
};
