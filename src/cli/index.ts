/**
 * The `vmmr` command line: builds the commander program and runs it.
 *
 * Each command lives in its own module under src/cli/ and exports a
 * register<Name>Command(program) function listed in COMMANDS.
 */
export { packageVersion } from '../server/version.js';
import { packageVersion } from '../server/version.js';
import { Command, CommanderError } from 'commander';
import { registerAttachCommand } from './attach.js';
import { registerBarCommand } from './bar.js';
import { registerCfgCommand } from './cfg.js';
import { processIo, type CliIo } from './context.js';
import { registerDumpCommand } from './dump.js';
import { EXIT_USAGE, UsageError, exitCodeFor, oneLineMessage } from './errors.js';
import { registerEventsCommand } from './events.js';
import { registerIoCommand } from './io.js';
import { registerLsCommand } from './ls.js';
import { registerServeCommand } from './serve.js';
import { registerSriovCommand } from './sriov.js';

export type { CliIo } from './context.js';

export type RegisterCommand = (program: Command, io: CliIo) => void;

/** Commands in help order. */
export const COMMANDS: readonly RegisterCommand[] = [
  registerServeCommand,
  registerLsCommand,
  registerSriovCommand,
  registerCfgCommand,
  registerBarCommand,
  registerIoCommand,
  registerDumpCommand,
  registerEventsCommand,
  registerAttachCommand,
];

export function buildProgram(io: CliIo = processIo): Command {
  const program = new Command('vmmr')
    .description('Emulator of virtio transitional MMR devices, served over REST')
    .version(packageVersion(), '-V, --version')
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr(text),
      outputError: (text, write) => write(`vmmr: ${text.replace(/^error: /, '')}`),
    })
    .exitOverride();
  for (const register of COMMANDS) register(program, io);
  return program;
}

/** " (VMMR_ERR_...)" for a refusal of the in-process core (offline dump), as the service reports it. */
function codeSuffix(err: unknown): string {
  if (!(err instanceof Error) || err.name !== 'VmmrError') return '';
  const code = (err as Error & { code?: unknown }).code;
  return typeof code === 'string' && !err.message.includes(code) ? ` (${code})` : '';
}

/** The client options a user may give before the command (`vmmr --url X ls`): takes a value? */
const LEADING_OPTIONS = new Map([
  ['--url', true],
  ['--token', true],
  ['--json', false],
]);

/**
 * The arguments with client options given before the command moved after it (each command
 * defines them); a first word that names no command is refused, not taken for `serve`'s.
 */
export function normalizeArgs(args: readonly string[], commands: readonly string[]): string[] {
  const leading: string[] = [];
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    const takesValue = LEADING_OPTIONS.get(arg.split('=', 1)[0]!);
    if (takesValue === undefined) break;
    leading.push(arg);
    if (takesValue && !arg.includes('=') && i + 1 < args.length) leading.push(args[++i]!);
  }
  const command = args[i];
  if (command === undefined || command.startsWith('-')) return [...args];
  if (!commands.includes(command) && command !== 'help')
    throw new UsageError(`unknown command '${command}': one of ${commands.join(', ')} (vmmr --help)`);
  return [command, ...leading, ...args.slice(i + 1)];
}

/** One line on stderr: the JSON document `--json` asks for, or "vmmr: <message>". */
function reportError(io: CliIo, err: unknown, json: boolean, code: number): void {
  const message = `${oneLineMessage(err)}${codeSuffix(err)}`;
  if (!json) {
    io.stderr(`vmmr: ${message}\n`);
    return;
  }
  const e = err as { code?: unknown; status?: unknown };
  const error = {
    message: oneLineMessage(err),
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.status === 'number' ? { status: e.status } : {}),
    exitCode: code,
  };
  io.stderr(`${JSON.stringify({ error })}\n`);
}

/**
 * Runs the CLI and resolves to an exit code once the command has finished
 * (or, for `serve`, once the server is listening). Errors are printed as one
 * line, "vmmr: <message>".
 */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number | undefined> {
  const program = buildProgram(io);
  const json = argv.slice(2).includes('--json');
  try {
    const names = program.commands.map((c) => c.name());
    await program.parseAsync([...argv.slice(0, 2), ...normalizeArgs(argv.slice(2), names)]);
    return undefined;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its message (help and --version exit 0).
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const code = exitCodeFor(err);
    reportError(io, err, json, code);
    return code;
  }
}
