/**
 * Runnable JavaScript of the sources for child processes (the CLI, the state saver), without
 * touching `npm run build`'s dist/: every .ts file of src/ and of test/support/robustness/ is
 * transpiled on its own (types stripped, no type checking — npm run typecheck covers that) into
 * node_modules/.cache, next to copies of the JSON files they import. Packages resolve from the
 * repository's node_modules. The transform is vite's (the one vitest runs the tests with, a few
 * milliseconds per file); TypeScript's transpileModule is the fallback.
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

type Transform = (code: string, file: string) => Promise<string>;

async function transformer(): Promise<Transform> {
  try {
    const vite = (await import('vite')) as {
      transformWithOxc?: (code: string, file: string, options: object) => Promise<{ code: string }>;
    };
    const oxc = vite.transformWithOxc;
    if (oxc) return async (code, file) => (await oxc(code, file, { lang: 'ts', sourcemap: false })).code;
  } catch {
    // no vite: use TypeScript
  }
  return async (code, file) =>
    ts.transpileModule(code, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
    }).outputText;
}

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Built {
  dir: string;
  /** The compiled CLI entry point (what dist/src/cli.js is after npm run build). */
  cli: string;
  /** Compiled path of a source file given relative to the repository root. */
  out(relativePath: string): string;
  remove(): void;
}

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

export async function buildForChildren(name: string): Promise<Built> {
  const transform = await transformer();
  const dir = join(ROOT, 'node_modules', '.cache', `vmmr-${name}-${process.pid}`);
  const outDir = join(dir, 'out');
  rmSync(dir, { recursive: true, force: true });
  for (const source of [join(ROOT, 'src'), join(ROOT, 'test', 'support', 'robustness')]) {
    for (const path of files(source)) {
      const target = join(outDir, relative(ROOT, path));
      mkdirSync(dirname(target), { recursive: true });
      if (path.endsWith('.ts') && !path.endsWith('.d.ts')) {
        writeFileSync(target.replace(/\.ts$/, '.js'), await transform(readFileSync(path, 'utf8'), path));
      } else if (path.endsWith('.json')) {
        cpSync(path, target);
      }
    }
  }
  cpSync(join(ROOT, 'spec-tables'), join(outDir, 'spec-tables'), { recursive: true });
  writeFileSync(join(outDir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  const out = (relativePath: string): string => join(outDir, relativePath.replace(/\.ts$/, '.js'));
  return { dir, cli: out('src/cli.ts'), out, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
