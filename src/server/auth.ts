/**
 * Bearer-token authentication of /api routes (VMMR_TOKEN). The presented token and the expected
 * one are compared as SHA-256 digests with crypto.timingSafeEqual, so the comparison takes the
 * same time whatever the token's length or content. The token never reaches a log line (the
 * logger redacts the Authorization header).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { VmmrError } from '../base/errors.js';
import { problemOf, sendProblem } from './errors.js';

const BEARER_RE = /^Bearer[ \t]+(\S+)[ \t]*$/i;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Routes under this prefix require the token. */
export const PROTECTED_PREFIX = '/api/';

export function bearerAuth(
  token: string,
): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
  const expected = digest(token);
  return async (request, reply) => {
    // The matched route template, not the raw URL: no encoding trick can dodge the check.
    const route = request.routeOptions.url;
    if (route === undefined || !route.startsWith(PROTECTED_PREFIX)) return undefined;
    const header = request.headers.authorization;
    const presented = typeof header === 'string' ? BEARER_RE.exec(header)?.[1] : undefined;
    const ok = presented !== undefined && timingSafeEqual(digest(presented), expected);
    if (ok) return undefined;
    const detail =
      header === undefined
        ? 'this server requires "Authorization: Bearer <token>" on /api routes'
        : presented === undefined
          ? 'the Authorization header is not "Bearer <token>"'
          : 'the bearer token is not the one this server was started with';
    reply.header(
      'www-authenticate',
      `Bearer realm="vmmr"${presented === undefined ? '' : ', error="invalid_token"'}`,
    );
    return sendProblem(reply, problemOf(new VmmrError('VMMR_ERR_UNAUTHORIZED', detail)));
  };
}
