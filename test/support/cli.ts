/** Runs the CLI in process with captured output, and the pciutils that read its dumps. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { runCli } from '../../src/cli/index.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Called with each stdout chunk as it is written. */
  onStdout?: (text: string) => void;
}

/** `vmmr ARGS...` in process; `env` replaces process.env for VMMR_URL / VMMR_TOKEN. */
export async function vmmr(args: string[], options: RunOptions = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['node', 'vmmr', ...args], {
    stdout: (t) => {
      stdout += t;
      options.onStdout?.(t);
    },
    stderr: (t) => {
      stderr += t;
    },
    env: options.env ?? {},
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { code: code ?? 0, stdout, stderr };
}

/** Scratch directory of the test file that imports this module, removed after its tests. */
export const TMP = mkdtempSync(join(tmpdir(), 'vmmr-cli-test-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

let counter = 0;
/** Writes text to a fresh file under TMP and returns its path. */
export function tmpFile(text: string, name = 'dump'): string {
  const path = join(TMP, `${name}-${process.pid}-${++counter}.txt`);
  writeFileSync(path, text);
  return path;
}

function pciutil(tool: 'lspci' | 'setpci', args: string[]): string {
  const r = spawnSync(tool, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** `lspci -F FILE ARGS...` */
export function lspci(file: string, ...args: string[]): string {
  return pciutil('lspci', ['-F', file, ...args]);
}

/**
 * setpci reading a dump file: setpci has no -F option, its equivalent is libpci's dump access
 * method, `setpci -A dump -O dump.name=FILE -s BDF OPS...`.
 */
export function setpci(file: string, bdf: string, ...ops: string[]): string {
  return pciutil('setpci', ['-A', 'dump', '-O', `dump.name=${file}`, '-s', bdf, ...ops]);
}
