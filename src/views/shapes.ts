/**
 * The shapes of what the views answer (and so of the REST API's answers): one TypeBox schema per
 * shape. The TypeScript types are derived from them (Static), the HTTP routes serialize through
 * them and publish them in the OpenAPI document, and the CLI reads its answers with the same
 * types.
 */
import { Type, type Static, type TSchema, type TString } from 'typebox';

/** A register value or ID as hex zero-padded to its width ("0x1af4"). */
export const HexString = (description: string, example = '0x1af4'): TString =>
  Type.String({ description, examples: [example] });

const FunctionKind = Type.Union([Type.Literal('pf'), Type.Literal('vf')]);

export const PfSummarySchema = Type.Object({
  bdf: Type.String(),
  type: Type.String({ description: 'virtio type: net, block, balloon, console, scsi, rng, 9p' }),
  totalVfs: Type.Integer(),
  initialVfs: Type.Integer(),
  firstVfOffset: Type.Integer(),
  vfStride: Type.Integer(),
  queueSize: Type.Integer(),
  policy: Type.String({ description: 'strict or compat' }),
  notify: Type.String({ description: 'notify-region or legacy-register' }),
  adminQueue: Type.Boolean({ description: 'the PF offers VIRTIO_F_ADMIN_VQ and the legacy admin commands' }),
  translator: Type.String({ description: "the guest views' default backend: mmr or admin" }),
  numVfs: Type.Integer({ description: 'SR-IOV NumVFs as the register holds it' }),
  vfEnabled: Type.Boolean({ description: 'SR-IOV Control VF Enable' }),
  vfMemoryEnabled: Type.Boolean({
    description: 'SR-IOV Control VF Memory Space Enable (with VF Enable: VF BARs decode)',
  }),
  vfDeviceId: HexString('SR-IOV VF Device ID', '0x10f9'),
  barAddress: HexString('address of the PF memory BAR (0: unassigned)', '0x00000000c2000000'),
  vfBarBase: HexString(
    'SR-IOV VF BAR base: VF k at vfBarBase + k × vfBarSize (0: unassigned)',
    '0x00000000c0000000',
  ),
  vfBarSize: Type.Integer({ description: 'bytes of one VF memory BAR' }),
});
export type PfSummary = Static<typeof PfSummarySchema>;

export const PfListSchema = Type.Object({ items: Type.Array(PfSummarySchema) });
export type PfList = Static<typeof PfListSchema>;

/** A page of a listing: `items`, how many match in all, and the cursor of the next page. */
export const PageSchema = <T extends TSchema>(item: T, description: string) =>
  Type.Object({
    items: Type.Array(item, { description }),
    total: Type.Integer({ description: 'items matching the request across all pages' }),
    nextCursor: Type.Union([Type.String(), Type.Null()], {
      description: 'pass back as cursor for the next page; null on the last page',
    }),
  });
export interface Page<T> {
  items: T[];
  total: number;
  nextCursor: string | null;
}

export const VfPageSchema = PageSchema(Type.String(), 'VF addresses');

const SriovFields = {
  numVfs: Type.Integer(),
  totalVfs: Type.Integer(),
  initialVfs: Type.Integer(),
  vfEnabled: Type.Boolean(),
  vfMemoryEnabled: Type.Boolean(),
  firstVfOffset: Type.Integer(),
  vfStride: Type.Integer(),
  vfDeviceId: Type.String(),
  systemPageSize: Type.String({ description: 'SR-IOV System Page Size register (bit n: 4 KiB << n)' }),
  vfBarSize: Type.Integer({
    description: "size of each VF's memory BAR (the layout rounded up to the System Page Size)",
  }),
  vfBarBase: Type.String({
    description: "64-bit base of the VF BAR window (VF n's BAR = base + n × vfBarSize)",
  }),
};
export const SriovStateSchema = Type.Object({ ...SriovFields, vfs: VfPageSchema });
export type SriovState = Static<typeof SriovStateSchema>;
const SriovSummarySchema = Type.Object(SriovFields, { description: 'SR-IOV state without the VF list' });

const SummaryFields = {
  bdf: Type.String(),
  kind: FunctionKind,
  type: Type.String(),
  pf: Type.Optional(Type.String({ description: 'the PF of a VF' })),
  vfIndex: Type.Optional(Type.Integer({ description: '0-based VF number (VF n+1 in SR-IOV terms)' })),
  vendorId: Type.String({ description: "logical Vendor ID (a VF reports its PF's)" }),
  deviceId: Type.String({ description: "logical Device ID (a VF reports the PF's VF Device ID)" }),
  status: Type.String({ description: 'virtio device status' }),
};
export const FunctionSummarySchema = Type.Object(SummaryFields);
export type FunctionSummary = Static<typeof FunctionSummarySchema>;
export const FunctionPageSchema = PageSchema(
  FunctionSummarySchema,
  'functions: each PF followed by its enabled VFs',
);

export const QueueStateSchema = Type.Object({
  index: Type.Integer(),
  name: Type.String(),
  size: Type.Integer(),
  maxSize: Type.Integer(),
  enabled: Type.Boolean(),
  vector: Type.Integer({ description: 'MSI-X vector, 65535 = none' }),
  desc: Type.String(),
  driver: Type.String(),
  device: Type.String(),
});

export const BarDescriptionSchema = Type.Object({
  index: Type.Integer(),
  type: Type.Literal('memory'),
  is64: Type.Boolean(),
  prefetchable: Type.Boolean(),
  size: Type.Integer(),
  address: Type.String({ description: 'bus address the BAR is programmed to (64-bit hex)' }),
  decoding: Type.Boolean({
    description: "whether the function decodes it now (PF: Command.Memory; VF: the PF's VF Enable + VF MSE)",
  }),
});
export type BarDescription = Static<typeof BarDescriptionSchema>;

export const CapabilityDescriptionSchema = Type.Object({
  kind: Type.Union([Type.Literal('standard'), Type.Literal('extended')]),
  id: Type.String(),
  name: Type.String(),
  offset: Type.Integer(),
  version: Type.Optional(Type.Integer()),
  virtio: Type.Optional(
    Type.Object(
      {
        cfgType: Type.Integer(),
        cfgName: Type.String(),
        bar: Type.Integer(),
        offset: Type.Integer(),
        length: Type.Integer(),
      },
      { description: 'virtio vendor capability (cap ID 0x09): the structure it locates' },
    ),
  ),
  vsec: Type.Optional(
    Type.Object(
      { id: Type.String(), rev: Type.Integer(), length: Type.Integer() },
      { description: 'Vendor-Specific Extended Capability header' },
    ),
  ),
});
export type CapabilityDescription = Static<typeof CapabilityDescriptionSchema>;

export const RegisterValueSchema = Type.Object({
  name: Type.String({ description: 'the register as its spec table names it' }),
  offset: Type.Integer({ description: 'config-space offset (capabilities) or offset in the block' }),
  size: Type.Integer({ description: 'width in bytes' }),
  value: Type.Union([HexString('value as held'), Type.Null()], {
    description: 'null for a write-only register (QUEUE_NOTIFY)',
  }),
});
export type RegisterValue = Static<typeof RegisterValueSchema>;

export const DecodedCapabilitySchema = Type.Object({
  ...CapabilityDescriptionSchema.properties,
  summary: Type.String({
    description:
      'the capability line as `lspci -vvv` words it after "Capabilities: [off]" ("" when not decoded)',
  }),
  lines: Type.Array(Type.String(), { description: 'detail lines worded as `lspci -vvv` words them' }),
  registers: Type.Array(RegisterValueSchema, {
    description: "the capability's registers from its spec table",
  }),
});
export type DecodedCapability = Static<typeof DecodedCapabilitySchema>;

export const FeatureBitSchema = Type.Object({
  bit: Type.Integer(),
  name: Type.String({ description: 'the feature as the spec tables name it (VERSION_1, MAC…)' }),
});
export type FeatureBit = Static<typeof FeatureBitSchema>;

export const FunctionRegistersSchema = Type.Object({
  bdf: Type.String(),
  kind: FunctionKind,
  capabilities: Type.Array(DecodedCapabilitySchema, {
    description: 'in list order: standard, then extended',
  }),
  legacy: Type.Optional(
    Type.Array(RegisterValueSchema, {
      description: 'transitional VF: the legacy block header (ISR as held, not read-cleared)',
    }),
  ),
  commonCfg: Type.Array(RegisterValueSchema, {
    description: 'the modern common configuration (queue registers of the selected queue)',
  }),
  deviceFeatures: Type.Array(FeatureBitSchema, { description: 'bits the device offers' }),
  driverFeatures: Type.Array(FeatureBitSchema, { description: 'bits the driver accepted' }),
  statusBits: Type.Array(Type.String(), { description: 'device status bits set' }),
});
export type FunctionRegisters = Static<typeof FunctionRegistersSchema>;

export const VirtioSummarySchema = Type.Object({
  status: Type.String({ description: 'device status register' }),
  statusBits: Type.Array(Type.String(), { description: 'names of the status bits set' }),
  deviceFeatures: Type.String({ description: '64-bit feature word' }),
  driverFeatures: Type.String({ description: '64-bit feature word' }),
  isr: Type.String(),
  configGeneration: Type.Integer(),
  configVector: Type.Integer({ description: 'config-change MSI-X vector (65535 = none)' }),
  legacyConfigOffset: Type.Optional(
    Type.Integer({
      description: 'where the device config starts in the legacy block (24 with MSI-X enabled, else 20)',
    }),
  ),
  queues: Type.Array(QueueStateSchema),
  msix: Type.Object({ enabled: Type.Boolean(), masked: Type.Boolean(), vectors: Type.Integer() }),
});
export type VirtioSummary = Static<typeof VirtioSummarySchema>;

export const GuestSummarySchema = Type.Object({
  vendorId: Type.String(),
  deviceId: Type.String(),
  ioLength: Type.Integer({ description: "size of the guest's I/O BAR0 (the legacy block length)" }),
  ioEnabled: Type.Boolean(),
  memoryEnabled: Type.Boolean(),
  intxAsserted: Type.Boolean(),
  legacyOnly: Type.Boolean({
    description: 'the modern virtio capabilities are hidden from the guest (a legacy driver binds unforced)',
  }),
  trace: Type.Object({ enabled: Type.Boolean(), depth: Type.Integer(), recorded: Type.Integer() }),
});
export type GuestSummary = Static<typeof GuestSummarySchema>;

export const MmrLocationSchema = Type.Object(
  { bar: Type.Integer(), offset: Type.Integer(), length: Type.Integer() },
  { description: 'where the MMR locator says the legacy block is' },
);

export const FunctionDescriptionSchema = Type.Object({
  ...SummaryFields,
  revision: Type.String(),
  classCode: Type.String(),
  subsystemVendorId: Type.String(),
  subsystemId: Type.String(),
  configVendorId: Type.String({
    description: 'as config space reads it (0xffff on a VF, as SR-IOV requires)',
  }),
  configDeviceId: Type.String({
    description: 'as config space reads it (0xffff on a VF, as SR-IOV requires)',
  }),
  command: Type.String(),
  configStatus: Type.String({ description: 'PCI Status register' }),
  bars: Type.Array(BarDescriptionSchema),
  capabilities: Type.Array(CapabilityDescriptionSchema),
  mmrLocator: Type.Optional(MmrLocationSchema),
  sriov: Type.Optional(SriovSummarySchema),
  intx: Type.Optional(
    Type.Object({ pin: Type.Literal('A'), asserted: Type.Boolean() }, { description: 'PF: INTx pin A' }),
  ),
  virtio: VirtioSummarySchema,
  identity: Type.Object(
    { mac: Type.Optional(Type.String()), serial: Type.Optional(Type.String()) },
    { description: 'net: MAC as the device config shows it; block: serial' },
  ),
  guest: Type.Optional(GuestSummarySchema),
});
export type FunctionDescription = Static<typeof FunctionDescriptionSchema>;

// ---- data path (docs/data-path.md "REST") ----

export const DmaDataSchema = Type.Object({
  bdf: Type.String(),
  address: Type.String({ description: 'DMA (bus) address, 64-bit hex' }),
  length: Type.Integer(),
  data: Type.String({ description: 'the bytes as plain hex' }),
});
export type DmaData = Static<typeof DmaDataSchema>;

const RunStateSchema = Type.Object(
  {
    format: Type.String(),
    lastAvail: Type.Integer({
      description: 'split: avail index taken up to; packed: next position | wrap << 15',
    }),
    used: Type.Integer({ description: 'split: used index; packed: next used position | wrap << 15' }),
    signalled: Type.Union([Type.Integer(), Type.Null()]),
    nextHead: Type.Integer(),
    requests: Type.Integer({ description: 'chains completed' }),
    errors: Type.Integer({ description: 'chains refused as broken (a broken queue stops)' }),
    error: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], {
      description: 'the rule broken: queue, descriptor, table, rule, detail, message',
    }),
  },
  { additionalProperties: true, description: "the device's run state (null until the queue was used)" },
);

export const DataPathQueueSchema = Type.Object({
  index: Type.Integer(),
  name: Type.String(),
  size: Type.Integer(),
  enabled: Type.Boolean(),
  layout: Type.Union([Type.Literal('legacy'), Type.Literal('modern')]),
  format: Type.Union([Type.Literal('split'), Type.Literal('packed')]),
  addresses: Type.Object({ desc: Type.String(), driver: Type.String(), device: Type.String() }),
  run: Type.Union([RunStateSchema, Type.Null()]),
});

export const QueueListSchema = Type.Object({
  bdf: Type.String(),
  ready: Type.Boolean({ description: 'Bus Master set and DRIVER_OK: the device processes its queues' }),
  items: Type.Array(DataPathQueueSchema),
});
export type QueueList = Static<typeof QueueListSchema>;

export const DrainResultSchema = Type.Object({
  bdf: Type.String(),
  processed: Type.Integer({ description: 'notifications processed (this one and those waiting)' }),
  queue: DataPathQueueSchema,
});
export type DrainResult = Static<typeof DrainResultSchema>;

const Loose = (description: string) => Type.Object({}, { additionalProperties: true, description });

export const NetStateSchema = Type.Object({
  bdf: Type.String(),
  mac: Type.String(),
  linkUp: Type.Boolean(),
  announce: Type.Boolean(),
  headerSize: Type.Integer({ description: 'virtio-net header bytes for the negotiated features (10 or 12)' }),
  activePairs: Type.Integer(),
  guestOffloads: Type.Integer(),
  filter: Loose('receive filter: RX modes, MAC tables, VLANs'),
  pendingRx: Type.Integer({ description: 'frames waiting for receive buffers' }),
  capture: Type.Object({ frames: Type.Integer(), total: Type.Integer() }),
  stats: Loose('TX/RX counters, RX drops by reason'),
  switch: Type.Union([Type.String(), Type.Null()]),
});
export type NetStateView = Static<typeof NetStateSchema>;

export const RxResultSchema = Type.Object({
  bdf: Type.String(),
  result: Type.Union([Type.Literal('delivered'), Type.Literal('queued'), Type.Literal('dropped')]),
});

export const BlockStateSchema = Type.Object({
  bdf: Type.String(),
  sectors: Type.Integer(),
  readOnly: Type.Boolean(),
  stats: Loose('request counters'),
  injected: Type.Array(Type.Object({ first: Type.Integer(), count: Type.Integer(), op: Type.String() }), {
    description: 'sector ranges that fail with IOERR',
  }),
});
export type BlockStateView = Static<typeof BlockStateSchema>;

export const ConsoleStateSchema = Type.Object({
  bdf: Type.String(),
  output: Type.String({ description: 'port 0 output kept (last 64 KiB), plain hex' }),
  pendingInput: Type.Integer({ description: 'input bytes waiting for receive buffers' }),
  accepted: Type.Optional(Type.Integer({ description: 'bytes of the input taken' })),
});
export type ConsoleStateView = Static<typeof ConsoleStateSchema>;

export const BalloonStateSchema = Type.Object({
  bdf: Type.String(),
  numPages: Type.Integer({ description: 'the host target (config num_pages)' }),
  actual: Type.Integer({ description: 'what the driver reports it gave up (config actual)' }),
  pages: Type.Integer({ description: 'page frame numbers in the balloon' }),
  stats: Type.Record(Type.String(), Type.Number()),
});
export type BalloonStateView = Static<typeof BalloonStateSchema>;
/** A vfio-user client connected to an export (src/vfio-user/exports.ts). */
export const VfioUserClientSchema = Type.Object({
  negotiated: Type.Boolean({ description: 'VERSION was exchanged' }),
  commands: Type.Integer({ description: 'commands received' }),
  byCommand: Type.Record(Type.String(), Type.Integer(), { description: 'commands received, by name' }),
  refusals: Type.Integer({ description: 'error replies sent (and posted writes refused)' }),
  lastRefusal: Type.Union([Type.String(), Type.Null()], { description: 'the last refusal, with its reason' }),
  dmaMaps: Type.Integer({ description: 'DMA regions the client has mapped' }),
  irqFds: Type.Integer({ description: 'eventfds the client has handed over' }),
  interruptsDelivered: Type.Integer(),
  interruptsDropped: Type.Integer({ description: 'eventfd writes dropped (counter at its maximum)' }),
  queuedBytes: Type.Integer({ description: 'reply bytes waiting for the client to read them' }),
});

export const VfioUserExportSchema = Type.Object({
  bdf: Type.String(),
  view: Type.Union([Type.Literal('guest'), Type.Literal('function')], {
    description:
      "guest: the translator's transitional device with an I/O BAR0; function: the function as it is",
  }),
  socket: Type.String({ description: 'the Unix socket path (mode 0600, inside VMMR_SOCKET_DIR)' }),
  source: Type.Union([Type.Literal('api'), Type.Literal('topology')], {
    description: 'started over the API, or by the topology entry of the VF',
  }),
  since: Type.String({ description: 'when the socket started listening (ISO 8601)' }),
  refusedClients: Type.Integer({ description: 'clients turned away while one was connected' }),
  client: Type.Union([VfioUserClientSchema, Type.Null()], { description: 'the connected client, if any' }),
});
export type VfioUserExport = Static<typeof VfioUserExportSchema>;

export const VfioUserExportListSchema = Type.Object({ items: Type.Array(VfioUserExportSchema) });

/** What the device wrote back for each directly issued admin command (src/control/admin.ts). */
export const AdminAnswerSchema = Type.Object({
  opcode: Type.Integer(),
  opcodeName: Type.String({ description: 'LIST_QUERY, LEGACY_COMMON_CFG_READ, ... or the number in hex' }),
  status: Type.Integer({ description: 'VIRTIO_ADMIN_STATUS_*: 0 OK, 22 EINVAL, ...' }),
  statusName: Type.String(),
  qualifier: Type.Integer({ description: 'VIRTIO_ADMIN_STATUS_Q_*' }),
  qualifierName: Type.String(),
  result: Type.String({
    description: 'command_specific_result as plain hex, as long as the device wrote it',
  }),
  reason: Type.Optional(Type.String({ description: 'why the device failed the command (not on the wire)' })),
});
export const AdminAnswersSchema = Type.Object({ answers: Type.Array(AdminAnswerSchema) });
export type AdminAnswers = Static<typeof AdminAnswersSchema>;

export const GuestBackendSchema = Type.Object({
  backend: Type.String({ description: 'mmr or admin' }),
});
