/**
 * The shell examples of the README and docs/, as data a test can run.
 *
 * A fenced `sh` block is marked by the HTML comment on the line before it (blank lines between
 * are allowed):
 *
 * - `<!-- example: NAME -->`: run. Every block of one file marked with the same NAME is one
 *   session, run in document order against one fresh service; a `text` block marked NAME is the
 *   output of the session's event stream (below).
 * - `<!-- not-run: REASON -->`: not run (installing, Docker), with the reason in the source.
 *
 * Inside a block, a command is a line (continued by a trailing `\` or an open single quote); the
 * `#` lines right after it are its expected output. In a block written with `$ ` prompts, the
 * lines after a prompt line are its output. A command without expected output must exit 0.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DocCommand {
  /** The command as a shell reads it (continuation lines included). */
  text: string;
  /** Expected output lines (without the `# ` prefix); empty when none is shown. */
  expected: string[];
  /** Line number of the command in the file (1-based). */
  line: number;
}

export interface DocBlock {
  file: string;
  line: number;
  lang: string;
  marker: { kind: 'example'; session: string } | { kind: 'not-run'; reason: string } | undefined;
  body: string[];
}

const FENCE = /^(\s*)```(\w*)\s*$/;
const MARKER = /^<!--\s*(example|not-run):\s*(.*?)\s*-->$/;

/** Every fenced block of a Markdown file, with the marker before it. */
export function fencedBlocks(root: string, file: string): DocBlock[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open || open[2] === undefined) continue;
    const indent = open[1]!.length;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]!); i++) body.push(lines[i]!.slice(indent));
    let before = start - 1;
    while (before >= 0 && lines[before]!.trim() === '') before--;
    const m = before >= 0 ? MARKER.exec(lines[before]!.trim()) : null;
    const marker =
      m === null
        ? undefined
        : m[1] === 'example'
          ? { kind: 'example' as const, session: m[2]! }
          : { kind: 'not-run' as const, reason: m[2]! };
    blocks.push({ file, line: start + 1, lang: open[2], marker, body });
  }
  return blocks;
}

/**
 * True while the command so far leaves a quote open or ends in a backslash. A `#` that starts
 * a word outside quotes begins a comment (its apostrophes do not count).
 */
function continues(text: string): boolean {
  let quote: string | undefined;
  let comment = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (comment) comment = c !== '\n';
    else if (quote !== undefined) quote = c === quote ? undefined : quote;
    else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) comment = true;
  }
  return quote !== undefined || (!comment && text.endsWith('\\'));
}

/** The commands of a `sh` block and the output each expects. */
export function commandsOf(block: DocBlock): DocCommand[] {
  const prompted = block.body.some((l) => l.startsWith('$ '));
  const commands: DocCommand[] = [];
  for (let i = 0; i < block.body.length; i++) {
    const raw = block.body[i]!;
    if (raw.trim() === '' || (!prompted && raw.startsWith('#'))) continue;
    if (prompted && !raw.startsWith('$ '))
      throw new Error(`${block.file}:${block.line + i + 1}: output without a command`);
    let text = prompted ? raw.slice(2) : raw;
    const line = block.line + i + 1;
    while (continues(text) && i + 1 < block.body.length) text += '\n' + block.body[++i];
    const expected: string[] = [];
    while (i + 1 < block.body.length) {
      const next = block.body[i + 1]!;
      if (prompted ? next.startsWith('$ ') : !next.startsWith('#')) break;
      expected.push(prompted ? next : next.replace(/^# ?/, ''));
      i++;
    }
    commands.push({ text, expected, line });
  }
  return commands;
}

/** A command that follows a stream until stopped (`curl -N`, `vmmr events`). */
export function isStream(command: string): boolean {
  return /^curl -N\b/.test(command) || /^vmmr events\b/.test(command);
}

/**
 * Expected and actual output agree: as JSON documents when the expected lines are one (the
 * lines joined, so a long document may wrap), where a `time` member only has to be a number;
 * otherwise line by line, trailing blanks ignored.
 */
export function sameOutput(expected: string[], actual: string): boolean {
  const json = parseJson(expected.map((l) => l.trim()).join(' '));
  if (json !== undefined) return sameJson(json, parseJson(actual.trim()));
  const want = expected.map((l) => l.trimEnd());
  const got = actual.split('\n').map((l) => l.trimEnd());
  while (want.at(-1) === '') want.pop();
  while (got.at(-1) === '') got.pop();
  return want.length === got.length && want.every((l, i) => l === got[i]);
}

function parseJson(text: string): unknown {
  if (!/^[[{]/.test(text)) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function sameJson(want: unknown, got: unknown, key = ''): boolean {
  if (key === 'time') return typeof want === 'number' && typeof got === 'number';
  if (Array.isArray(want))
    return Array.isArray(got) && want.length === got.length && want.every((w, i) => sameJson(w, got[i]));
  if (want !== null && typeof want === 'object') {
    if (got === null || typeof got !== 'object' || Array.isArray(got)) return false;
    const w = want as Record<string, unknown>;
    const g = got as Record<string, unknown>;
    const keys = Object.keys(w);
    return keys.length === Object.keys(g).length && keys.every((k) => sameJson(w[k], g[k], k));
  }
  return want === got;
}
