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
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { limitsOf, type Config, type Limits } from './config.js';
import type { ResolvedTopology } from '../machine/topology.js';
import { PROTECTED_PREFIX, bearerAuth } from './auth.js';
import { Emulator } from '../machine/emulator.js';
import { withFirmware } from '../platform/firmware.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { Metrics } from './metrics.js';
import { registerOpenApi } from './openapi.js';
import { accessRoutes } from './routes/access.js';
import { barRoutes } from './routes/bars.js';
import { configRoutes } from './routes/config.js';
import { dataPathRoutes } from './routes/datapath.js';
import { deviceRoutes } from './routes/device.js';
import { eventRoutes } from './routes/events.js';
import { functionRoutes } from './routes/functions.js';
import { guestRoutes } from './routes/guest.js';
import { healthRoutes } from './routes/health.js';
import { adminRoutes } from './routes/admin.js';
import { pfRoutes } from './routes/pfs.js';
import { stateRoutes } from './routes/state.js';
import { restoreAtStartup, stateFileRoutes } from './persistence.js';
import { clientErrorHandler } from './client-errors.js';
import { traceRoutes } from './routes/trace.js';
import { uiRoutes } from './routes/ui.js';
import { SseHub } from './sse.js';
import { validatorCompiler } from './validation.js';
import { VfioUserExports } from '../vfio-user/exports.js';
import { vfioUserRoutes } from './routes/vfio-user.js';

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
  /** The configured limits, defaults filled in. */
  limits: Limits;
  topology: ResolvedTopology;
  /** Holds the current Machine (swapped whole by restore and reset). */
  emulator: Emulator;
  metrics: Metrics;
  sse: SseHub;
  /** Every route registered (method, URL template, hidden from the OpenAPI document or not). */
  routes: RegisteredRoute[];
  /** The vfio-user exports (VMMR_SOCKET_DIR, docs/vfio-user.md). */
  vfioUser: VfioUserExports;
}

export interface RegisteredRoute {
  method: string;
  url: string;
  hidden: boolean;
  /** The route's response schemas by status (what its answers are serialized through). */
  response: Readonly<Record<string, unknown>>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The vmmr context of this app (emulator, metrics, routes…). */
    vmmr: AppContext;
  }
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
  /** Interval of the keepalive comment on event streams (default 15 s). */
  sseKeepaliveMs?: number;
}

/**
 * Built-in route modules, in registration order.
 */
export const ROUTE_MODULES: readonly RouteModule[] = [
  healthRoutes,
  pfRoutes,
  adminRoutes,
  functionRoutes,
  configRoutes,
  barRoutes,
  guestRoutes,
  accessRoutes,
  deviceRoutes,
  dataPathRoutes,
  eventRoutes,
  traceRoutes,
  stateRoutes,
  stateFileRoutes,
  vfioUserRoutes,
  uiRoutes,
];

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

/** The bearer token must never reach a log line, whatever logs a request's headers. */
const REDACT = {
  paths: ['req.headers.authorization', 'request.headers.authorization', 'headers.authorization'],
  censor: '[redacted]',
};

const DEFAULT_SSE_KEEPALIVE_MS = 15_000;

function isLoggerInstance(value: object): value is FastifyBaseLogger {
  const v = value as Record<string, unknown>;
  return typeof v.child === 'function' && typeof v.info === 'function';
}

function loggerOptions(
  opts: BuildAppOptions,
): Pick<FastifyServerOptions, 'logger'> & { loggerInstance?: FastifyBaseLogger } {
  const { logger, config } = opts;
  if (logger === false) return { logger: false };
  if (logger === undefined || logger === true) return { logger: { level: config.logLevel, redact: REDACT } };
  if (isLoggerInstance(logger)) return { loggerInstance: logger };
  return { logger: { level: config.logLevel, redact: REDACT, ...logger } };
}

export async function buildApp(opts: BuildAppOptions): Promise<VmmrApp> {
  const config = opts.config;
  const limits = limitsOf(config);
  const app = Fastify({
    ...loggerOptions(opts),
    logController: new VmmrLogController(),
    // While closing, new requests get 503 instead of hanging.
    return503OnClosing: true,
    bodyLimit: limits.bodyLimit,
    // A client that does not send its whole request in time (slow loris) gets 408 and is closed;
    // the checking interval bounds how late the timeout fires.
    requestTimeout: limits.requestTimeout,
    http: {
      requestTimeout: limits.requestTimeout,
      headersTimeout: limits.requestTimeout,
      connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(limits.requestTimeout / 4))),
    },
    // Malformed HTTP, timeouts, oversized headers: problem+json like every other refusal.
    clientErrorHandler,
    // Refusals fastify makes before routing (bad URL encoding, a path parameter over
    // maxParamLength: 400/414) go through the same error handler.
    frameworkErrors: (error, request, reply) => {
      errorHandler(error, request, reply);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Request bodies are validated as sent (no coercion); query strings and path parameters are
  // converted ("4" -> 4, "0x10" -> 16) before validation.
  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  // An empty JSON body (curl -X POST -H 'content-type: application/json' with no data) is no body.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    defaultJson(request, text, done);
  });
  // Block writes may send raw bytes.
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) =>
    done(null, body),
  );

  const emulator = new Emulator(opts.topology, {
    firmware: withFirmware,
    ...(config.maxVfs === undefined ? {} : { maxVfs: config.maxVfs }),
    ...(config.dmaLimit === undefined ? {} : { dmaLimit: config.dmaLimit }),
  });
  const metrics: Metrics = new Metrics(emulator, () => sse.size);
  const sse = new SseHub(emulator, {
    queueLimit: limits.sseQueue,
    keepaliveMs: opts.sseKeepaliveMs ?? DEFAULT_SSE_KEEPALIVE_MS,
    onDrop: () => metrics.countDroppedStream(),
  });
  const routes: RegisteredRoute[] = [];
  const vfioUser = new VfioUserExports({
    emulator,
    socketDir: config.socketDir,
    log: (level, message) => app.log[level]({ transport: 'vfio-user' }, message),
  });
  const ctx: AppContext = {
    config,
    limits,
    topology: opts.topology,
    emulator,
    metrics,
    sse,
    routes,
    vfioUser,
  };
  app.decorate('vmmr', ctx);
  restoreAtStartup(app, ctx);

  // Before the OpenAPI plugin, so that it sees the security requirement.
  app.addHook('onRoute', (route) => {
    const schema = (route.schema ?? {}) as {
      hide?: boolean;
      security?: unknown;
      response?: Record<string, unknown>;
    };
    if (route.url.startsWith(PROTECTED_PREFIX) && !schema.hide) {
      route.schema = { ...schema, security: [{ bearer: [] }] };
    }
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      routes.push({ method, url: route.url, hidden: schema.hide === true, response: schema.response ?? {} });
    }
  });
  if (config.token !== undefined) app.addHook('onRequest', bearerAuth(config.token));
  await registerOpenApi(app, { auth: config.token !== undefined });

  // A callback hook, not an async one: no promise and no extra tick on every request.
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(
      request.method,
      request.routeOptions.url ?? 'unmatched',
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
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
    done();
  });
  // Event streams never end by themselves: end them before the server waits for connections.
  app.addHook('preClose', async () => {
    sse.closeAll('shutdown');
  });
  app.addHook('onClose', async () => vfioUser.closeAll());

  for (const register of [...ROUTE_MODULES, ...(opts.routes ?? [])]) {
    await register(app, ctx);
  }
  try {
    vfioUser.startTopologyExports();
  } catch (e) {
    await app.close();
    throw e;
  }
  return app;
}
