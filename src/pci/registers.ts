import { pciHeader, type AnyTable } from '../spec/index.js';
import type { ConfigTemplate } from './config-space.js';

const HC = pciHeader.constants;

/**
 * Copies a register table's reset values and masks into a capability at `base` (a VF takes the
 * VF variants where the table has them). Aliases (registers overlapping others on purpose) and
 * the names in `skip` are left out.
 */
export function applyRegisterTable(
  t: ConfigTemplate,
  base: number,
  table: AnyTable,
  vf: boolean,
  skip: readonly string[] = [],
): void {
  for (const [name, reg] of Object.entries(table.registers)) {
    if (reg.alias || skip.includes(name)) continue;
    t.set(base + reg.offset, reg.size, (vf ? reg.vfReset : undefined) ?? reg.reset ?? 0);
    const writeMask = vf ? (reg.vfWriteMask ?? reg.writeMask ?? 0) : (reg.writeMask ?? 0);
    t.setMasks(base + reg.offset, reg.size, writeMask, reg.rw1cMask ?? 0);
  }
}

/** The 64-bit non-prefetchable memory BAR pair at `registerOffset` of a type-0 header or an SR-IOV cap. */
export function placeMemoryBar(t: ConfigTemplate, registerOffset: number, size: number): void {
  t.set(registerOffset, 4, HC.BASE_ADDRESS_SPACE_MEMORY.value | HC.BASE_ADDRESS_MEM_TYPE_64.value);
  t.setMasks(registerOffset, 4, (~(size - 1) & ~0xf) >>> 0);
  t.set(registerOffset + 4, 4, 0);
  t.setMasks(registerOffset + 4, 4, 0xffffffff);
}
