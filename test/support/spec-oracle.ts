/**
 * Cross-check of the spec tables against the Linux UAPI headers.
 *
 * Every `linux` reference of every table becomes one check: a C expression (macro, offsetof,
 * sizeof, function-like macro applied to a sample) and the value the table says it must have.
 * All checks go into one C program that prints `name value` per check; it is compiled once with
 * gcc and run. A reference to something the headers do not define fails the compilation.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TABLE_DIR = fileURLToPath(new URL('../../spec-tables/', import.meta.url));

export const HEADERS = [
  'stddef.h',
  'stdio.h',
  'linux/types.h',
  'linux/pci_regs.h',
  'linux/virtio_pci.h',
  'linux/virtio_ids.h',
  'linux/virtio_config.h',
  'linux/virtio_ring.h',
  'linux/virtio_net.h',
  'linux/virtio_blk.h',
  'linux/virtio_console.h',
  'linux/virtio_scsi.h',
  'linux/virtio_balloon.h',
  'linux/virtio_9p.h',
  'linux/if_ether.h',
  'linux/errno.h',
  'scsi/scsi.h',
  'linux/vfio.h',
] as const;

type Json = Record<string, unknown>;

export interface RawTableFile {
  file: string;
  data: Json;
}

export interface Check {
  /** Unique, space-free name printed by the C program. */
  name: string;
  /** Human description: table, entry, property, header reference. */
  what: string;
  /** C integer expression. */
  cExpr: string;
  /** Macros that must be defined (guarded with #ifndef ... #error). */
  macros: string[];
  /** Value the table states. */
  expected: bigint;
}

export interface Mismatch {
  check: Check;
  header: bigint | undefined;
}

/** Reads every spec-tables/*.json file. */
export function loadRawTables(dir: string = TABLE_DIR): RawTableFile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, data: JSON.parse(readFileSync(join(dir, file), 'utf8')) as Json }));
}

function refList(linux: unknown): Json[] {
  if (linux === undefined) return [];
  return (Array.isArray(linux) ? linux : [linux]) as Json[];
}

function shiftExpr(macro: string): string {
  // n such that MACRO(MACRO(~0) << n) == MACRO(~0): the position of the field the extractor reads.
  return (
    `({ unsigned long long v_ = (unsigned long long)(${macro}(0xffffffffull)); long long n_ = -1; ` +
    `for (int i_ = 0; v_ != 0 && i_ < 32; i_++) ` +
    `if ((unsigned long long)(${macro}((v_ << i_))) == v_) { n_ = i_; break; } n_; })`
  );
}

type Target = 'offset' | 'value' | 'size' | 'field';

/** The checks of one `linux` reference. `target` says what the table value means. */
function refChecks(
  prefix: string,
  ref: Json,
  index: number,
  target: Target,
  tableValue: number,
  registerSize?: number,
): Check[] {
  const delta = typeof ref.delta === 'number' ? ref.delta : 0;
  const expected = BigInt(tableValue) + BigInt(delta);
  const name = `${prefix}#${index}`;
  if (typeof ref.macro === 'string') {
    return [{ name, what: `${prefix} == ${ref.macro}`, cExpr: ref.macro, macros: [ref.macro], expected }];
  }
  if (typeof ref.expr === 'string') {
    return [{ name, what: `${prefix} == ${ref.expr}`, cExpr: `(${ref.expr})`, macros: [], expected }];
  }
  if (typeof ref.shiftOf === 'string') {
    if (target !== 'value') throw new Error(`${prefix}: shiftOf is only valid on constants`);
    return [
      {
        name,
        what: `${prefix} == shift of ${ref.shiftOf}()`,
        cExpr: shiftExpr(ref.shiftOf),
        macros: [ref.shiftOf],
        expected,
      },
    ];
  }
  if (typeof ref.sizeof === 'string') {
    return [
      {
        name,
        what: `${prefix} == sizeof(${ref.sizeof})`,
        cExpr: `sizeof(${ref.sizeof})`,
        macros: [],
        expected,
      },
    ];
  }
  if (typeof ref.struct === 'string' && typeof ref.field === 'string') {
    if (target !== 'offset' || registerSize === undefined) {
      throw new Error(`${prefix}: struct references are only valid on registers`);
    }
    const type = `struct ${ref.struct}`;
    const checks: Check[] = [
      {
        name: `${name}.offsetof`,
        what: `${prefix} offset == offsetof(${type}, ${ref.field})`,
        cExpr: `offsetof(${type}, ${ref.field})`,
        macros: [],
        expected,
      },
    ];
    if (ref.checkSize !== false) {
      const size = typeof ref.size === 'number' ? ref.size : registerSize;
      checks.push({
        name: `${name}.sizeof`,
        what: `${prefix} size == sizeof(((${type} *)0)->${ref.field})`,
        cExpr: `sizeof(((${type} *)0)->${ref.field})`,
        macros: [],
        expected: BigInt(size),
      });
    }
    return checks;
  }
  throw new Error(`${prefix}: unknown linux reference ${JSON.stringify(ref)}`);
}

/** All checks of one table. */
export function tableChecks(data: Json): Check[] {
  const id = String(data.id);
  const checks: Check[] = [];
  const add = (prefix: string, linux: unknown, target: Target, value: number, size?: number) => {
    refList(linux).forEach((ref, i) => checks.push(...refChecks(prefix, ref, i, target, value, size)));
  };
  if (data.linux !== undefined) {
    if (typeof data.size !== 'number') throw new Error(`${id}: table-level linux reference needs a size`);
    add(`${id}/size`, data.linux, 'size', data.size);
  }
  for (const [key, reg] of Object.entries((data.registers ?? {}) as Record<string, Json>)) {
    const offset = reg.offset as number;
    const size = reg.size as number;
    for (const [i, ref] of refList(reg.linux).entries()) {
      const prefix = `${id}/registers/${key}`;
      // sizeof on a register compares with its size; everything else with its offset.
      if (typeof ref.sizeof === 'string') checks.push(...refChecks(`${prefix}/size`, ref, i, 'size', size));
      else if (typeof ref.struct === 'string')
        checks.push(...refChecks(`${prefix}/field`, ref, i, 'offset', offset, size));
      else checks.push(...refChecks(`${prefix}/offset`, ref, i, 'offset', offset, size));
    }
  }
  for (const [key, c] of Object.entries((data.constants ?? {}) as Record<string, Json>)) {
    add(`${id}/constants/${key}`, c.linux, 'value', c.value as number);
  }
  for (const [key, t] of Object.entries((data.types ?? {}) as Record<string, Json>)) {
    for (const [field, linux] of Object.entries((t.linux ?? {}) as Record<string, unknown>)) {
      const value = t[field];
      if (typeof value !== 'number')
        throw new Error(`${id}/types/${key}: linux.${field} has no numeric field`);
      add(`${id}/types/${key}/${field}`, linux, 'field', value);
    }
  }
  return checks;
}

function cString(s: string): string {
  return JSON.stringify(s); // ASCII names: JSON string escaping is valid C
}

/** The C program that prints `name value` for every check. */
export function cProgram(checks: readonly Check[]): string {
  const lines: string[] = HEADERS.map((h) => `#include <${h}>`);
  lines.push('');
  const guarded = new Set<string>();
  for (const c of checks) {
    for (const m of c.macros) {
      if (guarded.has(m)) continue;
      guarded.add(m);
      lines.push(
        `#ifndef ${m}`,
        `#error ${cString(`${c.name}: ${m} is not defined by the Linux headers`)}`,
        '#endif',
      );
    }
  }
  lines.push('', 'int main(void) {');
  for (const c of checks) {
    lines.push(`  printf("%s %lld\\n", ${cString(c.name)}, (long long)(${c.cExpr}));`);
  }
  lines.push('  return 0;', '}', '');
  return lines.join('\n');
}

/** Compiles and runs the program; returns header values by check name. Throws on compile errors. */
export function runHeaders(checks: readonly Check[], gcc = 'gcc'): Map<string, bigint> {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-oracle-'));
  try {
    const src = join(dir, 'oracle.c');
    const exe = join(dir, 'oracle');
    writeFileSync(src, cProgram(checks));
    try {
      execFileSync(gcc, ['-std=gnu11', '-Wall', '-Werror', '-o', exe, src], { stdio: 'pipe' });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? String(err);
      throw new Error(`Linux header oracle did not compile:\n${stderr}`);
    }
    const out = execFileSync(exe, { encoding: 'utf8' });
    const values = new Map<string, bigint>();
    for (const line of out.split('\n')) {
      if (line === '') continue;
      const sp = line.lastIndexOf(' ');
      values.set(line.slice(0, sp), BigInt(line.slice(sp + 1)));
    }
    return values;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Checks whose header value differs from the table value. */
export function compare(checks: readonly Check[], header: ReadonlyMap<string, bigint>): Mismatch[] {
  return checks
    .filter((c) => header.get(c.name) !== c.expected)
    .map((check) => ({ check, header: header.get(check.name) }));
}

export function formatMismatch(m: Mismatch): string {
  const [table, ...rest] = m.check.name.split('/');
  return (
    `table ${table}, ${rest.join('/')}: table value ${m.check.expected}, ` +
    `header value ${m.header ?? 'missing'} (${m.check.what})`
  );
}
