/**
 * Schema validation and serialization of the routes.
 *
 * Validation: TypeBox's compiled checks (the same library the topology file uses), like
 * @fastify/type-provider-typebox's TypeBoxValidatorCompiler but without its string-format
 * plugin (ajv-formats): no route uses a string format, and loading it costs start-up time.
 * Bodies are validated as sent; query strings and path parameters are converted first
 * ("4" -> 4, "0x10" -> 16, "true" -> true).
 *
 * Serialization is fastify's own: each response goes through its route's response schema
 * (fast-json-stringify), so an answer carries exactly the fields its published schema names;
 * test/server/response-schemas.test.ts checks real answers of every route against them.
 */
import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  // Compiled on first use: start-up does not pay for routes a harness never calls.
  let check: ReturnType<typeof Compile<TSchema>> | undefined;
  const convert = httpPart !== 'body';
  return (input: unknown) => {
    check ??= Compile(schema);
    const value = convert ? Value.Convert(schema, input) : input;
    if (check.Check(value)) return { value };
    return { error: check.Errors(value) as never };
  };
};
