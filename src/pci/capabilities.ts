import { capabilityIds, pciHeader } from '../spec/index.js';
import type { ConfigStore, ConfigTemplate } from './config-space.js';

const H = pciHeader.registers;
const CAP = capabilityIds.registers;
const CAP_LIST_START = pciHeader.constants.CAP_LIST_START.value;
const EXT_CAP_START = pciHeader.constants.EXT_CAP_START.value;
const STD_END = pciHeader.constants.CFG_SPACE_SIZE.value;
const EXT_END = pciHeader.constants.CFG_SPACE_EXP_SIZE.value;
const EXT_VERSION_SHIFT = capabilityIds.constants.EXT_CAP_VERSION_SHIFT.value;
const EXT_NEXT_SHIFT = capabilityIds.constants.EXT_CAP_NEXT_SHIFT.value;
const EXT_ID_MASK = (1 << EXT_VERSION_SHIFT) - 1;
const EXT_VERSION_MASK = (1 << (EXT_NEXT_SHIFT - EXT_VERSION_SHIFT)) - 1;

/**
 * Lays out the standard capability list (from CAP_LIST_START, linked through Capabilities
 * Pointer 0x34, PCI 3.0 §6.7) and the extended list (from 0x100, header ID[15:0]
 * Version[19:16] Next[31:20], PCIe §7.6.3) in a template, dword-aligned, in call order.
 */
export class CapabilityLayout {
  private lastStd = -1;
  private nextStd = CAP_LIST_START;
  private lastExt = -1;
  private nextExt = EXT_CAP_START;

  constructor(private readonly template: ConfigTemplate) {}

  /** `init` fills the capability body before it is linked in. */
  addStandard(id: number, length: number, init?: (offset: number) => void): number {
    const offset = this.nextStd;
    if (offset + length > STD_END)
      throw new Error(`capability 0x${id.toString(16)} does not fit below 0x100`);
    const t = this.template;
    init?.(offset);
    t.set(offset + CAP.CAP_LIST_ID.offset, CAP.CAP_LIST_ID.size, id);
    if (this.lastStd < 0) {
      t.set(H.CAPABILITY_LIST.offset, H.CAPABILITY_LIST.size, offset);
      const status = t.get(H.STATUS.offset, H.STATUS.size);
      t.set(H.STATUS.offset, H.STATUS.size, status | pciHeader.constants.STATUS_CAP_LIST.value);
    } else {
      t.set(this.lastStd + CAP.CAP_LIST_NEXT.offset, CAP.CAP_LIST_NEXT.size, offset);
    }
    this.lastStd = offset;
    this.nextStd = align4(offset + length);
    return offset;
  }

  addExtended(id: number, version: number, length: number, init?: (offset: number) => void): number {
    const offset = this.nextExt;
    if (offset + length > EXT_END) throw new Error(`extended capability 0x${id.toString(16)} does not fit`);
    const t = this.template;
    init?.(offset);
    t.set(offset, 4, encodeExtHeader(id, version, 0));
    if (this.lastExt >= 0) {
      const prev = decodeExtHeader(t.get(this.lastExt, 4));
      t.set(this.lastExt, 4, encodeExtHeader(prev.id, prev.version, offset));
    }
    this.lastExt = offset;
    this.nextExt = align4(offset + length);
    return offset;
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

export function encodeExtHeader(id: number, version: number, next: number): number {
  return (id | (version << EXT_VERSION_SHIFT) | (next << EXT_NEXT_SHIFT)) >>> 0;
}

export function decodeExtHeader(header: number): { id: number; version: number; next: number } {
  return {
    id: header & EXT_ID_MASK,
    version: (header >>> EXT_VERSION_SHIFT) & EXT_VERSION_MASK,
    next: header >>> EXT_NEXT_SHIFT,
  };
}

export interface CapabilityEntry {
  kind: 'standard' | 'extended';
  id: number;
  offset: number;
  version?: number;
}

/** Walks both capability lists of a live config space, the way lspci does. */
export function listCapabilities(config: Pick<ConfigStore, 'read'>): CapabilityEntry[] {
  const out: CapabilityEntry[] = [];
  const status = config.read(H.STATUS.offset, H.STATUS.size);
  if (status & pciHeader.constants.STATUS_CAP_LIST.value) {
    let ptr = config.read(H.CAPABILITY_LIST.offset, H.CAPABILITY_LIST.size) & ~3;
    const seen = new Set<number>();
    while (ptr >= CAP_LIST_START && ptr < STD_END && !seen.has(ptr)) {
      seen.add(ptr);
      out.push({ kind: 'standard', id: config.read(ptr + CAP.CAP_LIST_ID.offset, 1), offset: ptr });
      ptr = config.read(ptr + CAP.CAP_LIST_NEXT.offset, 1) & ~3;
    }
  }
  let ext = EXT_CAP_START;
  const seen = new Set<number>();
  while (ext >= EXT_CAP_START && ext < EXT_END && !seen.has(ext)) {
    seen.add(ext);
    const header = config.read(ext, 4);
    if (header === 0 || header === 0xffffffff) break;
    const h = decodeExtHeader(header);
    out.push({ kind: 'extended', id: h.id, version: h.version, offset: ext });
    ext = h.next & ~3;
  }
  return out;
}
