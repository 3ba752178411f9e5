import { writeSync } from 'node:fs';
import type { IrqArming, IrqDescription, IrqSink } from './device.js';
import { native } from './native.js';
import { Errno, VFIO } from './protocol.js';

/**
 * The client's interrupt set (VFIO_USER_DEVICE_SET_IRQS), with the semantics of Linux vfio-pci,
 * which QEMU's client is built around (drivers/vfio/pci/vfio_pci_intrs.c,
 * vfio_set_irqs_validate_and_prepare in drivers/vfio/vfio_main.c):
 *
 * - INTx, MSI and MSI-X are exclusive modes: one of them (or none) is enabled at a time.
 * - INTx is level-triggered and automasked: an asserted line signals the trigger eventfd once and
 *   masks itself; the client's UNMASK (after the guest's EOI) signals again while the line is
 *   still asserted. MASK/UNMASK take DATA_NONE or DATA_BOOL.
 * - MSI/MSI-X: TRIGGER with eventfds arms vectors start..start+count-1; the first arming enables
 *   start+count vectors as one set (NORESIZE: a later SET_IRQS stays inside it); an fd of -1 (no
 *   fds sent) disarms; count 0 with DATA_NONE disables the index. No MASK/UNMASK (ENOTTY).
 * - ERR/REQ: one trigger eventfd each.
 * - TRIGGER with DATA_NONE/DATA_BOOL signals the armed eventfds (loopback), as vfio-pci does.
 *
 * The table owns every eventfd it holds and closes it when replaced, disarmed or at close().
 */
const INTX = VFIO.INTX_IRQ_INDEX.value;
const MSI = VFIO.MSI_IRQ_INDEX.value;
const MSIX = VFIO.MSIX_IRQ_INDEX.value;
const ERR = VFIO.ERR_IRQ_INDEX.value;
const REQ = VFIO.REQ_IRQ_INDEX.value;
const DATA_NONE = VFIO.IRQ_SET_DATA_NONE.value;
const DATA_BOOL = VFIO.IRQ_SET_DATA_BOOL.value;
const DATA_EVENTFD = VFIO.IRQ_SET_DATA_EVENTFD.value;
const ACTION_MASK = VFIO.IRQ_SET_ACTION_MASK.value;
const ACTION_UNMASK = VFIO.IRQ_SET_ACTION_UNMASK.value;
const ACTION_TRIGGER = VFIO.IRQ_SET_ACTION_TRIGGER.value;
const DATA_TYPES = VFIO.IRQ_SET_DATA_TYPE_MASK.value;
const ACTION_TYPES = VFIO.IRQ_SET_ACTION_TYPE_MASK.value;

const INDEX_NAMES = ['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'];

export function irqIndexName(index: number): string {
  return INDEX_NAMES[index] ?? `IRQ index ${index}`;
}

/** The flags of VFIO_USER_DEVICE_GET_IRQ_INFO for an index, as vfio-pci reports them. */
export function irqInfoFlags(index: number): number {
  const flags = VFIO.IRQ_INFO_EVENTFD.value;
  return index === INTX
    ? flags | VFIO.IRQ_INFO_MASKABLE.value | VFIO.IRQ_INFO_AUTOMASKED.value
    : flags | VFIO.IRQ_INFO_NORESIZE.value;
}

export interface SetIrqs {
  flags: number;
  index: number;
  start: number;
  count: number;
  /** DATA_BOOL: one byte per sub-index. */
  bools: Uint8Array | undefined;
  /** DATA_EVENTFD: `count` descriptors, or none (all -1). Owned by the table from the call on. */
  fds: readonly number[];
}

export type SetOutcome = { errno: 0 } | { errno: number; message: string };

const ONE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

function refuse(errno: number, message: string): SetOutcome {
  return { errno, message };
}

export class IrqTable implements IrqSink, IrqArming {
  /** INTX, MSI, MSIX, or -1 (none): vfio-pci's irq_type. */
  private mode = -1;
  /** Vectors enabled as one set in MSI/MSI-X mode (vfio-pci num_ctx). */
  private vectors = 0;
  /** Trigger eventfds by index, -1 where none. */
  private readonly triggers: number[][];
  private intxMasked = false;
  private intxLevel = false;
  /** Interrupts the device raised that no armed eventfd took (for status and tests). */
  dropped = 0;
  /** Interrupts delivered through eventfds. */
  delivered = 0;

  constructor(private readonly counts: readonly IrqDescription[]) {
    this.triggers = counts.map((c) => new Array<number>(c.count).fill(-1));
  }

  private count(index: number): number {
    return this.counts[index]?.count ?? 0;
  }

  /** How many IRQ indexes the device has (VFIO_PCI_NUM_IRQS for a PCI device). */
  get indexCount(): number {
    return this.counts.length;
  }

  /** Sub-indexes of `index` (VFIO_USER_DEVICE_GET_IRQ_INFO count). */
  countOf(index: number): number {
    return this.count(index);
  }

  // ---- device side -------------------------------------------------------------------------

  trigger(index: number, subindex: number): void {
    const fd = this.triggers[index]?.[subindex] ?? -1;
    const live =
      index === MSI || index === MSIX
        ? this.mode === index && subindex < this.vectors
        : index === ERR || index === REQ;
    if (live && fd >= 0) this.signal(fd);
    else this.dropped++;
  }

  level(index: number, subindex: number, asserted: boolean): void {
    if (index !== INTX || subindex !== 0) return;
    this.intxLevel = asserted;
    if (asserted) this.intxFire();
  }

  armed(index: number, subindex: number): boolean {
    return this.mode === index && subindex < this.vectors && (this.triggers[index]?.[subindex] ?? -1) >= 0;
  }

  /** Fires the INTx eventfd when the line is asserted, INTx enabled and not masked; then automasks. */
  private intxFire(): void {
    const fd = this.triggers[INTX]?.[0] ?? -1;
    if (!this.intxLevel || this.mode !== INTX || this.intxMasked) return;
    if (fd < 0) {
      this.dropped++;
      return;
    }
    this.intxMasked = true;
    this.signal(fd);
  }

  private signal(fd: number): void {
    try {
      writeSync(fd, ONE);
      this.delivered++;
    } catch {
      // The counter is at its maximum (EAGAIN): the client has that many unread interrupts already.
      this.dropped++;
    }
  }

  // ---- client side (VFIO_USER_DEVICE_SET_IRQS) -------------------------------------------------

  /** Applies one SET_IRQS; every fd in `req.fds` is stored or closed. */
  set(req: SetIrqs): SetOutcome {
    const fds = [...req.fds];
    const outcome = this.apply(req, fds);
    for (const fd of fds) if (fd >= 0) native.close(fd);
    return outcome;
  }

  private apply(req: SetIrqs, fds: number[]): SetOutcome {
    const { flags, index, start, count } = req;
    const name = irqIndexName(index);
    if ((flags & ~(DATA_TYPES | ACTION_TYPES)) !== 0)
      return refuse(
        Errno.EINVAL,
        `flags 0x${flags.toString(16)} has bits outside the DATA_* and ACTION_* flags`,
      );
    const data = flags & DATA_TYPES;
    const action = flags & ACTION_TYPES;
    if (data !== DATA_NONE && data !== DATA_BOOL && data !== DATA_EVENTFD)
      return refuse(
        Errno.EINVAL,
        `flags 0x${flags.toString(16)} must name exactly one of DATA_NONE, DATA_BOOL, DATA_EVENTFD`,
      );
    if (action !== ACTION_MASK && action !== ACTION_UNMASK && action !== ACTION_TRIGGER)
      return refuse(
        Errno.EINVAL,
        `flags 0x${flags.toString(16)} must name exactly one of ACTION_MASK, ACTION_UNMASK, ACTION_TRIGGER`,
      );
    if (index >= this.counts.length)
      return refuse(Errno.EINVAL, `index ${index} is beyond the ${this.counts.length} IRQ indexes`);
    const max = this.count(index);
    if (start >= max || start + count > max) {
      return refuse(
        Errno.EINVAL,
        `start ${start} count ${count} is outside ${name}'s ${max} interrupt${max === 1 ? '' : 's'}`,
      );
    }
    if (data === DATA_BOOL && (req.bools?.length ?? 0) < count)
      return refuse(Errno.EINVAL, `DATA_BOOL needs ${count} bytes of data`);
    if (data === DATA_EVENTFD && fds.length !== 0 && fds.length !== count) {
      return refuse(
        Errno.EINVAL,
        `DATA_EVENTFD with count ${count} came with ${fds.length} file descriptors (expected ${count}, or none to disarm)`,
      );
    }
    if (data !== DATA_EVENTFD && fds.length > 0)
      return refuse(Errno.EINVAL, `${fds.length} file descriptors came without DATA_EVENTFD`);
    const on = (i: number): boolean => data === DATA_NONE || (req.bools![i] ?? 0) !== 0;
    switch (index) {
      case INTX:
        return this.setIntx(action, data, count, start, fds, on);
      case MSI:
      case MSIX:
        return this.setMsi(index, action, data, start, count, fds, on);
      case ERR:
      case REQ:
        return this.setSingle(index, action, data, count, fds, on);
      default:
        return refuse(Errno.EINVAL, `index ${index} is not a PCI IRQ index`);
    }
  }

  private setIntx(
    action: number,
    data: number,
    count: number,
    start: number,
    fds: number[],
    on: (i: number) => boolean,
  ): SetOutcome {
    if (action === ACTION_TRIGGER && count === 0 && data === DATA_NONE) {
      if (this.mode === INTX) this.disable();
      return { errno: 0 };
    }
    if (action !== ACTION_TRIGGER) {
      if (this.mode !== INTX || start !== 0 || count !== 1)
        return refuse(
          Errno.EINVAL,
          `INTx ${action === ACTION_MASK ? 'MASK' : 'UNMASK'} needs INTx enabled, start 0 and count 1`,
        );
      if (data === DATA_EVENTFD)
        return refuse(
          Errno.ENOTTY,
          `INTx ${action === ACTION_MASK ? 'MASK' : 'UNMASK'} with an eventfd (irqfd) is not supported: use DATA_NONE or DATA_BOOL`,
        );
      if (!on(0)) return { errno: 0 };
      if (action === ACTION_MASK) this.intxMasked = true;
      else {
        this.intxMasked = false;
        this.intxFire();
      }
      return { errno: 0 };
    }
    if ((this.mode !== INTX && this.mode !== -1) || start !== 0 || count !== 1) {
      return refuse(
        Errno.EINVAL,
        `INTx TRIGGER needs start 0 and count 1 and no other interrupt mode (now ${irqIndexName(this.mode)})`,
      );
    }
    if (data !== DATA_EVENTFD) {
      const fd = this.triggers[INTX]![0]!;
      if (this.mode === INTX && on(0) && fd >= 0) this.signal(fd);
      return { errno: 0 };
    }
    if (this.mode === -1) {
      this.mode = INTX;
      this.intxMasked = false;
    }
    this.replace(INTX, 0, fds.shift() ?? -1);
    this.intxFire();
    return { errno: 0 };
  }

  private setMsi(
    index: number,
    action: number,
    data: number,
    start: number,
    count: number,
    fds: number[],
    on: (i: number) => boolean,
  ): SetOutcome {
    const name = irqIndexName(index);
    if (action !== ACTION_TRIGGER)
      return refuse(
        Errno.ENOTTY,
        `${name} has no MASK/UNMASK (its masking is the MSI-X table's or the client's)`,
      );
    if (count === 0 && data === DATA_NONE) {
      if (this.mode === index) this.disable();
      return { errno: 0 };
    }
    if (this.mode !== index && this.mode !== -1)
      return refuse(Errno.EINVAL, `${name} cannot be enabled while ${irqIndexName(this.mode)} is`);
    if (data !== DATA_EVENTFD) {
      if (this.mode !== index) return refuse(Errno.EINVAL, `${name} is not enabled: nothing to trigger`);
      for (let i = start; i < start + count; i++) {
        const fd = this.triggers[index]![i]!;
        if (i < this.vectors && fd >= 0 && on(i - start)) this.signal(fd);
      }
      return { errno: 0 };
    }
    if (this.mode === index && start + count > this.vectors) {
      return refuse(
        Errno.EINVAL,
        `${name} was enabled with ${this.vectors} vectors as one set (NORESIZE): start ${start} count ${count} is beyond it; disable it (count 0) and enable the larger set`,
      );
    }
    if (this.mode !== index) {
      this.mode = index;
      this.vectors = start + count;
    }
    for (let i = 0; i < count; i++) this.replace(index, start + i, fds.shift() ?? -1);
    return { errno: 0 };
  }

  private setSingle(
    index: number,
    action: number,
    data: number,
    count: number,
    fds: number[],
    on: (i: number) => boolean,
  ): SetOutcome {
    const name = irqIndexName(index);
    if (action !== ACTION_TRIGGER) return refuse(Errno.ENOTTY, `${name} has only ACTION_TRIGGER`);
    const fd = this.triggers[index]![0]!;
    if (data === DATA_NONE) {
      if (count === 0) this.replace(index, 0, -1);
      else if (fd >= 0) this.signal(fd);
      return { errno: 0 };
    }
    if (count === 0)
      return refuse(
        Errno.EINVAL,
        `${name} ${data === DATA_BOOL ? 'DATA_BOOL' : 'DATA_EVENTFD'} needs count 1`,
      );
    if (data === DATA_BOOL) {
      if (on(0) && fd >= 0) this.signal(fd);
      return { errno: 0 };
    }
    this.replace(index, 0, fds.shift() ?? -1);
    return { errno: 0 };
  }

  private replace(index: number, subindex: number, fd: number): void {
    const slots = this.triggers[index]!;
    const old = slots[subindex]!;
    if (old >= 0) native.close(old);
    slots[subindex] = fd;
  }

  /** Disables the current mode: its eventfds are closed. */
  private disable(): void {
    const slots = this.triggers[this.mode]!;
    for (let i = 0; i < slots.length; i++) this.replace(this.mode, i, -1);
    this.mode = -1;
    this.vectors = 0;
    this.intxMasked = false;
  }

  /** The mode now enabled (an IRQ index) or -1. */
  get enabledIndex(): number {
    return this.mode;
  }

  /** Closes every eventfd (the client is gone); the device's line level is kept. */
  close(): void {
    if (this.mode >= 0) this.disable();
    for (const index of [ERR, REQ]) if (this.triggers[index]) this.replace(index, 0, -1);
  }

  /** Eventfds held now. */
  fdCount(): number {
    return this.triggers.reduce((n, slots) => n + slots.filter((fd) => fd >= 0).length, 0);
  }
}
