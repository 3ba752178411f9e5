import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, type Copy, type Instruction } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const dockerfile = DockerfileParser.parse(text);

interface Stage {
  from: Instruction;
  name: string | undefined;
  image: string;
  instructions: Instruction[];
}

/** Splits the instructions into build stages, one per FROM. */
function stages(): Stage[] {
  const out: Stage[] = [];
  for (const ins of dockerfile.getInstructions()) {
    if (ins.getKeyword() === 'FROM') {
      const args = ins.getArguments().map((a) => a.getValue());
      const asIndex = args.findIndex((a) => a.toUpperCase() === 'AS');
      const image = args.find((a) => !a.startsWith('--')) ?? '';
      out.push({ from: ins, name: asIndex >= 0 ? args[asIndex + 1] : undefined, image, instructions: [] });
    } else {
      out[out.length - 1]?.instructions.push(ins);
    }
  }
  return out;
}

const all = stages();
const final = all[all.length - 1] as Stage;
const finalOf = (keyword: string): Instruction[] =>
  final.instructions.filter((i) => i.getKeyword() === keyword);
const argsOf = (ins: Instruction): string[] => ins.getArguments().map((a) => a.getValue());
/** Exec-form (JSON array) arguments, or the shell-form words. */
function execArgs(ins: Instruction): string[] {
  const raw = (ins.getArgumentsContent() ?? '').trim();
  const json = raw.replace(/^--\S+\s+/g, '');
  if (json.startsWith('[')) return JSON.parse(json) as string[];
  return argsOf(ins);
}

const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

describe('Dockerfile', () => {
  it('parses without unknown instructions', () => {
    const known = new Set([
      'FROM',
      'RUN',
      'COPY',
      'ENV',
      'WORKDIR',
      'USER',
      'EXPOSE',
      'HEALTHCHECK',
      'ENTRYPOINT',
      'CMD',
      'ARG',
      'LABEL',
      'VOLUME',
    ]);
    for (const ins of dockerfile.getInstructions()) expect(known).toContain(ins.getKeyword());
  });

  it('is multi-stage (at least two FROM)', () => {
    expect(all.length).toBeGreaterThanOrEqual(2);
  });

  it('builds and runs on one supported Node.js LTS major (even, >= 22) of bookworm-slim', () => {
    const majors = all.map((stage) => {
      const m = /^node:(\d+)(?:\.\d+)*-bookworm-slim(?:@sha256:[0-9a-f]{64})?$/.exec(stage.image);
      expect(m, `FROM ${stage.image}`).not.toBeNull();
      return Number(m?.[1]);
    });
    expect(new Set(majors).size).toBe(1);
    const major = majors[0] as number;
    expect(major % 2, 'LTS lines are the even majors').toBe(0);
    expect(major).toBeGreaterThanOrEqual(22);
  });

  it('is the Node.js major the suite runs on in CI', () => {
    const major = Number(/^node:(\d+)/.exec((all[0] as Stage).image)?.[1]);
    if (process.env['CI'] === 'true') {
      expect(Number(process.versions.node.split('.')[0])).toBe(major);
    }
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    const floor = /^>=(\d+)/.exec(pkg.engines.node);
    expect(floor, `engines.node ${pkg.engines.node}`).not.toBeNull();
    expect(Number(floor?.[1])).toBeLessThanOrEqual(major);
    expect(Number(floor?.[1])).toBeGreaterThanOrEqual(22);
  });

  it('builds with npm ci and npm run build in the build stage', () => {
    const build = all[0] as Stage;
    const runs = build.instructions
      .filter((i) => i.getKeyword() === 'RUN')
      .map((i) => i.getArgumentsContent() ?? '');
    expect(runs.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    expect(runs.some((r) => /\bnpm run build\b/.test(r))).toBe(true);
  });

  it('builds the dashboard: ui/ is in place before npm run build (which builds dist/ui)', () => {
    const build = all[0] as Stage;
    const uiCopy = build.instructions.findIndex(
      (i) => i.getKeyword() === 'COPY' && argsOf(i)[0]?.replace(/^\.\//, '') === 'ui',
    );
    const npmBuild = build.instructions.findIndex(
      (i) => i.getKeyword() === 'RUN' && /\bnpm run build(?![:\w])/.test(i.getArgumentsContent() ?? ''),
    );
    expect(uiCopy).toBeGreaterThanOrEqual(0);
    expect(uiCopy).toBeLessThan(npmBuild);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['build']).toMatch(/\bnpm run build:ui\b/);
    expect(pkg.scripts['build:ui']).toMatch(/\bvite build\b/);
  });

  it('installs only production dependencies in the runtime stage', () => {
    const runs = finalOf('RUN').map((i) => i.getArgumentsContent() ?? '');
    expect(runs.some((r) => /\bnpm ci\b[^&;|]*--omit=dev/.test(r))).toBe(true);
    expect(runs.some((r) => /\bnpm (ci|install)\b(?![^&;|]*--omit=dev)/.test(r))).toBe(false);
  });

  it('copies into the runtime image only what the service reads', () => {
    const copies = finalOf('COPY').map((c) => ({
      from: (c as Copy).getFromFlag()?.getValue() ?? undefined,
      args: argsOf(c),
    }));
    expect(copies).toEqual([
      { from: undefined, args: ['package.json', 'package-lock.json', './'] },
      { from: 'build', args: ['/app/dist/src', './dist/src'] },
      { from: 'build', args: ['/app/dist/spec-tables', './dist/spec-tables'] },
      { from: 'build', args: ['/app/dist/ui', './dist/ui'] },
      {
        from: 'build',
        args: [
          '/app/src/vfio-user/native/build/Release/vmmr_vfio_user.node',
          './src/vfio-user/native/build/Release/',
        ],
      },
    ]);
    // The spec tables reach the runtime as JSON modules of dist/ (src/spec/index.ts imports
    // them), never as files read from the source tree.
    const spec = readFileSync(join(ROOT, 'src', 'spec', 'index.ts'), 'utf8');
    expect(spec).toMatch(/from '\.\.\/\.\.\/spec-tables\/[a-z0-9-]+\.json' with \{ type: 'json' \}/);
    const runs = (all[0] as Stage).instructions
      .filter((i) => i.getKeyword() === 'RUN')
      .map((i) => i.getArgumentsContent() ?? '');
    expect(
      runs.some((r) => r.includes("-name '*.map' -delete") && r.includes("-name '*.d.ts' -delete")),
    ).toBe(true);
  });

  it('has a state directory owned by node, declared as a VOLUME', () => {
    const volumes = finalOf('VOLUME').map(execArgs);
    expect(volumes).toEqual([['/var/lib/vmmr']]);
    const runs = finalOf('RUN').map((i) => i.getArgumentsContent() ?? '');
    expect(runs.some((r) => /mkdir -p \/var\/lib\/vmmr\b.*chown node:node \/var\/lib\/vmmr\b/s.test(r))).toBe(
      true,
    );
    const ordered = final.instructions.map((i) => i.getKeyword());
    expect(ordered.indexOf('VOLUME')).toBeLessThan(ordered.lastIndexOf('USER'));
    const docs = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
    expect(docs).toContain('-v vmmr-state:/var/lib/vmmr');
    expect(docs).toContain('-e VMMR_STATE_FILE=/var/lib/vmmr/state.json');
  });

  it('runs as a non-root user in the final stage', () => {
    const users = finalOf('USER');
    expect(users.length).toBeGreaterThan(0);
    const user = argsOf(users[users.length - 1] as Instruction)[0] ?? '';
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    // USER must come before CMD/ENTRYPOINT take effect, i.e. the process runs as that user.
    expect(user).toBe('node');
  });

  it('uses tini as init (installed and set as ENTRYPOINT)', () => {
    const runs = finalOf('RUN').map((i) => i.getArgumentsContent() ?? '');
    expect(runs.some((r) => /apt-get install\b.*\btini\b/s.test(r))).toBe(true);
    const entrypoints = finalOf('ENTRYPOINT');
    expect(entrypoints).toHaveLength(1);
    const ep = execArgs(entrypoints[0] as Instruction);
    expect(ep[0]).toMatch(/(^|\/)tini$/);
    expect(ep.slice(1)).toEqual(['--']);
  });

  it('sets HOST=0.0.0.0, PORT=8080 and NODE_ENV=production', () => {
    const env = new Map<string, string>();
    for (const ins of final.instructions) {
      if (ins.getKeyword() !== 'ENV') continue;
      for (const p of (
        ins as unknown as { getProperties(): Array<{ getName(): string; getValue(): string | null }> }
      ).getProperties()) {
        env.set(p.getName(), p.getValue() ?? '');
      }
    }
    expect(env.get('HOST')).toBe('0.0.0.0');
    expect(env.get('PORT')).toBe('8080');
    expect(env.get('NODE_ENV')).toBe('production');
  });

  it('exposes 8080', () => {
    const ports = finalOf('EXPOSE').flatMap(argsOf);
    expect(ports.map((p) => p.replace(/\/tcp$/, ''))).toContain('8080');
  });

  it('has a HEALTHCHECK in the final stage that fetches /healthz with node (no curl)', () => {
    const checks = finalOf('HEALTHCHECK');
    expect(checks).toHaveLength(1);
    const content = checks[0]?.getArgumentsContent() ?? '';
    expect(content).toMatch(/\bCMD\b/);
    expect(content).toContain('/healthz');
    expect(content).toContain('127.0.0.1');
    expect(content).toMatch(/\bnode\b/);
    expect(content).toMatch(/\bfetch\(/);
    expect(content).not.toMatch(/\b(curl|wget)\b/);
    // The probe script itself must be valid JavaScript.
    const json = content.slice(content.indexOf('['));
    const argv = JSON.parse(json) as string[];
    expect(argv.slice(0, 2)).toEqual(['node', '-e']);
    expect(() => new Function(argv[2] ?? '')).not.toThrow();
  });

  it('starts the service with node dist/src/cli.js serve, built from src/cli.ts', () => {
    const cmds = finalOf('CMD');
    expect(cmds).toHaveLength(1);
    expect(execArgs(cmds[0] as Instruction)).toEqual(['node', 'dist/src/cli.js', 'serve']);
    expect(existsSync(join(ROOT, 'src', 'cli.ts'))).toBe(true);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin.vmmr).toBe('dist/src/cli.js');
  });

  it('copies only paths that exist in the repo (or come from an earlier stage) and are not dockerignored', () => {
    const stageNames = new Set<string>();
    for (const stage of all) {
      for (const copy of stage.instructions.filter(
        (i) => i.getKeyword() === 'COPY' || i.getKeyword() === 'ADD',
      )) {
        const content = copy.getArgumentsContent() ?? '';
        const from = (copy as Copy).getFromFlag()?.getValue() ?? undefined;
        const paths = argsOf(copy).filter((a) => !a.startsWith('--'));
        const sources = paths.slice(0, -1);
        expect(sources.length, content).toBeGreaterThan(0);
        if (from !== undefined) {
          expect(stageNames.has(from), `COPY --from=${from} names an earlier stage`).toBe(true);
          continue;
        }
        for (const src of sources) {
          expect(existsSync(join(ROOT, src)), `COPY source ${src} exists`).toBe(true);
          const top = src.replace(/^\.\//, '').split('/')[0] ?? '';
          expect(dockerignore, `COPY source ${src} is not dockerignored`).not.toContain(top);
        }
      }
      if (stage.name) stageNames.add(stage.name);
    }
  });
});

describe('.dockerignore', () => {
  it.each(['node_modules', 'dist', '.git', 'coverage', 'test-results.json', 'bench/results*'])(
    'lists %s',
    (entry) => {
      expect(dockerignore).toContain(entry);
    },
  );
});
