/**
 * The `vmmr` command line: builds the commander program and runs it.
 *
 * Each command lives in its own module under src/cli/ and exports a
 * register<Name>Command(program) function listed in COMMANDS.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { EXIT_USAGE, exitCodeFor, oneLineMessage } from './errors.js';
import { registerServeCommand } from './serve.js';

export type RegisterCommand = (program: Command) => void;

/** Commands in help order. */
export const COMMANDS: readonly RegisterCommand[] = [registerServeCommand];

/** The version of the nearest package.json named "vmmr" above this module. */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'vmmr' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: keep walking up
    }
    const parent = dirname(dir);
    if (parent === dir) return '0.0.0';
    dir = parent;
  }
}

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

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
  for (const register of COMMANDS) register(program);
  return program;
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
    io.stderr(`vmmr: ${oneLineMessage(err)}\n`);
    return exitCodeFor(err);
  }
}
