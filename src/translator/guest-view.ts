import { barLayout, capabilityIds, deviceTypes, pciHeader, legacy, virtioPciCap } from '../spec/index.js';
import { VmmrError, isVmmrError } from '../base/errors.js';
import { LEGACY_BLOCK_OFFSET } from '../mmr/locator.js';
import type { MmrVf, VfObserver } from '../mmr/vf.js';
import { listCapabilities } from '../pci/capabilities.js';
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
const CAP_ID_VNDR = capabilityIds.constants.CAP_ID_VNDR.value;
const CAP_NEXT = capabilityIds.registers.CAP_LIST_NEXT.offset;
const VIRTIO_CAP_LEN = virtioPciCap.registers.CAP_LEN.offset;

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

/**
 * What a legacy-only guest view answers itself instead of passing through: the config bytes of a
 * VF without its virtio vendor capabilities (virtio 1.2 §4.1.4 "Virtio Structure PCI
 * Capabilities", capability ID 0x09), as QEMU's `disable-modern=on` leaves them out
 * (hw/virtio/virtio-pci.c adds the modern capabilities only for a modern device). The list is
 * relinked around them (each visible capability's Next names the next visible one) and their
 * bytes read 0 and ignore writes. Linux's modern probe then finds no common configuration and
 * leaves the transitional device to the legacy driver (drivers/virtio/virtio_pci_modern_dev.c
 * vp_modern_probe).
 */
export interface HiddenCapabilities {
  /** 1 where the guest view answers a config byte itself. */
  readonly own: Uint8Array;
  /** The byte it answers there. */
  readonly value: Uint8Array;
}

export function hideModernCapabilities(source: ConfigTemplate): HiddenCapabilities {
  const own = new Uint8Array(EXT_START);
  const value = new Uint8Array(EXT_START);
  const caps = listCapabilities({ read: (offset, size) => source.get(offset, size) }).filter(
    (c) => c.kind === 'standard',
  );
  const visible = caps.filter((c) => c.id !== CAP_ID_VNDR);
  for (const cap of caps) {
    if (cap.id !== CAP_ID_VNDR) continue;
    const length = Math.max(source.get(cap.offset + VIRTIO_CAP_LEN, 1), CAP_NEXT + 1);
    // Capabilities start on dwords (PCI 3.0 §6.7): hiding whole dwords keeps every aligned
    // access either wholly hidden or wholly passed through.
    own.fill(1, cap.offset, Math.min(EXT_START, cap.offset + Math.ceil(length / 4) * 4));
  }
  const link = (at: number, next: number): void => {
    own[at] = 1;
    value[at] = next;
  };
  link(H.CAPABILITY_LIST.offset, visible[0]?.offset ?? 0);
  visible.forEach((cap, i) => link(cap.offset + CAP_NEXT, visible[i + 1]?.offset ?? 0));
  return { own, value };
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
  /** The modern capabilities are hidden (the `legacyOnly` option); undefined: all pass through. */
  private hidden: HiddenCapabilities | undefined;
  /** How guest legacy accesses reach the device: the MMR block (mmr) or the PF's admin commands (admin). */
  backend: TranslatorBackend;
  private channel: AdminChannel | undefined;

  /**
   * `template` comes from buildGuestTemplate for this VF's template and BAR size, `modern` from
   * hideModernCapabilities for the VF's template (the translator shares both).
   */
  constructor(
    readonly vf: MmrVf,
    template: ConfigTemplate,
    private readonly modern: HiddenCapabilities,
    legacyOnly = false,
  ) {
    this.legacyOnly = legacyOnly;
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

  /** Whether the guest sees only the legacy interface (the virtio vendor capabilities hidden). */
  get legacyOnly(): boolean {
    return this.hidden !== undefined;
  }

  set legacyOnly(on: boolean) {
    this.hidden = on ? this.modern : undefined;
  }

  // ---- guest config space ----

  private passesThrough(offset: number): boolean {
    return offset >= STD_HEADER_END && offset < EXT_START;
  }

  readConfig(offset: number, width: number): number {
    const value = this.passesThrough(offset)
      ? this.vf.readConfig(offset, width)
      : this.config.read(offset, width);
    return this.hidden ? this.answerHidden(this.hidden, offset, width, value) : value;
  }

  /** `value` with the bytes a legacy-only view answers itself replaced. */
  private answerHidden(hidden: HiddenCapabilities, offset: number, width: number, value: number): number {
    let out = value;
    for (let i = 0; i < width && offset + i < EXT_START; i++) {
      if (hidden.own[offset + i] === 0) continue;
      const shift = 8 * i;
      out = (out & ~(0xff << shift)) | (hidden.value[offset + i]! << shift);
    }
    return out >>> 0;
  }

  writeConfig(offset: number, width: number, value: number): void {
    // A hidden capability is reserved space: writes are ignored (its Next bytes are read-only).
    if (this.hidden && offset < EXT_START && this.hidden.own[offset] === 1 && this.passesThrough(offset))
      return;
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
    const hidden = this.hidden;
    if (hidden) for (let i = 0; i < EXT_START; i++) if (hidden.own[i] === 1) own[i] = hidden.value[i]!;
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

  private ioWriteOne(port: number, width: number, value: number): void {
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
