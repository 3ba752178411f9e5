import { VmmrError, isVmmrError } from '../base/errors.js';
import type { Machine } from '../machine/machine.js';
import { readBlock, writeBlock } from './block.js';
import { DMA_SPACE, dmaRead, dmaReadValue, dmaWrite, dmaWriteValue } from './dma.js';
import { read, SPACES, isSpace, write, type AccessTarget, type AccessValue } from './index.js';

/**
 * One operation of a batch. A read gives `width` (a single access) or `length` (a block access
 * of 1..4096 bytes); a write gives `width` and `value`, or `data` (a block write). `refused`
 * marks an operation its caller could not decode (a malformed value…): it fails with that
 * error when its turn comes, so results stay in order.
 */
export interface Operation {
  bdf: string;
  space: string;
  op: 'read' | 'write';
  offset: number;
  width?: number;
  length?: number;
  value?: AccessValue;
  data?: Uint8Array | undefined;
  refused?: VmmrError | undefined;
}

export type OperationResult =
  { ok: true; value?: AccessValue; data?: Uint8Array } | { ok: false; error: VmmrError };

const WRITTEN: OperationResult = Object.freeze({ ok: true });

function badSpace(op: Operation): VmmrError {
  return new VmmrError(
    'VMMR_ERR_BAD_SPACE',
    `${op.bdf}: ${JSON.stringify(op.space)} is not a space: use ${SPACES.join(', ')}`,
    {
      bdf: op.bdf,
      space: op.space,
      offset: op.offset,
    },
  );
}

/** Runs one operation on its target; a single access when `width` > 0, else a block access. */
function runOne(target: AccessTarget, op: Operation): OperationResult {
  const space = op.space as (typeof SPACES)[number];
  const width = op.width ?? 0;
  if (op.op === 'read') {
    if (width > 0) return { ok: true, value: read(target, space, op.offset, width) };
    return { ok: true, data: readBlock(target, space, op.offset, op.length ?? 0) };
  }
  if (width > 0) write(target, space, op.offset, width, op.value as AccessValue);
  else writeBlock(target, space, op.offset, op.data ?? new Uint8Array(0));
  return WRITTEN;
}

/** A `dma` operation: a value of `width` bytes, or `length` / `data` bytes of DMA memory. */
function runDma(machine: Machine, op: Operation): OperationResult {
  const width = op.width ?? 0;
  if (op.op === 'read') {
    if (width > 0) return { ok: true, value: dmaReadValue(machine, op.bdf, op.offset, width) };
    return { ok: true, data: dmaRead(machine, op.bdf, op.offset, op.length ?? 0) };
  }
  if (width > 0) dmaWriteValue(machine, op.bdf, op.offset, width, op.value as AccessValue);
  else dmaWrite(machine, op.bdf, op.offset, op.data ?? new Uint8Array(0));
  return WRITTEN;
}

/**
 * Runs operations in order as one unit: nothing else runs in between (the core is synchronous
 * and a batch never yields). Stops at the first refusal unless `continueOnError`; after a stop
 * there are fewer results than operations. Every refusal is a VmmrError naming the operation's
 * function, space and offset.
 */
export function runBatch(
  machine: Machine,
  ops: readonly Operation[],
  continueOnError: boolean,
): OperationResult[] {
  const results: OperationResult[] = [];
  let lastBdf = '';
  let lastSpace = '';
  let lastTarget: AccessTarget | undefined;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    try {
      if (op.refused) throw op.refused;
      if (op.space === DMA_SPACE) {
        results.push(runDma(machine, op));
        continue;
      }
      if (!lastTarget || op.bdf !== lastBdf || op.space !== lastSpace) {
        lastTarget = undefined;
        lastTarget = machine.target(op.bdf, op.space);
        lastBdf = op.bdf;
        lastSpace = op.space;
      }
      if (typeof op.space !== 'string' || !isSpace(op.space)) throw badSpace(op);
      results.push(runOne(lastTarget, op));
      // A config write may enable, remove or reset functions: resolve the next target afresh.
      if (op.op === 'write' && op.space === 'config') lastTarget = undefined;
    } catch (e) {
      if (!isVmmrError(e)) throw e;
      // Only a malformed BDF arrives without context.bdf, and its message already quotes it.
      const error = e.context.bdf
        ? e
        : new VmmrError(e.code, e.message, { ...e.context, bdf: op.bdf, space: op.space, offset: op.offset });
      results.push({ ok: false, error });
      if (!continueOnError) break;
    }
  }
  return results;
}
