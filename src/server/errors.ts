/**
 * The one place where errors become HTTP: every refusal is an RFC 9457 problem document
 * (application/problem+json) carrying the vmmr error code and the access it is about.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { VmmrError, isVmmrError, type ErrorContext, type VmmrErrorCode } from '../base/errors.js';
import {
  isUnknownPropertyError,
  mostTellingError,
  unknownProperties,
  type SchemaErrorLike,
} from '../base/schema-errors.js';

/** HTTP status of every error code. */
export const STATUS_BY_CODE: Readonly<Record<VmmrErrorCode, number>> = {
  // The request or the access is malformed: fix the request.
  VMMR_ERR_BAD_REQUEST: 400,
  VMMR_ERR_BAD_BDF: 400,
  VMMR_ERR_BAD_SPACE: 400,
  VMMR_ERR_BAD_OFFSET: 400,
  VMMR_ERR_BAD_WIDTH: 400,
  VMMR_ERR_UNALIGNED: 400,
  VMMR_ERR_OUT_OF_RANGE: 400,
  VMMR_ERR_BAD_VALUE: 400,
  VMMR_ERR_SRIOV_RANGE: 400,
  VMMR_ERR_UNAUTHORIZED: 401,
  // Nothing there.
  VMMR_ERR_NOT_FOUND: 404,
  VMMR_ERR_NO_FUNCTION: 404,
  // The device's current state refuses it: change the state first.
  VMMR_ERR_DECODE_DISABLED: 409,
  VMMR_ERR_IO_DISABLED: 409,
  VMMR_ERR_SRIOV_STATE: 409,
  VMMR_ERR_TOPOLOGY: 409,
  VMMR_ERR_LIMIT: 409,
  VMMR_ERR_NOT_CONFIGURED: 409,
  // A VF address whose VF is not enabled (it existed, or may exist, but is gone now).
  VMMR_ERR_VF_DISABLED: 410,
  VMMR_ERR_TOO_LARGE: 413,
  VMMR_ERR_TOO_MANY: 429,
  // Well-formed, but the register (or document) semantics refuse it.
  VMMR_ERR_UNMAPPED: 422,
  VMMR_ERR_WIDTH_MISMATCH: 422,
  VMMR_ERR_READ_ONLY: 422,
  VMMR_ERR_WRITE_ONLY: 422,
  VMMR_ERR_NOT_TRANSITIONAL: 422,
  VMMR_ERR_STATE: 422,
  VMMR_ERR_DMA: 422,
  // A bug of vmmr's own (logged at error level).
  VMMR_ERR_INTERNAL: 500,
};

const TITLES: Readonly<Record<VmmrErrorCode, string>> = {
  VMMR_ERR_BAD_REQUEST: 'Malformed request',
  VMMR_ERR_BAD_BDF: 'Not a PCI address',
  VMMR_ERR_BAD_SPACE: 'No such address space',
  VMMR_ERR_BAD_OFFSET: 'Bad offset',
  VMMR_ERR_BAD_WIDTH: 'Width not allowed',
  VMMR_ERR_UNALIGNED: 'Unaligned access',
  VMMR_ERR_OUT_OF_RANGE: 'Access beyond the space',
  VMMR_ERR_BAD_VALUE: 'Bad value',
  VMMR_ERR_SRIOV_RANGE: 'SR-IOV value out of range',
  VMMR_ERR_UNAUTHORIZED: 'Authentication required',
  VMMR_ERR_NOT_FOUND: 'No such route',
  VMMR_ERR_NO_FUNCTION: 'No such function',
  VMMR_ERR_DECODE_DISABLED: 'Memory decode disabled',
  VMMR_ERR_IO_DISABLED: 'I/O decode disabled',
  VMMR_ERR_SRIOV_STATE: 'SR-IOV state forbids it',
  VMMR_ERR_TOPOLOGY: 'Topology conflict',
  VMMR_ERR_LIMIT: 'Process limit reached',
  VMMR_ERR_VF_DISABLED: 'VF not enabled',
  VMMR_ERR_TOO_LARGE: 'Request too large',
  VMMR_ERR_TOO_MANY: 'Too many at once',
  VMMR_ERR_NOT_CONFIGURED: 'Not configured on this server',
  VMMR_ERR_UNMAPPED: 'Nothing decoded there',
  VMMR_ERR_WIDTH_MISMATCH: 'Width does not match the register',
  VMMR_ERR_READ_ONLY: 'Register is read-only',
  VMMR_ERR_WRITE_ONLY: 'Register is write-only',
  VMMR_ERR_NOT_TRANSITIONAL: 'Not a transitional MMR VF',
  VMMR_ERR_STATE: 'State not restorable',
  VMMR_ERR_DMA: 'Outside DMA memory',
  VMMR_ERR_INTERNAL: 'Internal error',
};

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** The problem document type URI of an error code. */
export function problemType(code: VmmrErrorCode): string {
  return `urn:vmmr:error:${code}`;
}

export interface Problem extends ErrorContext {
  type: string;
  title: string;
  status: number;
  code: VmmrErrorCode;
  detail: string;
  /** Validation errors: where in the request ("body", "querystring", "params", "headers"). */
  in?: string;
  /** Validation errors: JSON pointer of the offending value inside that part. */
  path?: string;
}

export function problemOf(error: VmmrError, extra: Partial<Problem> = {}): Problem {
  const status = STATUS_BY_CODE[error.code] ?? 500;
  const problem: Problem = {
    type: problemType(error.code),
    title: TITLES[error.code] ?? error.code,
    status,
    code: error.code,
    detail: error.message,
  };
  const c = error.context;
  if (c.bdf !== undefined) problem.bdf = c.bdf;
  if (c.space !== undefined) problem.space = c.space;
  if (c.offset !== undefined) problem.offset = c.offset;
  if (c.width !== undefined) problem.width = c.width;
  if (c.register !== undefined) problem.register = c.register;
  return { ...problem, ...extra };
}

export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(problem);
}

type SchemaError = SchemaErrorLike & { params?: Record<string, unknown> };

/** One readable line out of a validator's error list, naming where the problem is. */
export function describeValidation(
  errors: readonly SchemaError[],
  part: string,
): { detail: string; path: string } {
  const best = mostTellingError(errors);
  if (!best) return { detail: `${part}: invalid`, path: '' };
  if (isUnknownPropertyError(best)) {
    const { path, names } = unknownProperties(best);
    return {
      detail: `${part}${path}: unknown property ${names.map((p) => JSON.stringify(p)).join(', ')}`,
      path,
    };
  }
  const at = `${part}${best.instancePath}`;
  let problem: string;
  if (best.keyword === 'required') {
    const missing = (best.params?.requiredProperties as string[] | undefined) ?? [];
    problem = `missing required property ${missing.map((p) => JSON.stringify(p)).join(', ')}`;
  } else {
    // A union: list what each alternative wanted at that path; constants and enums by value.
    const here = errors.filter((e) => e.instancePath === best.instancePath && e.keyword !== 'anyOf');
    const allowed = here.flatMap((e) =>
      e.keyword === 'const'
        ? [e.params?.allowedValue]
        : e.keyword === 'enum'
          ? ((e.params?.allowedValues as unknown[]) ?? [])
          : [],
    );
    const others = here
      .filter((e) => e.keyword !== 'const' && e.keyword !== 'enum' && e.message)
      .map((e) => e.message!);
    const alternatives = [
      ...(allowed.length > 0 ? [`must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`] : []),
      ...others,
    ];
    problem = [...new Set(alternatives.length > 0 ? alternatives : [best.message ?? 'is invalid'])].join(
      ' or ',
    );
  }
  return { detail: `${at}: ${problem}`, path: best.instancePath };
}

/**
 * A request that fails a hand-written check (the batch path checks its operations without a
 * schema validator): reported exactly like a schema validation error.
 */
export class RequestValidationError extends Error {
  readonly validationContext: string;
  readonly validation: SchemaError[];

  constructor(part: string, instancePath: string, message: string) {
    super(`${part}${instancePath} ${message}`);
    this.validationContext = part;
    this.validation = [{ keyword: 'check', instancePath, message }];
  }
}

const VALIDATION_PARTS = new Set(['body', 'querystring', 'params', 'headers']);

/** Maps anything a handler or fastify throws to a problem; 5xx only for our own bugs. */
export function problemFromError(error: unknown): { problem: Problem; unexpected: boolean } {
  if (isVmmrError(error)) return { problem: problemOf(error), unexpected: false };
  const e = error as FastifyError & { validation?: SchemaError[]; validationContext?: string };
  if (Array.isArray(e?.validation)) {
    const part =
      e.validationContext && VALIDATION_PARTS.has(e.validationContext) ? e.validationContext : 'request';
    const { detail, path } = describeValidation(e.validation, part);
    return {
      problem: problemOf(new VmmrError('VMMR_ERR_BAD_REQUEST', detail), { in: part, path }),
      unexpected: false,
    };
  }
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) {
    return { problem: problemOf(new VmmrError('VMMR_ERR_TOO_LARGE', oneLine(e.message))), unexpected: false };
  }
  if (status >= 400 && status < 500) {
    const problem = problemOf(new VmmrError('VMMR_ERR_BAD_REQUEST', oneLine(e.message)));
    return { problem: { ...problem, status }, unexpected: false };
  }
  return {
    problem: problemOf(new VmmrError('VMMR_ERR_INTERNAL', 'internal error: see the server log')),
    unexpected: true,
  };
}

function oneLine(text: string | undefined): string {
  return (text ?? 'bad request').split('\n')[0]!;
}

export function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { problem, unexpected } = problemFromError(error);
  if (unexpected)
    request.log.error(
      { err: error, method: request.method, url: request.url },
      (error as Error)?.message ?? 'error',
    );
  return sendProblem(reply, problem);
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = request.url.split('?')[0];
  return sendProblem(
    reply,
    problemOf(new VmmrError('VMMR_ERR_NOT_FOUND', `no route ${request.method} ${path}`)),
  );
}
