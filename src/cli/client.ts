/**
 * The HTTP side of the client commands: --url / --token / --json, requests to
 * the REST API, and the errors a user sees when something goes wrong.
 *
 * - A refusal by the server (application/problem+json) becomes an ApiError
 *   whose message is the problem's `detail` and `code`, e.g.
 *   "0000:01:00.1 config offset 0x3 width 2: ... (VMMR_ERR_UNALIGNED)"; exit 1.
 * - A server that cannot be reached becomes a ConnectionError naming the URL
 *   that was tried; exit 1.
 */
import type { Command } from 'commander';
import { Agent, request, type Dispatcher } from 'undici';
import type { CliIo } from './context.js';
import { UsageError } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';
export const API_PREFIX = '/api/v1';

/** Options every client command takes. */
export interface ClientOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

/** Adds --url, --token and --json to a command. */
export function addClientOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', `vmmr service URL (env VMMR_URL, default ${DEFAULT_URL})`)
    .option('--token <token>', 'bearer token sent as "Authorization: Bearer" (env VMMR_TOKEN)')
    .option('--json', 'machine-readable JSON output');
}

/** The problem+json body of a refusal. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  code?: string;
  detail?: string;
  bdf?: string;
  space?: string;
  offset?: number | string;
  width?: number;
  register?: string;
}

/** The server refused a request. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly problem: Problem,
    message: string,
  ) {
    super(message);
  }

  get code(): string | undefined {
    return this.problem.code;
  }
}

/** The server could not be reached (or did not answer HTTP). */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    readonly url: string,
    readonly reason: string,
    readonly causeCode: string | undefined,
  ) {
    super(
      `cannot reach the vmmr service at ${url}: ${reason} (is \`vmmr serve\` running? set --url or VMMR_URL)`,
    );
  }
}

const CONNECT_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_HEADERS_TIMEOUT: 'no answer (headers timeout)',
};

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code in CONNECT_ERRORS) return code;
    // AggregateError (several addresses tried): look at the first one.
    const errors = (e as { errors?: unknown }).errors;
    e = Array.isArray(errors) && errors.length > 0 ? errors[0] : (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Whether an error means "nobody answered at that URL" (as opposed to a refusal). */
export function isConnectionError(err: unknown): err is ConnectionError {
  return err instanceof ConnectionError;
}

/** Parses a value the API returns ("0x1af4" or a number) into a bigint. */
export function parseApiValue(value: unknown): bigint {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && /^(0x[0-9a-f]+|[0-9]+)$/i.test(value.trim())) return BigInt(value.trim());
  throw new Error(`the server answered an unexpected value ${JSON.stringify(value)}`);
}

export type Query = Record<string, string | number | boolean | undefined>;

export class ApiClient {
  readonly baseUrl: URL;
  private readonly agent: Agent;

  constructor(
    url: string,
    private readonly token?: string,
  ) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url ${JSON.stringify(url)} is not a URL: expected e.g. ${DEFAULT_URL}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new UsageError(`--url ${JSON.stringify(url)}: expected an http:// or https:// URL`);
    }
    this.baseUrl = parsed;
    this.agent = new Agent({ connect: { timeout: 5_000 }, keepAliveTimeout: 1_000 });
  }

  /** The client for a command's --url / --token (falling back to VMMR_URL / VMMR_TOKEN). */
  static from(opts: ClientOptions, io: CliIo): ApiClient {
    const env = io.env ?? process.env;
    const url = opts.url ?? (env.VMMR_URL || undefined) ?? DEFAULT_URL;
    const token = opts.token ?? (env.VMMR_TOKEN || undefined);
    return new ApiClient(url, token);
  }

  /** The base URL as the user would write it, for messages. */
  get url(): string {
    return this.baseUrl.href.replace(/\/$/, '');
  }

  urlFor(path: string, query: Query = {}): URL {
    const base = this.baseUrl.pathname.replace(/\/+$/, '');
    const url = new URL(`${base}${path}`, this.baseUrl);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  private async send(
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    query: Query,
    body: unknown,
    accept: string,
    signal?: AbortSignal,
    stream = false,
  ): Promise<Dispatcher.ResponseData> {
    const url = this.urlFor(path, query);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method,
        dispatcher: this.agent,
        headers: this.headers({
          accept,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        }),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
        ...(stream ? { bodyTimeout: 0 } : {}),
      });
    } catch (err) {
      const code = errorCode(err);
      if (code) throw new ConnectionError(this.url, CONNECT_ERRORS[code]!, code);
      throw err;
    }
    if (res.statusCode >= 400) throw await this.refusal(method, url, res);
    return res;
  }

  private async refusal(method: string, url: URL, res: Dispatcher.ResponseData): Promise<ApiError> {
    const text = await res.body.text().catch(() => '');
    let problem: Problem = {};
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed && typeof parsed === 'object') problem = parsed as Problem;
    } catch {
      // not JSON: described below
    }
    const status = res.statusCode;
    if (typeof problem.detail === 'string' || typeof problem.code === 'string') {
      const detail = problem.detail ?? problem.title ?? `HTTP ${status}`;
      const hint = status === 401 ? ': pass --token or set VMMR_TOKEN' : '';
      return new ApiError(status, problem, `${detail}${hint}${problem.code ? ` (${problem.code})` : ''}`);
    }
    const what = `${method} ${url.pathname}${url.search}`;
    if (status === 401 || status === 403) {
      return new ApiError(
        status,
        problem,
        `${what}: HTTP ${status}, not authorized: pass --token or set VMMR_TOKEN`,
      );
    }
    if (status === 404) {
      return new ApiError(
        status,
        problem,
        `${what}: HTTP 404: ${this.url} has no such route (is it a vmmr service of this version?)`,
      );
    }
    const message = (problem as { message?: unknown }).message;
    const reason = typeof message === 'string' ? message : text.split('\n')[0]?.slice(0, 200) || 'no details';
    return new ApiError(status, problem, `${what}: HTTP ${status}: ${reason}`);
  }

  async get<T>(path: string, query: Query = {}): Promise<T> {
    const res = await this.send('GET', path, query, undefined, 'application/json');
    return (await res.body.json()) as T;
  }

  async put<T>(path: string, body: unknown, query: Query = {}): Promise<T> {
    const res = await this.send('PUT', path, query, body, 'application/json');
    const text = await res.body.text();
    return (text === '' ? {} : JSON.parse(text)) as T;
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    const res = await this.send('POST', path, {}, body, 'application/json');
    return (await res.body.json()) as T;
  }

  async delete(path: string): Promise<void> {
    const res = await this.send('DELETE', path, {}, undefined, 'application/json');
    await res.body.dump();
  }

  async getText(path: string, query: Query = {}, accept = 'text/plain'): Promise<string> {
    const res = await this.send('GET', path, query, undefined, `${accept}, application/problem+json;q=0.9`);
    return res.body.text();
  }

  /** Opens a streaming GET (server-sent events); the body is read by the caller. */
  async stream(path: string, query: Query, signal: AbortSignal): Promise<Dispatcher.ResponseData['body']> {
    const res = await this.send('GET', path, query, undefined, 'text/event-stream', signal, true);
    return res.body;
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => undefined);
  }
}

/** Runs `fn` with a client for the command's options and closes it afterwards. */
export async function withClient<T>(
  opts: ClientOptions,
  io: CliIo,
  fn: (client: ApiClient) => Promise<T>,
): Promise<T> {
  const client = ApiClient.from(opts, io);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Path of a function's resource (the BDF is a validated, normalised address: no escaping needed). */
export function functionPath(bdf: string, ...rest: string[]): string {
  return [`${API_PREFIX}/functions/${bdf}`, ...rest].join('/');
}

export function pfPath(bdf: string, ...rest: string[]): string {
  return [`${API_PREFIX}/pfs/${bdf}`, ...rest].join('/');
}
