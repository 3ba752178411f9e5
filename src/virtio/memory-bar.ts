import { barLayout, msixTableEntry } from '../spec/index.js';
import { VmmrError } from '../base/errors.js';
import { widthMask } from '../pci/config-space.js';
import { commonCfgBlock } from './common-cfg.js';
import type { VirtioDevice } from './device.js';
import {
  LEGACY_CONFIG_OFF_MSIX,
  LEGACY_CONFIG_OFF_NO_MSIX,
  legacyHeaderMsix,
  legacyHeaderNoMsix,
} from './legacy.js';
import { wide } from './registers.js';

/**
 * The memory BAR of every vmmr function (vmmr decision, spec-tables/bar-layout.json): one
 * non-prefetchable 64-bit BAR — non-prefetchable because the ISR and the legacy block have read
 * side effects (PCI prefetchable = no read side effects).
 *
 *   0x0000 +---------------------------+
 *          | common cfg (64 B)         |  virtio_pci_common_cfg       (cfg_type 1)
 *   0x0100 | ISR (1 B)                 |  read-to-clear               (cfg_type 3)
 *   0x0200 | device cfg (type-specific)|                              (cfg_type 4)
 *   0x0400 | notify: queue n at n*4    |  16-bit queue index          (cfg_type 2)
 *   0x1000 | legacy block (VF only)    |  MMR locator target, 32..256 B
 *   0x2000 | MSI-X table (16 B/vector) |
 *   0x3000 | MSI-X PBA                 |
 *   0x4000 +---------------------------+  (a VF BAR is this rounded up to the System Page Size)
 */
export type RegionName = keyof typeof barLayout.registers;

export interface Region {
  readonly name: RegionName;
  readonly offset: number;
  readonly length: number;
}

const L = barLayout.registers;
export const NOTIFY_OFF_MULTIPLIER = barLayout.constants.NOTIFY_OFF_MULTIPLIER.value;
export const BAR_LAYOUT_SIZE = barLayout.constants.BAR_SIZE.value;
const ENTRY_SIZE = msixTableEntry.constants.ENTRY_SIZE.value;
const PBA_QWORD_VECTORS = 64;

/** The regions of a device's BAR and their actual lengths. */
export function regionsOf(dev: VirtioDevice): Region[] {
  const m = dev.model;
  const regions: Region[] = [
    { name: 'COMMON_CFG', offset: L.COMMON_CFG.offset, length: L.COMMON_CFG.size },
    { name: 'ISR', offset: L.ISR.offset, length: barLayout.constants.ISR_LENGTH.value },
    { name: 'DEVICE_CFG', offset: L.DEVICE_CFG.offset, length: m.config.size },
    { name: 'NOTIFY', offset: L.NOTIFY.offset, length: m.queueNames.length * NOTIFY_OFF_MULTIPLIER },
    { name: 'MSIX_TABLE', offset: L.MSIX_TABLE.offset, length: m.msixVectors * ENTRY_SIZE },
    { name: 'MSIX_PBA', offset: L.MSIX_PBA.offset, length: Math.ceil(m.msixVectors / PBA_QWORD_VECTORS) * 8 },
  ];
  if (m.transitional) regions.push({ name: 'LEGACY', offset: L.LEGACY.offset, length: m.legacyLength });
  return regions.filter((r) => r.length > 0).sort((a, b) => a.offset - b.offset);
}

/** Regions are decoded by the 256-byte granule of the offset (every region starts on one). */
const GRANULE_SHIFT = 8;
const granuleCache = new WeakMap<object, (Region | undefined)[]>();

/** The last model looked up and its table: consecutive accesses nearly always share a model. */
let lastModel: object | undefined;
let lastTable: (Region | undefined)[] = [];

function granules(dev: VirtioDevice): (Region | undefined)[] {
  if (dev.model === lastModel) return lastTable;
  let table = granuleCache.get(dev.model);
  if (!table) {
    table = new Array(BAR_LAYOUT_SIZE >> GRANULE_SHIFT).fill(undefined);
    for (const r of regionsOf(dev)) {
      const last = (r.offset + r.length - 1) >> GRANULE_SHIFT;
      for (let g = r.offset >> GRANULE_SHIFT; g <= last; g++) table[g] = r;
    }
    granuleCache.set(dev.model, table);
  }
  lastModel = dev.model;
  lastTable = table;
  return table;
}

export function regionAt(dev: VirtioDevice, offset: number): Region | undefined {
  const r = granules(dev)[offset >> GRANULE_SHIFT];
  return r && offset >= r.offset && offset < r.offset + r.length ? r : undefined;
}

function unmapped(offset: number, why: string): VmmrError {
  return new VmmrError('VMMR_ERR_UNMAPPED', `nothing is decoded at BAR offset 0x${offset.toString(16)}: ${why}`);
}

/** The region an access falls in; undefined (compat) or a refusal (strict) when it falls outside. */
function decode(dev: VirtioDevice, offset: number, width: number, strict: boolean): Region | undefined {
  const r = regionAt(dev, offset);
  if (r && offset + width <= r.offset + r.length) return r;
  if (!strict) return undefined;
  if (r) {
    throw unmapped(offset, `a ${width}-byte access runs past the end of ${r.name} (0x${r.offset.toString(16)}+0x${r.length.toString(16)})`);
  }
  throw unmapped(offset, 'no register region there');
}

export interface BarAccessInfo {
  region: RegionName | undefined;
  register: string | undefined;
}

/** The register name an offset decodes to (for traces and refusal messages). */
export function registerAt(dev: VirtioDevice, offset: number, msixEnabled: boolean): string | undefined {
  const r = regionAt(dev, offset);
  if (!r) return undefined;
  const rel = offset - r.offset;
  switch (r.name) {
    case 'COMMON_CFG':
      return commonCfgBlock.nameAt(rel);
    case 'LEGACY': {
      const header = msixEnabled ? legacyHeaderMsix : legacyHeaderNoMsix;
      return rel < header.length ? header.nameAt(rel) : `device config +0x${(rel - header.length).toString(16)}`;
    }
    case 'DEVICE_CFG':
      return `device config +0x${rel.toString(16)}`;
    case 'NOTIFY':
      return `notify queue ${Math.floor(rel / NOTIFY_OFF_MULTIPLIER)}`;
    case 'MSIX_TABLE':
      return `MSI-X vector ${Math.floor(rel / ENTRY_SIZE)}`;
    default:
      return r.name;
  }
}

// ---- device configuration window (any width, §4.1.4.6) ----

function configOverrun(dev: VirtioDevice, offset: number, width: number): VmmrError {
  return new VmmrError(
    'VMMR_ERR_UNMAPPED',
    `device config of ${dev.model.type} is ${dev.model.config.size} bytes: a ${width}-byte access at +0x${offset.toString(16)} runs past it`,
  );
}

export function readDeviceConfig(dev: VirtioDevice, offset: number, width: number, strict: boolean): number {
  const size = dev.model.config.size;
  if (offset + width > size) {
    if (strict) throw configOverrun(dev, offset, width);
    if (width === 8) wide.high = 0xffffffff;
    return widthMask(width === 8 ? 4 : width);
  }
  if (width === 8) {
    wide.high = dev.readConfig(offset + 4, 4);
    return dev.readConfig(offset, 4);
  }
  return dev.readConfig(offset, width);
}

export function writeDeviceConfig(
  dev: VirtioDevice,
  offset: number,
  width: number,
  value: number,
  high: number,
  strict: boolean,
): void {
  const size = dev.model.config.size;
  if (offset + width > size) {
    if (strict) throw configOverrun(dev, offset, width);
    return;
  }
  if (strict) {
    const field = dev.readOnlyFieldIn(offset, width);
    if (field !== undefined) {
      throw new VmmrError('VMMR_ERR_READ_ONLY', `device config field ${field} of ${dev.model.type} is read-only`, {
        register: field,
      });
    }
  }
  if (width === 8) {
    dev.writeConfig(offset, 4, value);
    dev.writeConfig(offset + 4, 4, high);
  } else {
    dev.writeConfig(offset, width, value);
  }
}

// ---- whole BAR ----

function readOnly(what: string): VmmrError {
  return new VmmrError('VMMR_ERR_READ_ONLY', `${what} is read-only`, { register: what });
}

function writeOnly(what: string): VmmrError {
  return new VmmrError('VMMR_ERR_WRITE_ONLY', `${what} is write-only`, { register: what });
}

function notifyQueue(dev: VirtioDevice, rel: number, width: number, strict: boolean): number | undefined {
  const queue = rel / NOTIFY_OFF_MULTIPLIER;
  if (Number.isInteger(queue) && (width === 2 || !strict)) return queue;
  if (!strict) return undefined;
  throw new VmmrError(
    'VMMR_ERR_WIDTH_MISMATCH',
    `notify region: a driver notification is a 2-byte write of the queue index at notify + queue * ${NOTIFY_OFF_MULTIPLIER}` +
      ` (queues 0..${dev.numQueues - 1})`,
    { register: `notify queue ${Math.floor(queue)}` },
  );
}

function msixWidthOk(width: number, strict: boolean, what: string): boolean {
  if (width === 4 || width === 8) return true;
  if (!strict) return false;
  throw new VmmrError('VMMR_ERR_WIDTH_MISMATCH', `${what} is accessed as dwords or qwords, not ${width} bytes`, {
    register: what,
  });
}

export function barRead(dev: VirtioDevice, msixEnabled: boolean, offset: number, width: number, strict: boolean): number {
  const r = decode(dev, offset, width, strict);
  if (!r) {
    if (width === 8) wide.high = 0xffffffff;
    return widthMask(width === 8 ? 4 : width);
  }
  const rel = offset - r.offset;
  switch (r.name) {
    case 'COMMON_CFG':
      return commonCfgBlock.read(dev, rel, width, strict);
    case 'LEGACY':
      return legacyRead(dev, msixEnabled, rel, width, strict);
    case 'DEVICE_CFG':
      return readDeviceConfig(dev, rel, width, strict);
    case 'ISR':
      if (strict && width !== 1) {
        throw new VmmrError('VMMR_ERR_WIDTH_MISMATCH', `ISR status is 1 byte: a ${width}-byte access does not match it`, {
          register: 'ISR',
        });
      }
      if (width === 8) wide.high = 0;
      return dev.readIsr();
    case 'NOTIFY':
      if (strict) throw writeOnly('notify region');
      if (width === 8) wide.high = 0xffffffff;
      return widthMask(width === 8 ? 4 : width);
    case 'MSIX_TABLE':
    case 'MSIX_PBA': {
      const what = r.name === 'MSIX_TABLE' ? 'MSI-X table' : 'MSI-X PBA';
      if (!msixWidthOk(width, strict, what)) return widthMask(width);
      const read = (o: number): number => (r.name === 'MSIX_TABLE' ? dev.readMsixTable(o) : dev.readPba(o));
      if (width === 8) wide.high = read(rel + 4);
      return read(rel);
    }
  }
  throw unmapped(offset, r.name);
}

export function barWrite(
  dev: VirtioDevice,
  msixEnabled: boolean,
  offset: number,
  width: number,
  value: number,
  high: number,
  strict: boolean,
): void {
  const r = decode(dev, offset, width, strict);
  if (!r) return;
  const rel = offset - r.offset;
  switch (r.name) {
    case 'COMMON_CFG':
      commonCfgBlock.write(dev, rel, width, value, high, strict);
      return;
    case 'LEGACY':
      legacyWrite(dev, msixEnabled, rel, width, value, high, strict);
      return;
    case 'DEVICE_CFG':
      writeDeviceConfig(dev, rel, width, value, high, strict);
      return;
    case 'ISR':
      if (strict) throw readOnly('ISR status');
      return;
    case 'NOTIFY': {
      const queue = notifyQueue(dev, rel, width, strict);
      if (queue !== undefined) dev.notify(queue, 'notify-region');
      return;
    }
    case 'MSIX_TABLE':
      if (!msixWidthOk(width, strict, 'MSI-X table')) return;
      dev.writeMsixTable(rel, value);
      if (width === 8) dev.writeMsixTable(rel + 4, high);
      return;
    case 'MSIX_PBA':
      if (strict) throw readOnly('MSI-X PBA');
      return;
  }
}

// ---- the legacy block: header, then device config at 20 or 24 ----

function legacyConfigStart(msixEnabled: boolean): number {
  return msixEnabled ? LEGACY_CONFIG_OFF_MSIX : LEGACY_CONFIG_OFF_NO_MSIX;
}

export function legacyRead(dev: VirtioDevice, msixEnabled: boolean, rel: number, width: number, strict: boolean): number {
  const start = legacyConfigStart(msixEnabled);
  if (rel >= start) return readDeviceConfig(dev, rel - start, width, strict);
  if (strict && rel + width > start) throw straddle(rel, width, start);
  return (msixEnabled ? legacyHeaderMsix : legacyHeaderNoMsix).read(dev, rel, width, strict);
}

export function legacyWrite(
  dev: VirtioDevice,
  msixEnabled: boolean,
  rel: number,
  width: number,
  value: number,
  high: number,
  strict: boolean,
): void {
  const start = legacyConfigStart(msixEnabled);
  if (rel >= start) {
    writeDeviceConfig(dev, rel - start, width, value, high, strict);
    return;
  }
  if (strict && rel + width > start) throw straddle(rel, width, start);
  (msixEnabled ? legacyHeaderMsix : legacyHeaderNoMsix).write(dev, rel, width, value, high, strict);
}

function straddle(rel: number, width: number, start: number): VmmrError {
  return new VmmrError(
    'VMMR_ERR_WIDTH_MISMATCH',
    `legacy block: a ${width}-byte access at +0x${rel.toString(16)} straddles the header and the device config (which starts at ${start})`,
  );
}
