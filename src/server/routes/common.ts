/** Helpers shared by the route modules: single accesses with metrics, content negotiation. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { formatHexDump, formatLspciDump } from '../../views/dump.js';
import { read, write, type Space } from '../../access/index.js';
import { readBlock, writeBlock } from '../../access/block.js';
import { isVmmrError } from '../../base/errors.js';
import type { AccessTarget } from '../../access/index.js';
import { bytesToHex, hexValue } from '../hex.js';
import type { Metrics } from '../metrics.js';

export interface AccessEcho {
  bdf: string;
  space: string;
  offset: number;
  width: number;
  value: string;
}

export interface BlockEcho {
  bdf: string;
  space: string;
  offset: number;
  length: number;
  data: string;
}

function outcomeOf(e: unknown): string {
  return isVmmrError(e) ? e.code : 'error';
}

/** One read through src/access, counted in the metrics. */
export function readOne(
  metrics: Metrics,
  fn: AccessTarget,
  space: Space,
  offset: number,
  width: number,
): AccessEcho {
  try {
    const value = read(fn, space, offset, width);
    metrics.countAccess(space, width, 'read', 'ok');
    return { bdf: fn.bdf, space, offset, width, value: hexValue(value, width) };
  } catch (e) {
    metrics.countAccess(space, width, 'read', outcomeOf(e));
    throw e;
  }
}

/** One write through src/access, counted in the metrics. */
export function writeOne(
  metrics: Metrics,
  fn: AccessTarget,
  space: Space,
  offset: number,
  width: number,
  value: number | bigint,
): AccessEcho {
  try {
    write(fn, space, offset, width, value);
    metrics.countAccess(space, width, 'write', 'ok');
    return { bdf: fn.bdf, space, offset, width, value: hexValue(value, width) };
  } catch (e) {
    metrics.countAccess(space, width, 'write', outcomeOf(e));
    throw e;
  }
}

export function readBlockCounted(
  metrics: Metrics,
  fn: AccessTarget,
  space: Space,
  offset: number,
  length: number,
): Uint8Array {
  try {
    const data = readBlock(fn, space, offset, length);
    metrics.countAccess(space, 'block', 'read', 'ok');
    return data;
  } catch (e) {
    metrics.countAccess(space, 'block', 'read', outcomeOf(e));
    throw e;
  }
}

export function writeBlockCounted(
  metrics: Metrics,
  fn: AccessTarget,
  space: Space,
  offset: number,
  data: Uint8Array,
): BlockEcho {
  try {
    writeBlock(fn, space, offset, data);
    metrics.countAccess(space, 'block', 'write', 'ok');
    return { bdf: fn.bdf, space, offset, length: data.length, data: bytesToHex(data) };
  } catch (e) {
    metrics.countAccess(space, 'block', 'write', outcomeOf(e));
    throw e;
  }
}

/**
 * Whether the client prefers application/octet-stream over JSON (Accept header, q-values; ties
 * go to whichever the client listed first).
 */
export function prefersOctetStream(request: FastifyRequest): boolean {
  const accept = request.headers.accept;
  if (typeof accept !== 'string' || accept === '') return false;
  let best: { type: string; q: number; order: number } | undefined;
  accept.split(',').forEach((part, order) => {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p);
      if (m) q = Number(m[1]);
    }
    const t = type?.trim() ?? '';
    if (q <= 0 || (t !== 'application/octet-stream' && t !== 'application/json')) return;
    if (!best || q > best.q || (q === best.q && order < best.order)) best = { type: t, q, order };
  });
  return best?.type === 'application/octet-stream';
}

/** A whole config space in the asked format: lspci -xxxx text, plain hex, or JSON (the default). */
export function sendConfigDump(
  reply: FastifyReply,
  format: string | undefined,
  bdf: string,
  description: string,
  bytes: Uint8Array,
): FastifyReply {
  switch (format ?? 'json') {
    case 'lspci':
      return reply.type('text/plain; charset=utf-8').send(formatLspciDump(bdf, description, bytes));
    case 'hex':
      return reply.type('text/plain; charset=utf-8').send(formatHexDump(bytes));
    default:
      return reply.type('application/json').send({ bdf, length: bytes.length, data: bytesToHex(bytes) });
  }
}
