/**
 * The topology file: which SR-IOV physical functions vmmr emulates.
 *
 * The file is JSON, checked against a TypeBox schema and then against the
 * rules a schema cannot express (duplicates, MAC validity, VF overrides that
 * must name a VF of their PF). parseTopology fills every optional field, so
 * the rest of the program only ever sees a ResolvedTopology.
 *
 * Every error is a TopologyError with a one-line message naming the source
 * (file) and the JSON path of the offending value.
 */
import { readFileSync } from 'node:fs';
import Type, { type Static, type TSchema } from 'typebox';
import Compile from 'typebox/compile';
import defaultTopologyJson from './topology-default.json' with { type: 'json' };

export const VIRTIO_TYPE_NAMES = ['net', 'block', 'balloon', 'console', 'scsi', 'rng', '9p'] as const;
export type VirtioTypeName = (typeof VIRTIO_TYPE_NAMES)[number];

export const NOTIFY_MODES = ['notify-region', 'legacy-register'] as const;
export type NotifyMode = (typeof NOTIFY_MODES)[number];

export const POLICIES = ['strict', 'compat'] as const;
export type Policy = (typeof POLICIES)[number];

export const PF_DEFAULTS = {
  firstVfOffset: 1,
  vfStride: 1,
  queueSize: 256,
  policy: 'strict',
  notify: 'notify-region',
} as const satisfies Partial<ResolvedPf>;

/** Longest virtio-blk serial (VIRTIO_BLK_ID_BYTES). */
export const MAX_BLK_SERIAL = 20;
export const MAX_QUEUE_SIZE = 32768;

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

const u16 = (description: string, minimum = 0): ReturnType<typeof Type.Integer> =>
  Type.Integer({ minimum, maximum: 0xffff, description });

export const TopologyVfOverrideSchema = Type.Object(
  {
    mac: Type.Optional(Type.String({ description: 'a unicast MAC address such as "52:54:00:12:34:56"' })),
    serial: Type.Optional(
      Type.String({
        maxLength: MAX_BLK_SERIAL,
        pattern: '^[\\x20-\\x7e]*$',
        description: `printable ASCII of at most ${MAX_BLK_SERIAL} characters`,
      }),
    ),
  },
  { additionalProperties: false, description: 'an object with optional "mac" and "serial"' },
);

export const TopologyPfSchema = Type.Object(
  {
    bdf: Type.String({
      description: 'a PCI address "DDDD:BB:DD.F" or "BB:DD.F" (hex, device <= 1f, function <= 7)',
    }),
    type: Type.Enum([...VIRTIO_TYPE_NAMES], {
      description: `one of ${VIRTIO_TYPE_NAMES.join(', ')}`,
    }),
    totalVfs: u16('an integer 0..65535'),
    initialVfs: Type.Optional(u16('an integer 0..65535, at most totalVfs')),
    firstVfOffset: Type.Optional(u16('an integer 1..65535', 1)),
    vfStride: Type.Optional(u16('an integer 0..65535 (0 only when totalVfs <= 1)')),
    queueSize: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_QUEUE_SIZE,
        description: `a power of two 1..${MAX_QUEUE_SIZE}`,
      }),
    ),
    policy: Type.Optional(Type.Enum([...POLICIES], { description: `one of ${POLICIES.join(', ')}` })),
    notify: Type.Optional(Type.Enum([...NOTIFY_MODES], { description: `one of ${NOTIFY_MODES.join(', ')}` })),
    vfs: Type.Optional(
      Type.Record(Type.String(), TopologyVfOverrideSchema, {
        description: 'an object keyed by VF PCI address',
      }),
    ),
  },
  { additionalProperties: false, description: 'a PF object with at least "bdf", "type" and "totalVfs"' },
);

export const TopologySchema = Type.Object(
  {
    $schema: Type.Optional(Type.String({ description: 'a string' })),
    pfs: Type.Array(TopologyPfSchema, { description: 'an array of PF objects' }),
  },
  { additionalProperties: false, description: 'an object with a "pfs" array' },
);

const validator = Compile(TopologySchema);

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

export interface TopologyVfOverride {
  /** "52:54:00:12:34:56": 6 hex octets, unicast. */
  mac?: string;
  /** virtio-blk serial, at most 20 printable ASCII characters. */
  serial?: string;
}

export interface TopologyPf {
  /** "0000:01:00.0" (also "01:00.0" = domain 0000). */
  bdf: string;
  type: VirtioTypeName;
  /** 0..65535 */
  totalVfs: number;
  /** Default = totalVfs; at most totalVfs. */
  initialVfs?: number;
  /** Default 1; 1..65535. */
  firstVfOffset?: number;
  /** Default 1; 1..65535 (0 allowed only when totalVfs <= 1). */
  vfStride?: number;
  /** Default 256; power of two 1..32768. */
  queueSize?: number;
  /** Default 'strict'. */
  policy?: Policy;
  /** Default 'notify-region'. */
  notify?: NotifyMode;
  /** Per-VF overrides keyed by VF BDF. */
  vfs?: Record<string, TopologyVfOverride>;
}

export interface Topology {
  pfs: TopologyPf[];
}

export interface ResolvedVfOverride {
  /** Lower-case "52:54:00:12:34:56". */
  mac?: string;
  serial?: string;
}

export interface ResolvedPf {
  /** Always the long, lower-case form "0000:01:00.0". */
  bdf: string;
  type: VirtioTypeName;
  totalVfs: number;
  initialVfs: number;
  firstVfOffset: number;
  vfStride: number;
  queueSize: number;
  policy: Policy;
  notify: NotifyMode;
  /** Keyed by the long, lower-case VF BDF. */
  vfs: Record<string, ResolvedVfOverride>;
}

export interface ResolvedTopology {
  pfs: ResolvedPf[];
}

// Compile-time check that the schema and the hand-written interface agree.
type SchemaTopology = Static<typeof TopologySchema>;
const _schemaMatchesInterface = (t: SchemaTopology): Topology => t;
const _interfaceMatchesSchema = (t: Topology): SchemaTopology => t;
void _schemaMatchesInterface;
void _interfaceMatchesSchema;

export class TopologyError extends Error {
  /** File name (or other source description) the topology came from. */
  readonly source: string;
  /** Path of the offending value, e.g. "pfs[0].totalVfs"; undefined for file-level errors. */
  readonly path: string | undefined;

  constructor(source: string, path: string | undefined, problem: string) {
    super(path === undefined ? `${source}: ${problem}` : `${source}: ${path}: ${problem}`);
    this.name = 'TopologyError';
    this.source = source;
    this.path = path;
  }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const BDF_RE = /^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([01][0-9a-fA-F])\.([0-7])$/;

interface ParsedBdf {
  domain: number;
  bus: number;
  device: number;
  fn: number;
}

function parseBdf(text: string): ParsedBdf | undefined {
  const m = BDF_RE.exec(text);
  if (!m) return undefined;
  return {
    domain: parseInt(m[1] ?? '0000', 16),
    bus: parseInt(m[2] ?? '', 16),
    device: parseInt(m[3] ?? '', 16),
    fn: parseInt(m[4] ?? '', 16),
  };
}

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');

function formatBdf(b: ParsedBdf): string {
  return `${hex(b.domain, 4)}:${hex(b.bus, 2)}:${hex(b.device, 2)}.${b.fn}`;
}

const routingId = (b: ParsedBdf): number => (b.bus << 8) | (b.device << 3) | b.fn;

const MAC_RE = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/;

/** Shows a value in an error message, short and on one line. */
function show(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'nothing' : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Turns a JSON pointer ("/pfs/0/vfs/0000:01:00.1/mac") into "pfs[0].vfs["0000:01:00.1"].mac". */
function pointerToPath(pointer: string): string {
  if (pointer === '') return '(top level)';
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let out = '';
  for (const part of parts) {
    if (/^[0-9]+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

function resolvePointer(root: unknown, pointer: string): unknown {
  let node: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** Finds the schema node a validation error's schemaPath ("#/properties/pfs/items") points at. */
function schemaAt(schemaPath: string): TSchema | undefined {
  const pointer = schemaPath.replace(/^#/, '');
  // Keys under patternProperties are regexes that may contain "/": walk by hand.
  let node: unknown = TopologySchema;
  const parts = pointer.split('/').slice(1);
  for (let i = 0; i < parts.length; i++) {
    if (node === null || typeof node !== 'object') return undefined;
    const part = parts[i] ?? '';
    if (part === 'patternProperties') {
      const pp = (node as Record<string, unknown>).patternProperties as Record<string, unknown>;
      const first = Object.values(pp ?? {})[0];
      node = first;
      i++; // skip the (single) pattern key
      continue;
    }
    node = (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return node as TSchema | undefined;
}

interface SchemaErrorLike {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: object;
  message: string;
}

function describeSchemaError(err: SchemaErrorLike, input: unknown): { path: string; problem: string } {
  const params = err.params as Record<string, unknown>;
  if (err.keyword === 'required') {
    const missing = (params.requiredProperties as string[] | undefined) ?? [];
    return {
      path: pointerToPath(err.instancePath),
      problem: `missing required property ${missing.map((m) => JSON.stringify(m)).join(', ')}`,
    };
  }
  if (err.keyword === 'additionalProperties') {
    const extra = (params.additionalProperties as string[] | undefined) ?? [];
    return {
      path: pointerToPath(err.instancePath),
      problem: `unknown property ${extra.map((m) => JSON.stringify(m)).join(', ')}`,
    };
  }
  if (err.keyword === 'boolean' && err.schemaPath.endsWith('/additionalProperties')) {
    const slash = err.instancePath.lastIndexOf('/');
    const key = err.instancePath
      .slice(slash + 1)
      .replace(/~1/g, '/')
      .replace(/~0/g, '~');
    return {
      path: pointerToPath(err.instancePath.slice(0, slash)),
      problem: `unknown property ${JSON.stringify(key)}`,
    };
  }
  const schema = schemaAt(err.schemaPath) as { description?: unknown } | undefined;
  const expected =
    typeof schema?.description === 'string' ? schema.description : err.message.replace(/^must /, '');
  return {
    path: pointerToPath(err.instancePath),
    problem: `expected ${expected}, got ${show(resolvePointer(input, err.instancePath))}`,
  };
}

/** Keywords describing where the problem is; prefer them over derived ones. */
function errorRank(err: SchemaErrorLike): number {
  if (err.keyword === 'boolean' || err.keyword === 'additionalProperties') return 0;
  if (err.keyword === 'required') return 1;
  return 2;
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/**
 * Validates a parsed JSON value as a topology and returns it with every
 * optional field filled and every BDF/MAC normalised to its canonical form.
 */
export function parseTopology(json: unknown, sourceName: string): ResolvedTopology {
  if (!validator.Check(json)) {
    const errors = validator.Errors(json) as SchemaErrorLike[];
    // Report one error: unknown and missing properties first (they explain
    // the others), then the first remaining one in document order.
    const best = [...errors].sort((a, b) => errorRank(a) - errorRank(b))[0];
    if (best === undefined) throw new TopologyError(sourceName, undefined, 'invalid topology');
    const { path, problem } = describeSchemaError(best, json);
    throw new TopologyError(sourceName, path, problem);
  }

  const fail = (path: string, problem: string): TopologyError => new TopologyError(sourceName, path, problem);

  const seenPfs = new Map<string, number>();
  const seenMacs = new Map<string, string>();
  const pfs: ResolvedPf[] = json.pfs.map((pf, i): ResolvedPf => {
    const at = `pfs[${i}]`;
    const bdf = parseBdf(pf.bdf);
    if (!bdf) {
      throw fail(
        `${at}.bdf`,
        `expected a PCI address "DDDD:BB:DD.F" or "BB:DD.F" (hex, device <= 1f, function <= 7), got ${show(pf.bdf)}`,
      );
    }
    const pfBdf = formatBdf(bdf);
    const previous = seenPfs.get(pfBdf);
    if (previous !== undefined)
      throw fail(`${at}.bdf`, `duplicate PF address ${pfBdf} (also pfs[${previous}])`);
    seenPfs.set(pfBdf, i);

    const totalVfs = pf.totalVfs;
    const initialVfs = pf.initialVfs ?? totalVfs;
    if (initialVfs > totalVfs) {
      throw fail(`${at}.initialVfs`, `expected at most totalVfs (${totalVfs}), got ${initialVfs}`);
    }
    const firstVfOffset = pf.firstVfOffset ?? PF_DEFAULTS.firstVfOffset;
    const vfStride = pf.vfStride ?? PF_DEFAULTS.vfStride;
    if (vfStride === 0 && totalVfs > 1) {
      throw fail(
        `${at}.vfStride`,
        `expected an integer 1..65535 when totalVfs > 1 (totalVfs is ${totalVfs}), got 0`,
      );
    }
    const queueSize = pf.queueSize ?? PF_DEFAULTS.queueSize;
    if ((queueSize & (queueSize - 1)) !== 0) {
      throw fail(`${at}.queueSize`, `expected a power of two 1..${MAX_QUEUE_SIZE}, got ${queueSize}`);
    }

    const vfs: Record<string, ResolvedVfOverride> = {};
    for (const [key, override] of Object.entries(pf.vfs ?? {})) {
      const vfAt = `${at}.vfs[${JSON.stringify(key)}]`;
      const vf = parseBdf(key);
      if (!vf) {
        throw fail(
          vfAt,
          'expected the key to be a VF PCI address "DDDD:BB:DD.F" or "BB:DD.F" (hex, device <= 1f, function <= 7)',
        );
      }
      const vfBdf = formatBdf(vf);
      if (vfs[vfBdf] !== undefined) throw fail(vfAt, `duplicate VF address ${vfBdf}`);
      // The key must be one of this PF's VFs: RID(VFn) = RID(PF) + offset + (n-1) * stride.
      const delta = routingId(vf) - routingId(bdf) - firstVfOffset;
      const index = vfStride === 0 ? (delta === 0 ? 0 : -1) : delta % vfStride === 0 ? delta / vfStride : -1;
      if (vf.domain !== bdf.domain || delta < 0 || index < 0 || index >= totalVfs) {
        throw fail(
          vfAt,
          `${vfBdf} is not a VF of PF ${pfBdf} (totalVfs ${totalVfs}, firstVfOffset ${firstVfOffset}, vfStride ${vfStride})`,
        );
      }

      const resolved: ResolvedVfOverride = {};
      if (override.mac !== undefined) {
        if (pf.type !== 'net')
          throw fail(`${vfAt}.mac`, `"mac" applies only to a net PF, this PF is ${pf.type}`);
        resolved.mac = checkMac(override.mac, `${vfAt}.mac`, fail);
        const owner = seenMacs.get(resolved.mac);
        if (owner !== undefined) throw fail(`${vfAt}.mac`, `duplicate MAC ${resolved.mac} (also ${owner})`);
        seenMacs.set(resolved.mac, `${at} VF ${vfBdf}`);
      }
      if (override.serial !== undefined) {
        if (pf.type !== 'block') {
          throw fail(`${vfAt}.serial`, `"serial" applies only to a block PF, this PF is ${pf.type}`);
        }
        resolved.serial = override.serial;
      }
      vfs[vfBdf] = resolved;
    }

    return {
      bdf: pfBdf,
      type: pf.type,
      totalVfs,
      initialVfs,
      firstVfOffset,
      vfStride,
      queueSize,
      policy: pf.policy ?? PF_DEFAULTS.policy,
      notify: pf.notify ?? PF_DEFAULTS.notify,
      vfs,
    };
  });

  return { pfs };
}

function checkMac(mac: string, path: string, fail: (path: string, problem: string) => TopologyError): string {
  if (!MAC_RE.test(mac)) {
    throw fail(path, `expected 6 hex octets separated by ":" such as "52:54:00:12:34:56", got ${show(mac)}`);
  }
  const lower = mac.toLowerCase();
  const firstOctet = parseInt(lower.slice(0, 2), 16);
  if ((firstOctet & 1) !== 0) {
    throw fail(path, `${lower} is a multicast address: expected a unicast MAC (first octet even)`);
  }
  if (lower === '00:00:00:00:00:00') {
    throw fail(path, 'expected a unicast MAC, got the all-zero address');
  }
  return lower;
}

/** Offset of the first character that makes `text` invalid JSON, or undefined. */
function jsonErrorOffset(text: string, message: string): number | undefined {
  const reported = /at position (\d+)/.exec(message);
  if (reported) return Number(reported[1]);
  // Some V8 messages ("Unexpected token 'x', ...") carry no position: find the
  // longest prefix that is still the beginning of valid JSON.
  const viable = (n: number): boolean => {
    try {
      JSON.parse(text.slice(0, n));
      return true;
    } catch (err) {
      const msg = err instanceof Error ? err.message : '';
      if (msg.includes('Unexpected end of JSON input')) return true;
      const at = /at position (\d+)/.exec(msg);
      return at !== null && Number(at[1]) >= n;
    }
  };
  if (viable(text.length)) return undefined;
  let lo = 0;
  let hi = text.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (viable(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Describes a JSON.parse error as "invalid JSON at line L column C: <reason>". */
function describeJsonError(text: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const reason = (message.split('\n')[0] ?? message)
    .replace(/\s*\(line \d+ column \d+\)$/, '')
    .replace(/ in JSON at position \d+$/, '');
  const offset = jsonErrorOffset(text, message);
  if (offset === undefined) return `invalid JSON: ${reason}`;
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return `invalid JSON at line ${line} column ${column}: ${reason}`;
}

/** Reads, parses and validates a topology file; every failure is a one-line TopologyError. */
export function loadTopologyFile(path: string): ResolvedTopology {
  const source = `topology file ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : ((err as Error).message.split('\n')[0] ?? 'unreadable');
    throw new TopologyError(source, undefined, `cannot read: ${reason}`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TopologyError(source, undefined, describeJsonError(text, err));
  }
  return parseTopology(json, source);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * The embedded default: a virtio-net PF at 0000:01:00.0 and a virtio-blk PF at
 * 0000:81:00.0, each with TotalVFs 1024, First VF Offset 1, VF Stride 1 and
 * no VF enabled at start. Frozen: copy it (structuredClone) before changing it.
 */
export const DEFAULT_TOPOLOGY: ResolvedTopology = deepFreeze(
  parseTopology(defaultTopologyJson, 'embedded default topology'),
);
