/** GET /api/v1/events: device events as Server-Sent Events. */
import { Type } from 'typebox';
import { VmmrError } from '../../base/errors.js';
import { EVENT_TYPES, type VmmrEventType } from '../../base/events.js';
import type { MmrVf } from '../../mmr/vf.js';
import type { RouteModule } from '../app.js';
import type { EventFilter } from '../sse.js';
import { EventTypesQuery, problems } from '../schemas.js';

export const eventRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/events',
    {
      // A HEAD request must not open a stream that would never send anything.
      exposeHeadRoute: false,
      schema: {
        tags: ['events'],
        summary: 'Device events (Server-Sent Events)',
        description:
          `text/event-stream. Each event: \`id: <seq>\`, \`event: <type>\` (${EVENT_TYPES.join(', ')}), \`data: <JSON ` +
          'with seq, type, bdf and the event fields>`. seq counts 1, 2, 3… per stream with no gap among the events ' +
          'that pass the filter. A comment line (": keepalive") comes every 15 s. A stream whose queue of ' +
          `undelivered events reaches VMMR_SSE_QUEUE (this server: ${ctx.limits.sseQueue}) is dropped: a final ` +
          '`event: dropped` ({reason, queueLimit, lastSeq: the id of the last event written; later ones are lost}), then the stream closes. With a bdf filter, the stream ' +
          'ends when that function goes away (VF disabled, PF removed, state restored or reset without it): a final ' +
          '`event: end` ({reason: "function-removed", bdf, detail, lastSeq}). Server shutdown sends `event: end` ' +
          '({reason: "shutdown"}). Control events carry no id. The subscription is live once the response headers ' +
          `arrive. At most VMMR_MAX_SUBSCRIBERS streams (this server: ${ctx.limits.maxSubscribers}) are open at once; ` +
          'one more is refused with 429 VMMR_ERR_TOO_MANY.',
        querystring: Type.Object(
          {
            bdf: Type.Optional(Type.String({ description: 'only events of this function' })),
            types: Type.Optional(EventTypesQuery),
          },
          { additionalProperties: false },
        ),
        response: {
          200: {
            description: 'the event stream',
            content: { 'text/event-stream': { schema: Type.String() } },
          },
          ...problems(400, 404, 410, 429),
        },
      },
    },
    async (request, reply) => {
      const filter: EventFilter = {};
      const { bdf, types } = request.query;
      if (types !== undefined && types !== '') {
        const wanted = new Set<VmmrEventType>();
        for (const t of types.split(',').map((s) => s.trim())) {
          if (!(EVENT_TYPES as readonly string[]).includes(t)) {
            throw new VmmrError(
              'VMMR_ERR_BAD_REQUEST',
              `querystring/types: "${t}" is not an event type: use ${EVENT_TYPES.join(', ')}`,
            );
          }
          wanted.add(t as VmmrEventType);
        }
        filter.types = wanted;
      }
      if (bdf !== undefined && bdf !== '') {
        const fn = ctx.emulator.machine.find(bdf);
        filter.bdf = fn.bdf;
        if (fn.kind === 'vf') filter.parentPf = (fn as MmrVf).pf.bdf;
      }
      if (ctx.sse.size >= ctx.limits.maxSubscribers) {
        throw new VmmrError(
          'VMMR_ERR_TOO_MANY',
          `${ctx.sse.size} event streams are open, as many as this server allows (VMMR_MAX_SUBSCRIBERS): close one or retry later`,
        );
      }
      reply.hijack();
      try {
        ctx.sse.open(reply.raw, filter);
      } catch (e) {
        // The reply is ours now: fastify's error handling no longer applies.
        request.log.error({ err: e }, 'event stream failed to open');
        reply.raw.destroy();
      }
    },
  );
};
