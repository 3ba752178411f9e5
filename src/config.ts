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

export interface Config {
  /** Address or hostname to listen on (IPv6 literals without brackets). */
  host: string;
  /** TCP port, 0 = pick a free port. */
  port: number;
  logLevel: LogLevel;
  /** Topology file; undefined = the embedded default topology. */
  topologyPath?: string;
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

/**
 * Reads HOST, PORT, LOG_LEVEL and VMMR_TOPOLOGY from `env`; `overrides`
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
  return config;
}
