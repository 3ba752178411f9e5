/** TypeBox schemas shared by the route modules (they are also the OpenAPI document). */
import { Type, type TSchema } from 'typebox';
import { EVENT_TYPES } from '../base/events.js';
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from '../views/paging.js';
import { SPACES } from '../access/index.js';
import { MAX_BLOCK_LENGTH } from '../access/block.js';
import { HexString } from '../views/shapes.js';
import { STATUS_BY_CODE } from './errors.js';

export const BdfParam = Type.String({
  description: 'PCI address "dddd:bb:dd.f" (or "bb:dd.f" for domain 0000), hex',
  examples: ['0000:01:00.1'],
});

export const BdfParams = Type.Object({ bdf: BdfParam });

/** The address of a PF route (its example is a PF of the embedded default topology). */
export const PfBdfParams = Type.Object({
  bdf: Type.String({
    description: 'PCI address of a PF, "dddd:bb:dd.f" (or "bb:dd.f" for domain 0000), hex',
    examples: ['0000:01:00.0'],
  }),
});

export const OffsetParam = Type.String({
  description: 'byte offset, hex ("0x44") or decimal ("68")',
  examples: ['0x44'],
});

/** A number as input: JSON number (up to 2^53 - 1), "0x…" hex string or decimal string. */
export const NumberInput = (description: string) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String()], {
    description: `${description}: a JSON number, a hex string ("0x1af4") or a decimal string; above 2^53 - 1 use a hex string`,
  });

export const HexData = Type.String({
  description: `bytes as plain hex, two digits per byte in address order ("0a1b2c…"), 1..${MAX_BLOCK_LENGTH} bytes`,
  examples: ['00112233'],
});

export const Width124 = Type.Integer({ description: 'access width in bytes: 1, 2 or 4', examples: [4] });
export const Width1248 = Type.Integer({ description: 'access width in bytes: 1, 2, 4 or 8', examples: [4] });

export const Space = Type.String({ description: `address space: ${SPACES.join(', ')}`, examples: ['bar2'] });

export const Limit = Type.Integer({
  minimum: 1,
  maximum: MAX_PAGE_LIMIT,
  default: DEFAULT_PAGE_LIMIT,
  description: `page size, 1..${MAX_PAGE_LIMIT} (default ${DEFAULT_PAGE_LIMIT})`,
});

export const Cursor = Type.String({ description: 'nextCursor of the previous page' });

export const PageQuery = Type.Object(
  { limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) },
  { additionalProperties: false },
);

export const Problem = Type.Object(
  {
    type: Type.String({ description: 'urn:vmmr:error:<code>' }),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.Union(
      Object.keys(STATUS_BY_CODE).map((code) => Type.Literal(code)),
      { description: 'stable error code; the status follows it' },
    ),
    detail: Type.String(),
    bdf: Type.Optional(Type.String()),
    space: Type.Optional(Type.String()),
    offset: Type.Optional(Type.Integer()),
    width: Type.Optional(Type.Integer()),
    register: Type.Optional(Type.String()),
    in: Type.Optional(
      Type.String({ description: 'validation errors: body, querystring, params or headers' }),
    ),
    path: Type.Optional(Type.String({ description: 'validation errors: JSON pointer inside that part' })),
  },
  { description: 'RFC 9457 problem document (application/problem+json)' },
);

/** Problem responses of a route (application/problem+json), for the OpenAPI document. */
export function problems(
  ...statuses: number[]
): Record<number, { description: string; content: Record<string, { schema: TSchema }> }> {
  const out: Record<number, { description: string; content: Record<string, { schema: TSchema }> }> = {};
  for (const s of statuses)
    out[s] = {
      description: 'problem document',
      content: { 'application/problem+json': { schema: Problem } },
    };
  return out;
}

/** The echo of a single access. */
export const AccessResult = Type.Object(
  {
    bdf: Type.String(),
    space: Type.String(),
    offset: Type.Integer(),
    width: Type.Integer(),
    value: HexString('register value, zero-padded to the width'),
  },
  {},
);

export const BlockResult = Type.Object(
  {
    bdf: Type.String(),
    space: Type.String(),
    offset: Type.Integer(),
    length: Type.Integer(),
    data: HexData,
  },
  {},
);

export const DumpFormat = Type.Union([Type.Literal('json'), Type.Literal('lspci'), Type.Literal('hex')], {
  description:
    'json (default): {bdf, length, data}; lspci: `lspci -xxxx` text that `lspci -F FILE` reads; hex: 16 bytes per line',
});

export const ConfigDump = Type.Object({
  bdf: Type.String(),
  length: Type.Integer(),
  data: Type.String({ description: 'the whole config space as plain hex' }),
});

export const EventTypesQuery = Type.String({
  description: `comma-separated event types to receive (default all): ${EVENT_TYPES.join(', ')}`,
});
