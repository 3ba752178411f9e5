/**
 * Requests that never become requests: malformed HTTP, a request not received within
 * VMMR_REQUEST_TIMEOUT (slow loris), oversized headers. Node reports them on the socket before
 * any route runs; they are answered with a problem document like every other refusal, then the
 * connection is closed.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { VmmrError } from '../base/errors.js';
import { problemOf } from './errors.js';

/** Status, title and detail by Node's error code; anything else is a malformed request. */
const WHY: Record<string, [number, string, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [
    408,
    'Request timeout',
    'the request was not received in time (VMMR_REQUEST_TIMEOUT)',
  ],
  HPE_HEADER_OVERFLOW: [431, 'Request headers too large', 'the request headers are too large'],
};

export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, title, detail] = WHY[error.code ?? ''] ?? [
    400,
    'Malformed request',
    `malformed HTTP request (${error.code ?? 'parse error'})`,
  ];
  if (socket.writable) {
    const body = JSON.stringify({
      ...problemOf(new VmmrError('VMMR_ERR_BAD_REQUEST', detail)),
      status,
      title,
    });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/problem+json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    // end() flushes the answer first; a peer that never closes its side is cut off shortly after.
    setTimeout(() => socket.destroy(), 1000).unref();
    return;
  }
  socket.destroy();
}
