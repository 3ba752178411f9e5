import { barLayout, deviceTypes, pciHeader, legacy } from '../spec/index.js';
import { VmmrError, isVmmrError } from '../base/errors.js';
import { LEGACY_BLOCK_OFFSET } from '../mmr/locator.js';
import type { MmrVf, VfObserver } from '../mmr/vf.js';
import { ConfigStore, ConfigTemplate } from '../pci/config-space.js';
import { IntxPin } from '../pci/intx.js';
import { NOTIFY_OFF_MULTIPLIER } from '../virtio/memory-bar.js';
import { placeMemoryBar } from '../pci/registers.js';
import type { TranslatorBackend } from '../mmr/pf.js';
import { AdminChannel, traced, type AdminAccess, type AdminTrace } from './admin-backend.js';
import { TraceRing } from './trace.js';

/** What a translated access touched, for its trace entry. */
interface TracedAccess {
  bar?: number;
  offset?: number;
  admin?: AdminTrace;
}

/** The BAR access of a trace entry, when the access became one. */
function placed(access: TracedAccess, defaultBar: number): { bar?: number; offset?: number } {
  return access.offset === undefined ? {} : { bar: access.bar ?? defaultBar, offset: access.offset };
}

function noAdminCommands(vf: MmrVf): VmmrError {
  return new VmmrError(
    'VMMR_ERR_BAD_VALUE',
    `the admin backend needs admin commands: PF ${vf.pf.bdf} does not offer VIRTIO_F_ADMIN_VQ (topology "adminQueue": false)`,
    { bdf: vf.bdf },
  );
}

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
  /** How guest legacy accesses reach the device: the MMR block (mmr) or the PF's admin commands (admin). */
  backend: TranslatorBackend;
  private channel: AdminChannel | undefined;

  /** `template` comes from buildGuestTemplate for this VF's template and BAR size (the translator shares it). */
  constructor(
    readonly vf: MmrVf,
    template: ConfigTemplate,
  ) {
    this.config = new ConfigStore(template);
    this.backend = vf.pf.definition.translator;
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
        `port offset 0x${port.toString(16)} is not aligned to its width ${width}: it would not be one MMIO access`,
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

  /** With tracing on, refused accesses are recorded too (outcome = the refusal's code). */
  ioRead(port: number, width: number): number {
    if (this.backend === 'admin') {
      if (!this.trace) return this.adminRead(port, width).value;
      return this.traced('read', port, width, 0, {}, () => {
        const { value, outcome, offset } = this.adminRead(port, width);
        return { value, admin: traced(outcome, offset) };
      });
    }
    const offset = LEGACY_BLOCK_OFFSET + port;
    if (!this.trace) {
      this.checkIo(port, width);
      return this.vf.readBar(this.vf.template.barIndex, offset, width);
    }
    return this.traced('read', port, width, 0, { offset }, () => {
      this.checkIo(port, width);
      return { value: this.vf.readBar(this.vf.template.barIndex, offset, width) };
    });
  }

  ioWrite(port: number, width: number, value: number): void {
    if (this.backend === 'admin') {
      if (!this.trace) this.adminWrite(port, width, value);
      else
        this.traced('write', port, width, value, {}, () => ({
          value,
          ...this.adminWrite(port, width, value),
        }));
      return;
    }
    const offset = this.target(port, width, value);
    if (!this.trace) {
      this.checkIo(port, width);
      this.vf.writeBar(this.vf.template.barIndex, offset, width, value);
      return;
    }
    this.traced('write', port, width, value, { offset }, () => {
      this.checkIo(port, width);
      this.vf.writeBar(this.vf.template.barIndex, offset, width, value);
      return { value };
    });
  }

  // ---- the admin backend ----

  private adminChannel(): AdminChannel {
    if (!this.channel) {
      const engine = this.vf.pf.admin;
      if (!engine) throw noAdminCommands(this.vf);
      this.channel = new AdminChannel(engine, this.vf);
    }
    return this.channel;
  }

  private adminRead(port: number, width: number): AdminAccess<number> {
    this.checkIo(port, width);
    return this.adminChannel().read(port, width);
  }

  /** QUEUE_NOTIFY goes to the LEGACY_NOTIFY_INFO address; every other write is one command. */
  private adminWrite(port: number, width: number, value: number): TracedAccess {
    this.checkIo(port, width);
    const channel = this.adminChannel();
    if (port === QUEUE_NOTIFY.offset && width === QUEUE_NOTIFY.size) {
      const { address, command } = channel.notifyAddress();
      this.vf.writeBar(address.bar, address.offset, width, value);
      return { offset: address.offset, bar: address.bar, ...(command ? { admin: command } : {}) };
    }
    const { outcome, offset } = channel.write(port, width, value);
    return this.trace ? { admin: traced(outcome, offset) } : {};
  }

  /** Chooses the backend of this view (the PF's translator setting is the default). */
  setBackend(backend: TranslatorBackend): void {
    if (backend === 'admin' && !this.vf.pf.admin) throw noAdminCommands(this.vf);
    this.backend = backend;
  }

  /** Records the access; `planned` is what is known before it runs (the mmr backend's BAR offset). */
  private traced(
    op: 'read' | 'write',
    port: number,
    width: number,
    value: number,
    planned: TracedAccess,
    run: () => TracedAccess & { value: number },
  ): number {
    const at = planned.offset ?? LEGACY_BLOCK_OFFSET + port;
    const register = this.vf.template.bar.registerAt(at, this.vf.msixEnabled()) ?? 'unmapped';
    const base = { op, port, width, backend: this.backend, register };
    try {
      const done = { ...planned, ...run() };
      this.trace!.record({
        ...base,
        value: op === 'read' ? done.value : value,
        ...placed(done, this.vf.template.barIndex),
        ...(done.admin ? { admin: done.admin } : {}),
        outcome: 'ok',
      });
      return done.value;
    } catch (e) {
      const outcome = isVmmrError(e) ? e.code : 'error';
      this.trace!.record({ ...base, value, ...placed(planned, this.vf.template.barIndex), outcome });
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
