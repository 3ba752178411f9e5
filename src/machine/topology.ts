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
import {
  isUnknownPropertyError,
  mostTellingError,
  unknownProperties,
  type SchemaErrorLike,
} from '../base/schema-errors.js';
import { isMacText, MAC_FORM, notUnicast, parseMac } from '../mmr/identity.js';
import { BDF_FORM, formatBdf, parseBdf, type Bdf } from '../pci/bdf.js';
import {
  deepFreeze,
  deviceConfigs,
  VIRTIO_TYPE_NAMES,
  virtioRing,
  type VirtioTypeName,
} from '../spec/index.js';
import type { PfDefinition } from '../mmr/pf.js';
import { vfIndexAt } from '../sriov/routing.js';
import { ACCESS_POLICIES, NOTIFY_ROUTES } from '../virtio/model.js';
import defaultTopologyJson from './topology-default.json' with { type: 'json' };

export const PF_DEFAULTS = {
  firstVfOffset: 1,
  vfStride: 1,
  queueSize: 256,
  policy: 'strict',
  notify: 'notify-region',
} as const satisfies Partial<ResolvedPf>;

/** Longest virtio-blk serial (VIRTIO_BLK_ID_BYTES). */
const MAX_BLK_SERIAL = deviceConfigs.block.constants.ID_BYTES.value;
const MAX_QUEUE_SIZE = virtioRing.constants.VIRTQUEUE_MAX_SIZE.value;
const SECTOR_SIZE = deviceConfigs.block.constants.SECTOR_SIZE.value;

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

const u16 = (description: string, minimum = 0): ReturnType<typeof Type.Integer> =>
  Type.Integer({ minimum, maximum: 0xffff, description });

const SWITCH_NAME = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9._-]+$',
  description: 'a switch name: 1 to 64 letters, digits, ".", "_" or "-"',
});
const IMAGE_PATH = Type.String({ minLength: 1, description: 'the path of a disk image file' });
const READ_ONLY = Type.Boolean({ description: 'true or false' });

export const TopologyVfOverrideSchema = Type.Object(
  {
    mac: Type.Optional(Type.String({ description: `a unicast MAC address: ${MAC_FORM}` })),
    serial: Type.Optional(
      Type.String({
        maxLength: MAX_BLK_SERIAL,
        pattern: '^[\\x20-\\x7e]*$',
        description: `printable ASCII of at most ${MAX_BLK_SERIAL} characters`,
      }),
    ),
    switch: Type.Optional(SWITCH_NAME),
    image: Type.Optional(IMAGE_PATH),
    readOnly: Type.Optional(READ_ONLY),
  },
  {
    additionalProperties: false,
    description: 'an object with optional "mac", "serial", "switch", "image" and "readOnly"',
  },
);

export const TopologyPfSchema = Type.Object(
  {
    bdf: Type.String({ description: BDF_FORM }),
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
    policy: Type.Optional(
      Type.Enum([...ACCESS_POLICIES], { description: `one of ${ACCESS_POLICIES.join(', ')}` }),
    ),
    notify: Type.Optional(
      Type.Enum([...NOTIFY_ROUTES], { description: `one of ${NOTIFY_ROUTES.join(', ')}` }),
    ),
    switch: Type.Optional(SWITCH_NAME),
    ramDiskSize: Type.Optional(
      Type.Integer({
        minimum: SECTOR_SIZE,
        maximum: Number.MAX_SAFE_INTEGER,
        multipleOf: SECTOR_SIZE,
        description: `a RAM disk size in bytes, a multiple of ${SECTOR_SIZE}`,
      }),
    ),
    image: Type.Optional(IMAGE_PATH),
    readOnly: Type.Optional(READ_ONLY),
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

export type TopologyVfOverride = Static<typeof TopologyVfOverrideSchema>;
export type TopologyPf = Static<typeof TopologyPfSchema>;
export type Topology = Static<typeof TopologySchema>;

export interface ResolvedVfOverride {
  /** Lower-case "52:54:00:12:34:56". */
  mac?: string;
  serial?: string;
  switch?: string;
  image?: string;
  readOnly?: boolean;
}

/** Where the back-ends of a PF's functions come from (absent: defaults, docs/data-path.md "Settings"). */
export interface ResolvedBackend {
  /** net: the switch the PF and its VFs join. */
  switch?: string;
  /** block: bytes of each function's RAM disk. */
  ramDiskSize?: number;
  /** block: the PF's own disk image. */
  image?: string;
  readOnly?: boolean;
}

/** A topology PF entry with every default filled: what a PF is (PfDefinition), by address. */
export interface ResolvedPf
  extends
    Omit<PfDefinition, 'domain' | 'rid' | 'overrides' | 'backend' | 'vfBackend' | 'vfBackends'>,
    ResolvedBackend {
  /** Always the long, lower-case form "0000:01:00.0". */
  bdf: string;
  /** Keyed by the long, lower-case VF BDF. */
  vfs: Record<string, ResolvedVfOverride>;
}

export interface ResolvedTopology {
  pfs: ResolvedPf[];
}

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

function describeSchemaError(err: SchemaErrorLike, input: unknown): { path: string; problem: string } {
  if (isUnknownPropertyError(err)) {
    const { path, names } = unknownProperties(err);
    return {
      path: pointerToPath(path),
      problem: `unknown property ${names.map((m) => JSON.stringify(m)).join(', ')}`,
    };
  }
  if (err.keyword === 'required') {
    const missing = (err.params as { requiredProperties?: string[] } | undefined)?.requiredProperties ?? [];
    return {
      path: pointerToPath(err.instancePath),
      problem: `missing required property ${missing.map((m) => JSON.stringify(m)).join(', ')}`,
    };
  }
  const schema = schemaAt(err.schemaPath ?? '') as { description?: unknown } | undefined;
  const expected =
    typeof schema?.description === 'string'
      ? schema.description
      : (err.message ?? 'is invalid').replace(/^must /, '');
  return {
    path: pointerToPath(err.instancePath),
    problem: `expected ${expected}, got ${show(resolvePointer(input, err.instancePath))}`,
  };
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

type Fail = (path: string, problem: string) => TopologyError;

/** A PCI address in the topology, or a refusal in the topology's own words. */
function topologyBdf(text: string, path: string, fail: Fail, what = 'a PCI address'): Bdf {
  try {
    return parseBdf(text);
  } catch {
    throw fail(
      path,
      `expected ${what === 'a PCI address' ? BDF_FORM : `${what}: ${BDF_FORM}`}, got ${show(text)}`,
    );
  }
}

function checkMac(mac: string, path: string, fail: Fail): string {
  if (!isMacText(mac)) throw fail(path, `expected ${MAC_FORM}, got ${show(mac)}`);
  const lower = mac.toLowerCase();
  switch (notUnicast(parseMac(lower))) {
    case 'multicast':
      throw fail(path, `${lower} is a multicast address: expected a unicast MAC (first octet even)`);
    case 'all-zero':
      throw fail(path, 'expected a unicast MAC, got the all-zero address');
    default:
      return lower;
  }
}

interface PfPlacement {
  at: string;
  bdf: Bdf;
  pfBdf: string;
  totalVfs: number;
  firstVfOffset: number;
  vfStride: number;
}

/** The per-VF overrides of a PF, keys normalised; each must name a VF of the PF and fit its type. */
function resolveOverrides(
  pf: TopologyPf,
  place: PfPlacement,
  seenMacs: Map<string, string>,
  fail: Fail,
): Record<string, ResolvedVfOverride> {
  const vfs: Record<string, ResolvedVfOverride> = {};
  for (const [key, override] of Object.entries(pf.vfs ?? {})) {
    const vfAt = `${place.at}.vfs[${JSON.stringify(key)}]`;
    const vf = topologyBdf(key, vfAt, fail, 'the key to be a VF address');
    const vfBdf = formatBdf(vf.domain, vf.rid);
    if (vfs[vfBdf] !== undefined) throw fail(vfAt, `duplicate VF address ${vfBdf}`);
    const index = vf.domain === place.bdf.domain ? vfIndexAt({ ...place, rid: place.bdf.rid }, vf.rid) : -1;
    if (index < 0) {
      throw fail(
        vfAt,
        `${vfBdf} is not a VF of PF ${place.pfBdf} (totalVfs ${place.totalVfs}, firstVfOffset ${place.firstVfOffset}, vfStride ${place.vfStride})`,
      );
    }
    const resolved: ResolvedVfOverride = {};
    if (override.mac !== undefined) {
      if (pf.type !== 'net')
        throw fail(`${vfAt}.mac`, `"mac" applies only to a net PF, this PF is ${pf.type}`);
      resolved.mac = checkMac(override.mac, `${vfAt}.mac`, fail);
      const owner = seenMacs.get(resolved.mac);
      if (owner !== undefined) throw fail(`${vfAt}.mac`, `duplicate MAC ${resolved.mac} (also ${owner})`);
      seenMacs.set(resolved.mac, `${place.at} VF ${vfBdf}`);
    }
    if (override.serial !== undefined) {
      if (pf.type !== 'block')
        throw fail(`${vfAt}.serial`, `"serial" applies only to a block PF, this PF is ${pf.type}`);
      resolved.serial = override.serial;
    }
    Object.assign(resolved, backendFields(pf.type, override, vfAt, fail));
    vfs[vfBdf] = resolved;
  }
  return vfs;
}

const BACKEND_TYPES: Record<keyof ResolvedBackend, VirtioTypeName> = {
  switch: 'net',
  ramDiskSize: 'block',
  image: 'block',
  readOnly: 'block',
};

/** The back-end fields of a PF or VF entry, each checked against the PF's type. */
function backendFields(
  type: VirtioTypeName,
  entry: ResolvedBackend,
  at: string,
  fail: Fail,
): ResolvedBackend {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(BACKEND_TYPES) as (keyof ResolvedBackend)[]) {
    if (entry[key] === undefined) continue;
    if (BACKEND_TYPES[key] !== type)
      throw fail(`${at}.${key}`, `"${key}" applies only to a ${BACKEND_TYPES[key]} PF, this PF is ${type}`);
    out[key] = entry[key];
  }
  return out as ResolvedBackend;
}

/** One PF entry with its defaults filled, after the rules a schema cannot express. */
function resolvePf(
  pf: TopologyPf,
  i: number,
  seenPfs: Map<string, number>,
  seenMacs: Map<string, string>,
  fail: Fail,
): ResolvedPf {
  const at = `pfs[${i}]`;
  const bdf = topologyBdf(pf.bdf, `${at}.bdf`, fail);
  const pfBdf = formatBdf(bdf.domain, bdf.rid);
  const previous = seenPfs.get(pfBdf);
  if (previous !== undefined)
    throw fail(`${at}.bdf`, `duplicate PF address ${pfBdf} (also pfs[${previous}])`);
  seenPfs.set(pfBdf, i);

  const totalVfs = pf.totalVfs;
  const initialVfs = pf.initialVfs ?? totalVfs;
  if (initialVfs > totalVfs)
    throw fail(`${at}.initialVfs`, `expected at most totalVfs (${totalVfs}), got ${initialVfs}`);
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
  const vfs = resolveOverrides(pf, { at, bdf, pfBdf, totalVfs, firstVfOffset, vfStride }, seenMacs, fail);
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
    ...backendFields(pf.type, pf, at, fail),
    vfs,
  };
}

/**
 * Validates a parsed JSON value as a topology and returns it with every optional field filled
 * and every BDF/MAC normalised to its canonical form.
 */
export function parseTopology(json: unknown, sourceName: string): ResolvedTopology {
  if (!validator.Check(json)) {
    const best = mostTellingError(validator.Errors(json) as SchemaErrorLike[]);
    if (best === undefined) throw new TopologyError(sourceName, undefined, 'invalid topology');
    const { path, problem } = describeSchemaError(best, json);
    throw new TopologyError(sourceName, path, problem);
  }
  const fail: Fail = (path, problem) => new TopologyError(sourceName, path, problem);
  const seenPfs = new Map<string, number>();
  const seenMacs = new Map<string, string>();
  return { pfs: json.pfs.map((pf, i) => resolvePf(pf, i, seenPfs, seenMacs, fail)) };
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

/**
 * The embedded default: a virtio-net PF at 0000:01:00.0 and a virtio-blk PF at
 * 0000:81:00.0, each with TotalVFs 1024, First VF Offset 1, VF Stride 1 and
 * no VF enabled at start. Frozen: copy it (structuredClone) before changing it.
 */
export const DEFAULT_TOPOLOGY: ResolvedTopology = deepFreeze(
  parseTopology(defaultTopologyJson, 'embedded default topology'),
);
