import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { migrateStateV1, stateProblem, STATE_FORMAT, STATE_VERSION, type MachineState } from './state.js';

/**
 * The state file (VMMR_STATE_FILE): a MachineState (src/machine/state.ts) as JSON, written atomically — temp file in
 * the same directory, fsync, rename over the old file, fsync the directory — so a crash or
 * `kill -9` at any moment leaves either the previous complete file or the new one.
 *
 * Every failure is a StateFileError whose one-line message names the file; the CLI turns it
 * into exit code 2 at startup, like a bad setting.
 */

/** A message on one short line: JSON.parse quotes the offending text, newlines and all. */
function oneLine(text: string): string {
  const flat = text.replace(/\s*\n\s*/g, ' ');
  return flat.length > 160 ? `${flat.slice(0, 160)}...` : flat;
}

export class StateFileError extends Error {
  override readonly name = 'StateFileError';
  constructor(
    readonly file: string,
    why: string,
  ) {
    super(`state file ${file}: ${why}`);
  }
}

/** Writes `state` to `file` atomically; returns the file's size in bytes. */
export function saveStateFile(file: string, state: MachineState): number {
  const dir = dirname(file);
  const temp = join(dir, `.${basename(file)}.${process.pid}.tmp`);
  try {
    const text = `${JSON.stringify(state)}\n`;
    const fd = openSync(temp, 'w', 0o600);
    try {
      // writeFileSync on a descriptor loops until every byte is written (writeSync may stop short).
      writeFileSync(fd, text);
      fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      unlinkSync(temp);
      throw e;
    }
    closeSync(fd);
    renameSync(temp, file);
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    return Buffer.byteLength(text);
  } catch (e) {
    throw new StateFileError(file, `cannot be written (${oneLine((e as Error).message)})`);
  }
}

/** What holds the machine the state file restores into (the server's Emulator). */
export interface StateHolder {
  restore(state: MachineState): unknown;
}

export interface StartupState {
  /** True when a saved state was restored; false when there was no file (fresh start). */
  restored: boolean;
  /** Functions whose state the file held. */
  functions: number;
  /** Temporary files of interrupted saves that were removed. */
  staleTemporaryFiles: number;
}

/**
 * Startup with a state file: a missing file is a fresh start from the topology; a file that
 * cannot be read, parsed, validated or restored is a StateFileError (never a silent fresh start).
 */
export function restoreStateFile(file: string, holder: StateHolder): StartupState {
  const staleTemporaryFiles = removeStaleTemporaryFiles(file);
  const state = loadStateFile(file);
  if (!state) return { restored: false, functions: 0, staleTemporaryFiles };
  try {
    holder.restore(state);
  } catch (e) {
    throw new StateFileError(file, `cannot be restored: ${oneLine((e as Error).message)}`);
  }
  return { restored: true, functions: state.functions.length, staleTemporaryFiles };
}

/**
 * Removes the temporary files that saves of `file` left behind when their process died mid-save
 * (`kill -9`, power loss): `.<name>.<pid>.tmp` whose pid is no longer running. Returns how many.
 */
export function removeStaleTemporaryFiles(file: string): number {
  const dir = dirname(file);
  const prefix = `.${basename(file)}.`;
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(prefix.length, -'.tmp'.length));
    if (!Number.isSafeInteger(pid) || pid <= 0 || (pid !== process.pid && isRunning(pid))) continue;
    try {
      unlinkSync(join(dir, name));
      removed++;
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The saved state, or undefined when there is no file yet; anything else unusable is an error. */
export function loadStateFile(file: string): MachineState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateFileError(file, `cannot be read (${oneLine((e as Error).message)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new StateFileError(
      file,
      `is not valid JSON (${oneLine((e as Error).message)}); refusing to start from scratch`,
    );
  }
  let migrated: MachineState | undefined;
  try {
    migrated = migrateStateV1(json);
  } catch (e) {
    throw new StateFileError(file, `is corrupt: ${oneLine((e as Error).message)}`);
  }
  if (migrated) return migrated;
  const problem = stateProblem(json);
  if (problem !== undefined) {
    const found = json as { format?: unknown; version?: unknown };
    const what =
      found && typeof found === 'object' && (found.format !== STATE_FORMAT || found.version !== STATE_VERSION)
        ? `is not a ${STATE_FORMAT} version ${STATE_VERSION} file (format ${JSON.stringify(found.format)}, version ${JSON.stringify(found.version)})`
        : `is corrupt: ${problem}`;
    throw new StateFileError(file, what);
  }
  return json as MachineState;
}
