/**
 * VF addresses of a PF, from its SR-IOV registers: VF n (0-based) has routing ID
 * PF + First VF Offset + n * VF Stride (PCIe SR-IOV §9.3.3.9/10), as the kernel computes them.
 */
import { formatBdf, parseBdf } from '../pci/bdf.js';

export interface VfGeometry {
  bdf: string;
  firstVfOffset: number;
  vfStride: number;
}

export function vfBdf(pf: VfGeometry, n: number): string {
  const { domain, rid } = parseBdf(pf.bdf);
  return formatBdf(domain, rid + pf.firstVfOffset + n * pf.vfStride);
}

/** VF indexes to show: all of them, or the first and the last around a count of the rest. */
export type VfRun = { kind: 'vf'; index: number } | { kind: 'gap'; from: number; to: number };

export function vfRuns(count: number, all: boolean, max: number): VfRun[] {
  if (all || count <= max)
    return Array.from({ length: count }, (_, index) => ({ kind: 'vf' as const, index }));
  return [
    { kind: 'vf', index: 0 },
    { kind: 'gap', from: 1, to: count - 2 },
    { kind: 'vf', index: count - 1 },
  ];
}
