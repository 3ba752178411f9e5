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

  /** Reads a BAR register; for width 8 the upper half is left in `wide.high`. */
  abstract readBar(index: number, offset: number, width: number): number;

  /** Writes a BAR register; for width 8, `high` is the upper half. */
  abstract writeBar(index: number, offset: number, width: number, value: number, high: number): void;
}
