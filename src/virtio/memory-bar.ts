import { barLayout, msixTableEntry } from '../spec/index.js';
import { VmmrError } from '../base/errors.js';
import { widthMask } from '../pci/config-space.js';
import { commonCfgBlock } from './common-cfg.js';
import type { VirtioDevice } from './device.js';
import type { DeviceModel } from './model.js';
import {
  LEGACY_CONFIG_OFF_MSIX,
  LEGACY_CONFIG_OFF_NO_MSIX,
  legacyHeaderMsix,
  legacyHeaderNoMsix,
} from './legacy.js';
import { ALL_ONES_64, joinHalves } from './registers.js';

/**
 * The memory BAR of every vmmr function (vmmr decision, spec-tables/bar-layout.json; the same
 * diagram is in docs/device-model.md, checked by test/docs/diagrams.test.ts): one
 * non-prefetchable 64-bit BAR — non-prefetchable because the ISR and the legacy block have read
 * side effects (PCI prefetchable = no read side effects).
 *
 *   0x0000 +---------------------------+
 *          | common cfg (64 B)         |  virtio_pci_common_cfg       (cfg_type 1)
 *   0x0100 | ISR (1 B)                 |  read-to-clear               (cfg_type 3)
 *   0x0200 | device cfg (type-specific)|                              (cfg_type 4)
 *   0x0400 | notify: queue n at n*4    |  16-bit queue index          (cfg_type 2)
 *   0x1000 | legacy block (VF only)    |  MMR locator target, 32..64 B
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

/** The regions of a device model's BAR and their actual lengths. */
export function regionsOf(m: DeviceModel): Region[] {
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

function unmapped(offset: number, why: string): VmmrError {
  return new VmmrError(
    'VMMR_ERR_UNMAPPED',
    `nothing is decoded at BAR offset 0x${offset.toString(16)}: ${why}`,
  );
}

function readOnly(what: string): VmmrError {
  return new VmmrError('VMMR_ERR_READ_ONLY', `${what} is read-only`, { register: what });
}

function writeOnly(what: string): VmmrError {
  return new VmmrError('VMMR_ERR_WRITE_ONLY', `${what} is write-only`, { register: what });
}

/** What an access to the BAR reaches: the virtio device and the function's MSI-X table. */
export interface BarTarget {
  readonly device: VirtioDevice;
  msixEnabled(): boolean;
  readMsixTable(offset: number): number;
  writeMsixTable(offset: number, value: number): void;
  readMsixPba(offset: number): number;
}

/**
 * Decodes accesses to the memory BAR of one device model (shared by every function of that
 * model, like the model itself). Widths 1, 2 and 4 go through read/write; an 8-byte access
 * through read64/write64, whole — never split here unless the policy and the register say so.
 */
export class BarDecoder {
  readonly regions: readonly Region[];
  private readonly granules: readonly (Region | undefined)[];

  constructor(readonly model: DeviceModel) {
    this.regions = regionsOf(model);
    const granules: (Region | undefined)[] = new Array(BAR_LAYOUT_SIZE >> GRANULE_SHIFT).fill(undefined);
    for (const r of this.regions) {
      const last = (r.offset + r.length - 1) >> GRANULE_SHIFT;
      for (let g = r.offset >> GRANULE_SHIFT; g <= last; g++) granules[g] = r;
    }
    this.granules = granules;
  }

  region(name: RegionName): Region | undefined {
    return this.regions.find((r) => r.name === name);
  }

  regionAt(offset: number): Region | undefined {
    const r = this.granules[offset >> GRANULE_SHIFT];
    return r && offset >= r.offset && offset < r.offset + r.length ? r : undefined;
  }

  /** The region an access falls in; undefined (compat) or a refusal (strict) when it falls outside. */
  private decode(offset: number, width: number, strict: boolean): Region | undefined {
    const r = this.regionAt(offset);
    if (r && offset + width <= r.offset + r.length) return r;
    if (!strict) return undefined;
    if (r) {
      throw unmapped(
        offset,
        `a ${width}-byte access runs past the end of ${r.name} (0x${r.offset.toString(16)}+0x${r.length.toString(16)})`,
      );
    }
    throw unmapped(offset, 'no register region there');
  }

  /** The register name an offset decodes to (for traces and refusal messages). */
  registerAt(offset: number, msixEnabled: boolean): string | undefined {
    const r = this.regionAt(offset);
    if (!r) return undefined;
    const rel = offset - r.offset;
    switch (r.name) {
      case 'COMMON_CFG':
        return commonCfgBlock.nameAt(rel);
      case 'LEGACY': {
        const header = legacyHeader(msixEnabled);
        return rel < header.length
          ? header.nameAt(rel)
          : `device config +0x${(rel - header.length).toString(16)}`;
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

  /** A 1-, 2- or 4-byte read. */
  read(t: BarTarget, offset: number, width: number, strict: boolean): number {
    const r = this.decode(offset, width, strict);
    if (!r) return widthMask(width);
    const rel = offset - r.offset;
    const dev = t.device;
    switch (r.name) {
      case 'COMMON_CFG':
        return commonCfgBlock.read(dev, rel, width, strict);
      case 'LEGACY':
        return legacyRead(dev, t.msixEnabled(), rel, width, strict);
      case 'DEVICE_CFG':
        return readDeviceConfig(dev, rel, width, strict);
      case 'ISR':
        checkIsrWidth(width, strict);
        return dev.readIsr();
      case 'NOTIFY':
        if (strict) throw writeOnly('notify region');
        return widthMask(width);
      case 'MSIX_TABLE':
      case 'MSIX_PBA':
        if (!msixWidthOk(width, strict, msixName(r.name))) return widthMask(width);
        return r.name === 'MSIX_TABLE' ? t.readMsixTable(rel) : t.readMsixPba(rel);
    }
    throw unmapped(offset, r.name);
  }

  /** An 8-byte read. */
  read64(t: BarTarget, offset: number, strict: boolean): bigint {
    const r = this.decode(offset, 8, strict);
    if (!r) return ALL_ONES_64;
    const rel = offset - r.offset;
    const dev = t.device;
    switch (r.name) {
      case 'COMMON_CFG':
        return commonCfgBlock.read64(dev, rel, strict);
      case 'LEGACY':
        return legacyRead64(dev, t.msixEnabled(), rel, strict);
      case 'DEVICE_CFG':
        return readDeviceConfig64(dev, rel, strict);
      case 'ISR':
        checkIsrWidth(8, strict);
        return BigInt(dev.readIsr());
      case 'NOTIFY':
        if (strict) throw writeOnly('notify region');
        return ALL_ONES_64;
      case 'MSIX_TABLE':
        return joinHalves(t.readMsixTable(rel), t.readMsixTable(rel + 4));
      case 'MSIX_PBA':
        return joinHalves(t.readMsixPba(rel), t.readMsixPba(rel + 4));
    }
    throw unmapped(offset, r.name);
  }

  /** A 1-, 2- or 4-byte write. */
  write(t: BarTarget, offset: number, width: number, value: number, strict: boolean): void {
    const r = this.decode(offset, width, strict);
    if (!r) return;
    const rel = offset - r.offset;
    const dev = t.device;
    switch (r.name) {
      case 'COMMON_CFG':
        commonCfgBlock.write(dev, rel, width, value, strict);
        return;
      case 'LEGACY':
        legacyWrite(dev, t.msixEnabled(), rel, width, value, strict);
        return;
      case 'DEVICE_CFG':
        writeDeviceConfig(dev, rel, width, value, strict);
        return;
      case 'ISR':
        if (strict) throw readOnly('ISR status');
        return;
      case 'NOTIFY': {
        const queue = notifyQueue(dev, rel, width, strict);
        if (queue === undefined) return;
        if (strict) checkNotifyValue(queue, value);
        dev.notify(queue, 'notify-region');
        return;
      }
      case 'MSIX_TABLE':
        if (msixWidthOk(width, strict, 'MSI-X table')) t.writeMsixTable(rel, value);
        return;
      case 'MSIX_PBA':
        if (strict) throw readOnly('MSI-X PBA');
        return;
    }
  }

  /** An 8-byte write, given as its halves. */
  write64(t: BarTarget, offset: number, low: number, high: number, strict: boolean): void {
    const r = this.decode(offset, 8, strict);
    if (!r) return;
    const rel = offset - r.offset;
    const dev = t.device;
    switch (r.name) {
      case 'COMMON_CFG':
        commonCfgBlock.write64(dev, rel, low, high, strict);
        return;
      case 'LEGACY':
        legacyWrite64(dev, t.msixEnabled(), rel, low, high, strict);
        return;
      case 'DEVICE_CFG':
        writeDeviceConfig64(dev, rel, low, high, strict);
        return;
      case 'ISR':
        if (strict) throw readOnly('ISR status');
        return;
      case 'NOTIFY': {
        const queue = notifyQueue(dev, rel, 8, strict);
        if (queue !== undefined) dev.notify(queue, 'notify-region');
        return;
      }
      case 'MSIX_TABLE':
        t.writeMsixTable(rel, low);
        t.writeMsixTable(rel + 4, high);
        return;
      case 'MSIX_PBA':
        if (strict) throw readOnly('MSI-X PBA');
        return;
    }
  }
}

function checkIsrWidth(width: number, strict: boolean): void {
  if (strict && width !== 1) {
    throw new VmmrError(
      'VMMR_ERR_WIDTH_MISMATCH',
      `ISR status is 1 byte: a ${width}-byte access does not match it`,
      {
        register: 'ISR',
      },
    );
  }
}

function msixName(region: 'MSIX_TABLE' | 'MSIX_PBA'): string {
  return region === 'MSIX_TABLE' ? 'MSI-X table' : 'MSI-X PBA';
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

/**
 * Without VIRTIO_F_NOTIFICATION_DATA (never offered) a driver notification carries the queue index
 * (virtio 1.2 §4.1.5.2): strict refuses another value; compat, like QEMU's
 * virtio_pci_notify_write, takes the queue from the address alone.
 */
function checkNotifyValue(queue: number, value: number): void {
  if (value === queue) return;
  throw new VmmrError(
    'VMMR_ERR_BAD_VALUE',
    `notify queue ${queue}: a driver notification writes the queue index ${queue}, not 0x${value.toString(16)}` +
      ' (VIRTIO_F_NOTIFICATION_DATA is not offered)',
    { register: `notify queue ${queue}` },
  );
}

function msixWidthOk(width: number, strict: boolean, what: string): boolean {
  if (width === 4) return true;
  if (!strict) return false;
  throw new VmmrError(
    'VMMR_ERR_WIDTH_MISMATCH',
    `${what} is accessed as dwords or qwords, not ${width} bytes`,
    {
      register: what,
    },
  );
}

// ---- device configuration window (any width, §4.1.4.6) ----

function configOverrun(dev: VirtioDevice, offset: number, width: number): VmmrError {
  return new VmmrError(
    'VMMR_ERR_UNMAPPED',
    `device config of ${dev.model.type} is ${dev.model.config.size} bytes: a ${width}-byte access at +0x${offset.toString(16)} runs past it`,
  );
}

function fitsConfig(dev: VirtioDevice, offset: number, width: number, strict: boolean): boolean {
  if (offset + width <= dev.model.config.size) return true;
  if (strict) throw configOverrun(dev, offset, width);
  return false;
}

export function readDeviceConfig(dev: VirtioDevice, offset: number, width: number, strict: boolean): number {
  return fitsConfig(dev, offset, width, strict) ? dev.readConfig(offset, width) : widthMask(width);
}

function readDeviceConfig64(dev: VirtioDevice, offset: number, strict: boolean): bigint {
  if (!fitsConfig(dev, offset, 8, strict)) return ALL_ONES_64;
  const low = dev.readConfig(offset, 4);
  return joinHalves(low, dev.readConfig(offset + 4, 4));
}

function checkConfigWritable(dev: VirtioDevice, offset: number, width: number): void {
  const field = dev.readOnlyFieldIn(offset, width);
  if (field !== undefined) {
    throw new VmmrError(
      'VMMR_ERR_READ_ONLY',
      `device config field ${field.name} of ${dev.model.type} takes no write: ${field.why}`,
      { register: field.name },
    );
  }
}

export function writeDeviceConfig(
  dev: VirtioDevice,
  offset: number,
  width: number,
  value: number,
  strict: boolean,
): void {
  if (!fitsConfig(dev, offset, width, strict)) return;
  if (strict) checkConfigWritable(dev, offset, width);
  dev.writeConfig(offset, width, value);
}

function writeDeviceConfig64(
  dev: VirtioDevice,
  offset: number,
  low: number,
  high: number,
  strict: boolean,
): void {
  if (!fitsConfig(dev, offset, 8, strict)) return;
  if (strict) checkConfigWritable(dev, offset, 8);
  dev.writeConfig(offset, 4, low);
  dev.writeConfig(offset + 4, 4, high);
}

// ---- the legacy block: header, then device config at 20 or 24 ----

function legacyHeader(msixEnabled: boolean): typeof legacyHeaderMsix {
  return msixEnabled ? legacyHeaderMsix : legacyHeaderNoMsix;
}

function legacyConfigStart(msixEnabled: boolean): number {
  return msixEnabled ? LEGACY_CONFIG_OFF_MSIX : LEGACY_CONFIG_OFF_NO_MSIX;
}

function straddle(rel: number, width: number, start: number): VmmrError {
  return new VmmrError(
    'VMMR_ERR_WIDTH_MISMATCH',
    `legacy block: a ${width}-byte access at +0x${rel.toString(16)} straddles the header and the device config (which starts at ${start})`,
  );
}

/** Whether an access lands in the device config part; refuses (strict) one that straddles the header's end. */
function inLegacyConfig(msixEnabled: boolean, rel: number, width: number, strict: boolean): boolean {
  const start = legacyConfigStart(msixEnabled);
  if (rel >= start) return true;
  if (strict && rel + width > start) throw straddle(rel, width, start);
  return false;
}

export function legacyRead(
  dev: VirtioDevice,
  msixEnabled: boolean,
  rel: number,
  width: number,
  strict: boolean,
): number {
  if (inLegacyConfig(msixEnabled, rel, width, strict)) {
    return readDeviceConfig(dev, rel - legacyConfigStart(msixEnabled), width, strict);
  }
  return legacyHeader(msixEnabled).read(dev, rel, width, strict);
}

function legacyRead64(dev: VirtioDevice, msixEnabled: boolean, rel: number, strict: boolean): bigint {
  if (inLegacyConfig(msixEnabled, rel, 8, strict)) {
    return readDeviceConfig64(dev, rel - legacyConfigStart(msixEnabled), strict);
  }
  return legacyHeader(msixEnabled).read64(dev, rel, strict);
}

export function legacyWrite(
  dev: VirtioDevice,
  msixEnabled: boolean,
  rel: number,
  width: number,
  value: number,
  strict: boolean,
): void {
  if (inLegacyConfig(msixEnabled, rel, width, strict)) {
    writeDeviceConfig(dev, rel - legacyConfigStart(msixEnabled), width, value, strict);
    return;
  }
  legacyHeader(msixEnabled).write(dev, rel, width, value, strict);
}

function legacyWrite64(
  dev: VirtioDevice,
  msixEnabled: boolean,
  rel: number,
  low: number,
  high: number,
  strict: boolean,
): void {
  if (inLegacyConfig(msixEnabled, rel, 8, strict)) {
    writeDeviceConfig64(dev, rel - legacyConfigStart(msixEnabled), low, high, strict);
    return;
  }
  legacyHeader(msixEnabled).write64(dev, rel, low, high, strict);
}
