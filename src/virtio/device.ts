import { features, legacy, virtioRing, virtioStatus } from '../spec/index.js';
import type { EventBus, ResetReason } from '../base/events.js';
import { bytesToHex, hex64, hexToBytes, parseHex64 } from '../base/hex.js';
import type { DeviceModel } from './model.js';

export const NO_VECTOR = legacy.constants.NO_VECTOR.value;
const ISR_QUEUE = legacy.constants.ISR_QUEUE.value;
const ISR_CONFIG = legacy.constants.ISR_CONFIG.value;
const QUEUE_ADDR_SHIFT = legacy.constants.QUEUE_ADDR_SHIFT.value;
const VRING_ALIGN = legacy.constants.VRING_ALIGN.value;
const FEATURES_OK = virtioStatus.constants.FEATURES_OK.value;
const NEEDS_RESET = virtioStatus.constants.NEEDS_RESET.value;
const DRIVER_OK = virtioStatus.constants.DRIVER_OK.value;
const ACK_DRIVER = virtioStatus.constants.ACKNOWLEDGE.value | virtioStatus.constants.DRIVER.value;
const BAD_FEATURE = 1 << features.common.constants.BAD_FEATURE.value;
const VERSION_1_HI = 1 << (features.common.constants.VERSION_1.value - 32);
const NET_CTRL_MAC_ADDR = 1 << features.byType.net.constants.CTRL_MAC_ADDR.value;

/** A device-config field a driver write may not change, and why. */
export interface ReadOnlyField {
  readonly name: string;
  readonly why: string;
}

/** What a device needs from the PCI function that carries it. */
export interface DeviceHost {
  readonly bdf: string;
  readonly events: EventBus;
  msixEnabled(): boolean;
  /** Fires an MSI-X vector of the function (its table handles masking and pending bits). */
  signalMsix(vector: number): void;
  /** The ISR or the interrupt mode changed: re-evaluate the INTx level (PF) or the guest's (VF). */
  updateIntx(): void;
  /** Byte k of the function's identity field (net: its MAC), derived from its BDF unless overridden. */
  identityByte(k: number): number;
  /** Capacity in 512-byte sectors of the storage behind a block function (its config CAPACITY). */
  capacitySectors(): number;
  /** A driver notification reached the device: the data path processes it after the access. */
  queueNotified(queue: number): void;
  /** The device was reset (§2.4): the data path drops its queues and what was in flight. */
  deviceReset(): void;
  /** DRIVER_OK was set: notifications held until then are processed. */
  driverReady(): void;
  /** Sets Command.Bus Master (compat: QEMU's answer to a legacy STATUS write of ACKNOWLEDGE | DRIVER). */
  setBusMaster(): void;
}

/** What a driver programmed into one queue, as numbers (the data path builds its ring from it). */
export interface QueueProgram {
  size: number;
  enabled: boolean;
  desc: number;
  driver: number;
  device: number;
}

/** Per-queue state, stored as QUEUE_FIELDS u32 slots per queue in one array. */
const Q_SIZE = 0;
const Q_VECTOR = 1;
const Q_ENABLED = 2;
const Q_DESC = 3;
const Q_DRIVER = 5;
const Q_DEVICE = 7;
const QUEUE_FIELDS = 9;

export type QueueAddress = 'desc' | 'driver' | 'device';
const ADDRESS_SLOT: Record<QueueAddress, number> = { desc: Q_DESC, driver: Q_DRIVER, device: Q_DEVICE };

export interface QueueState {
  index: number;
  name: string;
  size: number;
  maxSize: number;
  enabled: boolean;
  vector: number;
  desc: string;
  driver: string;
  device: string;
}

/** What a driver programmed into one queue (its registers), for state snapshots. */
export interface QueueRegisters {
  size: number;
  vector: number;
  enabled: boolean;
  /** 64-bit ring addresses, "0x" + 16 hex digits. */
  desc: string;
  driver: string;
  device: string;
}

/** A device's state by name: registers, queues (null until programmed), config bytes (plain hex, null until changed). */
export interface DeviceState {
  status: number;
  isr: number;
  generation: number;
  queueSelect: number;
  configVector: number;
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  driverFeatures: string;
  queues: QueueRegisters[] | null;
  config: string | null;
}

function halves(text: string, what: string): [number, number] {
  const value = parseHex64(text);
  if (!value) throw new Error(`device state: ${what} ${JSON.stringify(text)} is not a 64-bit hex value`);
  return value;
}

/**
 * The virtio device state one function carries, shared by the legacy register block and the
 * modern common configuration (virtio 1.2 §4.1.4 and §4.1.4.10): status machine, features,
 * queues, ISR, vectors and device configuration. Register blocks decode offsets and call these
 * methods; nothing here knows an offset. Vectors fire through the function's MSI-X table.
 */
export class VirtioDevice {
  status = 0;
  isr = 0;
  generation = 0;
  queueSelect = 0;
  configVector = NO_VECTOR;
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  driverFeaturesLo = 0;
  driverFeaturesHi = 0;
  private queues: Uint32Array | undefined;
  private config: Uint8Array | undefined;

  constructor(
    readonly model: DeviceModel,
    private readonly host: DeviceHost,
  ) {}

  // ---- features (§2.2) ----

  deviceFeatures(select: number): number {
    if (select === 0) return this.model.featuresLo;
    if (select === 1) return this.model.featuresHi;
    return 0;
  }

  driverFeatures(select: number): number {
    if (select === 0) return this.driverFeaturesLo;
    if (select === 1) return this.driverFeaturesHi;
    return 0;
  }

  setDriverFeatures(select: number, value: number): void {
    if (select === 0) this.driverFeaturesLo = value >>> 0;
    else if (select === 1) this.driverFeaturesHi = value >>> 0;
  }

  /** The bits of a legacy GUEST_FEATURES value that the device does not offer. */
  unofferedLegacyFeatures(value: number): number {
    return (value & ~this.model.featuresLo) >>> 0;
  }

  /**
   * Legacy GUEST_FEATURES, as QEMU (hw/virtio/virtio-pci.c virtio_ioport_write, hw/virtio/virtio.c
   * virtio_set_features): a driver that sets VIRTIO_F_BAD_FEATURE cannot negotiate and gets the
   * type's fallback set; the value is masked with what the device offers; the upper half is not
   * negotiable there.
   */
  setLegacyDriverFeatures(value: number): void {
    const requested = value & BAD_FEATURE ? this.model.badFeaturesLo : value;
    this.driverFeaturesLo = (requested & this.model.featuresLo) >>> 0;
    this.driverFeaturesHi = 0;
  }

  // ---- status (§2.1, §3.1) ----

  /**
   * A driver status write. 0 resets the device. FEATURES_OK exists only on the modern path: a
   * modern write keeps it only when the driver's features are a subset of the device's
   * (§3.1.1); a legacy write drops it, since legacy has no FEATURES_OK step (§4.1.4.10).
   */
  writeStatus(value: number, path: 'legacy' | 'modern'): void {
    if (value === 0) {
      this.reset('status');
      return;
    }
    let next = value & 0xff;
    if (next & FEATURES_OK) {
      const subset =
        (this.driverFeaturesLo & ~this.model.featuresLo) === 0 &&
        (this.driverFeaturesHi & ~this.model.featuresHi) === 0;
      if (path === 'legacy' || !subset) next &= ~FEATURES_OK;
    }
    this.changeStatus(next);
    // QEMU virtio_ioport_write: Linux before 2.6.34 drives the device without setting Bus Master.
    if (path === 'legacy' && value === ACK_DRIVER && this.model.policy === 'compat') this.host.setBusMaster();
  }

  private changeStatus(next: number): void {
    const from = this.status;
    this.status = next;
    if (from !== next && this.host.events.active) {
      this.host.events.emit({ type: 'status', bdf: this.host.bdf, from, to: next });
    }
    if (next & DRIVER_OK && !(from & DRIVER_OK)) this.host.driverReady();
  }

  /** DRIVER_OK is set: the device may use buffers (§3.1.1 and §2.1.2). */
  get driverOk(): boolean {
    return (this.status & DRIVER_OK) !== 0;
  }

  /**
   * The device found a queue broken (§2.1.2): DEVICE_NEEDS_RESET joins the status and a
   * configuration change is raised. A legacy driver sees the bit too (it has no meaning for it;
   * docs/data-path.md "Wiring").
   */
  markNeedsReset(): void {
    const from = this.status;
    if (from & NEEDS_RESET) return;
    this.status = from | NEEDS_RESET;
    if (this.host.events.active)
      this.host.events.emit({ type: 'status', bdf: this.host.bdf, from, to: this.status });
    this.raiseConfigChange();
  }

  /** Compat: a config write leaving Bus Master clear takes DRIVER_OK away (QEMU virtio_write_config). */
  busMasterOff(): void {
    if (this.status & DRIVER_OK) this.changeStatus(this.status & ~DRIVER_OK);
  }

  /** Device reset (§2.4): everything the driver set goes back to its reset value. */
  reset(reason: ResetReason): void {
    const from = this.status;
    this.status = 0;
    this.isr = 0;
    this.queueSelect = 0;
    this.configVector = NO_VECTOR;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.driverFeaturesLo = 0;
    this.driverFeaturesHi = 0;
    this.queues = undefined;
    this.restoreDriverWritableConfig();
    this.host.deviceReset();
    this.host.updateIntx();
    if (this.host.events.active) {
      if (from !== 0) this.host.events.emit({ type: 'status', bdf: this.host.bdf, from, to: 0 });
      this.host.events.emit({ type: 'reset', bdf: this.host.bdf, reason });
    }
  }

  /** Function-level reset: device reset plus every config byte (the function resets its MSI-X table). */
  functionReset(): void {
    this.config = undefined;
    this.generation = 0;
    this.reset('flr');
  }

  // ---- ISR (§4.1.4.5) ----

  /** Reading the ISR returns it and clears it, deasserting INTx. */
  readIsr(): number {
    const value = this.isr;
    if (value !== 0) {
      this.isr = 0;
      this.host.updateIntx();
    }
    return value;
  }

  // ---- queues (§2.6, §4.1.4.3, legacy §4.1.4.10) ----

  get numQueues(): number {
    return this.model.queueNames.length;
  }

  private queueSlots(): Uint32Array {
    if (!this.queues) {
      const q = new Uint32Array(this.numQueues * QUEUE_FIELDS);
      for (let i = 0; i < this.numQueues; i++) {
        q[i * QUEUE_FIELDS + Q_SIZE] = this.model.queueMaxSize;
        q[i * QUEUE_FIELDS + Q_VECTOR] = NO_VECTOR;
      }
      this.queues = q;
    }
    return this.queues;
  }

  private slot(queue: number, field: number): number {
    if (!this.queues) {
      if (field === Q_SIZE) return this.model.queueMaxSize;
      if (field === Q_VECTOR) return NO_VECTOR;
      return 0;
    }
    return this.queues[queue * QUEUE_FIELDS + field]!;
  }

  private get selectedExists(): boolean {
    return this.queueSelect < this.numQueues;
  }

  selectQueue(index: number): void {
    this.queueSelect = index & 0xffff;
  }

  queueSize(): number {
    return this.selectedExists ? this.slot(this.queueSelect, Q_SIZE) : 0;
  }

  /** Modern queue_size: the driver may shrink a queue; 0 or above the maximum is refused. */
  setQueueSize(size: number): boolean {
    if (!this.selectedExists || size === 0 || size > this.model.queueMaxSize) return false;
    this.queueSlots()[this.queueSelect * QUEUE_FIELDS + Q_SIZE] = size;
    return true;
  }

  queueEnabled(): number {
    return this.selectedExists ? this.slot(this.queueSelect, Q_ENABLED) : 0;
  }

  /** Modern queue_enable: writing 1 enables; 0 is ignored (queues are disabled by reset only). */
  enableQueue(value: number): void {
    if (this.selectedExists && value === 1)
      this.queueSlots()[this.queueSelect * QUEUE_FIELDS + Q_ENABLED] = 1;
  }

  queueNotifyOff(): number {
    return this.selectedExists ? this.queueSelect : 0;
  }

  queueAddress(which: QueueAddress, half: 0 | 1): number {
    return this.selectedExists ? this.slot(this.queueSelect, ADDRESS_SLOT[which] + half) : 0;
  }

  setQueueAddress(which: QueueAddress, half: 0 | 1, value: number): void {
    if (!this.selectedExists) return;
    this.queueSlots()[this.queueSelect * QUEUE_FIELDS + ADDRESS_SLOT[which] + half] = value >>> 0;
  }

  /** Legacy QUEUE_PFN read: the descriptor table address >> 12. */
  queuePfn(): number {
    if (!this.selectedExists) return 0;
    const lo = this.slot(this.queueSelect, Q_DESC);
    const hi = this.slot(this.queueSelect, Q_DESC + 1);
    return ((lo >>> QUEUE_ADDR_SHIFT) | (hi << (32 - QUEUE_ADDR_SHIFT))) >>> 0;
  }

  /**
   * Legacy QUEUE_PFN write: 0 resets the device (as QEMU does); otherwise the queue is placed at
   * pfn << 12 in the legacy layout — descriptors, available ring, then the used ring aligned to
   * 4096 (§2.7.2 legacy interface) — and counts as enabled.
   */
  setQueuePfn(pfn: number): void {
    if (pfn === 0) {
      this.reset('queue-pfn');
      return;
    }
    if (!this.selectedExists) return;
    const size = this.slot(this.queueSelect, Q_SIZE);
    const desc = pfn * 2 ** QUEUE_ADDR_SHIFT;
    const avail = desc + virtioRing.constants.DESC_SIZE.value * size;
    const availEnd =
      avail +
      virtioRing.constants.AVAIL_HEADER.value +
      virtioRing.constants.AVAIL_ENTRY.value * size +
      virtioRing.constants.EVENT_SIZE.value;
    const used = Math.ceil(availEnd / VRING_ALIGN) * VRING_ALIGN;
    const q = this.queueSlots();
    const base = this.queueSelect * QUEUE_FIELDS;
    q[base + Q_DESC] = desc >>> 0;
    q[base + Q_DESC + 1] = Math.floor(desc / 2 ** 32);
    q[base + Q_DRIVER] = avail >>> 0;
    q[base + Q_DRIVER + 1] = Math.floor(avail / 2 ** 32);
    q[base + Q_DEVICE] = used >>> 0;
    q[base + Q_DEVICE + 1] = Math.floor(used / 2 ** 32);
    q[base + Q_ENABLED] = 1;
  }

  /** A driver notification (§4.1.5.2): the queue index, from either route. */
  notify(queue: number, via: 'legacy-register' | 'notify-region'): void {
    if (this.host.events.active) this.host.events.emit({ type: 'notify', bdf: this.host.bdf, queue, via });
    this.host.queueNotified(queue);
  }

  /** What the driver programmed into queue `index` (undefined for a queue the device lacks). */
  queueProgram(index: number): QueueProgram | undefined {
    if (index >= this.numQueues) return undefined;
    const wide = (field: number): number => this.slot(index, field) + this.slot(index, field + 1) * 2 ** 32;
    return {
      size: this.slot(index, Q_SIZE),
      enabled: this.slot(index, Q_ENABLED) === 1,
      desc: wide(Q_DESC),
      driver: wide(Q_DRIVER),
      device: wide(Q_DEVICE),
    };
  }

  // ---- MSI-X vectors (§4.1.4.3 / legacy MSI_*_VECTOR) ----

  private validVector(vector: number): number {
    return vector < this.model.msixVectors ? vector : NO_VECTOR;
  }

  /** A vector beyond the table is not taken: the register reads back NO_VECTOR (0xffff). */
  setConfigVector(vector: number): void {
    this.configVector = this.validVector(vector);
  }

  queueVector(): number {
    return this.selectedExists ? this.slot(this.queueSelect, Q_VECTOR) : NO_VECTOR;
  }

  setQueueVector(vector: number): void {
    if (!this.selectedExists) return;
    this.queueSlots()[this.queueSelect * QUEUE_FIELDS + Q_VECTOR] = this.validVector(vector);
  }

  // ---- interrupts, device side ----

  /** The device used buffers of a queue: ISR bit 0 and the queue's vector (§4.1.4.5). */
  raiseQueueInterrupt(queue: number): void {
    this.isr |= ISR_QUEUE;
    this.signal(queue < this.numQueues ? this.slot(queue, Q_VECTOR) : NO_VECTOR);
  }

  /** The device changed its configuration: generation, ISR bit 1 and the config vector. */
  raiseConfigChange(): void {
    this.generation = (this.generation + 1) & 0xff;
    this.isr |= ISR_CONFIG;
    if (this.host.events.active) {
      this.host.events.emit({ type: 'config-change', bdf: this.host.bdf, generation: this.generation });
    }
    this.signal(this.configVector);
  }

  private signal(vector: number): void {
    if (!this.host.msixEnabled()) {
      this.host.updateIntx();
      return;
    }
    if (vector !== NO_VECTOR) this.host.signalMsix(vector);
  }

  // ---- device-specific configuration (§4.1.4.6, legacy §4.1.4.10) ----

  private defaultConfigByte(i: number): number {
    const identity = this.model.identityField;
    if (identity && i >= identity.offset && i < identity.offset + identity.size) {
      return this.host.identityByte(i - identity.offset);
    }
    const capacity = this.model.capacityField;
    if (capacity && i >= capacity.offset && i < capacity.offset + capacity.size) {
      return Math.floor(this.host.capacitySectors() / 2 ** (8 * (i - capacity.offset))) & 0xff;
    }
    return this.model.config.defaults[i]!;
  }

  configByte(i: number): number {
    return this.config ? this.config[i]! : this.defaultConfigByte(i);
  }

  /** Little-endian read of 1..4 bytes (8-byte reads are two of these). */
  readConfig(offset: number, width: number): number {
    let value = 0;
    for (let i = width - 1; i >= 0; i--) value = value * 256 + this.configByte(offset + i);
    return value;
  }

  /**
   * Whether the driver is a legacy one: a transitional function whose driver has not negotiated
   * VIRTIO_F_VERSION_1 (the test of QEMU hw/net/virtio-net.c virtio_net_set_config). A
   * non-transitional function (the PF) has no legacy interface.
   */
  private get legacyDriver(): boolean {
    return this.model.transitional && (this.driverFeaturesHi & VERSION_1_HI) === 0;
  }

  /**
   * A net driver that negotiated VIRTIO_NET_F_CTRL_MAC_ADDR sets its MAC through the control
   * queue only (QEMU virtio_net_set_config takes a config write of the MAC only without it).
   */
  private get macThroughControlQueue(): boolean {
    return this.model.type === 'net' && (this.driverFeaturesLo & NET_CTRL_MAC_ADDR) !== 0;
  }

  private driverMayWrite(i: number): boolean {
    const layout = this.model.config;
    if (layout.writableBytes[i] !== 1) return false;
    return layout.legacyOnlyBytes[i] === 0 || (this.legacyDriver && !this.macThroughControlQueue);
  }

  /** The first field in [offset, offset + width) that the driver may not write now, if any. */
  readOnlyFieldIn(offset: number, width: number): ReadOnlyField | undefined {
    const layout = this.model.config;
    for (let i = offset; i < offset + width; i++) {
      if (this.driverMayWrite(i)) continue;
      const name = layout.fieldAt[i]?.name ?? 'reserved bytes';
      if (!layout.legacyOnlyBytes[i]) return { name, why: 'it is read-only' };
      if (this.legacyDriver && this.macThroughControlQueue)
        return {
          name,
          why: 'the driver negotiated VIRTIO_NET_F_CTRL_MAC_ADDR: it sets the MAC through the control queue',
        };
      const who = this.model.transitional
        ? 'the driver negotiated VIRTIO_F_VERSION_1'
        : 'this non-transitional function has no legacy interface (a modern driver uses VIRTIO_F_VERSION_1)';
      return { name, why: `only a legacy driver may write it (virtio 1.2 §5.1.4.3) and ${who}` };
    }
    return undefined;
  }

  /** A driver write of 1..4 little-endian bytes: only the bytes the driver may write change. */
  writeConfig(offset: number, width: number, value: number): void {
    let bytes: Uint8Array | undefined;
    for (let i = 0; i < width; i++) {
      if (!this.driverMayWrite(offset + i)) continue;
      bytes ??= this.ownConfig();
      bytes[offset + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
    }
  }

  /** A device-side change of any field (link status, capacity…): a config-change interrupt. */
  setConfigField(offset: number, bytes: ArrayLike<number>): void {
    this.setDeviceConfig(offset, bytes);
    this.raiseConfigChange();
  }

  /** A device-side change of config bytes without a notification (bytes past the layout are ignored). */
  setDeviceConfig(offset: number, bytes: ArrayLike<number>): void {
    const own = this.ownConfig();
    for (let i = 0; i < bytes.length && offset + i < own.length; i++) own[offset + i] = bytes[i]! & 0xff;
  }

  private ownConfig(): Uint8Array {
    if (!this.config) {
      const size = this.model.config.size;
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = this.defaultConfigByte(i);
      this.config = bytes;
    }
    return this.config;
  }

  private restoreDriverWritableConfig(): void {
    const own = this.config;
    if (!own) return;
    const writable = this.model.config.writableBytes;
    for (let i = 0; i < own.length; i++) if (writable[i]) own[i] = this.defaultConfigByte(i);
  }

  // ---- views and state ----

  queueStates(): QueueState[] {
    return this.model.queueNames.map((name, index) => ({
      index,
      name,
      size: this.slot(index, Q_SIZE),
      maxSize: this.model.queueMaxSize,
      enabled: this.slot(index, Q_ENABLED) === 1,
      vector: this.slot(index, Q_VECTOR),
      desc: hex64(this.slot(index, Q_DESC), this.slot(index, Q_DESC + 1)),
      driver: hex64(this.slot(index, Q_DRIVER), this.slot(index, Q_DRIVER + 1)),
      device: hex64(this.slot(index, Q_DEVICE), this.slot(index, Q_DEVICE + 1)),
    }));
  }

  /** True while nothing differs from a freshly created device (such VFs need no snapshot). */
  get pristine(): boolean {
    return (
      this.status === 0 &&
      this.isr === 0 &&
      this.generation === 0 &&
      this.queueSelect === 0 &&
      this.configVector === NO_VECTOR &&
      this.deviceFeatureSelect === 0 &&
      this.driverFeatureSelect === 0 &&
      this.driverFeaturesLo === 0 &&
      this.driverFeaturesHi === 0 &&
      !this.queues &&
      !this.config
    );
  }

  private queueRegisters(index: number): QueueRegisters {
    return {
      size: this.slot(index, Q_SIZE),
      vector: this.slot(index, Q_VECTOR),
      enabled: this.slot(index, Q_ENABLED) === 1,
      desc: hex64(this.slot(index, Q_DESC), this.slot(index, Q_DESC + 1)),
      driver: hex64(this.slot(index, Q_DRIVER), this.slot(index, Q_DRIVER + 1)),
      device: hex64(this.slot(index, Q_DEVICE), this.slot(index, Q_DEVICE + 1)),
    };
  }

  getState(): DeviceState {
    return {
      status: this.status,
      isr: this.isr,
      generation: this.generation,
      queueSelect: this.queueSelect,
      configVector: this.configVector,
      deviceFeatureSelect: this.deviceFeatureSelect,
      driverFeatureSelect: this.driverFeatureSelect,
      driverFeatures: hex64(this.driverFeaturesLo, this.driverFeaturesHi),
      queues: this.queues ? this.model.queueNames.map((_, index) => this.queueRegisters(index)) : null,
      config: this.config ? bytesToHex(this.config) : null,
    };
  }

  setState(state: DeviceState): void {
    this.status = state.status & 0xff;
    this.isr = state.isr & 0xff;
    this.generation = state.generation & 0xff;
    this.queueSelect = state.queueSelect & 0xffff;
    this.configVector = state.configVector & 0xffff;
    this.deviceFeatureSelect = state.deviceFeatureSelect >>> 0;
    this.driverFeatureSelect = state.driverFeatureSelect >>> 0;
    [this.driverFeaturesLo, this.driverFeaturesHi] = halves(state.driverFeatures, 'driverFeatures');
    this.queues = state.queues === null ? undefined : this.restoreQueues(state.queues);
    this.config = state.config === null ? undefined : this.restoreConfig(state.config);
  }

  private restoreQueues(queues: readonly QueueRegisters[]): Uint32Array {
    if (queues.length !== this.numQueues) {
      throw new Error(
        `device state: ${queues.length} queues, the ${this.model.type} device has ${this.numQueues}`,
      );
    }
    const q = new Uint32Array(this.numQueues * QUEUE_FIELDS);
    queues.forEach((queue, index) => {
      const base = index * QUEUE_FIELDS;
      q[base + Q_SIZE] = queue.size & 0xffff;
      q[base + Q_VECTOR] = queue.vector & 0xffff;
      q[base + Q_ENABLED] = queue.enabled ? 1 : 0;
      [q[base + Q_DESC], q[base + Q_DESC + 1]] = halves(queue.desc, `queue ${index} desc`);
      [q[base + Q_DRIVER], q[base + Q_DRIVER + 1]] = halves(queue.driver, `queue ${index} driver`);
      [q[base + Q_DEVICE], q[base + Q_DEVICE + 1]] = halves(queue.device, `queue ${index} device`);
    });
    return q;
  }

  private restoreConfig(text: string): Uint8Array {
    const bytes = typeof text === 'string' ? hexToBytes(text) : undefined;
    if (!bytes || bytes.length !== this.model.config.size) {
      throw new Error(`device state: config is not ${this.model.config.size} bytes of plain hex`);
    }
    return Uint8Array.from(bytes);
  }
}
