/** Snapshot, restore and reset of the whole machine. */
import { Type } from 'typebox';
import { VmmrError } from '../../base/errors.js';
import { STATE_FORMAT, STATE_VERSION, type Machine, type MachineState } from '../../machine/machine.js';
import { validateMachineState } from '../../machine/state-file.js';
import { TopologyPfSchema } from '../../machine/topology.js';
import type { RouteModule } from '../app.js';
import { problems } from '../schemas.js';

const tags = ['state'];
const u32 = Type.Integer({ minimum: 0, maximum: 0xffffffff });
const u32Array = Type.Union([Type.Array(u32), Type.Null()]);

/** A snapshot as GET /api/v1/state gives it (fields added by later versions are let through). */
export const StateSchema = Type.Object(
  {
    format: Type.String({ description: '"vmmr-state"' }),
    version: Type.Integer({ description: 'snapshot format version (1)' }),
    pfs: Type.Array(TopologyPfSchema, { description: 'PF definitions, as in a topology file' }),
    functions: Type.Array(
      Type.Object({
        bdf: Type.String(),
        config: Type.Array(Type.Tuple([Type.Integer({ minimum: 0, maximum: 1023 }), u32]), {
          description: '[dword index, value] of every config dword that differs from reset',
        }),
        device: Type.Object({
          status: u32,
          isr: u32,
          generation: u32,
          queueSelect: u32,
          configVector: u32,
          deviceFeatureSelect: u32,
          driverFeatureSelect: u32,
          driverFeatures: Type.String({ pattern: '^0[xX][0-9a-fA-F]{1,16}$' }),
          queues: u32Array,
          config: u32Array,
          msix: u32Array,
        }),
      }),
      { description: 'every PF, and every VF that is not in its reset state' },
    ),
  },
  { description: 'a machine snapshot' },
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
        response: { 200: StateSchema },
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
        body: StateSchema,
        response: { 200: Counts, ...problems(400, 413, 422) },
      },
    },
    async (request) => {
      const state = request.body as unknown as MachineState;
      // The same checks as a state file (value ranges: a status of 256 is not truncated to 0).
      if (state.format === STATE_FORMAT && state.version === STATE_VERSION) {
        const problem = validateMachineState(state);
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
