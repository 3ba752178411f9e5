/**
 * A DriverTransport over a function's registers: what a guest driver does to bring a device up
 * and drive its queues, as single accesses through the access layer (so every refusal and every
 * side effect is the one a guest would meet), and the function's DMA space for its rings and
 * buffers. Three interfaces:
 *
 * - `legacy-io`: the translator's guest I/O BAR0 of a VF (Linux virtio_pci_legacy.c,
 *   virtio 1.2 §4.1.4.10): Command I/O + Bus Master in the guest config, GUEST_FEATURES,
 *   QUEUE_SEL / QUEUE_NUM / QUEUE_PFN (legacy ring layout), QUEUE_NOTIFY;
 * - `legacy-mmr`: the same legacy block, in the VF's memory BAR at the MMR locator's offset;
 * - `modern`: the common configuration and notify region of the function's memory BAR
 *   (virtio_pci_modern.c, §4.1.4.3, §4.1.5.2): FEATURES_OK, queue_size/desc/driver/device,
 *   queue_enable, a 2-byte write of the queue index at queue_notify_off × multiplier.
 *
 * After a notification the transport drains the machine's data path, so a driver reads the
 * device's answer right after its kick (a real guest would wait for the interrupt).
 */
import { read, write, type AccessTarget, type Space } from '../access/index.js';
import type { FeatureBits } from '../devices/context.js';
import type { DmaSpace } from '../dma/space.js';
import type { Machine } from '../machine/machine.js';
import { LEGACY_BLOCK_OFFSET } from '../mmr/locator.js';
import { barLayout, commonCfg, features, legacy, pciHeader, virtioStatus } from '../spec/index.js';
import { ringFeatures, type RingAddresses, type RingFeatures, type RingFormat } from '../virtqueue/index.js';
import type { DriverTransport } from './transport.js';

const L = legacy.registers;
const C = commonCfg.registers;
const ST = virtioStatus.constants;
const H = pciHeader.registers;
const HC = pciHeader.constants;
const COMMON_BASE = barLayout.registers.COMMON_CFG.offset;
const NOTIFY_BASE = barLayout.registers.NOTIFY.offset;
const NOTIFY_MULTIPLIER = barLayout.constants.NOTIFY_OFF_MULTIPLIER.value;
const PFN_SHIFT = legacy.constants.QUEUE_ADDR_SHIFT.value;

export type DriverInterface = 'legacy-io' | 'legacy-mmr' | 'modern';

export interface RegisterTransportOptions {
  machine: Machine;
  bdf: string;
  via: DriverInterface;
  /** Features the driver would like; it accepts those the device offers. */
  wanted: FeatureBits;
}

type Width = 1 | 2 | 4;

/** The legacy header's offsets, or the common configuration's, inside the space the driver uses. */
interface Registers {
  target: AccessTarget;
  space: Space;
  base: number;
}

export class RegisterTransport implements DriverTransport {
  readonly dma: DmaSpace;
  readonly format: RingFormat;
  readonly features: RingFeatures;
  /** Feature bits accepted (the intersection of what was wanted and what the device offered). */
  readonly negotiated: FeatureBits;
  private readonly regs: Registers;
  private readonly machine: Machine;
  /** queue_notify_off of each modern queue, read when it was set up (as Linux does). */
  private readonly notifyOffsets = new Map<number, number>();

  constructor(private readonly options: RegisterTransportOptions) {
    const { machine, bdf, via } = options;
    this.machine = machine;
    const fn = machine.find(bdf);
    this.dma = machine.dataPathOf(bdf).dma;
    if (via === 'legacy-io') {
      const view = machine.guestView(bdf);
      const command = Number(read(view, 'guest-config', H.COMMAND.offset, H.COMMAND.size));
      const enable = HC.COMMAND_IO.value | HC.COMMAND_MASTER.value;
      write(view, 'guest-config', H.COMMAND.offset, H.COMMAND.size, command | enable);
      this.regs = { target: view, space: 'io', base: 0 };
    } else {
      const command = Number(read(fn, 'config', H.COMMAND.offset, H.COMMAND.size));
      const enable =
        fn.kind === 'pf' ? HC.COMMAND_MEMORY.value | HC.COMMAND_MASTER.value : HC.COMMAND_MASTER.value;
      write(fn, 'config', H.COMMAND.offset, H.COMMAND.size, command | enable);
      const space = `bar${fn.template.barIndex}` as Space;
      this.regs = { target: fn, space, base: via === 'legacy-mmr' ? LEGACY_BLOCK_OFFSET : COMMON_BASE };
    }
    this.negotiated = via === 'modern' ? this.startModern() : this.startLegacy();
    const ring = ringFeatures(this.negotiated.lo, this.negotiated.hi);
    this.format = ring.format;
    this.features = ring;
  }

  private get legacy(): boolean {
    return this.options.via !== 'modern';
  }

  read(offset: number, width: Width): number {
    return Number(read(this.regs.target, this.regs.space, this.regs.base + offset, width));
  }

  write(offset: number, width: Width, value: number): void {
    write(this.regs.target, this.regs.space, this.regs.base + offset, width, value);
  }

  private statusRegister(): { offset: number; width: Width } {
    return this.legacy ? { offset: L.STATUS.offset, width: 1 } : { offset: C.DEVICE_STATUS.offset, width: 1 };
  }

  get status(): number {
    const r = this.statusRegister();
    return this.read(r.offset, r.width);
  }

  private setStatus(value: number): void {
    const r = this.statusRegister();
    this.write(r.offset, r.width, value);
  }

  /** Reset, ACKNOWLEDGE, DRIVER, then GUEST_FEATURES = wanted ∩ HOST_FEATURES (32 bits). */
  private startLegacy(): FeatureBits {
    this.setStatus(0);
    this.setStatus(ST.ACKNOWLEDGE.value);
    this.setStatus(ST.ACKNOWLEDGE.value | ST.DRIVER.value);
    const lo = (this.read(L.HOST_FEATURES.offset, 4) & this.options.wanted.lo) >>> 0;
    this.write(L.GUEST_FEATURES.offset, 4, lo);
    return { lo, hi: 0 };
  }

  /** Reset, ACKNOWLEDGE, DRIVER, both feature halves, FEATURES_OK checked (§3.1.1). */
  private startModern(): FeatureBits {
    this.setStatus(0);
    this.setStatus(ST.ACKNOWLEDGE.value);
    this.setStatus(ST.ACKNOWLEDGE.value | ST.DRIVER.value);
    const accepted: number[] = [];
    for (const half of [0, 1]) {
      this.write(C.DEVICE_FEATURE_SELECT.offset, 4, half);
      const offered = this.read(C.DEVICE_FEATURE.offset, 4);
      const wanted = half === 0 ? this.options.wanted.lo : this.options.wanted.hi;
      accepted.push((offered & wanted) >>> 0);
      this.write(C.DRIVER_FEATURE_SELECT.offset, 4, half);
      this.write(C.DRIVER_FEATURE.offset, 4, accepted[half]!);
    }
    const status = ST.ACKNOWLEDGE.value | ST.DRIVER.value | ST.FEATURES_OK.value;
    this.setStatus(status);
    if ((this.status & ST.FEATURES_OK.value) === 0)
      throw new Error(`${this.options.bdf}: the device did not keep FEATURES_OK`);
    const version1 = features.common.constants.VERSION_1.value - 32;
    if (((accepted[1]! >>> version1) & 1) === 0)
      throw new Error(`${this.options.bdf}: a modern driver needs VERSION_1, the device did not offer it`);
    return { lo: accepted[0]!, hi: accepted[1]! };
  }

  setupQueue(index: number, size: number, addresses: RingAddresses): void {
    if (this.legacy) this.setupLegacyQueue(index, size, addresses);
    else this.setupModernQueue(index, size, addresses);
  }

  private setupLegacyQueue(index: number, size: number, addresses: RingAddresses): void {
    this.write(L.QUEUE_SEL.offset, 2, index);
    const num = this.read(L.QUEUE_NUM.offset, 2);
    if (num !== size)
      throw new Error(
        `${this.options.bdf}: legacy queue ${index} has QUEUE_NUM ${num}, the driver laid out ${size}`,
      );
    if (addresses.desc % 2 ** PFN_SHIFT !== 0)
      throw new Error(`${this.options.bdf}: legacy queue ${index} is not page aligned`);
    this.write(L.QUEUE_PFN.offset, 4, addresses.desc / 2 ** PFN_SHIFT);
  }

  private writeAddress(offset: number, address: number): void {
    this.write(offset, 4, address >>> 0);
    this.write(offset + 4, 4, Math.floor(address / 2 ** 32));
  }

  private setupModernQueue(index: number, size: number, addresses: RingAddresses): void {
    this.write(C.QUEUE_SELECT.offset, 2, index);
    const max = this.read(C.QUEUE_SIZE.offset, 2);
    if (max === 0) throw new Error(`${this.options.bdf}: queue ${index} does not exist (queue_size 0)`);
    if (size > max) throw new Error(`${this.options.bdf}: queue ${index} holds at most ${max}, not ${size}`);
    if (size !== max) this.write(C.QUEUE_SIZE.offset, 2, size);
    this.writeAddress(C.QUEUE_DESC.offset, addresses.desc);
    this.writeAddress(C.QUEUE_DRIVER.offset, addresses.driver);
    this.writeAddress(C.QUEUE_DEVICE.offset, addresses.device);
    this.notifyOffsets.set(index, this.read(C.QUEUE_NOTIFY_OFF.offset, 2));
    this.write(C.QUEUE_ENABLE.offset, 2, 1);
  }

  /** DRIVER_OK: the device may use the buffers it was given (held notifications run). */
  ready(): void {
    const modern = this.legacy ? 0 : ST.FEATURES_OK.value;
    this.setStatus(ST.ACKNOWLEDGE.value | ST.DRIVER.value | modern | ST.DRIVER_OK.value);
    this.machine.drain();
  }

  /** Notifies queue `index`, then lets the data path process it. */
  kick(index: number): void {
    if (this.legacy) this.write(L.QUEUE_NOTIFY.offset, 2, index);
    else {
      const off = this.notifyOffsets.get(index);
      if (off === undefined) throw new Error(`${this.options.bdf}: queue ${index} was not set up`);
      write(this.regs.target, this.regs.space, NOTIFY_BASE + off * NOTIFY_MULTIPLIER, 2, index);
    }
    this.machine.drain();
  }

  /** Reads (and so clears) the ISR: bit 0 used buffers, bit 1 a configuration change. */
  readIsr(): number {
    if (this.legacy) return this.read(L.ISR.offset, 1);
    return Number(read(this.regs.target, this.regs.space, barLayout.registers.ISR.offset, 1));
  }
}
