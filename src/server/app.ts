/**
 * The fastify application: logger, type provider, request logging policy and
 * route registration. Listening and signal handling live in main.ts, so tests
 * can drive the app through app.inject() without a socket.
 */
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyReply,
  type FastifyRequest,
  type FastifyInstance,
  type FastifyServerOptions,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from '../config.js';
import type { ResolvedTopology } from '../topology.js';

/** The fastify instance type used throughout the server (TypeBox type provider). */
export type VmmrApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression<RawServerDefault>,
  RawReplyDefaultExpression<RawServerDefault>,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** What route modules get besides the app. */
export interface AppContext {
  config: Config;
  topology: ResolvedTopology;
}

/** A route module: registers its routes (and hooks, schemas...) on the app. */
export type RouteModule = (app: VmmrApp, ctx: AppContext) => void | Promise<void>;

export interface BuildAppOptions {
  config: Config;
  topology: ResolvedTopology;
  /**
   * false: no logging; true/undefined: pino at config.logLevel on stdout;
   * a pino options object (e.g. { stream }) merged over { level: config.logLevel };
   * a ready pino logger instance: used as is.
   */
  logger?: boolean | object;
  /** Extra route modules registered after the built-in ones (tests, embedding). */
  routes?: RouteModule[];
}

export const HealthResponse = Type.Object({ status: Type.Literal('ok') });

/** GET /healthz: liveness probe used by Docker's HEALTHCHECK and harnesses. */
export const healthRoutes: RouteModule = (app) => {
  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness probe',
        response: { 200: HealthResponse },
      },
    },
    async () => ({ status: 'ok' as const }),
  );
};

/**
 * Built-in route modules, in registration order. Feature modules (device
 * model, config space, SR-IOV, translator API...) are appended here.
 */
export const ROUTE_MODULES: readonly RouteModule[] = [healthRoutes];

/**
 * Request logging policy: no per-request info lines (the request-rate of a
 * harness would drown everything else; the onResponse hook in buildApp logs
 * each request at debug), but 5xx errors are still logged at error level.
 */
export class VmmrLogController extends LogController {
  constructor() {
    super({ disableRequestLogging: true });
  }

  override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if (reply.statusCode >= 500) {
      reply.log.error({ req: request, res: reply, err: error }, error?.message);
    } else {
      reply.log.debug({ statusCode: reply.statusCode, err: error }, error?.message);
    }
  }

  override streamError(error: Error, _request: FastifyRequest, reply: FastifyReply): void {
    if ((error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      reply.log.debug('stream closed prematurely');
    } else {
      reply.log.warn({ err: error }, 'response terminated with an error with headers already sent');
    }
  }
}

function isLoggerInstance(value: object): value is FastifyBaseLogger {
  const v = value as Record<string, unknown>;
  return typeof v.child === 'function' && typeof v.info === 'function';
}

function loggerOptions(
  opts: BuildAppOptions,
): Pick<FastifyServerOptions, 'logger'> & { loggerInstance?: FastifyBaseLogger } {
  const { logger, config } = opts;
  if (logger === false) return { logger: false };
  if (logger === undefined || logger === true) return { logger: { level: config.logLevel } };
  if (isLoggerInstance(logger)) return { loggerInstance: logger };
  return { logger: { level: config.logLevel, ...logger } };
}

export async function buildApp(opts: BuildAppOptions): Promise<VmmrApp> {
  const app = Fastify({
    ...loggerOptions(opts),
    logController: new VmmrLogController(),
    // While closing, new requests get 503 instead of hanging.
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.addHook('onResponse', async (request, reply) => {
    if (request.log.level === 'debug' || request.log.level === 'trace') {
      request.log.debug(
        {
          method: request.method,
          url: request.url,
          statusCode: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 1000) / 1000,
        },
        'request',
      );
    }
  });

  const ctx: AppContext = { config: opts.config, topology: opts.topology };
  for (const routes of [...ROUTE_MODULES, ...(opts.routes ?? [])]) {
    await routes(app, ctx);
  }
  return app;
}
