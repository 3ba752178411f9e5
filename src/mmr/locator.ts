import { capabilityIds, mmrLocator } from '../spec/index.js';
import type { FunctionTemplate } from '../virtio/pci-function.js';

const R = mmrLocator.registers;
const C = mmrLocator.constants;

export const LEGACY_BLOCK_OFFSET = C.LEGACY_BLOCK_OFFSET.value;

/**
 * The MMR locator (vmmr decision, docs/device-model.md "The MMR locator"): a Vendor-Specific Extended Capability (0x000B) whose
 * VSEC ID is cfg_type 10 (VIRTIO_PCI_CAP_LEGACY_MMR_CFG), locating the legacy block.
 *
 *   +0x00  ext cap header   ID 0x000B, version 1, next
 *   +0x04  VSEC header      ID 10, rev 0, length 0x1C
 *   +0x08  bar (u8)         +0x09 id (u8) 0   +0x0A padding (u16)
 *   +0x0C  offset (le64)    0x1000
 *   +0x14  length (le64)    legacy block length (power of two >= 32)
 *
 * Read-only throughout (the template leaves its write mask clear).
 */
export function addMmrLocator(template: FunctionTemplate): number {
  const t = template.config;
  return template.layout.addExtended(
    capabilityIds.constants.EXT_CAP_ID_VNDR.value,
    capabilityIds.constants.EXT_CAP_VERSION.value,
    C.VSEC_LENGTH.value,
    (base) => {
      const vsecHeader =
        (C.VSEC_ID.value << C.VSEC_ID_SHIFT.value) |
        (C.VSEC_REV.value << C.VSEC_REV_SHIFT.value) |
        (C.VSEC_LENGTH.value << C.VSEC_LENGTH_SHIFT.value);
      t.set(base + R.VSEC_HEADER.offset, R.VSEC_HEADER.size, vsecHeader >>> 0);
      t.set(base + R.BAR.offset, R.BAR.size, template.barIndex);
      t.set(base + R.ID.offset, R.ID.size, 0);
      t.set(base + R.OFFSET.offset, R.OFFSET.size, LEGACY_BLOCK_OFFSET);
      t.set(base + R.LENGTH.offset, R.LENGTH.size, template.model.legacyLength);
    },
  );
}

export interface MmrLocation {
  bar: number;
  offset: number;
  length: number;
}

/** Decodes a locator from a config space (as a driver would). */
export function readMmrLocator(read: (offset: number, width: number) => number, base: number): MmrLocation {
  return {
    bar: read(base + R.BAR.offset, R.BAR.size),
    offset: read(base + R.OFFSET.offset, 4) + read(base + R.OFFSET.offset + 4, 4) * 2 ** 32,
    length: read(base + R.LENGTH.offset, 4) + read(base + R.LENGTH.offset + 4, 4) * 2 ** 32,
  };
}
