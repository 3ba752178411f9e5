/**
 * How the CLI reports failures: one line on stderr, "vmmr: <message>", and an
 * exit code: 2 for bad input (configuration, topology, usage), 1 otherwise.
 */

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

/**
 * Errors caused by what the user gave us. Matched by name rather than with
 * instanceof so that this module does not load the config/topology modules
 * (and their validators) for commands that do not need them.
 */
const USAGE_ERRORS = new Set(['ConfigError', 'TopologyError', 'UsageError', 'StateFileError']);

export function exitCodeFor(err: unknown): number {
  return err instanceof Error && USAGE_ERRORS.has(err.name) ? EXIT_USAGE : EXIT_FAILURE;
}

/** The error's message squeezed onto one line, without a stack trace. */
export function oneLineMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s*\n\s*/g, ' ').trim() || (err instanceof Error ? err.name : 'error');
}
