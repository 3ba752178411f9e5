#!/usr/bin/env node
// `npm start`: run `vmmr serve` from dist/ at once. The TypeScript is compiled on install (the
// `prepare` script) and here only when a source is newer than the build, so an edited checkout
// still starts what it holds. Arguments after `npm start --` go to `vmmr serve`.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = join(ROOT, 'dist', 'src', 'cli.js');
/** What `tsc -p tsconfig.build.json` reads. */
const SOURCES = ['src', 'bench', 'spec-tables', 'tsconfig.json', 'tsconfig.build.json'];
const COMPILED = /\.(ts|json)$/;

/** The newest modification time (ms) of the compiled inputs under `path`. */
function newestSource(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return COMPILED.test(path) ? stat.mtimeMs : 0;
  let newest = 0;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestSource(join(path, entry)));
  return newest;
}

function needsBuild() {
  if (!existsSync(ENTRY)) return true;
  const built = statSync(ENTRY).mtimeMs;
  return SOURCES.some((source) => newestSource(join(ROOT, source)) > built);
}

if (needsBuild()) {
  console.error('vmmr: sources are newer than dist/, building (npm run build)');
  const build = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  if (build.status !== 0) process.exit(build.status ?? 1);
}

process.argv = [process.argv[0], ENTRY, 'serve', ...process.argv.slice(2)];
await import(pathToFileURL(ENTRY).href);
