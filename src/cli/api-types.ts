/** Shapes of the REST API answers the client commands read (only the fields they use). */

export interface PfInfo {
  bdf: string;
  type: string;
  totalVfs: number;
  initialVfs: number;
  firstVfOffset: number;
  vfStride: number;
  queueSize: number;
  policy: string;
  notify: string;
  numVfs: number;
  vfEnabled: boolean;
  vfMemoryEnabled: boolean;
  vfDeviceId: string | number;
}

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
