/**
 * bench/results.svg, drawn from results.json (hand-written SVG, no dependency).
 *
 * Panel 1: accesses/s against batch size, from the `chart` of the section with id "batch"
 * when one is present (one line per series, log-log); otherwise horizontal bars of the
 * in-process section's ops/s (log scale).
 * Panel 2: bytes per VF against VF count, from the `chart` of the section with id "scale".
 */
import type { Chart, Results, Section } from './results.js';

const WIDTH = 1000;
const PANEL_H = 400;
const GAP = 30;
const MARGIN = { left: 90, right: 200, top: 50, bottom: 60 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  const abs = Math.abs(v);
  if (abs >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (abs >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

interface Axis {
  min: number;
  max: number;
  log: boolean;
  ticks: number[];
}

function logAxis(values: readonly number[]): Axis {
  const positive = values.filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.min(...positive)));
  const hi = Math.ceil(Math.log10(Math.max(...positive)));
  const top = hi === lo ? hi + 1 : hi;
  const ticks: number[] = [];
  for (let e = lo; e <= top; e++) ticks.push(10 ** e);
  return { min: 10 ** lo, max: 10 ** top, log: true, ticks };
}

function linearAxis(values: readonly number[], includeZero = true): Axis {
  let lo = includeZero ? Math.min(0, ...values) : Math.min(...values);
  let hi = Math.max(...values);
  if (hi === lo) hi = lo + 1;
  const rough = (hi - lo) / 6;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= rough) ?? 10 * mag;
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let t = lo; t <= hi + step / 2; t += step) ticks.push(+t.toPrecision(12));
  return { min: lo, max: hi, log: false, ticks };
}

function scale(axis: Axis, from: number, to: number): (v: number) => number {
  if (axis.log) {
    const a = Math.log10(axis.min);
    const b = Math.log10(axis.max);
    return (v) => from + ((Math.log10(Math.max(v, axis.min)) - a) / (b - a)) * (to - from);
  }
  return (v) => from + ((v - axis.min) / (axis.max - axis.min)) * (to - from);
}

interface Frame {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

function frameAt(top: number): Frame {
  return {
    x0: MARGIN.left,
    x1: WIDTH - MARGIN.right,
    y0: top + PANEL_H - MARGIN.bottom,
    y1: top + MARGIN.top,
  };
}

function title(top: number, text: string, subtitle?: string): string {
  const parts = [
    `<text x="${MARGIN.left}" y="${top + 24}" font-size="17" font-weight="bold" ${FONT}>${esc(text)}</text>`,
  ];
  if (subtitle)
    parts.push(
      `<text x="${MARGIN.left}" y="${top + 42}" font-size="12" fill="#555" ${FONT}>${esc(subtitle)}</text>`,
    );
  return parts.join('\n');
}

function lineChart(top: number, heading: string, chart: Chart, subtitle?: string): string {
  const f = frameAt(top);
  const xs = chart.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = [
    ...chart.series.flatMap((s) => s.points.map((p) => p.y)),
    ...(chart.marks ?? []).map((m) => m.y),
  ];
  if (xs.length === 0) return title(top, heading, 'no data');
  const xAxis = chart.xLog ? logAxis(xs) : linearAxis(xs, false);
  const yAxis = chart.yLog ? logAxis(ys) : linearAxis(ys);
  const sx = scale(xAxis, f.x0, f.x1);
  const sy = scale(yAxis, f.y0, f.y1);
  const out: string[] = [title(top, heading, subtitle)];
  out.push(...grid(f, xAxis, yAxis, sx, sy, chart.xLabel, chart.yLabel));
  for (const mark of chart.marks ?? []) {
    const y = sy(mark.y);
    out.push(`<line x1="${f.x0}" x2="${f.x1}" y1="${y}" y2="${y}" stroke="#888" stroke-dasharray="6 4"/>`);
    out.push(
      `<text x="${f.x1 - 4}" y="${y - 5}" font-size="11" fill="#555" text-anchor="end" ${FONT}>${esc(mark.label)}</text>`,
    );
  }
  // Series of one group share a colour (a series without a group is its own group).
  const groups: string[] = [];
  for (const s of chart.series) if (!groups.includes(s.group ?? s.name)) groups.push(s.group ?? s.name);
  chart.series.forEach((s, i) => {
    const color = COLORS[groups.indexOf(s.group ?? s.name) % COLORS.length]!;
    const dashed = s.dashed ? ' stroke-dasharray="5 3"' : '';
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2.2"${dashed} points="${pts.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}"/>`,
    );
    for (const p of pts) {
      out.push(
        `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3.5" fill="${color}"><title>${esc(`${s.name}: ${fmt(p.x)} → ${fmt(p.y)}`)}</title></circle>`,
      );
    }
    const ly = f.y1 + 10 + i * 20;
    out.push(
      `<line x1="${f.x1 + 20}" x2="${f.x1 + 45}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.5"${dashed}/>`,
    );
    out.push(`<text x="${f.x1 + 52}" y="${ly + 4}" font-size="12" ${FONT}>${esc(s.name)}</text>`);
  });
  return out.join('\n');
}

function grid(
  f: Frame,
  xAxis: Axis | undefined,
  yAxis: Axis,
  sx: ((v: number) => number) | undefined,
  sy: (v: number) => number,
  xLabel: string,
  yLabel: string,
): string[] {
  const out: string[] = [];
  for (const t of yAxis.ticks) {
    const y = sy(t);
    out.push(`<line x1="${f.x0}" x2="${f.x1}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${f.x0 - 8}" y="${y + 4}" font-size="11" text-anchor="end" ${FONT}>${fmt(t)}</text>`);
  }
  if (xAxis && sx) {
    for (const t of xAxis.ticks) {
      const x = sx(t);
      out.push(`<line x1="${x}" x2="${x}" y1="${f.y0}" y2="${f.y1}" stroke="#e3e3e3"/>`);
      out.push(
        `<text x="${x}" y="${f.y0 + 18}" font-size="11" text-anchor="middle" ${FONT}>${fmt(t)}</text>`,
      );
    }
  }
  out.push(
    `<rect x="${f.x0}" y="${f.y1}" width="${f.x1 - f.x0}" height="${f.y0 - f.y1}" fill="none" stroke="#333"/>`,
  );
  out.push(
    `<text x="${(f.x0 + f.x1) / 2}" y="${f.y0 + 42}" font-size="13" text-anchor="middle" ${FONT}>${esc(xLabel)}</text>`,
  );
  const my = (f.y0 + f.y1) / 2;
  out.push(
    `<text x="${f.x0 - 62}" y="${my}" font-size="13" text-anchor="middle" transform="rotate(-90 ${f.x0 - 62} ${my})" ${FONT}>${esc(yLabel)}</text>`,
  );
  return out;
}

/** Horizontal bars, log scale, labels inside the plot. */
function barChart(
  top: number,
  heading: string,
  bars: Array<{ label: string; value: number }>,
  xLabel: string,
  subtitle?: string,
): string {
  if (bars.length === 0) return title(top, heading, 'no data');
  const f = frameAt(top);
  const axis = logAxis(bars.map((b) => b.value));
  const sx = scale(axis, f.x0, f.x1);
  const out: string[] = [title(top, heading, subtitle)];
  for (const t of axis.ticks) {
    const x = sx(t);
    out.push(`<line x1="${x}" x2="${x}" y1="${f.y0}" y2="${f.y1}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${x}" y="${f.y0 + 18}" font-size="11" text-anchor="middle" ${FONT}>${fmt(t)}</text>`);
  }
  const slot = (f.y0 - f.y1) / bars.length;
  bars.forEach((b, i) => {
    const y = f.y1 + i * slot + slot * 0.15;
    const h = slot * 0.7;
    const w = Math.max(1, sx(b.value) - f.x0);
    const lines = [b.label, `${fmt(b.value)} ops/s · ${fmt(1e9 / b.value)} ns each`];
    // Inside the bar in white when it fits, else after its end in black.
    const textWidth = Math.max(...lines.map((l) => l.length)) * 7 + 16;
    const inside = textWidth < w;
    const tx = inside ? f.x0 + 8 : f.x0 + w + 8;
    const fill = inside ? '#fff' : '#222';
    out.push(
      `<rect x="${f.x0}" y="${y}" width="${w}" height="${h}" fill="${COLORS[i % COLORS.length]}" opacity="0.85"/>`,
    );
    out.push(
      `<text x="${tx}" y="${y + h / 2 - 2}" font-size="12" fill="${fill}" font-weight="bold" ${FONT}>${esc(lines[0]!)}</text>`,
    );
    out.push(
      `<text x="${tx}" y="${y + h / 2 + 13}" font-size="12" fill="${fill}" ${FONT}>${esc(lines[1]!)}</text>`,
    );
  });
  out.push(
    `<rect x="${f.x0}" y="${f.y1}" width="${f.x1 - f.x0}" height="${f.y0 - f.y1}" fill="none" stroke="#333"/>`,
  );
  out.push(
    `<text x="${(f.x0 + f.x1) / 2}" y="${f.y0 + 42}" font-size="13" text-anchor="middle" ${FONT}>${esc(xLabel)}</text>`,
  );
  return out.join('\n');
}

function section(results: Results, id: string): Section | undefined {
  return results.sections.find((s) => s.id === id);
}

function panelAccesses(results: Results, top: number): string {
  const batch = section(results, 'batch');
  if (batch?.chart && batch.chart.series.length > 0) {
    return lineChart(top, batch.title, { xLog: true, yLog: true, ...batch.chart }, batch.baseline);
  }
  const inProcess = section(results, 'in-process');
  const bars = (inProcess?.rows ?? [])
    .filter((r) => typeof r['ops/s'] === 'number')
    .map((r) => ({ label: String(r.case), value: r['ops/s'] as number }));
  const overhead = inProcess?.targets?.[0];
  return barChart(
    top,
    'Register accesses per second, in process',
    bars,
    'accesses per second (log scale)',
    overhead ? `translator overhead ${overhead.value.toFixed(2)} (goal ${overhead.goal})` : undefined,
  );
}

function panelBytes(results: Results, top: number): string {
  const scaleSection = section(results, 'scale');
  if (!scaleSection?.chart) return title(top, 'Bytes per VF', 'no scale section in results.json');
  return lineChart(
    top,
    'Memory per VF against VF count',
    scaleSection.chart,
    'delta from before VF Enable ÷ N, after a full GC; RSS moves in pages, so at 1,000 VFs it is mostly noise',
  );
}

export function renderSvg(results: Results): string {
  const height = 2 * PANEL_H + GAP + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    panelAccesses(results, 0),
    panelBytes(results, PANEL_H + GAP),
    `<text x="${MARGIN.left}" y="${height - 10}" font-size="11" fill="#777" ${FONT}>${esc(`vmmr bench · ${results.date} · node ${results.node} · ${results.cpus} × ${results.cpuModel}`)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
