import { barLayout, deviceTypes, pciHeader, legacy } from '../spec/index.js';
import { VmmrError, isVmmrError } from '../base/errors.js';
import { LEGACY_BLOCK_OFFSET } from '../mmr/locator.js';
import type { MmrVf, VfObserver } from '../mmr/vf.js';
import { ConfigStore, ConfigTemplate } from '../pci/config-space.js';
import { IntxPin } from '../pci/intx.js';
import { NOTIFY_OFF_MULTIPLIER } from '../virtio/memory-bar.js';
import { placeMemoryBar } from '../pci/registers.js';
import { TraceRing } from './trace.js';

const H = pciHeader.registers;
const HC = pciHeader.constants;
const STD_HEADER_END = pciHeader.constants.STD_HEADER_SIZEOF.value;
const EXT_START = pciHeader.constants.EXT_CAP_START.value;
const QUEUE_NOTIFY = legacy.registers.QUEUE_NOTIFY;
const NOTIFY_REGION = barLayout.registers.NOTIFY.offset;
const IO_FLAG_BITS = 0x3;

/**
 * The guest's header of a VF shown through the translator (docs/device-model.md "The translator's guest view", as Linux
 * drivers/vfio/pci/virtio): a classic transitional device — Vendor 0x1AF4, Device ID 0x1000+n,
 * revision 0, BAR0 an I/O BAR of the legacy block's length, the VF memory BAR passed through at
 * its own index, INTx pin A, and no extended capabilities (the MMR locator is hidden).
 */
export function buildGuestTemplate(vf: MmrVf): ConfigTemplate {
  const source = vf.template;
  const t = source.config.clone();
  t.setMasks(H.COMMAND.offset, H.COMMAND.size, H.COMMAND.writeMask ?? 0);
  const info = deviceTypes.types[source.model.type];
  t.set(H.VENDOR_ID.offset, H.VENDOR_ID.size, deviceTypes.constants.VENDOR_ID.value);
  t.set(H.DEVICE_ID.offset, H.DEVICE_ID.size, info.transitionalId);
  t.set(H.BASE_ADDRESS_0.offset, 4, HC.BASE_ADDRESS_SPACE_IO.value);
  t.setMasks(H.BASE_ADDRESS_0.offset, 4, (~(source.model.legacyLength - 1) & ~IO_FLAG_BITS) >>> 0);
  placeMemoryBar(t, H.BASE_ADDRESS_0.offset + source.barIndex * 4, vf.barSize());
  t.set(H.INTERRUPT_PIN.offset, H.INTERRUPT_PIN.size, HC.INTERRUPT_PIN_A.value);
  // A function that uses an interrupt pin implements Interrupt Line read-write (PCI 3.0 §6.2.4).
  t.setMasks(H.INTERRUPT_LINE.offset, H.INTERRUPT_LINE.size, H.INTERRUPT_LINE.writeMask ?? 0);
  for (let off = EXT_START; off < t.bytes.length; off += 4) {
    t.set(off, 4, 0);
    t.setMasks(off, 4, 0);
  }
  return t;
}

/**
 * The naturally aligned pieces, in ascending order, that QEMU's memory core cuts an unaligned
 * access into (system/physmem.c memory_access_size: the largest power of two allowed by the
 * address's alignment and the bytes left).
 */
export function alignedPieces(port: number, width: number): Array<{ port: number; width: number }> {
  const pieces: Array<{ port: number; width: number }> = [];
  for (let at = port; at < port + width;) {
    let w = 4;
    while (w > 1 && (at % w !== 0 || w > port + width - at)) w >>= 1;
    pieces.push({ port: at, width: w });
    at += w;
  }
  return pieces;
}

function refuse(
  code: 'VMMR_ERR_IO_DISABLED' | 'VMMR_ERR_OUT_OF_RANGE' | 'VMMR_ERR_BAD_WIDTH' | 'VMMR_ERR_UNALIGNED',
  message: string,
): never {
  throw new VmmrError(code, message);
}

/**
 * A second view over one VF's state: what a legacy guest driver sees through the I/O-to-MMIO
 * translator. Header bytes are the guest's own; the standard capabilities (PCIe, MSI-X, virtio)
 * pass through to the VF, so a guest enabling MSI-X moves the VF's legacy device config from 20
 * to 24. Each I/O access becomes exactly one MMIO access of the same width on the VF BAR.
 */
export class GuestView implements VfObserver {
  readonly config: ConfigStore;
  private readonly intx: IntxPin;
  trace: TraceRing | undefined;

  /** `template` comes from buildGuestTemplate for this VF's template and BAR size (the translator shares it). */
  constructor(
    readonly vf: MmrVf,
    template: ConfigTemplate,
  ) {
    this.config = new ConfigStore(template);
    this.intx = new IntxPin(this.config, (level) => {
      const events = this.vf.events;
      if (events.active)
        events.emit({ type: 'interrupt', bdf: this.vf.bdf, mode: 'intx', level, view: 'guest' });
    });
  }

  /** The VF's address: a guest view is addressed as its VF. */
  get bdf(): string {
    return this.vf.bdf;
  }

  get ioLength(): number {
    return this.vf.template.model.legacyLength;
  }

  private command(): number {
    return this.config.read(H.COMMAND.offset, H.COMMAND.size);
  }

  get ioEnabled(): boolean {
    return (this.command() & HC.COMMAND_IO.value) !== 0;
  }

  get memoryEnabled(): boolean {
    return (this.command() & HC.COMMAND_MEMORY.value) !== 0;
  }

  // ---- guest config space ----

  private passesThrough(offset: number): boolean {
    return offset >= STD_HEADER_END && offset < EXT_START;
  }

  readConfig(offset: number, width: number): number {
    if (this.passesThrough(offset)) return this.vf.readConfig(offset, width);
    return this.config.read(offset, width);
  }

  writeConfig(offset: number, width: number, value: number): void {
    if (this.passesThrough(offset)) {
      this.vf.writeConfig(offset, width, value);
      return;
    }
    this.config.write(offset, width, value);
    const command = H.COMMAND;
    if (offset < command.offset + command.size && offset + width > command.offset) {
      const master = HC.COMMAND_MASTER.value;
      const vfCommand = this.vf.readConfig(command.offset, command.size);
      this.vf.writeConfig(command.offset, command.size, (vfCommand & ~master) | (this.command() & master));
      this.updateIntx();
    }
  }

  /** The guest's whole config space, read without side effects. */
  snapshot(): Uint8Array {
    const own = this.config.snapshot();
    const vf = this.vf.config.snapshot();
    own.set(vf.subarray(STD_HEADER_END, EXT_START), STD_HEADER_END);
    return own;
  }

  // ---- emulated INTx ----

  /** Pin A follows the ISR while MSI-X is disabled; Command.Interrupt Disable masks the pin. */
  updateIntx(): void {
    this.intx.update(this.intxPending());
  }

  private intxPending(): boolean {
    return this.vf.device.isr !== 0 && !this.vf.msixEnabled();
  }

  /** The device set Bus Master on the VF (compat, as QEMU): the guest's Command shows it. */
  busMasterSet(): void {
    this.config.write(H.COMMAND.offset, H.COMMAND.size, this.command() | HC.COMMAND_MASTER.value);
  }

  /**
   * The VF took an FLR (PCIe §6.6.2): the guest header goes back to its reset values — Command 0,
   * so I/O decode is off — as Linux drivers/vfio/pci/virtio clears its Command copy on reset.
   */
  functionReset(): void {
    this.config.clear();
    this.updateIntx();
  }

  /** The VF went away: an asserted pin drops. */
  release(): void {
    this.intx.release();
  }

  get intxAsserted(): boolean {
    return this.intx.asserted;
  }

  // ---- I/O translation ----

  private checkIo(port: number, width: number): void {
    if (width !== 1 && width !== 2 && width !== 4) {
      refuse('VMMR_ERR_BAD_WIDTH', `I/O accesses are 1, 2 or 4 bytes wide, not ${width}`);
    }
    if (port + width > this.ioLength) {
      refuse(
        'VMMR_ERR_OUT_OF_RANGE',
        `port offset 0x${port.toString(16)} width ${width} is beyond I/O BAR0 (${this.ioLength} bytes)`,
      );
    }
    if (port % width !== 0) {
      refuse(
        'VMMR_ERR_UNALIGNED',
        `port offset 0x${port.toString(16)} is not aligned to its width ${width}: it would not be one MMIO access` +
          ' (the strict policy refuses it; compat splits it into aligned pieces as QEMU does)',
      );
    }
    if (!this.ioEnabled) {
      refuse(
        'VMMR_ERR_IO_DISABLED',
        'I/O space is disabled: the guest Command register has I/O Space Enable clear',
      );
    }
  }

  /** Where an I/O write lands: the legacy block, or the notify region for QUEUE_NOTIFY. */
  private target(port: number, width: number, value: number): number {
    const model = this.vf.template.model;
    if (
      port === QUEUE_NOTIFY.offset &&
      width === QUEUE_NOTIFY.size &&
      model.notifyRoute === 'notify-region' &&
      value < model.queueNames.length
    ) {
      return NOTIFY_REGION + value * NOTIFY_OFF_MULTIPLIER;
    }
    return LEGACY_BLOCK_OFFSET + port;
  }

  /** Under compat an unaligned access is its aligned pieces, in order, each one MMIO access (QEMU). */
  private splits(port: number, width: number): boolean {
    return (
      (width === 2 || width === 4) &&
      port % width !== 0 &&
      !this.vf.policyStrict &&
      port + width <= this.ioLength
    );
  }

  /** With tracing on, refused accesses are recorded too (outcome = the refusal's code). */
  ioRead(port: number, width: number): number {
    if (!this.splits(port, width)) return this.ioReadOne(port, width);
    let value = 0;
    for (const piece of alignedPieces(port, width)) {
      value += this.ioReadOne(piece.port, piece.width) * 2 ** (8 * (piece.port - port));
    }
    return value;
  }

  ioWrite(port: number, width: number, value: number): void {
    if (!this.splits(port, width)) {
      this.ioWriteOne(port, width, value);
      return;
    }
    for (const piece of alignedPieces(port, width)) {
      const part = Math.floor(value / 2 ** (8 * (piece.port - port))) % 2 ** (8 * piece.width);
      this.ioWriteOne(piece.port, piece.width, part);
    }
  }

  private ioReadOne(port: number, width: number): number {
    const offset = LEGACY_BLOCK_OFFSET + port;
    if (!this.trace) {
      this.checkIo(port, width);
      return this.vf.readBar(this.vf.template.barIndex, offset, width);
    }
    return this.traced('read', port, width, 0, offset, () => {
      this.checkIo(port, width);
      return this.vf.readBar(this.vf.template.barIndex, offset, width);
    });
  }

  private ioWriteOne(port: number, width: number, value: number): void {
    const offset = this.target(port, width, value);
    if (!this.trace) {
      this.checkIo(port, width);
      this.vf.writeBar(this.vf.template.barIndex, offset, width, value);
      return;
    }
    this.traced('write', port, width, value, offset, () => {
      this.checkIo(port, width);
      this.vf.writeBar(this.vf.template.barIndex, offset, width, value);
      return value;
    });
  }

  private traced(
    op: 'read' | 'write',
    port: number,
    width: number,
    value: number,
    offset: number,
    run: () => number,
  ): number {
    const register = this.vf.template.bar.registerAt(offset, this.vf.msixEnabled()) ?? 'unmapped';
    const bar = this.vf.template.barIndex;
    try {
      const result = run();
      this.trace!.record({
        op,
        port,
        width,
        value: op === 'read' ? result : value,
        bar,
        offset,
        register,
        outcome: 'ok',
      });
      return result;
    } catch (e) {
      const outcome = isVmmrError(e) ? e.code : 'error';
      this.trace!.record({ op, port, width, value, bar, offset, register, outcome });
      throw e;
    }
  }

  enableTrace(depth?: number): void {
    this.trace = new TraceRing(depth);
  }

  disableTrace(): void {
    this.trace = undefined;
  }
}
