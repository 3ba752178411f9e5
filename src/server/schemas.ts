/** TypeBox schemas shared by the route modules (they are also the OpenAPI document). */
import { Type, type TSchema } from 'typebox';
import { EVENT_TYPES } from '../base/events.js';
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from '../views/inspect.js';
import { SPACES } from '../access/index.js';
import { MAX_BLOCK_LENGTH } from '../access/block.js';

export const BdfParam = Type.String({
  description: 'PCI address "dddd:bb:dd.f" (or "bb:dd.f" for domain 0000), hex',
  examples: ['0000:01:00.1'],
});

export const BdfParams = Type.Object({ bdf: BdfParam });

export const OffsetParam = Type.String({
  description: 'byte offset, hex ("0x44") or decimal ("68")',
  examples: ['0x44'],
});

export const HexString = (description: string, example = '0x1af4'): TSchema =>
  Type.String({ description, examples: [example] });

/** A number as input: JSON number (up to 2^53 - 1), "0x…" hex string or decimal string. */
export const NumberInput = (description: string): TSchema =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String()], {
    description: `${description}: a JSON number, a hex string ("0x1af4") or a decimal string; above 2^53 - 1 use a hex string`,
  });

export const HexData = Type.String({
  description: `bytes as plain hex, two digits per byte in address order ("0a1b2c…"), 1..${MAX_BLOCK_LENGTH} bytes`,
  examples: ['00112233'],
});

export const Width124 = Type.Integer({ description: 'access width in bytes: 1, 2 or 4', examples: [4] });
export const Width1248 = Type.Integer({ description: 'access width in bytes: 1, 2, 4 or 8', examples: [4] });

export const Space = Type.String({ description: `address space: ${SPACES.join(', ')}`, examples: ['bar2'] });

export const Limit = Type.Integer({
  minimum: 1,
  maximum: MAX_PAGE_LIMIT,
  default: DEFAULT_PAGE_LIMIT,
  description: `page size, 1..${MAX_PAGE_LIMIT} (default ${DEFAULT_PAGE_LIMIT})`,
});

export const Cursor = Type.String({ description: 'nextCursor of the previous page' });

export const PageQuery = Type.Object(
  { limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) },
  { additionalProperties: false },
);

export const Problem = Type.Object(
  {
    type: Type.String({ description: 'urn:vmmr:error:<code>' }),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String({ description: 'stable error code, e.g. VMMR_ERR_BAD_WIDTH' }),
    detail: Type.String(),
    bdf: Type.Optional(Type.String()),
    space: Type.Optional(Type.String()),
    offset: Type.Optional(Type.Integer()),
    width: Type.Optional(Type.Integer()),
    register: Type.Optional(Type.String()),
    in: Type.Optional(
      Type.String({ description: 'validation errors: body, querystring, params or headers' }),
    ),
    path: Type.Optional(Type.String({ description: 'validation errors: JSON pointer inside that part' })),
  },
  { description: 'RFC 9457 problem document (application/problem+json)' },
);

/** Problem responses of a route (application/problem+json), for the OpenAPI document. */
export function problems(
  ...statuses: number[]
): Record<number, { description: string; content: Record<string, { schema: TSchema }> }> {
  const out: Record<number, { description: string; content: Record<string, { schema: TSchema }> }> = {};
  for (const s of statuses)
    out[s] = {
      description: 'problem document',
      content: { 'application/problem+json': { schema: Problem } },
    };
  return out;
}

export const PfSummary = Type.Object(
  {
    bdf: Type.String(),
    type: Type.String({ description: 'virtio type: net, block, balloon, console, scsi, rng, 9p' }),
    totalVfs: Type.Integer(),
    initialVfs: Type.Integer(),
    firstVfOffset: Type.Integer(),
    vfStride: Type.Integer(),
    queueSize: Type.Integer(),
    policy: Type.String({ description: 'strict or compat' }),
    notify: Type.String({ description: 'notify-region or legacy-register' }),
    numVfs: Type.Integer({ description: 'SR-IOV NumVFs register' }),
    vfEnabled: Type.Boolean({ description: 'SR-IOV Control VF Enable' }),
    vfMemoryEnabled: Type.Boolean({ description: 'SR-IOV Control VF MSE' }),
    vfDeviceId: HexString('SR-IOV VF Device ID', '0x10f9'),
  },
  {},
);

export const VfPage = Type.Object({
  items: Type.Array(Type.String(), { description: 'VF addresses' }),
  total: Type.Integer(),
  nextCursor: Type.Union([Type.String(), Type.Null()], {
    description: 'cursor of the next page; null on the last page',
  }),
});

export const SriovState = Type.Object(
  {
    numVfs: Type.Integer(),
    totalVfs: Type.Integer(),
    initialVfs: Type.Integer(),
    vfEnabled: Type.Boolean(),
    vfMemoryEnabled: Type.Boolean(),
    firstVfOffset: Type.Integer(),
    vfStride: Type.Integer(),
    vfDeviceId: Type.String(),
    systemPageSize: Type.String({ description: 'SR-IOV System Page Size register (bit n: 4 KiB << n)' }),
    vfBarSize: Type.Integer({ description: 'size of each VF BAR' }),
    vfBarBase: Type.String({ description: '64-bit base of the VF BAR window' }),
    vfs: VfPage,
  },
  {},
);

export const FunctionSummary = Type.Object(
  {
    bdf: Type.String(),
    kind: Type.Union([Type.Literal('pf'), Type.Literal('vf')]),
    type: Type.String(),
    pf: Type.Optional(Type.String({ description: 'the PF of a VF' })),
    vfIndex: Type.Optional(Type.Integer({ description: '0-based VF number' })),
    vendorId: Type.String({ description: "logical Vendor ID (a VF reports its PF's)" }),
    deviceId: Type.String({ description: "logical Device ID (a VF reports the PF's VF Device ID)" }),
    status: Type.String({ description: 'virtio device status' }),
  },
  {},
);

const QueueState = Type.Object({
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

export const FunctionDescription = Type.Object(
  {
    bdf: Type.String(),
    kind: Type.Union([Type.Literal('pf'), Type.Literal('vf')]),
    type: Type.String(),
    pf: Type.Optional(Type.String()),
    vfIndex: Type.Optional(Type.Integer()),
    vendorId: Type.String(),
    deviceId: Type.String(),
    status: Type.String(),
    revision: Type.String(),
    classCode: Type.String(),
    subsystemVendorId: Type.String(),
    subsystemId: Type.String(),
    configVendorId: Type.String({ description: 'as config space reads it (0xffff on a VF)' }),
    configDeviceId: Type.String({ description: 'as config space reads it (0xffff on a VF)' }),
    command: Type.String(),
    configStatus: Type.String({ description: 'PCI Status register' }),
    bars: Type.Array(
      Type.Object({
        index: Type.Integer(),
        type: Type.Literal('memory'),
        is64: Type.Boolean(),
        prefetchable: Type.Boolean(),
        size: Type.Integer(),
        address: Type.String(),
        decoding: Type.Boolean(),
      }),
    ),
    capabilities: Type.Array(
      Type.Object({
        kind: Type.Union([Type.Literal('standard'), Type.Literal('extended')]),
        id: Type.String(),
        name: Type.String(),
        offset: Type.Integer(),
        version: Type.Optional(Type.Integer()),
        virtio: Type.Optional(
          Type.Object({
            cfgType: Type.Integer(),
            cfgName: Type.String(),
            bar: Type.Integer(),
            offset: Type.Integer(),
            length: Type.Integer(),
          }),
        ),
        vsec: Type.Optional(Type.Object({ id: Type.String(), rev: Type.Integer(), length: Type.Integer() })),
      }),
    ),
    mmrLocator: Type.Optional(
      Type.Object({ bar: Type.Integer(), offset: Type.Integer(), length: Type.Integer() }),
    ),
    sriov: Type.Optional(
      Type.Object({}, { additionalProperties: true, description: 'SR-IOV state without the VF list' }),
    ),
    intx: Type.Optional(Type.Object({ pin: Type.Literal('A'), asserted: Type.Boolean() })),
    virtio: Type.Object({
      status: Type.String(),
      statusBits: Type.Array(Type.String()),
      deviceFeatures: Type.String(),
      driverFeatures: Type.String(),
      isr: Type.String(),
      configGeneration: Type.Integer(),
      configVector: Type.Integer(),
      legacyConfigOffset: Type.Optional(Type.Integer()),
      queues: Type.Array(QueueState),
      msix: Type.Object({ enabled: Type.Boolean(), masked: Type.Boolean(), vectors: Type.Integer() }),
    }),
    identity: Type.Object({ mac: Type.Optional(Type.String()), serial: Type.Optional(Type.String()) }),
    guest: Type.Optional(
      Type.Object({
        vendorId: Type.String(),
        deviceId: Type.String(),
        ioLength: Type.Integer(),
        ioEnabled: Type.Boolean(),
        memoryEnabled: Type.Boolean(),
        intxAsserted: Type.Boolean(),
        trace: Type.Object({ enabled: Type.Boolean(), depth: Type.Integer(), recorded: Type.Integer() }),
      }),
    ),
  },
  {},
);

/** The echo of a single access. */
export const AccessResult = Type.Object(
  {
    bdf: Type.String(),
    space: Type.String(),
    offset: Type.Integer(),
    width: Type.Integer(),
    value: HexString('register value, zero-padded to the width'),
  },
  {},
);

export const BlockResult = Type.Object(
  {
    bdf: Type.String(),
    space: Type.String(),
    offset: Type.Integer(),
    length: Type.Integer(),
    data: HexData,
  },
  {},
);

export const DumpFormat = Type.Union([Type.Literal('json'), Type.Literal('lspci'), Type.Literal('hex')], {
  description:
    'json (default): {bdf, length, data}; lspci: `lspci -xxxx` text that `lspci -F FILE` reads; hex: 16 bytes per line',
});

export const ConfigDump = Type.Object({
  bdf: Type.String(),
  length: Type.Integer(),
  data: Type.String({ description: 'the whole config space as plain hex' }),
});

export const EventTypesQuery = Type.String({
  description: `comma-separated event types to receive (default all): ${EVENT_TYPES.join(', ')}`,
});
