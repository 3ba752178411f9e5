/**
 * Summarises a V8 CPU profile (.cpuprofile, as `node --cpu-prof` writes it): the functions with
 * the most samples of their own ("self") and with the most samples under them ("total"), as a
 * share of all samples, idle included.
 *
 *   node dist/bench/rest.js --profile /tmp/prof      (or batch.js --profile /tmp/prof --sizes 4096)
 *   node dist/bench/profile.js /tmp/prof/vmmr-*.cpuprofile [--top 30]
 */
import { readFileSync } from 'node:fs';
import { formatTable, type Row } from './lib/results.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url.split('/').slice(-2).join('/');
  return `${functionName || '(anonymous)'} ${file}${file ? `:${lineNumber + 1}` : ''}`;
}

export function summarise(profile: Profile, top: number): { self: Row[]; total: Row[]; samples: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map<number, number>();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  for (const [id, count] of hits) {
    const name = label(byId.get(id)!);
    self.set(name, (self.get(name) ?? 0) + count);
    // Each function counts once per sample, however deep it recurses.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = label(byId.get(at)!);
      if (seen.has(frame)) continue;
      seen.add(frame);
      total.set(frame, (total.get(frame) ?? 0) + count);
    }
  }
  const samples = profile.samples.length;
  const rows = (m: Map<string, number>): Row[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, n]) => ({ '%': (100 * n) / samples, function: fn }));
  return { self: rows(self), total: rows(total), samples };
}

function main(argv: readonly string[]): void {
  const topAt = argv.indexOf('--top');
  const top = topAt >= 0 ? Number(argv[topAt + 1]) : 30;
  const files = argv.filter((a, i) => !a.startsWith('--') && (topAt < 0 || i !== topAt + 1));
  if (files.length === 0) throw new Error('usage: profile.js FILE.cpuprofile... [--top N]');
  for (const file of files) {
    const { self, total, samples } = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile, top);
    process.stdout.write(
      `${file}: ${samples} samples\n\nself\n${formatTable(self)}\n\ntotal\n${formatTable(total)}\n\n`,
    );
  }
}

main(process.argv.slice(2));
