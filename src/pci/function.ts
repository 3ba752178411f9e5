import { formatBdf } from './bdf.js';
import type { ConfigStore } from './config-space.js';

export type FunctionKind = 'pf' | 'vf';

/**
 * A PCI function as the access layer sees it: a 4 KiB config space and memory BARs. Callers
 * validate width, alignment and range first (src/access); subclasses add side effects.
 */
export abstract class PciFunction {
  abstract readonly kind: FunctionKind;
  abstract readonly domain: number;
  abstract readonly rid: number;
  abstract readonly config: ConfigStore;

  get bdf(): string {
    return formatBdf(this.domain, this.rid);
  }

  readConfig(offset: number, width: number): number {
    return this.config.read(offset, width);
  }

  writeConfig(offset: number, width: number, value: number): void {
    this.config.write(offset, width, value);
  }

  /** A 1-, 2- or 4-byte read of a memory BAR. */
  abstract readBar(index: number, offset: number, width: number): number;

  /** An 8-byte read of a memory BAR, delivered whole. */
  abstract readBar64(index: number, offset: number): bigint;

  /** A 1-, 2- or 4-byte write to a memory BAR. */
  abstract writeBar(index: number, offset: number, width: number, value: number): void;

  /** An 8-byte write to a memory BAR, delivered whole (given as its 32-bit halves). */
  abstract writeBar64(index: number, offset: number, low: number, high: number): void;
}
