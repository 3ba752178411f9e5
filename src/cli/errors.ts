/**
 * How the CLI reports failures: one line on stderr, "vmmr: <message>", and an
 * exit code: 2 for bad input (configuration, topology, usage), 1 otherwise.
 */
import { ConfigError } from '../config.js';
import { TopologyError } from '../topology.js';

/** Bad command-line usage detected by a command itself (exit code 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function exitCodeFor(err: unknown): number {
  if (err instanceof ConfigError || err instanceof TopologyError || err instanceof UsageError) {
    return EXIT_USAGE;
  }
  return EXIT_FAILURE;
}

/** The error's message squeezed onto one line, without a stack trace. */
export function oneLineMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s*\n\s*/g, ' ').trim() || (err instanceof Error ? err.name : 'error');
}
