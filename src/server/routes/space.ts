/**
 * One factory for the access routes of every space (config, BARs, guest config, guest I/O):
 * GET reads one register (?width=) or a block (?length=), PUT writes one ({width, value}) or a
 * block ({data} or an application/octet-stream body). Handlers only decode the request, call
 * src/access and encode the answer.
 */
import { Type, type TSchema } from 'typebox';
import type { FastifyReply, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import type { AccessTarget, Space } from '../../access/index.js';
import { MAX_BLOCK_LENGTH } from '../../access/block.js';
import { VmmrError } from '../../base/errors.js';
import type { AppContext, VmmrApp } from '../app.js';
import { bytesToHex, hexToBytes, parseOffset, parseValue } from '../hex.js';
import { validatorCompiler } from '../validation.js';
import { AccessResult, BlockResult, HexData, NumberInput, problems } from '../schemas.js';
import {
  prefersOctetStream,
  readBlockCounted,
  readOne,
  writeBlockCounted,
  writeOne,
  type AccessEcho,
} from './common.js';

export interface SpaceRouteOptions {
  /** Route URL with :bdf and :offset (or :port) parameters. */
  url: string;
  /** Name of the offset parameter ("offset", or "port" for I/O). */
  offsetParam: 'offset' | 'port';
  params: TSchema;
  tags: string[];
  /** "config space", "BAR", … for summaries. */
  what: string;
  widths: string;
  description: string;
  /** The space an access goes to (may refuse: bad BAR number…). */
  spaceOf(params: Record<string, string>): Space;
  /** What an access goes to: the function, or a VF's guest view. */
  targetOf(ctx: AppContext, bdf: string): AccessTarget;
}

const ReadQuery = (widths: string): TSchema =>
  Type.Object(
    {
      width: Type.Optional(Type.Integer({ description: `one access of this width: ${widths}` })),
      length: Type.Optional(
        Type.Integer({
          description: `a block access of this many bytes, 1..${MAX_BLOCK_LENGTH} (instead of width)`,
        }),
      ),
    },
    { additionalProperties: false },
  );

const WriteBody = (widths: string): TSchema =>
  Type.Object(
    {
      width: Type.Optional(Type.Integer({ description: `one access of this width: ${widths}` })),
      value: Type.Optional(NumberInput('value to write (with width)')),
      data: Type.Optional(HexData),
    },
    {
      additionalProperties: false,
      description: 'either {width, value} (one access) or {data} (a block access)',
    },
  );

const BLOCK_RULE =
  `A block access (1..${MAX_BLOCK_LENGTH} bytes) is one unit: it is cut in ascending order into naturally aligned ` +
  'pieces of the largest width the space allows (8 in a BAR, else 4) that fits, as vfio-pci does for read()/write() ' +
  'on a region; it stops at the first refused piece, whose offset and width the error names.';

/** Keywords that only annotate a schema (no effect on conversion or validation). */
const ANNOTATIONS: ReadonlySet<string> = new Set(['type', 'description', 'examples', 'title']);

function plainOfType(schema: unknown, type: 'string' | 'integer'): boolean {
  const s = schema as Record<string, unknown> | undefined;
  return s?.type === type && Object.keys(s).every((k) => ANNOTATIONS.has(k));
}

/** A query value Value.Convert turns into the same number as Number() does: "0", "4", "4096"… */
const DECIMAL = /^(?:0|[1-9][0-9]{0,14})$/;

/**
 * The app's validator (validation.ts) with a shortcut for the requests single accesses make,
 * giving the same result without the generic conversion walk:
 * - path parameters whose schema is an object of plain strings (no pattern, length, format…):
 *   when every declared parameter is a string, conversion leaves them as they are and the
 *   check passes, so the value is the input;
 * - a query string whose schema is an object of plain optional integers without additional
 *   properties: when every key present is a declared property holding a canonical decimal
 *   ("2", "4096"), conversion makes each the number Number() makes of it, and the check
 *   passes.
 * Anything else (and every failure) goes to the app's validator, which produces the same
 * errors as before.
 */
const quickValidatorCompiler: FastifySchemaCompiler<TSchema> = (route) => {
  const generic = validatorCompiler(route);
  const schema = route.schema as { type?: unknown; properties?: Record<string, unknown>; required?: unknown };
  const properties = schema.type === 'object' ? schema.properties : undefined;
  if (!properties) return generic;
  const names = Object.keys(properties);
  if (route.httpPart === 'params' && names.every((k) => plainOfType(properties[k], 'string'))) {
    return (input: unknown) => {
      const params = input as Record<string, unknown>;
      for (let i = 0; i < names.length; i++) if (typeof params[names[i]!] !== 'string') return generic(input);
      return { value: input };
    };
  }
  const s = schema as { additionalProperties?: unknown };
  if (
    route.httpPart === 'querystring' &&
    s.additionalProperties === false &&
    (schema.required === undefined || (Array.isArray(schema.required) && schema.required.length === 0)) &&
    names.every((k) => plainOfType(properties[k], 'integer'))
  ) {
    const declared = new Set(names);
    return (input: unknown) => {
      const query = input as Record<string, unknown>;
      const keys = Object.keys(query);
      if (keys.length === 0) return generic(input);
      for (const key of keys) {
        const v = query[key];
        if (!declared.has(key) || typeof v !== 'string' || !DECIMAL.test(v)) return generic(input);
      }
      for (const key of keys) query[key] = Number(query[key]);
      return { value: input };
    };
  }
  return generic;
};

/** A single access's answer as JSON text: what JSON.stringify makes of it, without fastify's serializer lookup. */
function echoJson(e: AccessEcho): string {
  return `{"bdf":${JSON.stringify(e.bdf)},"space":${JSON.stringify(e.space)},"offset":${JSON.stringify(e.offset)},"width":${JSON.stringify(e.width)},"value":${JSON.stringify(e.value)}}`;
}

export function registerSpaceRoutes(app: VmmrApp, ctx: AppContext, o: SpaceRouteOptions): void {
  const offsetOf = (params: Record<string, string>): number =>
    parseOffset(params[o.offsetParam], o.offsetParam === 'port' ? 'port' : 'offset');

  app.get(
    o.url,
    {
      validatorCompiler: quickValidatorCompiler,
      schema: {
        tags: o.tags,
        summary: `Read ${o.what}: one access (?width=) or a block (?length=)`,
        description: `${o.description} ${BLOCK_RULE} A block read answers application/octet-stream when the Accept header prefers it, else JSON {data}.`,
        params: o.params,
        querystring: ReadQuery(o.widths),
        response: {
          200: {
            description: 'the value read (width) or the bytes read (length)',
            content: {
              'application/json': { schema: Type.Union([AccessResult, BlockResult]) },
              'application/octet-stream': { schema: Type.String({ format: 'binary' }) },
            },
          },
          ...problems(400, 404, 409, 410, 422),
        },
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const params = request.params as Record<string, string>;
      const { width, length } = request.query as { width?: number; length?: number };
      if ((width === undefined) === (length === undefined)) {
        throw new VmmrError(
          'VMMR_ERR_BAD_REQUEST',
          `give either ?width= (one access: ${o.widths}) or ?length= (a block of 1..${MAX_BLOCK_LENGTH} bytes)`,
        );
      }
      const space = o.spaceOf(params);
      const offset = offsetOf(params);
      const fn = o.targetOf(ctx, params.bdf!);
      if (width !== undefined) {
        // A string with a JSON type is sent as is (fastify adds "; charset=utf-8" as for objects).
        return reply
          .type('application/json')
          .send(echoJson(readOne(ctx.metrics, fn, space, offset, width)) as never);
      }
      const data = readBlockCounted(ctx.metrics, fn, space, offset, length!);
      if (prefersOctetStream(request)) {
        return reply
          .type('application/octet-stream')
          .send(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      }
      return reply
        .type('application/json')
        .send({ bdf: fn.bdf, space, offset, length: data.length, data: bytesToHex(data) });
    },
  );

  app.put(
    o.url,
    {
      schema: {
        tags: o.tags,
        summary: `Write ${o.what}: one access ({width, value}) or a block ({data} or raw bytes)`,
        description: `${o.description} ${BLOCK_RULE} The answer echoes what was written (no read-back: a read may have side effects).`,
        params: o.params,
        body: {
          content: {
            'application/json': { schema: WriteBody(o.widths) },
            'application/octet-stream': {
              schema: Type.Unknown({ description: 'the bytes of a block write' }),
            },
          },
        },
        response: {
          200: {
            description: 'what was written',
            content: { 'application/json': { schema: Type.Union([AccessResult, BlockResult]) } },
          },
          ...problems(400, 404, 409, 410, 413, 422),
        },
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const params = request.params as Record<string, string>;
      const space = o.spaceOf(params);
      const offset = offsetOf(params);
      const body = request.body;
      let data: Uint8Array | undefined;
      let single: { width: number; value: number | bigint } | undefined;
      if (Buffer.isBuffer(body)) {
        data = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
      } else {
        const b = (body ?? {}) as { width?: number; value?: unknown; data?: string };
        if (b.data !== undefined) {
          if (b.width !== undefined || b.value !== undefined) {
            throw new VmmrError(
              'VMMR_ERR_BAD_REQUEST',
              'body: give either {width, value} or {data}, not both',
            );
          }
          data = hexToBytes(b.data);
          if (!data)
            throw new VmmrError('VMMR_ERR_BAD_VALUE', 'body.data: expected plain hex, two digits per byte');
        } else {
          if (b.width === undefined || b.value === undefined) {
            throw new VmmrError(
              'VMMR_ERR_BAD_REQUEST',
              'body: give {width, value} (one access) or {data} (a block)',
            );
          }
          single = { width: b.width, value: parseValue(b.value) };
        }
      }
      const fn = o.targetOf(ctx, params.bdf!);
      const echo = single
        ? writeOne(ctx.metrics, fn, space, offset, single.width, single.value)
        : writeBlockCounted(ctx.metrics, fn, space, offset, data!);
      return reply.type('application/json').send(echo);
    },
  );
}
