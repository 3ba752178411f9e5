/**
 * Service configuration, read from environment variables (and optionally
 * overridden by command-line options).
 *
 * Every bad value raises a ConfigError whose message is a single line naming
 * the variable (or option), the offending value and what is allowed.
 */
import { isIP } from 'node:net';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

/** Largest request body in bytes (enough for a batch of 65,536 operations). */
export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;
/** Most operations in one POST /api/v1/access batch. */
export const DEFAULT_MAX_BATCH = 65536;
/** Most events queued for one event-stream subscriber before it is dropped. */
export const DEFAULT_SSE_QUEUE = 65536;

/** Most event-stream subscribers at once; one more gets 429. */
export const DEFAULT_MAX_SUBSCRIBERS = 1024;
/** Deepest translator trace ring a client may ask for (entries). */
export const DEFAULT_MAX_TRACE_DEPTH = 1 << 20;
/** Longest time to receive a whole request, headers and body (ms); slower clients get 408. */
export const DEFAULT_REQUEST_TIMEOUT = 30_000;

const MIN_BODY_LIMIT = 1024;
const MAX_BODY_LIMIT = 1024 * 1024 * 1024;
const MAX_MAX_BATCH = 1 << 20;
const MAX_MAX_VFS = 1 << 24;
const MAX_SSE_QUEUE = 1 << 20;
const MAX_MAX_SUBSCRIBERS = 1 << 20;
const MAX_MAX_TRACE_DEPTH = 1 << 24;
const MIN_REQUEST_TIMEOUT = 100;
const MAX_REQUEST_TIMEOUT = 3_600_000;

export interface Config {
  /** Address or hostname to listen on (IPv6 literals without brackets). */
  host: string;
  /** TCP port, 0 = pick a free port. */
  port: number;
  logLevel: LogLevel;
  /** Topology file; undefined = the embedded default topology. */
  topologyPath?: string;
  /** VMMR_TOKEN: bearer token every /api route requires; undefined = no authentication. */
  token?: string;
  /** VMMR_BODY_LIMIT in bytes; undefined = DEFAULT_BODY_LIMIT. */
  bodyLimit?: number;
  /** VMMR_MAX_BATCH; undefined = DEFAULT_MAX_BATCH. */
  maxBatch?: number;
  /** VMMR_MAX_VFS: most VFs enabled at once; undefined = the Machine's default (65536). */
  maxVfs?: number;
  /** VMMR_DMA_LIMIT in bytes: DMA memory and RAM disks of all functions together; undefined = 1 GiB. */
  dmaLimit?: number;
  /** VMMR_SSE_QUEUE; undefined = DEFAULT_SSE_QUEUE. */
  sseQueue?: number;
  /** VMMR_MAX_SUBSCRIBERS; undefined = DEFAULT_MAX_SUBSCRIBERS. */
  maxSubscribers?: number;
  /** VMMR_MAX_TRACE_DEPTH; undefined = DEFAULT_MAX_TRACE_DEPTH. */
  maxTraceDepth?: number;
  /** VMMR_REQUEST_TIMEOUT in ms; undefined = DEFAULT_REQUEST_TIMEOUT. */
  requestTimeout?: number;
  /** VMMR_STATE_FILE: where the machine state is kept across restarts; undefined = not kept. */
  stateFile?: string;
  /** VMMR_QTEST_SOCKET: Unix socket of the qtest protocol (docs/qtest.md); undefined = none. */
  qtestSocket?: string;
  /** VMMR_QTEST_PORT: TCP port of the qtest protocol on HOST (0 = a free one); undefined = none. */
  qtestPort?: number;
}

/** The limits of a configuration with the defaults filled in. */
export interface Limits {
  bodyLimit: number;
  maxBatch: number;
  sseQueue: number;
  maxSubscribers: number;
  maxTraceDepth: number;
  requestTimeout: number;
}

export function limitsOf(config: Config): Limits {
  return {
    bodyLimit: config.bodyLimit ?? DEFAULT_BODY_LIMIT,
    maxBatch: config.maxBatch ?? DEFAULT_MAX_BATCH,
    sseQueue: config.sseQueue ?? DEFAULT_SSE_QUEUE,
    maxSubscribers: config.maxSubscribers ?? DEFAULT_MAX_SUBSCRIBERS,
    maxTraceDepth: config.maxTraceDepth ?? DEFAULT_MAX_TRACE_DEPTH,
    requestTimeout: config.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT,
  };
}

/** Values that take precedence over the environment, e.g. from CLI options. */
export interface ConfigOverrides {
  host?: string;
  port?: string;
  logLevel?: string;
  topologyPath?: string;
}

export class ConfigError extends Error {
  /** The variable or option that holds the bad value, e.g. "PORT" or "--port". */
  readonly setting: string;
  readonly value: string;

  constructor(setting: string, value: string, problem: string) {
    super(`${setting}=${quote(value)} ${problem}`);
    this.name = 'ConfigError';
    this.setting = setting;
    this.value = value;
  }
}

/** JSON-quotes a value so that control characters and newlines cannot break the one-line message. */
function quote(value: string): string {
  const max = 80;
  const shown = value.length > max ? `${value.slice(0, max)}...` : value;
  return JSON.stringify(shown);
}

const HOSTNAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** True for an IPv4/IPv6 literal or an RFC 1123 hostname. */
export function isValidHost(value: string): boolean {
  if (isIP(value) !== 0) return true;
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (!labels.every((label) => HOSTNAME_LABEL.test(label))) return false;
  // "300.1.1.1" or "1.2.3" look like (bad) addresses, not names: the last label must not be numeric.
  return !/^[0-9]+$/.test(labels[labels.length - 1] ?? '');
}

export function parseHost(value: string, setting = 'HOST'): string {
  // Accept a bracketed IPv6 literal ("[::1]") and store it bare, as listen() wants it.
  const bare = /^\[(.*)\]$/.exec(value)?.[1];
  if (bare !== undefined && isIP(bare) === 6) return bare;
  if (!isValidHost(value)) {
    throw new ConfigError(
      setting,
      value,
      'is not a valid host: expected an IPv4 or IPv6 address or a hostname',
    );
  }
  return value;
}

export function parsePort(value: string, setting = 'PORT'): number {
  if (/^[0-9]{1,5}$/.test(value)) {
    const port = Number(value);
    if (port <= 65535) return port;
  }
  throw new ConfigError(setting, value, 'is not a valid port: expected an integer 0..65535');
}

export function parseLogLevel(value: string, setting = 'LOG_LEVEL'): LogLevel {
  const lower = value.toLowerCase();
  const level = LOG_LEVELS.find((l) => l === lower);
  if (level === undefined) {
    throw new ConfigError(
      setting,
      value,
      `is not a valid log level: expected one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  return level;
}

export function parseTopologyPath(value: string, setting = 'VMMR_TOPOLOGY'): string {
  if (value.trim() === '') {
    throw new ConfigError(
      setting,
      value,
      'is not a valid path: expected the path of a topology JSON file (leave it unset for the embedded default)',
    );
  }
  return value;
}

/** RFC 6750 b64token: what may follow "Bearer " in an Authorization header. */
const TOKEN_RE = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * VMMR_TOKEN. The value never appears in the error message: a mistyped secret must not end up
 * in a terminal scrollback or a CI log.
 */
export function parseToken(value: string, setting = 'VMMR_TOKEN'): string {
  if (!TOKEN_RE.test(value)) {
    const what = value === '' ? 'empty' : `${value.length} characters`;
    throw new ConfigError(
      setting,
      '(hidden)',
      `is not a valid bearer token (${what}): expected letters, digits and - . _ ~ + / (optionally ending in =), or leave it unset to disable authentication`,
    );
  }
  return value;
}

function parseIntegerSetting(value: string, setting: string, min: number, max: number, what: string): number {
  if (/^[0-9]{1,10}$/.test(value)) {
    const n = Number(value);
    if (n >= min && n <= max) return n;
  }
  throw new ConfigError(setting, value, `is not a valid ${what}: expected an integer ${min}..${max}`);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
};

/** VMMR_BODY_LIMIT: bytes, optionally with a binary unit ("64MiB", "512k"). */
export function parseBodyLimit(value: string, setting = 'VMMR_BODY_LIMIT'): number {
  const m = /^([0-9]{1,10})\s*([A-Za-z]*)$/.exec(value);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (m && unit !== undefined) {
    const bytes = Number(m[1]) * unit;
    if (bytes >= MIN_BODY_LIMIT && bytes <= MAX_BODY_LIMIT) return bytes;
  }
  throw new ConfigError(
    setting,
    value,
    'is not a valid body limit: expected a size 1KiB..1GiB in bytes, optionally with a unit KiB, MiB or GiB (e.g. 64MiB)',
  );
}

export function parseMaxBatch(value: string, setting = 'VMMR_MAX_BATCH'): number {
  return parseIntegerSetting(value, setting, 1, MAX_MAX_BATCH, 'batch size limit');
}

/** VMMR_DMA_LIMIT: bytes, with an optional unit KiB, MiB or GiB, 0..1 TiB. */
export function parseDmaLimit(value: string, setting = 'VMMR_DMA_LIMIT'): number {
  const m = /^([0-9]+)(KiB|MiB|GiB)?$/.exec(value.trim());
  const unit = m?.[2] === 'KiB' ? 2 ** 10 : m?.[2] === 'MiB' ? 2 ** 20 : m?.[2] === 'GiB' ? 2 ** 30 : 1;
  const bytes = m ? Number(m[1]) * unit : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes > 2 ** 40)
    throw new ConfigError(
      setting,
      value,
      'is not a valid DMA limit: expected bytes 0..1TiB, optionally with a unit KiB, MiB or GiB (e.g. 512MiB)',
    );
  return bytes;
}

export function parseMaxVfs(value: string, setting = 'VMMR_MAX_VFS'): number {
  return parseIntegerSetting(value, setting, 0, MAX_MAX_VFS, 'VF limit');
}

export function parseSseQueue(value: string, setting = 'VMMR_SSE_QUEUE'): number {
  return parseIntegerSetting(value, setting, 1, MAX_SSE_QUEUE, 'event queue length');
}

export function parseMaxSubscribers(value: string, setting = 'VMMR_MAX_SUBSCRIBERS'): number {
  return parseIntegerSetting(value, setting, 1, MAX_MAX_SUBSCRIBERS, 'event subscriber limit');
}

export function parseMaxTraceDepth(value: string, setting = 'VMMR_MAX_TRACE_DEPTH'): number {
  return parseIntegerSetting(value, setting, 1, MAX_MAX_TRACE_DEPTH, 'trace depth limit');
}

export function parseRequestTimeout(value: string, setting = 'VMMR_REQUEST_TIMEOUT'): number {
  return parseIntegerSetting(
    value,
    setting,
    MIN_REQUEST_TIMEOUT,
    MAX_REQUEST_TIMEOUT,
    'request timeout in milliseconds',
  );
}

export function parseStateFile(value: string, setting = 'VMMR_STATE_FILE'): string {
  if (value.trim() === '' || value.endsWith('/')) {
    throw new ConfigError(
      setting,
      value,
      'is not a valid path: expected the path of a state file (leave it unset not to keep state across restarts)',
    );
  }
  return value;
}

/** Longest Unix socket path: sun_path holds 108 bytes with the terminating NUL (unix(7)). */
const MAX_SOCKET_PATH = 107;

export function parseQtestSocket(value: string, setting = 'VMMR_QTEST_SOCKET'): string {
  if (value.trim() === '' || value.endsWith('/')) {
    throw new ConfigError(
      setting,
      value,
      'is not a valid path: expected the path of a Unix socket (leave it unset for none)',
    );
  }
  if (Buffer.byteLength(value) > MAX_SOCKET_PATH) {
    throw new ConfigError(
      setting,
      value,
      `is too long for a Unix socket path: at most ${MAX_SOCKET_PATH} bytes`,
    );
  }
  return value;
}

export function parseQtestPort(value: string, setting = 'VMMR_QTEST_PORT'): number {
  return parsePort(value, setting);
}

/**
 * Reads HOST, PORT, LOG_LEVEL, VMMR_TOPOLOGY and the VMMR_* limits from `env`; `overrides`
 * (command-line options) win over the environment and are named by their
 * option name in errors.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: ConfigOverrides = {}): Config {
  const pick = (
    override: string | undefined,
    option: string,
    variable: string,
  ): { value: string; setting: string } | undefined => {
    if (override !== undefined) return { value: override, setting: option };
    const value = env[variable];
    return value === undefined ? undefined : { value, setting: variable };
  };

  const host = pick(overrides.host, '--host', 'HOST');
  const port = pick(overrides.port, '--port', 'PORT');
  const logLevel = pick(overrides.logLevel, '--log-level', 'LOG_LEVEL');
  const topology = pick(overrides.topologyPath, '--topology', 'VMMR_TOPOLOGY');

  const config: Config = {
    host: host ? parseHost(host.value, host.setting) : DEFAULT_HOST,
    port: port ? parsePort(port.value, port.setting) : DEFAULT_PORT,
    logLevel: logLevel ? parseLogLevel(logLevel.value, logLevel.setting) : DEFAULT_LOG_LEVEL,
  };
  if (topology) config.topologyPath = parseTopologyPath(topology.value, topology.setting);
  // Settings without a command-line option: present only when set, so that a Config stays
  // minimal and limitsOf() supplies the defaults.
  const token = env.VMMR_TOKEN;
  if (token !== undefined) config.token = parseToken(token);
  const bodyLimit = env.VMMR_BODY_LIMIT;
  if (bodyLimit !== undefined) config.bodyLimit = parseBodyLimit(bodyLimit);
  const maxBatch = env.VMMR_MAX_BATCH;
  if (maxBatch !== undefined) config.maxBatch = parseMaxBatch(maxBatch);
  const maxVfs = env.VMMR_MAX_VFS;
  if (maxVfs !== undefined) config.maxVfs = parseMaxVfs(maxVfs);
  const dmaLimit = env.VMMR_DMA_LIMIT;
  if (dmaLimit !== undefined) config.dmaLimit = parseDmaLimit(dmaLimit);
  const sseQueue = env.VMMR_SSE_QUEUE;
  if (sseQueue !== undefined) config.sseQueue = parseSseQueue(sseQueue);
  const maxSubscribers = env.VMMR_MAX_SUBSCRIBERS;
  if (maxSubscribers !== undefined) config.maxSubscribers = parseMaxSubscribers(maxSubscribers);
  const maxTraceDepth = env.VMMR_MAX_TRACE_DEPTH;
  if (maxTraceDepth !== undefined) config.maxTraceDepth = parseMaxTraceDepth(maxTraceDepth);
  const requestTimeout = env.VMMR_REQUEST_TIMEOUT;
  if (requestTimeout !== undefined) config.requestTimeout = parseRequestTimeout(requestTimeout);
  const stateFile = env.VMMR_STATE_FILE;
  if (stateFile !== undefined) config.stateFile = parseStateFile(stateFile);
  const qtestSocket = env.VMMR_QTEST_SOCKET;
  if (qtestSocket !== undefined) config.qtestSocket = parseQtestSocket(qtestSocket);
  const qtestPort = env.VMMR_QTEST_PORT;
  if (qtestPort !== undefined) config.qtestPort = parseQtestPort(qtestPort);
  return config;
}
