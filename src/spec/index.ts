/**
 * Typed, deeply frozen view of `spec-tables/*.json`: the single source of every constant and
 * register layout of the vmmr device model.
 *
 * Key names stay typed (`legacy.registers.QUEUE_PFN.offset` is a number, `legacy.registers.NOPE`
 * does not compile) while every register is a {@link Register} and every constant a {@link Constant}.
 */
import ariCapRaw from '../../spec-tables/ari-cap.json' with { type: 'json' };
import barLayoutRaw from '../../spec-tables/bar-layout.json' with { type: 'json' };
import capabilityIdsRaw from '../../spec-tables/capability-ids.json' with { type: 'json' };
import cfg9pRaw from '../../spec-tables/device-config-9p.json' with { type: 'json' };
import cfgBalloonRaw from '../../spec-tables/device-config-balloon.json' with { type: 'json' };
import cfgBlockRaw from '../../spec-tables/device-config-block.json' with { type: 'json' };
import cfgConsoleRaw from '../../spec-tables/device-config-console.json' with { type: 'json' };
import cfgNetRaw from '../../spec-tables/device-config-net.json' with { type: 'json' };
import cfgRngRaw from '../../spec-tables/device-config-rng.json' with { type: 'json' };
import cfgScsiRaw from '../../spec-tables/device-config-scsi.json' with { type: 'json' };
import deviceTypesRaw from '../../spec-tables/device-types.json' with { type: 'json' };
import mmrLocatorRaw from '../../spec-tables/mmr-locator.json' with { type: 'json' };
import msixCapRaw from '../../spec-tables/msix-cap.json' with { type: 'json' };
import msixTableEntryRaw from '../../spec-tables/msix-table-entry.json' with { type: 'json' };
import pcPlatformRaw from '../../spec-tables/pc-platform.json' with { type: 'json' };
import pciHeaderRaw from '../../spec-tables/pci-header.json' with { type: 'json' };
import pcieCapRaw from '../../spec-tables/pcie-cap.json' with { type: 'json' };
import qtestProtocolRaw from '../../spec-tables/qtest-protocol.json' with { type: 'json' };
import sriovCapRaw from '../../spec-tables/sriov-cap.json' with { type: 'json' };
import commonCfgRaw from '../../spec-tables/virtio-common-cfg.json' with { type: 'json' };
import feat9pRaw from '../../spec-tables/virtio-features-9p.json' with { type: 'json' };
import featBalloonRaw from '../../spec-tables/virtio-features-balloon.json' with { type: 'json' };
import featBlockRaw from '../../spec-tables/virtio-features-block.json' with { type: 'json' };
import featConsoleRaw from '../../spec-tables/virtio-features-console.json' with { type: 'json' };
import featNetRaw from '../../spec-tables/virtio-features-net.json' with { type: 'json' };
import featRngRaw from '../../spec-tables/virtio-features-rng.json' with { type: 'json' };
import featScsiRaw from '../../spec-tables/virtio-features-scsi.json' with { type: 'json' };
import featCommonRaw from '../../spec-tables/virtio-features.json' with { type: 'json' };
import legacyRaw from '../../spec-tables/virtio-legacy.json' with { type: 'json' };
import virtioPciCapRaw from '../../spec-tables/virtio-pci-cap.json' with { type: 'json' };
import virtioRingRaw from '../../spec-tables/virtio-ring.json' with { type: 'json' };
import virtioStatusRaw from '../../spec-tables/virtio-status.json' with { type: 'json' };
import virtioNetHdrRaw from '../../spec-tables/virtio-net-hdr.json' with { type: 'json' };
import virtioNetCtrlRaw from '../../spec-tables/virtio-net-ctrl.json' with { type: 'json' };
import virtioBlkReqRaw from '../../spec-tables/virtio-blk-req.json' with { type: 'json' };
import virtioScsiReqRaw from '../../spec-tables/virtio-scsi-req.json' with { type: 'json' };
import virtio9pMessagesRaw from '../../spec-tables/virtio-9p-messages.json' with { type: 'json' };
import scsiCommandsRaw from '../../spec-tables/scsi-commands.json' with { type: 'json' };
import ethernetRaw from '../../spec-tables/ethernet.json' with { type: 'json' };
import pcapRaw from '../../spec-tables/pcap.json' with { type: 'json' };
import datapathRaw from '../../spec-tables/datapath.json' with { type: 'json' };
import vfioPciRaw from '../../spec-tables/vfio-pci.json' with { type: 'json' };
import vfioUserMessagesRaw from '../../spec-tables/vfio-user-messages.json' with { type: 'json' };
import vfioUserProtocolRaw from '../../spec-tables/vfio-user-protocol.json' with { type: 'json' };
import type { AnyTable, Constant, DeviceTypesTable, NamedRegister, Register, Table } from './types.js';

export type * from './types.js';

// ---------------------------------------------------------------------------------------------
// Loading helpers

interface RawTable {
  readonly id: string;
  readonly registers: object;
  readonly constants: object;
}

const ACCESS = new Set(['ro', 'rw', 'wo', 'rc']);

function fail(id: string, what: string): never {
  throw new Error(`spec table ${id}: ${what}`);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isUint(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function checkSource(id: string, where: string, entry: Record<string, unknown>): void {
  if (typeof entry.source !== 'string' || entry.source.trim() === '') fail(id, `${where} has no source`);
}

/** Cheap structural check backing the casts below (the full check is the JSON Schema, in the tests). */
function checkTable(raw: RawTable, expectedId: string): void {
  const t = raw as unknown as Record<string, unknown>;
  if (t.id !== expectedId) fail(expectedId, `id is ${String(t.id)}`);
  checkSource(expectedId, 'table', t);
  if (t.size !== undefined && !isUint(t.size)) fail(expectedId, 'size is not an unsigned integer');
  if (!isObject(t.registers) || !isObject(t.constants)) fail(expectedId, 'registers/constants missing');
  for (const [name, r] of Object.entries(t.registers)) {
    if (
      !isObject(r) ||
      !isUint(r.offset) ||
      !isUint(r.size) ||
      r.size === 0 ||
      !ACCESS.has(String(r.access))
    ) {
      fail(expectedId, `register ${name} is malformed`);
    }
    checkSource(expectedId, `register ${name}`, r);
  }
  for (const [name, c] of Object.entries(t.constants)) {
    if (!isObject(c) || !isUint(c.value)) fail(expectedId, `constant ${name} is malformed`);
    checkSource(expectedId, `constant ${name}`, c);
  }
}

/** Freezes a JSON-like value and everything in it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function table<const T extends RawTable>(
  raw: T,
  id: string,
): Table<keyof T['registers'] & string, keyof T['constants'] & string> {
  checkTable(raw, id);
  return deepFreeze(raw) as unknown as Table<keyof T['registers'] & string, keyof T['constants'] & string>;
}

// ---------------------------------------------------------------------------------------------
// PCI / PCIe structures

/** PCI type-0 configuration header (PF and VF masks). */
export const pciHeader = table(pciHeaderRaw, 'pci-header');
/** Capability IDs, standard and extended capability header layout. */
export const capabilityIds = table(capabilityIdsRaw, 'capability-ids');
/** PCI Express capability (endpoint, version 2; `size` 60). */
export const pcieCap = table(pcieCapRaw, 'pcie-cap');
/** MSI-X capability. */
export const msixCap = table(msixCapRaw, 'msix-cap');
/** One MSI-X table entry. */
export const msixTableEntry = table(msixTableEntryRaw, 'msix-table-entry');
/** SR-IOV extended capability. */
export const sriovCap = table(sriovCapRaw, 'sriov-cap');
/** ARI extended capability. */
export const ariCap = table(ariCapRaw, 'ari-cap');
/** MMR locator: Vendor-Specific Extended Capability pointing at the legacy block. */
export const mmrLocator = table(mmrLocatorRaw, 'mmr-locator');
/** Regions of the PF/VF memory BAR. */
export const barLayout = table(barLayoutRaw, 'bar-layout');
/** The PC platform of a qtest session: 0xCF8/0xCFC, ECAM, address windows, INTx routing. */
export const pcPlatform = table(pcPlatformRaw, 'pc-platform');
/** Limits of the qtest line protocol (src/qtest). */
export const qtestProtocol = table(qtestProtocolRaw, 'qtest-protocol');

// ---------------------------------------------------------------------------------------------
// virtio structures

/** virtio PCI vendor capability (struct virtio_pci_cap and its variants). */
export const virtioPciCap = table(virtioPciCapRaw, 'virtio-pci-cap');
/** Modern common configuration structure. */
export const commonCfg = table(commonCfgRaw, 'virtio-common-cfg');
/** Legacy register block header (the MMR block of a VF). */
export const legacy = table(legacyRaw, 'virtio-legacy');
/** Device status bits. */
export const virtioStatus = table(virtioStatusRaw, 'virtio-status');
/** Virtqueue memory layouts (split and packed). */
export const virtioRing = table(virtioRingRaw, 'virtio-ring');

// ---------------------------------------------------------------------------------------------
// Data path: request and message layouts, frame formats, limits

/** virtio-net packet header (legacy 10 bytes, 12 with MRG_RXBUF or VERSION_1). */
export const virtioNetHdr = table(virtioNetHdrRaw, 'virtio-net-hdr');
/** virtio-net control virtqueue classes, commands and structures. */
export const virtioNetCtrl = table(virtioNetCtrlRaw, 'virtio-net-ctrl');
/** virtio-blk request header and discard / write-zeroes segments. */
export const virtioBlkReq = table(virtioBlkReqRaw, 'virtio-blk-req');
/** virtio-scsi command and control request / response layouts. */
export const virtioScsiReq = table(virtioScsiReqRaw, 'virtio-scsi-req');
/** 9P2000.L message types the virtio-9p device answers. */
export const virtio9pMessages = table(virtio9pMessagesRaw, 'virtio-9p-messages');
/** SCSI opcodes, status, sense keys and additional sense codes of the RAM LUN. */
export const scsiCommands = table(scsiCommandsRaw, 'scsi-commands');
/** Ethernet frame constants (addresses, EtherTypes, VLAN tag). */
export const ethernet = table(ethernetRaw, 'ethernet');
/** Classic pcap capture file layout. */
export const pcap = table(pcapRaw, 'pcap');
/** Limits and defaults of the data path (vmmr decisions). */
export const datapath = table(datapathRaw, 'datapath');

// ---------------------------------------------------------------------------------------------
// vfio-user transport (qemu docs/interop/vfio-user.rst; <linux/vfio.h>)

/** vfio-user message header, command numbers, flags and capability values. */
export const vfioUserProtocol = table(vfioUserProtocolRaw, 'vfio-user-protocol');
/** vfio-user message payloads, one group per command (offsets after the header). */
export const vfioUserMessages = table(vfioUserMessagesRaw, 'vfio-user-messages');
/** VFIO PCI region/IRQ indexes and structure flags. */
export const vfioPci = table(vfioPciRaw, 'vfio-pci');

// ---------------------------------------------------------------------------------------------
// Device types

/** virtio device types vmmr emulates (keys of device-types.json `types`). */
export type VirtioTypeName = keyof (typeof deviceTypesRaw)['types'] & string;

function deviceTypesTable<
  const T extends { readonly id: string; readonly constants: object; readonly types: object },
>(raw: T): DeviceTypesTable<keyof T['constants'] & string, keyof T['types'] & string> {
  const t = raw as unknown as Record<string, unknown>;
  const id = 'device-types';
  if (t.id !== id) fail(id, `id is ${String(t.id)}`);
  checkSource(id, 'table', t);
  if (!isObject(t.constants) || !isObject(t.types)) fail(id, 'constants/types missing');
  for (const [name, c] of Object.entries(t.constants)) {
    if (!isObject(c) || !isUint(c.value)) fail(id, `constant ${name} is malformed`);
    checkSource(id, `constant ${name}`, c);
  }
  for (const [name, d] of Object.entries(t.types)) {
    const ok =
      isObject(d) &&
      ['typeId', 'transitionalId', 'modernId', 'mmrId', 'classCode', 'msixVectors'].every((k) =>
        isUint(d[k]),
      ) &&
      Array.isArray(d.queues) &&
      d.queues.every((q) => typeof q === 'string');
    if (!ok) fail(id, `type ${name} is malformed`);
    checkSource(id, `type ${name}`, d);
  }
  return deepFreeze(raw) as unknown as DeviceTypesTable<
    keyof T['constants'] & string,
    keyof T['types'] & string
  >;
}

/** PCI identities, queues and MSI-X vector counts per virtio device type. */
export const deviceTypes = deviceTypesTable(deviceTypesRaw);

/** The virtio device type names, in device-types.json order. */
export const VIRTIO_TYPE_NAMES: readonly VirtioTypeName[] = Object.freeze(
  Object.keys(deviceTypes.types) as VirtioTypeName[],
);

/** Whether `name` is a {@link VirtioTypeName}. */
export function isVirtioTypeName(name: string): name is VirtioTypeName {
  return Object.prototype.hasOwnProperty.call(deviceTypes.types, name);
}

/** Device-specific configuration layouts; `size` is the length vmmr exposes. */
export const deviceConfigs = Object.freeze({
  net: table(cfgNetRaw, 'device-config-net'),
  block: table(cfgBlockRaw, 'device-config-block'),
  balloon: table(cfgBalloonRaw, 'device-config-balloon'),
  console: table(cfgConsoleRaw, 'device-config-console'),
  scsi: table(cfgScsiRaw, 'device-config-scsi'),
  rng: table(cfgRngRaw, 'device-config-rng'),
  '9p': table(cfg9pRaw, 'device-config-9p'),
}) satisfies Readonly<Record<VirtioTypeName, AnyTable>>;

// ---------------------------------------------------------------------------------------------
// Feature bits

function offeredNames<N extends string>(
  id: string,
  constants: Readonly<Record<N, Constant>>,
  list: unknown,
  what = 'offered',
): readonly N[] {
  if (!Array.isArray(list)) fail(id, `${what} is not a list`);
  for (const name of list) {
    if (typeof name !== 'string' || !Object.prototype.hasOwnProperty.call(constants, name)) {
      fail(id, `${what} feature ${String(name)} is not a constant of the table`);
    }
  }
  return Object.freeze([...list]) as readonly N[];
}

interface RawFeatureTable extends RawTable {
  readonly offered: readonly string[];
  readonly badFeatures?: { readonly names: readonly string[] };
}

function featureTable<const T extends RawFeatureTable>(raw: T, id: string) {
  const t = table(raw, id);
  return {
    table: t,
    offered: offeredNames(id, t.constants, raw.offered),
    badFeatures: offeredNames(id, t.constants, raw.badFeatures?.names ?? [], 'badFeatures'),
  };
}

const commonFeatures = table(featCommonRaw, 'virtio-features');
const perType = {
  net: featureTable(featNetRaw, 'virtio-features-net'),
  block: featureTable(featBlockRaw, 'virtio-features-block'),
  balloon: featureTable(featBalloonRaw, 'virtio-features-balloon'),
  console: featureTable(featConsoleRaw, 'virtio-features-console'),
  scsi: featureTable(featScsiRaw, 'virtio-features-scsi'),
  rng: featureTable(featRngRaw, 'virtio-features-rng'),
  '9p': featureTable(feat9pRaw, 'virtio-features-9p'),
} satisfies Record<
  VirtioTypeName,
  { table: AnyTable; offered: readonly string[]; badFeatures: readonly string[] }
>;

type PerType = typeof perType;

function perTypeField(field: 'table' | 'offered' | 'badFeatures'): Record<string, unknown> {
  return Object.fromEntries(Object.entries(perType).map(([type, entry]) => [type, entry[field]]));
}

/**
 * Feature bits (constant value = bit number).
 * - `common`: transport bits (VERSION_1, RING_EVENT_IDX, ...).
 * - `offered.pf` / `offered.transitional`: transport bits offered by the PF / by MMR VFs.
 * - `byType[type]`: device-type bits; `offeredByType[type]`: the ones vmmr offers;
 *   `badFeaturesByType[type]`: what a legacy driver setting VIRTIO_F_BAD_FEATURE gets (QEMU's
 *   bad_features, before masking with the offer).
 */
export const features = deepFreeze({
  common: commonFeatures,
  offered: {
    pf: offeredNames('virtio-features', commonFeatures.constants, featCommonRaw.offered.pf),
    transitional: offeredNames(
      'virtio-features',
      commonFeatures.constants,
      featCommonRaw.offered.transitional,
    ),
    source: featCommonRaw.offered.source,
  },
  byType: perTypeField('table') as { readonly [K in VirtioTypeName]: PerType[K]['table'] },
  offeredByType: perTypeField('offered') as { readonly [K in VirtioTypeName]: PerType[K]['offered'] },
  badFeaturesByType: perTypeField('badFeatures') as {
    readonly [K in VirtioTypeName]: PerType[K]['badFeatures'];
  },
});

export type CommonFeatureName = keyof typeof commonFeatures.constants & string;

/** Bit mask (bit n = feature n) of the named features of `table`. */
export function featureMask<C extends string>(t: Table<string, C>, names: readonly C[]): bigint {
  let mask = 0n;
  for (const name of names) mask |= 1n << BigInt(t.constants[name].value);
  return mask;
}

// ---------------------------------------------------------------------------------------------
// Generic access

/** Every register table, for generic code (documentation, dumps). */
export const allTables: readonly AnyTable[] = Object.freeze([
  pciHeader,
  capabilityIds,
  pcieCap,
  msixCap,
  msixTableEntry,
  sriovCap,
  ariCap,
  mmrLocator,
  barLayout,
  pcPlatform,
  qtestProtocol,
  virtioPciCap,
  commonCfg,
  legacy,
  virtioStatus,
  virtioRing,
  virtioNetHdr,
  virtioNetCtrl,
  virtioBlkReq,
  virtioScsiReq,
  virtio9pMessages,
  scsiCommands,
  ethernet,
  pcap,
  datapath,
  vfioUserProtocol,
  vfioUserMessages,
  vfioPci,
  features.common,
  ...Object.values(features.byType),
  ...Object.values(deviceConfigs),
]);

/** Register tables by id (file name without .json). */
export const tablesById: Readonly<Record<string, AnyTable>> = Object.freeze(
  Object.fromEntries(allTables.map((t) => [t.id, t])),
);

/** The registers of a table with their names, sorted by group then offset. */
export function registerList(t: AnyTable): readonly NamedRegister[] {
  return Object.entries(t.registers)
    .map(([name, r]: [string, Register]) => Object.freeze({ name, ...r }))
    .sort((a, b) => (a.group ?? '').localeCompare(b.group ?? '') || a.offset - b.offset || a.size - b.size);
}

/**
 * Length of the legacy (MMR) register block of a device type: the 24-byte header (with MSI-X)
 * plus the exposed device config, rounded up to a power of two (QEMU's legacy I/O BAR rule),
 * never below mmr-locator LEGACY_BLOCK_MIN_LENGTH.
 */
export function legacyBlockLength(type: VirtioTypeName): number {
  const needed = legacy.constants.CONFIG_OFF_MSIX.value + (deviceConfigs[type].size ?? 0);
  let len = mmrLocator.constants.LEGACY_BLOCK_MIN_LENGTH.value;
  while (len < needed) len *= 2;
  return len;
}
