import { pciHeader } from '../spec/index.js';
import { VmmrError, describeAccess, isVmmrError, showValue } from '../base/errors.js';
import type { MmrVf } from '../mmr/vf.js';
import { GuestView } from '../translator/guest-view.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';

/**
 * The one entry point for every access. Spaces:
 * - `config`: the function's 4 KiB config space, widths 1/2/4;
 * - `bar0`..`bar5`: a memory BAR, widths 1/2/4/8 (8 bytes delivered whole, never split);
 * - `io`: the translator's I/O BAR0 of a VF (port offsets from 0), widths 1/2/4;
 * - `guest-config`: the translator's config space of a VF, widths 1/2/4.
 * The target of `config` and the BARs is a function; of `io` and `guest-config` the VF's guest
 * view (Machine.target resolves a BDF and a space to the right one). Accesses are naturally
 * aligned, except `io` under the compat policy (the guest view splits them into aligned pieces). Every refusal is a VmmrError naming function, space, offset, width and, where one is
 * involved, the register.
 */
export const SPACES = [
  'config',
  'bar0',
  'bar1',
  'bar2',
  'bar3',
  'bar4',
  'bar5',
  'io',
  'guest-config',
] as const;
export type Space = (typeof SPACES)[number];

export type AccessValue = number | bigint;

/** What an access reaches: a PCI function, or the translator's guest view of a VF. */
export type AccessTarget = VirtioPciFunction | GuestView;

const CONFIG_SIZE = pciHeader.constants.CFG_SPACE_EXP_SIZE.value;

/** Checked on every access: one hash lookup rather than a scan of SPACES. */
const SPACE_SET: ReadonlySet<unknown> = new Set<string>(SPACES);

export function isSpace(text: string): text is Space {
  return SPACE_SET.has(text);
}

function widthsOf(space: Space): readonly number[] {
  return space.startsWith('bar') ? [1, 2, 4, 8] : [1, 2, 4];
}

/** Same answer as widthsOf(space).includes(width), without building the list on every access. */
function widthAllowed(space: Space, width: number): boolean {
  return width === 1 || width === 2 || width === 4 || (width === 8 && space.startsWith('bar'));
}

const BAR_INDEX: Readonly<Record<string, number>> = { bar0: 0, bar1: 1, bar2: 2, bar3: 3, bar4: 4, bar5: 5 };

function barIndexOf(space: Space): number {
  return BAR_INDEX[space] ?? Number(space.slice(3));
}

function isGuestSpace(space: Space): boolean {
  return space === 'io' || space === 'guest-config';
}

/** The guest view an `io` / `guest-config` access needs, or a refusal saying what the target is. */
function asView(target: AccessTarget, space: Space): GuestView {
  if (target instanceof GuestView) return target;
  if (target.kind !== 'vf') {
    throw new VmmrError(
      'VMMR_ERR_NOT_TRANSITIONAL',
      `${target.bdf} is a PF (modern device): space ${space} is the translator's guest view of an MMR VF`,
    );
  }
  throw new VmmrError(
    'VMMR_ERR_BAD_SPACE',
    `space ${space} of ${target.bdf} is its translator guest view: address it through Machine.target or Machine.guestView`,
  );
}

/** The function a `config` / BAR access needs (a guest view has neither: its config is guest-config). */
function asFunction(target: AccessTarget, space: Space): VirtioPciFunction {
  if (!(target instanceof GuestView)) return target;
  throw new VmmrError(
    'VMMR_ERR_BAD_SPACE',
    `the guest view of ${target.vf.bdf} has spaces io and guest-config; space ${space} belongs to the VF itself`,
  );
}

/** The guest view of an `io` / `guest-config` access, after its range check. */
function guestTarget(target: AccessTarget, space: Space, offset: number, width: number): GuestView {
  const view = asView(target, space);
  if (space === 'guest-config') {
    checkRange(space, offset, width, CONFIG_SIZE);
    return view;
  }
  if (offset % width !== 0 && view.vf.policyStrict) throw unaligned(offset, width);
  checkRange(space, offset, width, view.ioLength);
  return view;
}

function functionOf(target: AccessTarget): VirtioPciFunction {
  return target instanceof GuestView ? target.vf : target;
}

/**
 * Checks an access's shape before it reaches any register: offset, width, alignment; then the
 * caller resolves the space (which may refuse it) and checks the range with checkRange.
 */
function checkShape(space: Space, offset: number, width: number): void {
  // Callers in plain JavaScript (or a harness) may pass anything: refuse unknown spaces here
  // rather than decode "xyz2" as BAR 2 or fail on a non-string.
  if (typeof space !== 'string' || !isSpace(space)) {
    throw new VmmrError('VMMR_ERR_BAD_SPACE', `space ${showValue(space)} is not one of ${SPACES.join(', ')}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new VmmrError('VMMR_ERR_BAD_OFFSET', `offset ${String(offset)} is not a non-negative integer`);
  }
  if (!widthAllowed(space, width)) {
    throw new VmmrError(
      'VMMR_ERR_BAD_WIDTH',
      `width ${String(width)} is not allowed in ${space}: use ${widthsOf(space).join(', ')}`,
    );
  }
  // `io` is checked with its guest view (guestTarget): compat splits an unaligned port access.
  if (offset % width !== 0 && space !== 'io') throw unaligned(offset, width);
}

function unaligned(offset: number, width: number): VmmrError {
  return new VmmrError(
    'VMMR_ERR_UNALIGNED',
    `offset 0x${offset.toString(16)} is not aligned to width ${width}`,
  );
}

/**
 * A VF object that VF Enable no longer backs (cleared, or replaced by a later enable) is no
 * function any more: refused as Machine.find refuses its BDF, instead of changing orphan state.
 */
function checkLive(target: AccessTarget): void {
  const fn = functionOf(target);
  if (fn.kind === 'vf' && !(fn as MmrVf).live) {
    throw new VmmrError(
      'VMMR_ERR_VF_DISABLED',
      `${fn.bdf} is no longer an enabled VF (its PF's VF Enable was cleared since)`,
    );
  }
}

function checkRange(space: Space, offset: number, width: number, size: number): void {
  if (offset + width > size) {
    throw new VmmrError(
      'VMMR_ERR_OUT_OF_RANGE',
      `offset 0x${offset.toString(16)} width ${width} is beyond ${space} (${size} bytes)`,
    );
  }
}

/** A BAR space after its checks: decode enabled (else refused), then the range. */
function checkBarAccess(fn: VirtioPciFunction, space: Space, offset: number, width: number): number {
  const index = barIndexOf(space);
  fn.checkBar(index);
  checkRange(space, offset, width, fn.barSize());
  return index;
}

const MAX_BY_WIDTH = [0, 0xff, 0xffff, 0, 0xffffffff];
const TWO_32 = 2 ** 32;
const MAX_U64 = 0xffff_ffff_ffff_ffffn;

function doesNotFit(value: AccessValue, width: number): VmmrError {
  return new VmmrError('VMMR_ERR_BAD_VALUE', `value ${String(value)} does not fit in ${width} bytes`);
}

/** A value of a 1-, 2- or 4-byte write, checked against its width (numbers take the fast path). */
function narrowValue(value: AccessValue, width: number): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0 && value <= MAX_BY_WIDTH[width]!) return value || 0;
    throw doesNotFit(value, width);
  }
  if (typeof value === 'bigint' && value >= 0n && value <= BigInt(MAX_BY_WIDTH[width]!)) return Number(value);
  throw doesNotFit(value, width);
}

/** The 32-bit halves of an 8-byte write's value, checked. */
function wideValue(value: AccessValue): [low: number, high: number] {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
    return [value % TWO_32, Math.floor(value / TWO_32)];
  }
  if (typeof value === 'bigint' && value >= 0n && value <= MAX_U64) {
    return [Number(value & 0xffffffffn), Number(value >> 32n)];
  }
  throw doesNotFit(value, 8);
}

function enrich(
  e: unknown,
  fn: VirtioPciFunction | string,
  space: string,
  offset: number,
  width: number,
): never {
  if (!isVmmrError(e)) throw e;
  const bdf = typeof fn === 'string' ? fn : fn.bdf;
  const where = `${bdf} ${isSpace(space) ? space : showValue(space)} ${describeAccess(offset, width)}`;
  throw new VmmrError(e.code, e.message.startsWith(where) ? e.message : `${where}: ${e.message}`, {
    bdf,
    space,
    offset,
    width,
    ...(e.context.register !== undefined ? { register: e.context.register } : {}),
  });
}

export function read(target: AccessTarget, space: Space, offset: number, width: number): AccessValue {
  try {
    checkShape(space, offset, width);
    checkLive(target);
    if (isGuestSpace(space)) {
      const view = guestTarget(target, space, offset, width);
      return space === 'io' ? view.ioRead(offset, width) : view.readConfig(offset, width);
    }
    const fn = asFunction(target, space);
    if (space === 'config') {
      checkRange(space, offset, width, CONFIG_SIZE);
      return fn.readConfig(offset, width);
    }
    const index = checkBarAccess(fn, space, offset, width);
    return width === 8 ? fn.readBar64(index, offset) : fn.readBar(index, offset, width) >>> 0;
  } catch (e) {
    return enrich(e, functionOf(target), space, offset, width);
  }
}

export function write(
  target: AccessTarget,
  space: Space,
  offset: number,
  width: number,
  value: AccessValue,
): void {
  try {
    checkShape(space, offset, width);
    checkLive(target);
    if (isGuestSpace(space)) {
      const view = guestTarget(target, space, offset, width);
      const narrow = narrowValue(value, width);
      if (space === 'io') {
        view.ioWrite(offset, width, narrow);
      } else {
        view.vf.events.configWrites++;
        view.writeConfig(offset, width, narrow);
      }
      return;
    }
    const fn = asFunction(target, space);
    if (space === 'config') {
      checkRange(space, offset, width, CONFIG_SIZE);
      fn.events.configWrites++;
      fn.writeConfig(offset, width, narrowValue(value, width));
      return;
    }
    const index = checkBarAccess(fn, space, offset, width);
    if (width === 8) fn.writeBar64(index, offset, ...wideValue(value));
    else fn.writeBar(index, offset, width, narrowValue(value, width));
  } catch (e) {
    enrich(e, functionOf(target), space, offset, width);
  }
}
