/**
 * INTx as an interrupt controller sees it: each function's pin is wired to the line its
 * Interrupt Line register names (the number a guest driver requests, PCI 3.0 §6.2.4), and
 * functions on the same line share it — the line is high while any of them asserts (level
 * triggered, wired-OR). The core reports each pin's level changes as `interrupt` events with
 * `mode: 'intx'`: the translator's emulated pin of a VF carries `view: 'guest'`, a PF's own pin
 * none.
 */
import { read } from '../access/index.js';
import type { VmmrEvent } from '../base/events.js';
import { isVmmrError } from '../base/errors.js';
import type { Machine } from '../machine/machine.js';
import { pciHeader } from '../spec/index.js';
import { accessTarget, configSpaceOf, type ViewName } from './decode.js';

const LINE = pciHeader.registers.INTERRUPT_LINE;

export interface LineChange {
  readonly line: number;
  readonly level: boolean;
}

/** The Interrupt Line a view shows of the function at `bdf`, or undefined when it is gone. */
export function interruptLineOf(machine: Machine, view: ViewName, bdf: string): number | undefined {
  try {
    const space = configSpaceOf(view);
    return read(accessTarget(machine, machine.find(bdf), space), space, LINE.offset, LINE.size) as number;
  } catch (e) {
    if (isVmmrError(e)) return undefined;
    throw e;
  }
}

export class IntxLines {
  /** Functions whose pin is asserted, with the line it was wired to when it rose. */
  private readonly asserted = new Map<string, number>();
  private readonly counts = new Map<number, number>();

  constructor(
    readonly view: ViewName,
    private readonly lineOf: (bdf: string) => number | undefined,
  ) {}

  /** The line change an event causes (a line going from low to high or back), if any. */
  onEvent(event: VmmrEvent): LineChange | undefined {
    if (event.type !== 'interrupt' || event.mode !== 'intx') return undefined;
    if ((event.view === 'guest') !== (this.view === 'guest')) return undefined;
    const was = this.asserted.get(event.bdf);
    if (event.level) {
      if (was !== undefined) return undefined;
      const line = this.lineOf(event.bdf);
      if (line === undefined) return undefined;
      this.asserted.set(event.bdf, line);
      const count = (this.counts.get(line) ?? 0) + 1;
      this.counts.set(line, count);
      return count === 1 ? { line, level: true } : undefined;
    }
    if (was === undefined) return undefined;
    this.asserted.delete(event.bdf);
    const count = (this.counts.get(was) ?? 1) - 1;
    if (count > 0) {
      this.counts.set(was, count);
      return undefined;
    }
    this.counts.delete(was);
    return { line: was, level: false };
  }

  /** Every pin drops (the machine was replaced): the lines that were high go low. */
  clear(): LineChange[] {
    const lowered = [...this.counts.keys()].sort((a, b) => a - b).map((line) => ({ line, level: false }));
    this.asserted.clear();
    this.counts.clear();
    return lowered;
  }
}
