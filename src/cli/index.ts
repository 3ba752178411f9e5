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
import { EXIT_USAGE, exitCodeFor, oneLineMessage } from './errors.js';
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

/**
 * Runs the CLI and resolves to an exit code once the command has finished
 * (or, for `serve`, once the server is listening). Errors are printed as one
 * line, "vmmr: <message>".
 */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number | undefined> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return undefined;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its message (help and --version exit 0).
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    io.stderr(`vmmr: ${oneLineMessage(err)}${codeSuffix(err)}\n`);
    return exitCodeFor(err);
  }
}
