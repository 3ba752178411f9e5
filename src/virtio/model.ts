import {
  barLayout,
  deviceConfigs,
  deviceTypes,
  features,
  legacyBlockLength,
  virtioRing,
  type AnyTable,
  type VirtioTypeName,
} from '../spec/index.js';

/** How a register block answers an access that does not match a register (see RegisterBlock). */
export const ACCESS_POLICIES = ['strict', 'compat'] as const;
export type AccessPolicy = (typeof ACCESS_POLICIES)[number];

/** Where the translator sends a guest's QUEUE_NOTIFY write (docs/device-model.md "Interrupts" and "The translator's guest view"). */
export const NOTIFY_ROUTES = ['notify-region', 'legacy-register'] as const;
export type NotifyRoute = (typeof NOTIFY_ROUTES)[number];

/** One field of the device-specific configuration (virtio 1.2 §5.x "Device configuration layout"). */
export interface ConfigField {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly writable: boolean;
  /** Writable only by a legacy driver (net mac, virtio 1.2 §5.1.4.3). */
  readonly legacyOnly: boolean;
}

export interface DeviceConfigLayout {
  readonly size: number;
  readonly fields: readonly ConfigField[];
  /** Reset values of every exposed byte. */
  readonly defaults: Uint8Array;
  /** 1 where the driver may write the byte. */
  readonly writableBytes: Uint8Array;
  /** 1 where only a legacy driver may write the byte. */
  readonly legacyOnlyBytes: Uint8Array;
  /** Field covering each byte (for refusals that name the field). */
  readonly fieldAt: readonly (ConfigField | undefined)[];
}

/**
 * What every function of one kind on one PF shares: the device type, its queues, the features it
 * offers and its config layout. Immutable; VFs point at their PF's VF model (flyweight).
 */
export interface DeviceModel {
  readonly type: VirtioTypeName;
  readonly typeId: number;
  readonly transitional: boolean;
  readonly queueNames: readonly string[];
  readonly queueMaxSize: number;
  readonly msixVectors: number;
  readonly featuresLo: number;
  readonly featuresHi: number;
  /** Features 31:0 a legacy driver gets when it sets VIRTIO_F_BAD_FEATURE (QEMU's fallback, masked with the offer). */
  readonly badFeaturesLo: number;
  readonly config: DeviceConfigLayout;
  /** The field carrying the function's identity (net: MAC), derived per function. */
  readonly identityField: ConfigField | undefined;
  /** The field carrying the storage size (block: CAPACITY), following the function's back-end. */
  readonly capacityField: ConfigField | undefined;
  /** Length of the legacy register block (0 for a device without one). */
  readonly legacyLength: number;
  readonly policy: AccessPolicy;
  readonly notifyRoute: NotifyRoute;
}

export interface ModelOptions {
  type: VirtioTypeName;
  transitional: boolean;
  queueSize: number;
  policy: AccessPolicy;
  notifyRoute: NotifyRoute;
}

function featureBits(type: VirtioTypeName, transitional: boolean): [number, number] {
  let lo = 0;
  let hi = 0;
  const set = (bit: number): void => {
    if (bit < 32) lo = (lo | (1 << bit)) >>> 0;
    else hi = (hi | (1 << (bit - 32))) >>> 0;
  };
  const common = transitional ? features.offered.transitional : features.offered.pf;
  for (const name of common)
    set(features.common.constants[name as keyof typeof features.common.constants].value);
  const own: AnyTable = features.byType[type];
  for (const name of features.offeredByType[type] as readonly string[]) set(own.constants[name]!.value);
  return [lo, hi];
}

/** Bits 31:0 of QEMU's bad_features for a type (hw/net/virtio-net.c virtio_net_bad_features; other types have none). */
function badFeatureBits(type: VirtioTypeName): number {
  const own: AnyTable = features.byType[type];
  let lo = 0;
  for (const name of features.badFeaturesByType[type] as readonly string[]) {
    const bit = own.constants[name]!.value;
    if (bit < 32) lo = (lo | (1 << bit)) >>> 0;
  }
  return lo;
}

/** The names of the set bits of a 32-bit feature word (feature bits 31:0) of a type, as "NAME (bit n)". */
export function featureNamesLo(type: VirtioTypeName, word: number): string[] {
  const names: string[] = [];
  const tables: AnyTable[] = [features.byType[type], features.common];
  for (let bit = 0; bit < 32; bit++) {
    if (((word >>> bit) & 1) === 0) continue;
    const name = tables
      .flatMap((t) => Object.entries(t.constants))
      .find(([, c]) => c.value === bit && !c.alias)?.[0];
    names.push(`${name ?? 'reserved'} (bit ${bit})`);
  }
  return names;
}

function configLayout(type: VirtioTypeName): DeviceConfigLayout {
  const table = deviceConfigs[type];
  const size = table.size ?? 0;
  const fields: ConfigField[] = [];
  const defaults = new Uint8Array(size);
  const writableBytes = new Uint8Array(size);
  const legacyOnlyBytes = new Uint8Array(size);
  const fieldAt: (ConfigField | undefined)[] = new Array(size).fill(undefined);
  for (const [name, reg] of Object.entries(table.registers)) {
    if (reg.offset + reg.size > size) continue;
    const field: ConfigField = {
      name,
      offset: reg.offset,
      size: reg.size,
      writable: reg.access === 'rw',
      legacyOnly: reg.legacyOnly === true,
    };
    fields.push(field);
    const reset = reg.reset ?? 0;
    for (let i = 0; i < reg.size; i++) {
      defaults[reg.offset + i] = reg.resetBytes
        ? (reg.resetBytes[i] ?? 0)
        : i < 6
          ? Math.floor(reset / 2 ** (8 * i)) & 0xff
          : 0;
      writableBytes[reg.offset + i] = field.writable ? 1 : 0;
      legacyOnlyBytes[reg.offset + i] = field.legacyOnly ? 1 : 0;
      fieldAt[reg.offset + i] = field;
    }
  }
  return { size, fields, defaults, writableBytes, legacyOnlyBytes, fieldAt };
}

const NET_MAC_FIELD: keyof typeof deviceConfigs.net.registers = 'MAC';
const BLOCK_CAPACITY_FIELD: keyof typeof deviceConfigs.block.registers = 'CAPACITY';

export function buildModel(options: ModelOptions): DeviceModel {
  const info = deviceTypes.types[options.type];
  const config = configLayout(options.type);
  const [featuresLo, featuresHi] = featureBits(options.type, options.transitional);
  const legacyLength = options.transitional ? legacyBlockLength(options.type) : 0;
  if (legacyLength > barLayout.registers.LEGACY.size) {
    throw new Error(`legacy block of ${options.type} (${legacyLength} bytes) exceeds the BAR layout`);
  }
  if (options.queueSize < 1 || options.queueSize > virtioRing.constants.VIRTQUEUE_MAX_SIZE.value) {
    throw new Error(`queue size ${options.queueSize} out of range`);
  }
  return Object.freeze({
    type: options.type,
    typeId: info.typeId,
    transitional: options.transitional,
    queueNames: info.queues,
    queueMaxSize: options.queueSize,
    msixVectors: info.msixVectors,
    featuresLo,
    featuresHi,
    badFeaturesLo: (badFeatureBits(options.type) & featuresLo) >>> 0,
    config,
    identityField: options.type === 'net' ? config.fields.find((f) => f.name === NET_MAC_FIELD) : undefined,
    capacityField:
      options.type === 'block' ? config.fields.find((f) => f.name === BLOCK_CAPACITY_FIELD) : undefined,
    legacyLength,
    policy: options.policy,
    notifyRoute: options.notifyRoute,
  });
}
