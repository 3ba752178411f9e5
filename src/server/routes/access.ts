/**
 * POST /api/v1/access: a batch of accesses executed in order as one unit.
 *
 * The body is parsed and validated by fastify's stock JSON parser and schema validator (the
 * schema below is the published one). Operations come as objects ({op, offset, width, …}) or,
 * three times smaller to send and about four times faster to parse and check, as compact tuples
 * (["r", offset, width], ["w", offset, width, value], ["rb", offset, length], ["wb", offset,
 * data]) that use the batch's bdf and space. The batch runs synchronously in the core (no other
 * request can interleave: there is no await between the first and the last operation), and the
 * answer is written as JSON bytes.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { MAX_BLOCK_LENGTH } from '../../access/block.js';
import { runBatch, type Operation, type OperationResult as BatchResult } from '../../access/batch.js';
import { SPACES, type AccessValue } from '../../access/index.js';
import { VmmrError } from '../../base/errors.js';
import type { AppContext, RouteModule, VmmrApp } from '../app.js';
import { RequestValidationError } from '../errors.js';
import { bytesToHex, hexOfWidth, hexToBytes, hexValue, parseInteger } from '../hex.js';
import type { AccessTally } from '../metrics.js';
import { HexData, NumberInput, problems } from '../schemas.js';

const OperationObject = Type.Object(
  {
    bdf: Type.Optional(Type.String({ description: "function address (default: the batch's bdf)" })),
    space: Type.Optional(
      Type.String({ description: `address space: ${SPACES.join(', ')} (default: the batch's space)` }),
    ),
    op: Type.Union([Type.Literal('read'), Type.Literal('write')]),
    offset: NumberInput('offset inside the space'),
    width: Type.Optional(Type.Integer({ description: 'one access of this width (1, 2, 4; 8 in BARs)' })),
    length: Type.Optional(
      Type.Integer({ description: `a block read of this many bytes, 1..${MAX_BLOCK_LENGTH}` }),
    ),
    value: Type.Optional(NumberInput('value of a write with width')),
    data: Type.Optional(HexData),
  },
  {
    additionalProperties: false,
    description: 'read: width or length; write: width + value, or data (a block write)',
  },
);

/** A positional operation (JSON Schema 2020-12 prefixItems, as OpenAPI 3.1 has it). */
function tuple<T extends unknown[]>(kind: string, items: TSchema[], description: string) {
  return Type.Unsafe<T>({
    type: 'array',
    prefixItems: [{ type: 'string', const: kind }, ...items],
    items: false,
    minItems: items.length + 1,
    description,
  });
}

const Offset = NumberInput('offset');
const Width = Type.Integer({ description: 'width' });
const ReadTuple = tuple<['r', number | string, number]>('r', [Offset, Width], '["r", offset, width]: a read');
const WriteTuple = tuple<['w', number | string, number, number | string]>(
  'w',
  [Offset, Width, NumberInput('value')],
  '["w", offset, width, value]: a write',
);
const BlockReadTuple = tuple<['rb', number | string, number]>(
  'rb',
  [Offset, Type.Integer({ description: 'length' })],
  `["rb", offset, length]: a block read of 1..${MAX_BLOCK_LENGTH} bytes`,
);
const BlockWriteTuple = tuple<['wb', number | string, string]>(
  'wb',
  [Offset, HexData],
  '["wb", offset, data]: a block write',
);

const OperationSchema = Type.Union([OperationObject, ReadTuple, WriteTuple, BlockReadTuple, BlockWriteTuple]);

const OperationResult = Type.Union([
  Type.Object({
    ok: Type.Literal(true),
    value: Type.Optional(Type.String({ description: 'value read, hex zero-padded to the width' })),
    data: Type.Optional(Type.String({ description: 'bytes read by a block read, plain hex' })),
  }),
  Type.Object({
    ok: Type.Literal(false),
    error: Type.Object({
      code: Type.String(),
      detail: Type.String(),
      bdf: Type.String(),
      space: Type.String(),
      offset: Type.Integer(),
      width: Type.Optional(
        Type.Integer({ description: 'width of the refused access (of the refused piece of a block)' }),
      ),
      length: Type.Optional(Type.Integer({ description: 'length of a refused block operation' })),
      register: Type.Optional(Type.String()),
    }),
  }),
]);

const OnError = Type.Union([Type.Literal('stop'), Type.Literal('continue')], {
  description: 'stop (default): stop at the first refused operation; continue: run every operation',
});

const BatchBody = Type.Object(
  {
    bdf: Type.Optional(
      Type.String({ description: 'bdf of every operation that gives none (tuples always use it)' }),
    ),
    space: Type.Optional(
      Type.String({ description: 'space of every operation that gives none (tuples always use it)' }),
    ),
    ops: Type.Array(OperationSchema),
    onError: Type.Optional(OnError),
  },
  { additionalProperties: false },
);
type BatchBody = Static<typeof BatchBody>;
type RawOperation = BatchBody['ops'][number];

/** A decoded operation: every field present (one object shape: fast to run). */
type BatchOperation = Operation & { width: number; length: number; value: AccessValue };

const SPACE_INDEX = new Map<string, number>(SPACES.map((s, i) => [s, i]));

function invalid(i: number, field: string, message: string): never {
  throw new RequestValidationError('body', `/ops/${i}${field ? `/${field}` : ''}`, message);
}

function badWidth(bdf: string, space: string, width: number): VmmrError {
  return new VmmrError(
    'VMMR_ERR_BAD_WIDTH',
    `${bdf} ${space}: width ${width} is not allowed: use 1, 2, 4 (8 in a BAR)`,
  );
}

/** An operation with its defaults; `refused` set when a value is bad (it fails in its turn). */
function blank(
  bdf: string,
  space: string,
  kind: 'read' | 'write',
  rawOffset: number | string,
): BatchOperation {
  const offset =
    typeof rawOffset === 'number' && Number.isSafeInteger(rawOffset) ? rawOffset : parseInteger(rawOffset);
  const op: BatchOperation = {
    bdf,
    space,
    op: kind,
    offset: 0,
    width: 0,
    length: 0,
    value: 0,
    data: undefined,
    refused: undefined,
  };
  if (typeof offset === 'number') op.offset = offset;
  else
    op.refused = new VmmrError(
      'VMMR_ERR_BAD_OFFSET',
      `${bdf}: offset ${JSON.stringify(rawOffset)} is not a valid offset`,
    );
  return op;
}

function setWidth(op: BatchOperation, width: number): void {
  op.width = width;
  // width <= 0 would read as "block": refuse it as the width it is.
  if (width <= 0) op.refused ??= badWidth(op.bdf, op.space, width);
}

function setValue(op: BatchOperation, value: number | string): void {
  const parsed = typeof value === 'number' && Number.isSafeInteger(value) ? value : parseInteger(value);
  if (parsed === undefined) {
    op.refused ??= new VmmrError(
      'VMMR_ERR_BAD_VALUE',
      `${op.bdf}: value ${JSON.stringify(value)} is not an unsigned integer`,
    );
  } else {
    op.value = parsed;
  }
}

function setData(op: BatchOperation, data: string): void {
  const bytes = hexToBytes(data);
  op.data = bytes ?? new Uint8Array(0);
  op.length = op.data.length;
  if (!bytes)
    op.refused ??= new VmmrError(
      'VMMR_ERR_BAD_VALUE',
      `${op.bdf}: data is not plain hex with two digits per byte`,
    );
}

function defaults(
  i: number,
  bdf: string | undefined,
  space: string | undefined,
): { bdf: string; space: string } {
  if (bdf === undefined) invalid(i, 'bdf', 'is required (or give the batch a default bdf)');
  if (space === undefined) invalid(i, 'space', 'is required (or give the batch a default space)');
  return { bdf, space };
}

function fromTuple(
  t: Exclude<RawOperation, Static<typeof OperationObject>>,
  i: number,
  body: BatchBody,
): BatchOperation {
  const { bdf, space } = defaults(i, body.bdf, body.space);
  const op = blank(bdf, space, t[0] === 'r' || t[0] === 'rb' ? 'read' : 'write', t[1]);
  switch (t[0]) {
    case 'r':
      setWidth(op, t[2]);
      break;
    case 'w':
      setWidth(op, t[2]);
      setValue(op, t[3]);
      break;
    case 'rb':
      op.length = t[2];
      break;
    case 'wb':
      setData(op, t[2]);
      break;
  }
  return op;
}

/** The rules the schema cannot say: which fields go together. */
function fromObject(o: Static<typeof OperationObject>, i: number, body: BatchBody): BatchOperation {
  const { bdf, space } = defaults(i, o.bdf ?? body.bdf, o.space ?? body.space);
  const op = blank(bdf, space, o.op, o.offset);
  if (o.op === 'read') {
    if (o.value !== undefined || o.data !== undefined)
      invalid(i, o.value !== undefined ? 'value' : 'data', 'is not allowed on a read');
    if ((o.width === undefined) === (o.length === undefined))
      invalid(i, '', 'a read needs exactly one of width and length');
    if (o.width !== undefined) setWidth(op, o.width);
    else op.length = o.length!;
    return op;
  }
  if (o.length !== undefined) invalid(i, 'length', 'is not allowed on a write: a block write gives data');
  if (o.data !== undefined) {
    if (o.width !== undefined || o.value !== undefined)
      invalid(i, '', 'a write gives either width and value, or data');
    setData(op, o.data);
    return op;
  }
  if (o.width === undefined || o.value === undefined)
    invalid(i, '', 'a write needs width and value, or data');
  setWidth(op, o.width);
  setValue(op, o.value);
  return op;
}

function decode(body: BatchBody): BatchOperation[] {
  const raw = body.ops;
  const ops = new Array<BatchOperation>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const r = raw[i]!;
    ops[i] = Array.isArray(r)
      ? fromTuple(r, i, body)
      : fromObject(r as Static<typeof OperationObject>, i, body);
  }
  return ops;
}

const OK = '{"ok":true}';

const ASCII = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));
const OK_BYTES = ASCII(OK);
const VALUE_OPEN = ASCII('{"ok":true,"value":"0x');
const HEX_DIGITS = ASCII('0123456789abcdef');
const COMMA = 0x2c;
const QUOTE = 0x22;
const CLOSE_BRACE = 0x7d;
/** The longest result written byte by byte: a comma and a 4-byte value read. */
const MAX_FIXED_RESULT = 1 + VALUE_OPEN.length + 8 + 2;
/** Room for the end of the answer (`],"executed":N,"failed":N}`). */
const TAIL_ROOM = 64;

/** A copy of `buf`'s first `used` bytes in a buffer of at least `size` bytes. */
function grow(buf: Buffer, used: number, size: number): Buffer {
  const bigger = Buffer.allocUnsafe(Math.max(size, 2 * buf.length));
  buf.copy(bigger, 0, 0, used);
  return bigger;
}

function errorJson(op: BatchOperation, error: VmmrError): string {
  const c = error.context;
  const out: Record<string, unknown> = {
    code: error.code,
    detail: error.message,
    bdf: c.bdf ?? op.bdf,
    space: c.space ?? op.space,
    offset: c.offset ?? op.offset,
  };
  const width = c.width ?? (op.width > 0 ? op.width : undefined);
  if (width !== undefined) out.width = width;
  if (op.width === 0) out.length = op.length;
  if (c.register !== undefined) out.register = c.register;
  return `{"ok":false,"error":${JSON.stringify(out)}}`;
}

/**
 * The answer as JSON bytes; counts every operation in the tally. The frequent results ({"ok":
 * true} and a read value of width 1, 2 or 4: the digits hexOfWidth gives, "0x" + 2 × width
 * zero-padded) are written byte by byte, the others as UTF-8 text. The buffer always keeps room
 * for every remaining result in its fixed form and for the end, so only text checks the size.
 * A Buffer goes out as is (fastify takes its length for Content-Length), where a long string
 * built by concatenation would be flattened, measured and encoded first.
 */
function encodeResults(
  ops: readonly BatchOperation[],
  results: readonly BatchResult[],
  tally: AccessTally,
): Buffer {
  const n = results.length;
  let failed = 0;
  let buf: Buffer = Buffer.allocUnsafe(16 + n * MAX_FIXED_RESULT + TAIL_ROOM);
  let pos = buf.write('{"results":[', 0, 'latin1');
  /** Writes text, growing the buffer so that the room for the rest stays. */
  const text = (s: string, remaining: number): void => {
    const length = Buffer.byteLength(s);
    const need = pos + length + remaining * MAX_FIXED_RESULT + TAIL_ROOM;
    if (need > buf.length) buf = grow(buf, pos, need);
    pos += buf.write(s, pos, 'utf8');
  };
  for (let i = 0; i < n; i++) {
    const r = results[i]!;
    const op = ops[i]!;
    if (i > 0) buf[pos++] = COMMA;
    const width = op.width > 0 ? op.width : 'block';
    if (r.ok) {
      const value = r.value;
      if (value === undefined && r.data === undefined) {
        buf.set(OK_BYTES, pos);
        pos += OK_BYTES.length;
      } else if (typeof value === 'number' && (op.width === 1 || op.width === 2 || op.width === 4)) {
        buf.set(VALUE_OPEN, pos);
        pos += VALUE_OPEN.length;
        // The bytes hexOfWidth formats, most significant first.
        for (let shift = 8 * op.width - 8; shift >= 0; shift -= 8) {
          const b = shift === 24 ? value >>> 24 : (value >>> shift) & 0xff;
          buf[pos++] = HEX_DIGITS[b >>> 4]!;
          buf[pos++] = HEX_DIGITS[b & 15]!;
        }
        buf[pos++] = QUOTE;
        buf[pos++] = CLOSE_BRACE;
      } else if (value !== undefined) {
        text(
          `{"ok":true,"value":"${typeof value === 'number' && op.width <= 4 ? hexOfWidth(value, op.width) : hexValue(value, op.width)}"}`,
          n - i - 1,
        );
      } else {
        text(`{"ok":true,"data":"${bytesToHex(r.data!)}"}`, n - i - 1);
      }
      tally.add(op.space, width, op.op, 'ok');
    } else {
      failed++;
      text(errorJson(op, r.error), n - i - 1);
      if (SPACE_INDEX.has(op.space)) tally.add(op.space, width, op.op, r.error.code);
    }
  }
  text(`],"executed":${n},"failed":${failed}}`, 0);
  return buf.subarray(0, pos);
}

const DESCRIPTION = (maxBatch: number): string =>
  `Up to VMMR_MAX_BATCH operations (this server: ${maxBatch}; more is 413) run in order, with no other ` +
  'request in between. Each is a single access (width) or a block access (length for a read, data for a ' +
  `write: 1..${MAX_BLOCK_LENGTH} bytes cut into naturally aligned pieces as vfio-pci does). An operation is an ` +
  'object, or a compact tuple using the batch bdf and space: ["r", offset, width], ["w", offset, width, value], ' +
  '["rb", offset, length], ["wb", offset, data] (a third of the bytes, and the fastest to parse). Results come in ' +
  'order: {ok: true, value} for a read, {ok: true, data} for a block read, {ok: true} for a write, or ' +
  '{ok: false, error} with the code and the refused access. onError "stop" (default) ends the batch at the ' +
  'first refusal (later operations have no result); "continue" runs them all. A malformed operation ' +
  '(missing field, wrong JSON type) rejects the whole batch with 400 before anything runs; a bad value ' +
  '(unknown space, unaligned offset, bad hex…) fails that operation only. Spaces: config, bar0..bar5, io ' +
  "(guest I/O BAR0 of a VF), guest-config, dma (the function's DMA memory: values of 1, 2, 4 or 8 bytes, " +
  'little-endian, or blocks). See docs/performance.md for throughput.';

export const accessRoutes: RouteModule = (app, ctx) => {
  registerBatchRoute(app, ctx);
};

function registerBatchRoute(app: VmmrApp, ctx: AppContext): void {
  const maxBatch = ctx.limits.maxBatch;
  app.post(
    '/api/v1/access',
    {
      // Refused before validation: a batch over the limit is 413, and is not checked op by op.
      preValidation: async (request) => {
        const ops = (request.body as { ops?: unknown } | undefined)?.ops;
        if (Array.isArray(ops) && ops.length > maxBatch) {
          throw new VmmrError(
            'VMMR_ERR_TOO_LARGE',
            `a batch of ${ops.length} operations exceeds the limit of ${maxBatch} (VMMR_MAX_BATCH)`,
          );
        }
      },
      schema: {
        tags: ['access'],
        summary: 'Run a batch of accesses as one unit',
        description: DESCRIPTION(maxBatch),
        body: BatchBody,
        response: {
          200: Type.Object({
            results: Type.Array(OperationResult),
            executed: Type.Integer({ description: 'operations that ran (the refused one included)' }),
            failed: Type.Integer({ description: 'operations refused' }),
          }),
          ...problems(400, 413),
        },
      },
    },
    async (request, reply) => {
      const body = request.body as BatchBody;
      const ops = decode(body);
      // From here to the answer: synchronous, one unit.
      const results = runBatch(ctx.emulator.machine, ops, body.onError === 'continue');
      const tally = ctx.metrics.tally();
      const json = encodeResults(ops, results, tally);
      tally.flush();
      // Bytes are sent as is (fastify serializes objects only): the schema above documents them.
      return reply.type('application/json; charset=utf-8').send(json as never);
    },
  );
}
