import { pciHeader } from '../spec/index.js';
import type { ConfigStore } from './config-space.js';

const H = pciHeader.registers;
const STATUS_INTERRUPT = pciHeader.constants.STATUS_INTERRUPT.value;
const COMMAND_INTX_DISABLE = pciHeader.constants.COMMAND_INTX_DISABLE.value;

/**
 * An INTx pin (PCI 3.0 §6.2.2, §6.8.1.1): Status.Interrupt Status reflects a pending interrupt
 * whatever the Command register says; the pin is asserted while one is pending and Command
 * Interrupt Disable is clear. `onChange` hears every edge of the pin.
 */
export class IntxPin {
  private level = false;

  constructor(
    private readonly config: ConfigStore,
    private readonly onChange: (level: boolean) => void,
  ) {}

  /** Re-evaluates the pin: `pending` is whether the function has an interrupt for INTx now. */
  update(pending: boolean): void {
    const status = this.config.read(H.STATUS.offset, H.STATUS.size);
    const nextStatus = pending ? status | STATUS_INTERRUPT : status & ~STATUS_INTERRUPT;
    if (nextStatus !== status) this.config.poke(H.STATUS.offset, H.STATUS.size, nextStatus);
    const command = this.config.read(H.COMMAND.offset, H.COMMAND.size);
    const level = pending && (command & COMMAND_INTX_DISABLE) === 0;
    if (level !== this.level) {
      this.level = level;
      this.onChange(level);
    }
  }

  /** The function goes away: an asserted pin drops. */
  release(): void {
    if (!this.level) return;
    this.level = false;
    this.onChange(false);
  }

  /** After a state restore: the pin's level from the restored registers, without an edge. */
  settle(pending: boolean): void {
    const command = this.config.read(H.COMMAND.offset, H.COMMAND.size);
    this.level = pending && (command & COMMAND_INTX_DISABLE) === 0;
  }

  get asserted(): boolean {
    return this.level;
  }
}
