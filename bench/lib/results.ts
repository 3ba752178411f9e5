/**
 * The shape of bench/results.json and the printed tables.
 *
 * A section is one group of measurements: `rows` are printed as a table (column order = key
 * order of the first row), `targets` say which goals were met, `chart` holds series the SVG
 * draws (see chart.ts for which section ids it looks for).
 */
import { cpus } from 'node:os';
import { writeFileSync } from 'node:fs';

export type Cell = string | number | boolean | null;
export type Row = Record<string, Cell>;

export interface Target {
  /** What is measured, e.g. "translator overhead (direct ÷ translated)". */
  name: string;
  /** The goal in words, e.g. "<= 1.5". */
  goal: string;
  value: number;
  met: boolean;
}

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  name: string;
  points: Point[];
  /** Series of the same group are drawn in the same colour. */
  group?: string;
  dashed?: boolean;
}

export interface Chart {
  xLabel: string;
  yLabel: string;
  xLog?: boolean;
  yLog?: boolean;
  series: Series[];
  /** Horizontal reference lines (targets). */
  marks?: Array<{ label: string; y: number }>;
}

export interface Section {
  id: string;
  title: string;
  /** The in-run baseline the ratios of this section are taken against. */
  baseline?: string;
  rows: Row[];
  targets?: Target[];
  chart?: Chart;
  notes?: string[];
  /** The measurements behind the rows, in whatever shape suits the section. */
  raw?: unknown;
  /** Seconds the section took to measure. */
  seconds?: number;
}

export interface Results {
  node: string;
  cpus: number;
  cpuModel: string;
  date: string;
  sections: Section[];
}

export function environment(): Omit<Results, 'sections'> {
  const list = cpus();
  return {
    node: process.version,
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    date: new Date().toISOString(),
  };
}

/** Numbers with sensible precision: 3 significant digits below 1000, grouped thousands above. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs === 0) return '0';
  if (Number.isInteger(value)) return String(value);
  return value.toPrecision(3);
}

function formatCell(cell: Cell): string {
  if (cell === null) return '-';
  if (typeof cell === 'number') return formatNumber(cell);
  if (typeof cell === 'boolean') return cell ? 'yes' : 'no';
  return cell;
}

/** An aligned text table: text columns left-aligned, numeric columns right-aligned. */
export function formatTable(rows: readonly Row[]): string {
  if (rows.length === 0) return '(no rows)';
  const columns: string[] = [];
  for (const row of rows) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  const numeric = columns.map((c) =>
    rows.every((r) => r[c] === undefined || r[c] === null || typeof r[c] === 'number'),
  );
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c] ?? null)));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

export function formatSection(section: Section): string {
  const out = [`== ${section.title} ==`];
  if (section.baseline) out.push(`baseline: ${section.baseline}`);
  out.push(formatTable(section.rows));
  if (section.targets?.length) {
    out.push('');
    out.push(
      formatTable(
        section.targets.map((t) => ({
          target: t.name,
          goal: t.goal,
          measured: t.value,
          met: t.met ? 'yes' : 'NO',
        })),
      ),
    );
  }
  for (const note of section.notes ?? []) out.push(`note: ${note}`);
  return out.join('\n');
}

export function writeResults(path: string, results: Results): void {
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
}
