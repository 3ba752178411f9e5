/**
 * POST /api/v1/access: a batch of accesses executed in order as one unit.
 *
 * The fast path: the envelope ({ops, onError}) is checked by a compiled schema, each operation
 * by a hand-written check (no per-operation schema work), the batch runs synchronously in the
 * core (no other request can interleave: there is no await between the first and the last
 * operation), and the answer is written as JSON bytes. The body itself is read straight from its
 * bytes when it has the usual shape (batch-body.ts), with JSON.parse for everything else.
 */
import { Type } from 'typebox';
import { Compile } from 'typebox/compile';
import type { FastifySchemaCompiler } from 'fastify';
import { MAX_BLOCK_LENGTH } from '../../access/block.js';
import { runBatch, type Operation, type OperationResult as BatchResult } from '../../access/batch.js';
import type { AccessValue } from '../../access/index.js';
import { SPACES } from '../../access/index.js';
import { VmmrError } from '../../base/errors.js';
import type { AppContext, RouteModule, VmmrApp } from '../app.js';
import { RequestValidationError } from '../errors.js';
import { bytesToHex, hexOfWidth, hexToBytes, hexValue, parseInteger } from '../hex.js';
import type { AccessTally } from '../metrics.js';
import { HexData, NumberInput, problems } from '../schemas.js';
import { scanBatch, ScannedBatch } from './batch-body.js';

const Operation = Type.Object(
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

/** What the schema validator checks: the envelope only. Operations are checked by hand. */
const DefaultBdf = Type.String({ description: 'bdf of every operation that gives none' });
const DefaultSpace = Type.String({ description: 'space of every operation that gives none' });

const Envelope = Type.Object(
  {
    bdf: Type.Optional(DefaultBdf),
    space: Type.Optional(DefaultSpace),
    ops: Type.Array(Type.Unknown()),
    onError: Type.Optional(OnError),
  },
  { additionalProperties: false },
);
const envelope = Compile(Envelope);

const envelopeValidator: FastifySchemaCompiler<unknown> = () => (value) => {
  // A scanned body satisfies the envelope by construction (batch-body.ts).
  if (value instanceof ScannedBatch || envelope.Check(value)) return { value };
  return { error: envelope.Errors(value) as never };
};

/** A decoded operation: every field present (one object shape: fast to run). */
type BatchOperation = Operation & { width: number; length: number; value: AccessValue };

const SPACE_INDEX = new Map<string, number>(SPACES.map((s, i) => [s, i]));

function invalid(i: number, field: string, message: string): never {
  throw new RequestValidationError('body', `/ops/${i}${field ? `/${field}` : ''}`, message);
}

/** Decodes one operation; malformed structure is a 400, bad values fail the operation in turn. */
function decodeOperation(
  raw: unknown,
  i: number,
  defaultBdf: unknown,
  defaultSpace: unknown,
): BatchOperation {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) invalid(i, '', 'must be an object');
  const o = raw as Record<string, unknown>;
  const bdf = o.bdf ?? defaultBdf;
  const space = o.space ?? defaultSpace;
  const kind = o.op;
  if (typeof bdf !== 'string')
    invalid(
      i,
      'bdf',
      bdf === undefined ? 'is required (or give the batch a default bdf)' : 'must be a string',
    );
  if (typeof space !== 'string') {
    invalid(
      i,
      'space',
      space === undefined ? 'is required (or give the batch a default space)' : 'must be a string',
    );
  }
  if (kind !== 'read' && kind !== 'write') invalid(i, 'op', 'must be "read" or "write"');
  const width = o.width;
  const length = o.length;
  const value = o.value;
  const data = o.data;
  let refused: VmmrError | undefined;

  let offset = 0;
  const rawOffset = o.offset;
  if (typeof rawOffset === 'number' && Number.isSafeInteger(rawOffset) && rawOffset >= 0) {
    offset = rawOffset;
  } else if (typeof rawOffset === 'string' || typeof rawOffset === 'number') {
    const parsed = parseInteger(rawOffset);
    if (typeof parsed === 'number') offset = parsed;
    else
      refused = new VmmrError(
        'VMMR_ERR_BAD_OFFSET',
        `${bdf}: offset ${JSON.stringify(rawOffset)} is not a valid offset`,
      );
  } else {
    invalid(i, 'offset', rawOffset === undefined ? 'is required' : 'must be a number or a string');
  }

  if (width !== undefined && (typeof width !== 'number' || !Number.isInteger(width)))
    invalid(i, 'width', 'must be an integer');
  if (length !== undefined && (typeof length !== 'number' || !Number.isInteger(length)))
    invalid(i, 'length', 'must be an integer');

  const op: BatchOperation = {
    bdf,
    space,
    op: kind,
    offset,
    width: 0,
    length: 0,
    value: 0,
    data: undefined,
    refused,
  };
  if (kind === 'read') {
    if (value !== undefined || data !== undefined)
      invalid(i, value !== undefined ? 'value' : 'data', 'is not allowed on a read');
    if ((width === undefined) === (length === undefined))
      invalid(i, '', 'a read needs exactly one of width and length');
    if (width !== undefined) op.width = width as number;
    else op.length = length as number;
    // width <= 0 would read as "block": refuse it as the width it is.
    if (width !== undefined && (width as number) <= 0) op.refused ??= badWidth(bdf, space, width as number);
    return op;
  }
  if (length !== undefined) invalid(i, 'length', 'is not allowed on a write: a block write gives data');
  if (data !== undefined) {
    if (width !== undefined || value !== undefined)
      invalid(i, '', 'a write gives either width and value, or data');
    if (typeof data !== 'string') invalid(i, 'data', 'must be a string');
    const bytes = hexToBytes(data);
    if (bytes) {
      op.data = bytes;
      op.length = bytes.length;
    } else {
      op.data = new Uint8Array(0);
      op.refused ??= new VmmrError(
        'VMMR_ERR_BAD_VALUE',
        `${bdf}: data is not plain hex with two digits per byte`,
      );
    }
    return op;
  }
  if (width === undefined || value === undefined) invalid(i, '', 'a write needs width and value, or data');
  op.width = width as number;
  if ((width as number) <= 0) op.refused ??= badWidth(bdf, space, width as number);
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
    op.value = value;
  } else if (typeof value === 'number' || typeof value === 'string') {
    const parsed = parseInteger(value);
    if (parsed === undefined) {
      op.refused ??= new VmmrError(
        'VMMR_ERR_BAD_VALUE',
        `${bdf}: value ${JSON.stringify(value)} is not an unsigned integer`,
      );
    } else {
      op.value = parsed;
    }
  } else {
    invalid(i, 'value', 'must be a number or a string');
  }
  return op;
}

function badWidth(bdf: string, space: string, width: number): VmmrError {
  return new VmmrError(
    'VMMR_ERR_BAD_WIDTH',
    `${bdf} ${space}: width ${width} is not allowed: use 1, 2, 4 (8 in a BAR)`,
  );
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

/**
 * The batch body: read straight from the bytes when it has the usual shape (batch-body.ts),
 * else plain JSON.parse. fastify's default parser also scans the text for "__proto__" and
 * "constructor" keys (a guard for code that merges parsed objects into others); the batch path
 * only reads named fields of each operation, so the scans are pure cost here.
 */
function parseJson(
  _request: unknown,
  body: string | Buffer,
  done: (err: Error | null, value?: unknown) => void,
): void {
  const scanned = typeof body === 'string' ? undefined : scanBatch(body);
  if (scanned) {
    done(null, scanned);
    return;
  }
  try {
    done(null, JSON.parse(typeof body === 'string' ? body : body.toString('utf8')));
  } catch (e) {
    const err = new Error(`body is not valid JSON: ${(e as Error).message.split('\n')[0]}`) as Error & {
      statusCode: number;
    };
    err.statusCode = 400;
    done(err);
  }
}

export const accessRoutes: RouteModule = async (root, ctx) => {
  // An encapsulated scope: the JSON parser above applies to this route only.
  await root.register(async (app) => {
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parseJson);
    registerBatchRoute(app as VmmrApp, ctx);
  });
};

function registerBatchRoute(app: VmmrApp, ctx: AppContext): void {
  app.post(
    '/api/v1/access',
    {
      validatorCompiler: envelopeValidator,
      schema: {
        tags: ['access'],
        summary: 'Run a batch of accesses as one unit',
        description:
          `Up to VMMR_MAX_BATCH operations (this server: ${ctx.limits.maxBatch}; more is 413) run in order, with no other ` +
          'request in between. Each is a single access (width) or a block access (length for a read, data for a ' +
          `write: 1..${MAX_BLOCK_LENGTH} bytes cut into naturally aligned pieces as vfio-pci does). Results come in ` +
          'order: {ok: true, value} for a read, {ok: true, data} for a block read, {ok: true} for a write, or ' +
          '{ok: false, error} with the code and the refused access. onError "stop" (default) ends the batch at the ' +
          'first refusal (later operations have no result); "continue" runs them all. A malformed operation ' +
          '(missing field, wrong JSON type) rejects the whole batch with 400 before anything runs; a bad value ' +
          '(unknown space, unaligned offset, bad hex…) fails that operation only. Spaces: config, bar0..bar5, io ' +
          '(guest I/O BAR0 of a VF), guest-config. The batch may give a default bdf and space for operations that ' +
          'give none: a batch aimed at one function is then about half the size to send and to parse. See the ' +
          'README section Performance for throughput.',
        body: Type.Object(
          {
            bdf: Type.Optional(DefaultBdf),
            space: Type.Optional(DefaultSpace),
            ops: Type.Array(Operation, { maxItems: ctx.limits.maxBatch }),
            onError: Type.Optional(OnError),
          },
          { additionalProperties: false },
        ),
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
      const body = request.body as unknown as {
        bdf?: string;
        space?: string;
        ops: unknown[];
        onError?: 'stop' | 'continue';
      };
      const raw = body.ops;
      if (raw.length > ctx.limits.maxBatch) {
        throw new VmmrError(
          'VMMR_ERR_TOO_LARGE',
          `a batch of ${raw.length} operations exceeds the limit of ${ctx.limits.maxBatch} (VMMR_MAX_BATCH)`,
        );
      }
      const ops = new Array<BatchOperation>(raw.length);
      for (let i = 0; i < raw.length; i++) ops[i] = decodeOperation(raw[i], i, body.bdf, body.space);
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
