/**
 * `npm test` starts with scripts/check-prerequisites.mjs: on a machine without pciutils it stops
 * before the type check with one line naming the missing tools and the install command.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../..', import.meta.url).pathname;
const SCRIPT = join(ROOT, 'scripts', 'check-prerequisites.mjs');

function which(tool: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || path === '') throw new Error(`${tool} is needed to run this test and is not on PATH`);
  return path;
}

const dirs: string[] = [];
/** A directory holding only the named tools, to be the whole PATH of a child. */
function pathWith(tools: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-path-'));
  dirs.push(dir);
  for (const tool of tools) symlinkSync(which(tool), join(dir, tool));
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function check(tools: string[]) {
  return spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8', env: { PATH: pathWith(tools) } });
}

describe('check-prerequisites', () => {
  it('passes silently when lspci and setpci are on PATH', () => {
    const r = check(['lspci', 'setpci']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('names both tools and the apt command when neither is there', () => {
    const r = check([]);
    expect(r.status).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'vmmr: the tests need `lspci` and `setpci` from pciutils, not found on PATH: install them with `sudo apt-get install -y pciutils` (Debian/Ubuntu)',
    ]);
  });

  it('names only the missing one', () => {
    const r = check(['lspci']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('need `setpci` from pciutils');
    expect(r.stderr).not.toContain('`lspci`');
  });

  it('is the first step of npm test: nothing else runs without pciutils', () => {
    const path = pathWith(['npm', 'sh']);
    symlinkSync(process.execPath, join(path, 'node'));
    const r = spawnSync('npm', ['test'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { PATH: path, HOME: tmpdir() },
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('vmmr: the tests need `lspci` and `setpci` from pciutils');
    expect(r.stdout).not.toContain('tsc -p tsconfig.json');
  });
});
