/** Shapes of the REST API answers the client commands read (only the fields they use). */

import type { PfSummary } from '../views/inspect.js';

export type PfInfo = PfSummary;

export interface PfList {
  items: PfInfo[];
}

export interface SriovState {
  numVfs: number;
  totalVfs: number;
  vfEnabled: boolean;
  vfMemoryEnabled: boolean;
  firstVfOffset: number;
  vfStride: number;
  /** Not in every version of the API: shown when present. */
  vfDeviceId?: string | number;
  vfs: { items: string[]; total: number; nextCursor?: string | null };
}
