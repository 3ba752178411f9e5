/**
 * setpci's register syntax, shared by `vmmr cfg`, `vmmr bar` and `vmmr io`:
 *
 *   ADDR[.B|.W|.L|.Q][=VALUE[,VALUE...]]
 *
 * ADDR is a hex offset (`0x` optional, as setpci takes hex without it), a
 * register name (`COMMAND`, `STATUS` in config space; width implied), or a
 * capability (`CAP_EXP`, `ECAP_SRIOV`, `CAP10`, `ECAP0x10`), optionally followed
 * by `+OFFSET` (hex). `@N` picks the N-th instance (from 0) of a capability:
 * setpci writes it last (`CAP_VNDR+3.b@1`), `CAP_VNDR@1+3.b` works too. A VALUE is hex, or
 * `DATA:MASK` for a read-modify-write of the bits set in MASK. Several values
 * write consecutive registers of the same width.
 */
import { capabilityIds, pciHeader, type Register } from '../spec/index.js';
import { listCapabilities } from '../pci/capabilities.js';
import { UsageError } from './errors.js';

export type Width = 1 | 2 | 4 | 8;

export const WIDTH_LETTERS: Readonly<Record<string, Width>> = { b: 1, w: 2, l: 4, q: 8 };

export interface WriteValue {
  value: bigint;
  /** Only the bits set here change (setpci DATA:MASK); undefined = all bits. */
  mask?: bigint;
}

export type SpecBase =
  | { kind: 'offset'; offset: number }
  | { kind: 'register'; name: string; offset: number }
  | { kind: 'capability'; name: string; extended: boolean; id: number; instance: number };

export interface RegSpec {
  text: string;
  base: SpecBase;
  /** The `+OFFSET` part (0 when absent). */
  plus: number;
  width: Width;
  /** Undefined for a read. */
  writes?: WriteValue[];
}

export interface SpecSyntax {
  /** Widths the space takes, e.g. [1, 2, 4]. */
  widths: readonly Width[];
  /** Named registers (upper case) with their offset and natural size. */
  registers?: Readonly<Record<string, { offset: number; size: number }>>;
  /** Whether CAP_* / ECAP_* names are understood. */
  capabilities?: boolean;
  /** Used in messages: "config register", "BAR offset", "I/O port". */
  what: string;
}

const HEX = /^(?:0x)?([0-9a-f]+)$/i;

export function parseHex(text: string, what: string, max?: bigint): bigint {
  const m = HEX.exec(text.trim());
  if (!m)
    throw new UsageError(
      `${what} ${JSON.stringify(text)} is not a hex number (setpci syntax: hex, 0x optional)`,
    );
  const value = BigInt(`0x${m[1]}`);
  if (max !== undefined && value > max) {
    throw new UsageError(`${what} ${text} is too large (at most 0x${max.toString(16)})`);
  }
  return value;
}

function widthMax(width: Width): bigint {
  return (1n << BigInt(8 * width)) - 1n;
}

// ---------------------------------------------------------------------------------------------
// Names

/** setpci's spellings where they differ from <linux/pci_regs.h> (the spec tables' names). */
const SETPCI_CAP_ALIASES: Readonly<Record<string, string>> = {
  CAP_HOTPLUG: 'CAP_ID_SHPC',
  CAP_SECURE: 'CAP_ID_SECDEV',
  ECAP_AER: 'EXT_CAP_ID_ERR',
  ECAP_PB: 'EXT_CAP_ID_PWR',
  ECAP_RCLINK: 'EXT_CAP_ID_RCLD',
  ECAP_RCILINK: 'EXT_CAP_ID_RCILC',
  ECAP_VC2: 'EXT_CAP_ID_VC9',
  ECAP_RBCB: 'EXT_CAP_ID_RCRB',
  ECAP_L1PM: 'EXT_CAP_ID_L1SS',
  ECAP_DLNK: 'EXT_CAP_ID_DLF',
  ECAP_16GT: 'EXT_CAP_ID_PL_16GT',
};

/** Capability names setpci knows ("CAP_EXP", "ECAP_SRIOV", ...) → [extended, id]. */
export const CAPABILITY_NAMES: ReadonlyMap<string, { extended: boolean; id: number }> = (() => {
  const names = new Map<string, { extended: boolean; id: number }>();
  const constants = capabilityIds.constants as Readonly<Record<string, { value: number }>>;
  for (const [name, c] of Object.entries(constants)) {
    if (name.endsWith('_MAX')) continue;
    if (name.startsWith('EXT_CAP_ID_'))
      names.set(`ECAP_${name.slice('EXT_CAP_ID_'.length)}`, { extended: true, id: c.value });
    else if (name.startsWith('CAP_ID_'))
      names.set(`CAP_${name.slice('CAP_ID_'.length)}`, { extended: false, id: c.value });
  }
  for (const [alias, constant] of Object.entries(SETPCI_CAP_ALIASES)) {
    const c = constants[constant];
    if (c) names.set(alias, { extended: alias.startsWith('ECAP_'), id: c.value });
  }
  return names;
})();

/** setpci's names of the type-0 header registers (REVISION, CAPABILITIES) besides the kernel's. */
const SETPCI_HEADER_ALIASES: Readonly<Record<string, keyof typeof pciHeader.registers>> = {
  REVISION: 'REVISION_ID',
  CAPABILITIES: 'CAPABILITY_LIST',
};

export const CONFIG_REGISTERS: Readonly<Record<string, { offset: number; size: number }>> = (() => {
  const regs: Record<string, { offset: number; size: number }> = {};
  for (const [name, r] of Object.entries(pciHeader.registers) as Array<[string, Register]>) {
    regs[name] = { offset: r.offset, size: r.size };
  }
  for (const [alias, name] of Object.entries(SETPCI_HEADER_ALIASES)) {
    const r = pciHeader.registers[name];
    regs[alias] = { offset: r.offset, size: r.size };
  }
  return regs;
})();

/** Register names of a spec table, upper case, with offset and size. */
export function registerNames(
  registers: Readonly<Record<string, Register>>,
  base = 0,
): Record<string, { offset: number; size: number }> {
  const out: Record<string, { offset: number; size: number }> = {};
  for (const [name, r] of Object.entries(registers)) {
    if (r.alias) continue;
    out[name.toUpperCase()] = { offset: base + r.offset, size: r.size };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing

const CAP_RE = /^(E?CAP)(?:_([A-Z0-9_]+)|((?:0x)?[0-9A-F]+))$/i;

function parseBase(
  text: string,
  syntax: SpecSyntax,
  spec: string,
  trailingInstance: string | undefined,
): { base: SpecBase; size?: number } {
  const at = text.indexOf('@');
  const head = at < 0 ? text : text.slice(0, at);
  if (at >= 0 && trailingInstance !== undefined) throw new UsageError(`${spec}: more than one @N`);
  const instanceText = at < 0 ? trailingInstance : text.slice(at + 1);
  if (syntax.capabilities) {
    const m = CAP_RE.exec(head);
    if (m) {
      const extended = m[1]!.toUpperCase() === 'ECAP';
      let id: number;
      let name: string;
      if (m[2] !== undefined) {
        name = `${m[1]!.toUpperCase()}_${m[2].toUpperCase()}`;
        const known = CAPABILITY_NAMES.get(name);
        if (!known) {
          throw new UsageError(
            `${spec}: unknown capability ${name} (see setpci --dumpregs; or use ${m[1]!.toUpperCase()}<hex id>)`,
          );
        }
        id = known.id;
      } else {
        id = Number(parseHex(m[3]!, 'capability ID', extended ? 0xffffn : 0xffn));
        name = `${m[1]!.toUpperCase()}${id.toString(16)}`;
      }
      const instance =
        instanceText === undefined
          ? 0
          : Number(parseHex(instanceText, `${spec}: capability instance`, 0xfffn));
      return { base: { kind: 'capability', name, extended, id, instance } };
    }
  }
  if (instanceText !== undefined)
    throw new UsageError(`${spec}: @N selects a capability instance and needs a CAP_/ECAP_ name`);
  if (HEX.test(head))
    return { base: { kind: 'offset', offset: Number(parseHex(head, `${spec}: offset`, 0xffffffffn)) } };
  const reg = syntax.registers?.[head.toUpperCase()];
  if (reg)
    return { base: { kind: 'register', name: head.toUpperCase(), offset: reg.offset }, size: reg.size };
  const hint =
    syntax.registers || syntax.capabilities
      ? 'a hex offset, a register name or a capability'
      : 'a hex offset';
  throw new UsageError(`${spec}: ${JSON.stringify(head)} is not ${hint}`);
}

/** Parses one ADDR[.W][=VALUES] spec. */
export function parseSpec(spec: string, syntax: SpecSyntax): RegSpec {
  const eq = spec.indexOf('=');
  let left = eq < 0 ? spec : spec.slice(0, eq);
  const right = eq < 0 ? undefined : spec.slice(eq + 1);
  // setpci puts the instance last (CAP_VNDR+3.b@1); CAP_VNDR@1+3.b is taken too.
  const trailing = /\.[a-z]@([^.+@]*)$/i.exec(left);
  const trailingInstance = trailing ? trailing[1] : undefined;
  if (trailing) left = left.slice(0, left.length - trailing[1]!.length - 1);

  const dot = left.lastIndexOf('.');
  const addr = dot < 0 ? left : left.slice(0, dot);
  const widthText = dot < 0 ? undefined : left.slice(dot + 1);
  if (addr === '') throw new UsageError(`${spec}: missing ${syntax.what}`);

  const plusAt = addr.indexOf('+');
  const baseText = plusAt < 0 ? addr : addr.slice(0, plusAt);
  const plus = plusAt < 0 ? 0 : Number(parseHex(addr.slice(plusAt + 1), `${spec}: +offset`, 0xffffffffn));
  const { base, size } = parseBase(baseText, syntax, spec, trailingInstance);

  let width: Width;
  const allowed = syntax.widths.map(
    (w) =>
      `.${Object.keys(WIDTH_LETTERS)
        .find((k) => WIDTH_LETTERS[k] === w)!
        .toUpperCase()}`,
  );
  if (widthText !== undefined) {
    const w = WIDTH_LETTERS[widthText.toLowerCase()];
    if (w === undefined || !syntax.widths.includes(w)) {
      throw new UsageError(`${spec}: width .${widthText} is not one of ${allowed.join(' ')}`);
    }
    width = w;
  } else if (size !== undefined && syntax.widths.includes(size as Width)) {
    width = size as Width;
  } else {
    throw new UsageError(
      `${spec}: missing width: append one of ${allowed.join(' ')} (e.g. ${addr}${allowed[0]})`,
    );
  }

  let writes: WriteValue[] | undefined;
  if (right !== undefined) {
    if (right === '') throw new UsageError(`${spec}: missing value after "="`);
    const max = widthMax(width);
    writes = right.split(',').map((part) => {
      const colon = part.indexOf(':');
      if (colon < 0) return { value: parseHex(part, `${spec}: value`, max) };
      return {
        value: parseHex(part.slice(0, colon), `${spec}: value`, max),
        mask: parseHex(part.slice(colon + 1), `${spec}: mask`, max),
      };
    });
  }
  return { text: spec, base, plus, width, ...(writes ? { writes } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Resolving

/** Little-endian reads over a config-space image. */
export function imageReader(bytes: Uint8Array): { read(offset: number, width: number): number } {
  return {
    read(offset: number, width: number): number {
      let value = 0;
      for (let i = width - 1; i >= 0; i--) value = value * 256 + (bytes[offset + i] ?? 0xff);
      return value;
    },
  };
}

/**
 * Where a capability starts in a config-space image, walking both capability lists the way
 * lspci and setpci do; undefined when the function has no such capability.
 */
export function findCapability(
  bytes: Uint8Array,
  extended: boolean,
  id: number,
  instance = 0,
): number | undefined {
  let seen = 0;
  for (const cap of listCapabilities(imageReader(bytes))) {
    if ((cap.kind === 'extended') !== extended || cap.id !== id) continue;
    if (seen++ === instance) return cap.offset;
  }
  return undefined;
}

/** Offset of a spec's first register; capabilities are looked up in `image()` (fetched once). */
export async function resolveOffset(
  spec: RegSpec,
  image: () => Promise<Uint8Array>,
  bdf: string,
): Promise<number> {
  const b = spec.base;
  if (b.kind !== 'capability') return b.offset + spec.plus;
  const at = findCapability(await image(), b.extended, b.id, b.instance);
  if (at === undefined) {
    const which = b.instance > 0 ? `${b.name}@${b.instance}` : b.name;
    throw new CapabilityNotFound(
      `${bdf} has no capability ${which} (${b.extended ? 'extended ' : ''}ID 0x${b.id.toString(16)})`,
    );
  }
  return at + spec.plus;
}

/** A named capability the function does not have (setpci: exit 1 as well). */
export class CapabilityNotFound extends Error {
  override readonly name = 'CapabilityNotFound';
}

/** "0010": a value in hex, zero-padded to its width, as setpci prints it. */
export function formatValue(value: bigint, width: number): string {
  return value.toString(16).padStart(width * 2, '0');
}

/** The JSON form of a value: "0x0010". */
export function jsonValue(value: bigint, width: number): string {
  return `0x${formatValue(value, width)}`;
}
