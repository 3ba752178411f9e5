/** GET /healthz, GET /readyz, GET /metrics. */
import { Type } from 'typebox';
import type { RouteModule } from '../app.js';

export const HealthResponse = Type.Object({ status: Type.Literal('ok') });

export const ReadyResponse = Type.Object({
  status: Type.Literal('ready'),
  pfs: Type.Integer({ description: 'PFs in the machine' }),
  vfs: Type.Integer({ description: 'VFs enabled' }),
});

export const healthRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['service'],
        summary: 'Liveness probe',
        description: 'Answers as long as the process serves HTTP (Docker HEALTHCHECK).',
        response: { 200: HealthResponse },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['service'],
        summary: 'Readiness probe',
        description: 'Ready once the machine is built; 503 while the server shuts down.',
        response: { 200: ReadyResponse },
      },
    },
    async () => {
      const machine = ctx.emulator.machine;
      return { status: 'ready' as const, pfs: machine.pfs.length, vfs: machine.enabledVfCount() };
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['service'],
        summary: 'Prometheus metrics',
        description:
          'Text exposition format: vmmr_accesses_total{space,width,op,outcome}, vmmr_vfs_enabled{pf}, vmmr_pfs, ' +
          'vmmr_event_subscribers, vmmr_http_request_duration_seconds{method,route,status_code}, and the process metrics.',
        response: {
          200: {
            description: 'Prometheus text format',
            content: { 'text/plain': { schema: Type.String() } },
          },
        },
      },
    },
    async (_request, reply) => {
      const text = await ctx.metrics.registry.metrics();
      return reply.type(ctx.metrics.registry.contentType).send(text);
    },
  );
};
