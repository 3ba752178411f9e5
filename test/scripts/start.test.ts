/**
 * `npm start` (scripts/start.mjs) starts dist/ at once and compiles only when a source is newer
 * than the build. Run in a scratch tree whose `tsc` and `dist/src/cli.js` are stand-ins that
 * report what was called, so the checkout's own dist/ is never touched.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const ROOT = new URL('../..', import.meta.url).pathname;
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
};

/** The stand-in entry point prints the arguments `vmmr` was started with. */
const ENTRY = 'console.log(JSON.stringify(process.argv.slice(2)));\n';
/** The stand-in compiler writes the entry point, or fails when the tree says so. */
const TSC = `
const { existsSync, mkdirSync, writeFileSync } = require('node:fs');
if (existsSync('fail-build')) { console.error('error TS1005'); process.exit(2); }
mkdirSync('dist/src', { recursive: true });
writeFileSync('dist/src/cli.js', ${JSON.stringify(ENTRY)});
writeFileSync('built', process.argv.slice(2).join(' '));
`;

let tree: string;
const at = (path: string) => join(tree, path);
function write(path: string, text: string, mtimeSeconds?: number): void {
  mkdirSync(dirname(at(path)), { recursive: true });
  writeFileSync(at(path), text);
  if (mtimeSeconds !== undefined) utimesSync(at(path), mtimeSeconds, mtimeSeconds);
}

beforeEach(() => {
  tree = mkdtempSync(join(tmpdir(), 'vmmr-start-'));
  mkdirSync(at('scripts'));
  copyFileSync(join(ROOT, 'scripts', 'start.mjs'), at('scripts/start.mjs'));
  write('node_modules/typescript/bin/tsc', TSC);
  write('package.json', '{"type":"commonjs"}');
  write('tsconfig.json', '{}', 1000);
  write('tsconfig.build.json', '{}', 1000);
  write('spec-tables/a.json', '{}', 1000);
  write('bench/run.ts', '', 1000);
  write('src/cli.ts', '', 1000);
});
afterEach(() => rmSync(tree, { recursive: true, force: true }));

function start(...args: string[]) {
  return spawnSync(process.execPath, [at('scripts/start.mjs'), ...args], { cwd: tree, encoding: 'utf8' });
}

describe('npm start', () => {
  it('is scripts/start.mjs, and npm ci builds dist/ (prepare)', () => {
    expect(PACKAGE.scripts.start).toBe('node scripts/start.mjs');
    expect(PACKAGE.scripts.prepare).toBe('npm run build');
  });

  it('starts `vmmr serve` without compiling when dist/ is newer than every source', () => {
    write('dist/src/cli.js', ENTRY, 2000);
    const r = start('--port', '0');
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual(['serve', '--port', '0']);
    expect(existsSync(at('built'))).toBe(false);
  });

  it.each(['src/cli.ts', 'spec-tables/a.json', 'bench/run.ts', 'tsconfig.build.json'])(
    'compiles first when %s is newer than dist/',
    (source) => {
      write('dist/src/cli.js', ENTRY, 2000);
      utimesSync(at(source), 3000, 3000);
      const r = start();
      expect(r.stderr).toContain('sources are newer than dist/, building');
      expect(readFileSync(at('built'), 'utf8')).toBe('-p tsconfig.build.json');
      expect(JSON.parse(r.stdout)).toEqual(['serve']);
    },
  );

  it('compiles first when there is no dist/', () => {
    const r = start();
    expect(existsSync(at('built'))).toBe(true);
    expect(JSON.parse(r.stdout)).toEqual(['serve']);
  });

  it('stops with the compiler exit code when the build fails, without starting', () => {
    write('fail-build', '');
    const r = start();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('error TS1005');
    expect(r.stdout).toBe('');
  });
});
