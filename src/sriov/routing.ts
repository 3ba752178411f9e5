/**
 * Where the VFs of a PF sit (PCIe §9.2.1.2, SR-IOV First VF Offset and VF Stride): VF n
 * (0-based) takes routing ID PF + First VF Offset + n × VF Stride. The one home of that
 * arithmetic, for the PF, the machine's collision checks and the topology's VF overrides.
 */
export interface VfRouting {
  readonly rid: number;
  readonly firstVfOffset: number;
  readonly vfStride: number;
  readonly totalVfs: number;
}

/** Routing ID of VF n (0-based). */
export function vfRid(r: VfRouting, n: number): number {
  return r.rid + r.firstVfOffset + n * r.vfStride;
}

/** The VF index at a routing ID, or -1 when no VF of the PF (enabled or not) sits there. */
export function vfIndexAt(r: VfRouting, rid: number): number {
  const delta = rid - r.rid - r.firstVfOffset;
  if (delta < 0 || r.totalVfs === 0) return -1;
  if (r.vfStride === 0) return delta === 0 ? 0 : -1;
  if (delta % r.vfStride !== 0) return -1;
  const n = delta / r.vfStride;
  return n < r.totalVfs ? n : -1;
}

/** Highest routing ID any VF of the PF can take (the PF's own when it has no VFs). */
export function lastVfRid(r: VfRouting): number {
  return r.totalVfs === 0 ? r.rid : vfRid(r, r.totalVfs - 1);
}
