/**
 * Choosing the one validation error worth reporting out of a JSON-schema validator's list
 * (TypeBox's, or fastify's Ajv): an unknown property or a missing one explains the others, so
 * they come first; a union's own "matches none" and a `false` schema's come last, after what
 * each alternative wanted.
 */
export interface SchemaErrorLike {
  keyword: string;
  instancePath: string;
  schemaPath?: string;
  params?: object;
  message?: string;
}

/** TypeBox reports `additionalProperties: false` as a failed `false` schema at that path. */
export function isUnknownPropertyError(e: SchemaErrorLike): boolean {
  return (
    e.keyword === 'additionalProperties' ||
    (e.keyword === 'boolean' && (e.schemaPath ?? '').endsWith('/additionalProperties'))
  );
}

function rank(e: SchemaErrorLike): number {
  if (isUnknownPropertyError(e)) return 0;
  if (e.keyword === 'required') return 1;
  if (e.keyword === 'anyOf') return 8;
  if (e.keyword === 'boolean') return 9;
  return 2;
}

/** The most telling error; among equals, the first in document order. */
export function mostTellingError<E extends SchemaErrorLike>(errors: readonly E[]): E | undefined {
  return [...errors].sort((a, b) => rank(a) - rank(b))[0];
}

/** Where an unknown-property error is (the object's path) and the property names it reports. */
export function unknownProperties(e: SchemaErrorLike): { path: string; names: string[] } {
  if (e.keyword === 'additionalProperties') {
    const names =
      ((e.params as { additionalProperties?: unknown } | undefined)?.additionalProperties as
        string[] | undefined) ?? [];
    return { path: e.instancePath, names };
  }
  const slash = e.instancePath.lastIndexOf('/');
  const name = e.instancePath
    .slice(slash + 1)
    .replace(/~1/g, '/')
    .replace(/~0/g, '~');
  return { path: e.instancePath.slice(0, slash), names: [name] };
}
