/**
 * `npm run bench`: runs every section, prints its table, writes bench/results.json and draws
 * bench/results.svg from it.
 *
 *   node dist/bench/run.js                 all sections
 *   node dist/bench/run.js --only scale    some sections (comma-separated ids)
 *   node dist/bench/run.js --chart         redraw results.svg from the existing results.json
 *   node dist/bench/run.js --only rest,batch --profile DIR
 *                                          the HTTP sections with their servers under --cpu-prof
 *
 * Sections that need a clean heap or their own process run as child processes; the HTTP
 * sections (rest, batch) also start their servers as child processes of their own.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderSvg } from './lib/chart.js';
import { sinkChecksum } from './lib/measure.js';
import { environment, formatSection, writeResults, type Results, type Section } from './lib/results.js';
import { runAdmin } from './admin.js';
import { runDatapath } from './datapath.js';
import { runInProcess } from './in-process.js';

const BENCH_DIR = fileURLToPath(new URL('../../bench/', import.meta.url));
const RESULTS_JSON = `${BENCH_DIR}results.json`;
const RESULTS_SVG = `${BENCH_DIR}results.svg`;

/** Runs a compiled bench script in a child process and takes the section it prints as JSON. */
function childSection(script: string, nodeFlags: readonly string[], args: readonly string[] = []): Section {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const child = spawnSync(process.execPath, [...nodeFlags, path, '--json', ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 << 20,
  });
  if (child.status !== 0) throw new Error(`${script} exited with ${child.status}`);
  const line = child.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Section;
}

interface SectionRunner {
  id: string;
  /** `http`: arguments for the HTTP sections (--profile DIR). */
  run(http: readonly string[]): Section | Promise<Section>;
}

const SECTIONS: readonly SectionRunner[] = [
  { id: 'in-process', run: () => runInProcess() },
  { id: 'datapath', run: () => runDatapath() },
  { id: 'admin', run: () => runAdmin() },
  { id: 'rest', run: (http) => childSection('./rest.js', [], http) },
  { id: 'batch', run: (http) => childSection('./batch.js', [], http) },
  { id: 'scale', run: () => childSection('./scale.js', ['--expose-gc']) },
  { id: 'vfio-user', run: () => childSection('./vfio-user.js', []) },
  { id: 'qtest', run: () => childSection('./qtest.js', []) },
  { id: 'ui', run: () => childSection('./ui.js', []) },
];

function drawChart(results: Results): void {
  writeFileSync(RESULTS_SVG, renderSvg(results));
  process.stdout.write(`chart: ${RESULTS_SVG}\n`);
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes('--chart')) {
    drawChart(JSON.parse(readFileSync(RESULTS_JSON, 'utf8')) as Results);
    return;
  }
  const onlyAt = argv.indexOf('--only');
  const only = onlyAt >= 0 ? new Set((argv[onlyAt + 1] ?? '').split(',')) : undefined;
  const profileAt = argv.indexOf('--profile');
  const http = profileAt >= 0 ? ['--profile', resolve(argv[profileAt + 1] ?? '.')] : [];
  const started = performance.now();
  const env = environment();
  process.stdout.write(`vmmr bench: node ${env.node}, ${env.cpus} × ${env.cpuModel}\n\n`);
  const sections: Section[] = [];
  for (const runner of SECTIONS) {
    if (only && !only.has(runner.id)) continue;
    const section = await runner.run(http);
    sections.push(section);
    process.stdout.write(`${formatSection(section)}\n(${(section.seconds ?? 0).toFixed(1)} s)\n\n`);
  }
  const results: Results = { ...env, sections };
  writeResults(RESULTS_JSON, results);
  process.stdout.write(`results: ${RESULTS_JSON}\n`);
  drawChart(results);
  process.stdout.write(
    `total ${((performance.now() - started) / 1000).toFixed(1)} s (checksum ${sinkChecksum()})\n`,
  );
  const missed = sections.flatMap((s) =>
    (s.targets ?? []).filter((t) => !t.met).map((t) => `${s.id}: ${t.name}`),
  );
  if (missed.length > 0) process.stdout.write(`targets not met:\n  ${missed.join('\n  ')}\n`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
