/**
 * DMA memory of a function as a harness reaches it: what the device would see behind its IOMMU
 * (docs/data-path.md "REST"). Reads and writes of 1..MAX_DMA_LENGTH bytes, or single
 * little-endian values of 1, 2, 4 or 8 bytes (the batch space `dma`); every refusal names the
 * function, the address and the length, and says why (outside the space, above 2^53, or the
 * VMMR_DMA_LIMIT budget spent).
 */
import { VmmrError } from '../base/errors.js';
import { DmaFault } from '../dma/space.js';
import type { Machine } from '../machine/machine.js';
import type { AccessValue } from './index.js';

/** The batch space name of DMA memory. */
export const DMA_SPACE = 'dma';
/** Largest DMA transfer of one request (vmmr decision: 1 MiB keeps one answer bounded). */
export const MAX_DMA_LENGTH = 1 << 20;

function where(bdf: string, address: number, length: number): string {
  return `${bdf} dma address 0x${address.toString(16)} length ${length}`;
}

function refuse(bdf: string, address: number, length: number, why: string): never {
  throw new VmmrError('VMMR_ERR_DMA', `${where(bdf, address, length)}: ${why}`, {
    bdf,
    space: DMA_SPACE,
    offset: address,
  });
}

function checked(bdf: string, address: number, length: number): void {
  if (!Number.isSafeInteger(address) || address < 0)
    refuse(bdf, address, length, 'the address is not a non-negative integer below 2^53');
  if (!Number.isInteger(length) || length < 1 || length > MAX_DMA_LENGTH)
    refuse(bdf, address, length, `a transfer is 1..${MAX_DMA_LENGTH} bytes`);
}

/** Runs a DMA access, turning a fault into a named refusal. */
function guarded<T>(bdf: string, address: number, length: number, run: () => T): T {
  try {
    return run();
  } catch (e) {
    if (!(e instanceof DmaFault)) throw e;
    if (e.reason === 'limit')
      throw new VmmrError('VMMR_ERR_LIMIT', `${where(bdf, address, length)}: ${e.message}`, { bdf });
    return refuse(bdf, address, length, e.message);
  }
}

export function dmaRead(machine: Machine, bdf: string, address: number, length: number): Uint8Array {
  const path = machine.dataPathOf(bdf);
  checked(path.fn.bdf, address, length);
  const out = new Uint8Array(length);
  guarded(path.fn.bdf, address, length, () => path.dma.read(address, out, 0, length));
  return out;
}

export function dmaWrite(machine: Machine, bdf: string, address: number, data: Uint8Array): void {
  const path = machine.dataPathOf(bdf);
  checked(path.fn.bdf, address, data.length);
  guarded(path.fn.bdf, address, data.length, () => path.dma.write(address, data, 0, data.length));
}

function checkWidth(bdf: string, address: number, width: number): void {
  if (width !== 1 && width !== 2 && width !== 4 && width !== 8)
    refuse(bdf, address, width, `width ${String(width)} is not allowed in dma: use 1, 2, 4, 8`);
}

/** A little-endian value of `width` bytes (a number up to 4 bytes, a bigint for 8). */
export function dmaReadValue(machine: Machine, bdf: string, address: number, width: number): AccessValue {
  checkWidth(bdf, address, width);
  const bytes = dmaRead(machine, bdf, address, width);
  let value = 0n;
  for (let i = width - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
  return width === 8 ? value : Number(value);
}

export function dmaWriteValue(
  machine: Machine,
  bdf: string,
  address: number,
  width: number,
  value: AccessValue,
): void {
  checkWidth(bdf, address, width);
  const v = typeof value === 'bigint' ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n;
  if (v < 0n || v >= 1n << BigInt(8 * width))
    throw new VmmrError(
      'VMMR_ERR_BAD_VALUE',
      `${where(bdf, address, width)}: value ${String(value)} does not fit in ${width} bytes`,
      {
        bdf,
        space: DMA_SPACE,
        offset: address,
        width,
      },
    );
  const bytes = new Uint8Array(width);
  for (let i = 0; i < width; i++) bytes[i] = Number((v >> BigInt(8 * i)) & 0xffn);
  dmaWrite(machine, bdf, address, bytes);
}
