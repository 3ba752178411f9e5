/** The translator's trace ring of a VF: every translated guest I/O access, newest last. */
import { Type } from 'typebox';
import { VmmrError } from '../../base/errors.js';
import { DEFAULT_TRACE_DEPTH, type TraceEntry } from '../../translator/trace.js';
import type { RouteModule } from '../app.js';
import { hexValue } from '../hex.js';
import { BdfParams, problems } from '../schemas.js';

const TraceState = Type.Object({
  enabled: Type.Boolean(),
  depth: Type.Integer({ description: 'entries kept (the oldest give way)' }),
  recorded: Type.Integer({ description: 'entries recorded since tracing was enabled (seq of the newest)' }),
});

const TraceEntrySchema = Type.Object({
  seq: Type.Integer(),
  time: Type.Number({ description: 'milliseconds since the epoch' }),
  op: Type.Union([Type.Literal('read'), Type.Literal('write')]),
  port: Type.Integer({ description: 'port offset in the guest I/O BAR0' }),
  width: Type.Integer(),
  value: Type.String(),
  backend: Type.Union([Type.Literal('mmr'), Type.Literal('admin')], {
    description: 'mmr: one MMIO access on the VF BAR; admin: one admin command on the PF',
  }),
  bar: Type.Optional(
    Type.Integer({ description: 'VF BAR the access went to (absent for an admin command)' }),
  ),
  offset: Type.Optional(Type.Integer({ description: 'offset in that BAR' })),
  admin: Type.Optional(
    Type.Object({
      opcode: Type.String({
        description: 'LEGACY_COMMON_CFG_READ, LEGACY_DEV_CFG_WRITE, LEGACY_NOTIFY_INFO, ...',
      }),
      member: Type.Integer({ description: 'group member id: the VF number 1..NumVFs' }),
      offset: Type.Integer({ description: 'offset in the legacy header or in the device configuration' }),
      status: Type.String({ description: 'OK, EINVAL, ...' }),
      qualifier: Type.String({ description: 'OK, INVALID_FIELD, ...' }),
    }),
  ),
  register: Type.String(),
  outcome: Type.String({ description: 'ok or the error code' }),
});

function entryJson(e: TraceEntry): Omit<TraceEntry, 'value'> & { value: string } {
  return { ...e, value: hexValue(e.value >>> 0, e.width) };
}

export const traceRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/functions/:bdf/trace',
    {
      schema: {
        tags: ['guest'],
        summary: 'Translated I/O accesses of a VF',
        description:
          'Entries oldest first; ?after=<seq> returns only newer ones (poll with the last seq seen).',
        params: BdfParams,
        querystring: Type.Object(
          { after: Type.Optional(Type.Integer({ minimum: 0 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ ...TraceState.properties, entries: Type.Array(TraceEntrySchema) }),
          ...problems(400, 404, 410, 422),
        },
      },
    },
    async (request) => {
      const vf = ctx.emulator.machine.findVf(request.params.bdf);
      const trace = ctx.emulator.machine.translator.existing(vf)?.trace;
      if (!trace) return { enabled: false, depth: 0, recorded: 0, entries: [] };
      return {
        enabled: true,
        depth: trace.depth,
        recorded: trace.recorded,
        entries: trace.list(request.query.after ?? 0).map(entryJson),
      };
    },
  );

  app.put(
    '/api/v1/functions/:bdf/trace',
    {
      schema: {
        tags: ['guest'],
        summary: 'Start or stop tracing translated I/O accesses of a VF',
        description: `{enabled: true, depth?} starts a fresh ring of depth entries (default ${Math.min(DEFAULT_TRACE_DEPTH, ctx.limits.maxTraceDepth)}, at most VMMR_MAX_TRACE_DEPTH: ${ctx.limits.maxTraceDepth} on this server); {enabled: false} stops and drops it.`,
        params: BdfParams,
        body: Type.Object(
          {
            enabled: Type.Boolean(),
            depth: Type.Optional(
              Type.Integer({ description: `1..${ctx.limits.maxTraceDepth} (VMMR_MAX_TRACE_DEPTH)` }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: TraceState, ...problems(400, 404, 410, 422) },
      },
    },
    async (request) => {
      const vf = ctx.emulator.machine.findVf(request.params.bdf);
      const { enabled, depth } = request.body;
      if (!enabled) {
        ctx.emulator.machine.translator.existing(vf)?.disableTrace();
        return { enabled: false, depth: 0, recorded: 0 };
      }
      const max = ctx.limits.maxTraceDepth;
      const d = depth ?? Math.min(DEFAULT_TRACE_DEPTH, max);
      if (d < 1 || d > max) {
        throw new VmmrError(
          'VMMR_ERR_BAD_VALUE',
          `trace depth ${d} is not allowed: use 1..${max} (VMMR_MAX_TRACE_DEPTH)`,
          { bdf: vf.bdf },
        );
      }
      const view = ctx.emulator.machine.translator.view(vf);
      view.enableTrace(d);
      return { enabled: true, depth: d, recorded: view.trace?.recorded ?? 0 };
    },
  );
};
