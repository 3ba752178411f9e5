/**
 * The machine's state as data (GET/PUT /api/v1/state, the state file): PF definitions and the
 * state of every function that is not pristine, by name — readable, and independent of how the
 * core stores it. The schema is the one description of the format: the types are derived from
 * it, and both the REST route and the state file validate against it.
 *
 * Version 1 (before 0.2) stored internal slot arrays; it is still read and converted
 * (migrateStateV1).
 */
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { VmmrError } from '../base/errors.js';
import { hex } from '../base/hex.js';
import type { DeviceState, QueueRegisters } from '../virtio/device.js';
import type { FunctionState } from '../virtio/pci-function.js';
import type { MsixState } from '../pci/msix.js';
import type { ConfigChange } from '../pci/config-space.js';
import { CHAIN_RULES, type ChainRule } from '../virtqueue/index.js';
import { TopologyPfSchema, type ResolvedPf } from './topology.js';

export const STATE_FORMAT = 'vmmr-state';
export const STATE_VERSION = 2;

const Uint = (max: number) => Type.Integer({ minimum: 0, maximum: max });
const Hex64 = Type.String({ pattern: '^0x[0-9a-fA-F]{1,16}$', description: '64-bit value, "0x" + hex' });
const Hex32 = Type.String({ pattern: '^0x[0-9a-fA-F]{1,8}$', description: '32-bit value, "0x" + hex' });

const ConfigChangeSchema = Type.Object(
  {
    offset: Type.String({ pattern: '^0x[0-9a-fA-F]{1,4}$', description: 'dword offset in config space' }),
    value: Hex32,
  },
  { additionalProperties: false, description: 'a config dword that differs from reset' },
);

const QueueSchema = Type.Object(
  {
    size: Uint(0xffff),
    vector: Uint(0xffff),
    enabled: Type.Boolean(),
    desc: Hex64,
    driver: Hex64,
    device: Hex64,
  },
  { additionalProperties: false },
);

/** The device registers every version of the format has kept as they are. */
const DeviceRegisterFields = {
  status: Uint(0xff),
  isr: Uint(0xff),
  generation: Uint(0xff),
  queueSelect: Uint(0xffff),
  configVector: Uint(0xffff),
  deviceFeatureSelect: Uint(0xffffffff),
  driverFeatureSelect: Uint(0xffffffff),
  driverFeatures: Hex64,
};

const DeviceStateSchema = Type.Object(
  {
    ...DeviceRegisterFields,
    queues: Type.Union([Type.Array(QueueSchema), Type.Null()], {
      description: 'null until a queue is programmed',
    }),
    config: Type.Union([Type.String({ pattern: '^(?:[0-9a-f]{2})*$' }), Type.Null()], {
      description: 'device-specific configuration bytes, plain hex; null while at reset',
    }),
  },
  { additionalProperties: false },
);

const MsixStateSchema = Type.Object(
  {
    vectors: Type.Array(
      Type.Object(
        { address: Hex64, data: Uint(0xffffffff), masked: Type.Boolean() },
        { additionalProperties: false },
      ),
    ),
    pending: Type.Array(Uint(2047), { description: 'vectors whose pending bit is set' }),
  },
  { additionalProperties: false },
);

const RunStateSchema = Type.Object(
  {
    format: Type.Union([Type.Literal('split'), Type.Literal('packed')]),
    lastAvail: Uint(0xffff),
    used: Uint(0xffff),
    signalled: Type.Union([Uint(0xffff), Type.Null()]),
    nextHead: Uint(0xffff),
    requests: Type.Integer({ minimum: 0 }),
    errors: Type.Integer({ minimum: 0 }),
    error: Type.Union([
      Type.Object(
        {
          queue: Type.Integer(),
          descriptor: Type.Union([Type.Integer(), Type.Null()]),
          table: Type.Union([Type.Literal('ring'), Type.Literal('indirect')]),
          rule: Type.Unsafe<ChainRule>({ type: 'string', enum: [...CHAIN_RULES] }),
          detail: Type.String(),
          message: Type.String(),
        },
        { additionalProperties: false },
      ),
      Type.Null(),
    ]),
  },
  { additionalProperties: false, description: "a queue's run state (src/virtqueue QueueRunState)" },
);

export const FunctionStateSchema = Type.Object(
  {
    bdf: Type.String(),
    config: Type.Array(ConfigChangeSchema),
    device: DeviceStateSchema,
    msix: Type.Union([MsixStateSchema, Type.Null()], { description: 'null while the table is at reset' }),
    guest: Type.Optional(
      Type.Array(ConfigChangeSchema, { description: "the translator guest view's own config changes" }),
    ),
    dma: Type.Optional(
      Type.Object(
        {
          pageSize: Type.Integer(),
          pages: Type.Record(Type.String(), Type.String(), {
            description: 'hex page address -> base64 of the 4096-byte page (pages holding a non-zero byte)',
          }),
        },
        { additionalProperties: false, description: "the function's DMA memory" },
      ),
    ),
    queues: Type.Optional(
      Type.Array(Type.Union([RunStateSchema, Type.Null()]), {
        description: "the device's run state of each queue it used (null: not used)",
      }),
    ),
  },
  { additionalProperties: false },
);

export const MachineStateSchema = Type.Object(
  {
    format: Type.Literal(STATE_FORMAT),
    version: Type.Literal(STATE_VERSION),
    pfs: Type.Array(TopologyPfSchema),
    functions: Type.Array(FunctionStateSchema, {
      description: 'every PF, and every VF that is not in its reset state',
    }),
  },
  { additionalProperties: false, description: 'a machine snapshot' },
);

export type MachineState = Omit<Static<typeof MachineStateSchema>, 'pfs'> & { pfs: ResolvedPf[] };

// Compile-time checks that the schema and the core's state types agree.
type SchemaFunction = Static<typeof FunctionStateSchema>;
const _functionMatches = (f: FunctionState): SchemaFunction => f;
const _schemaMatches = (f: SchemaFunction): FunctionState => f;
void _functionMatches;
void _schemaMatches;

const checkState = Compile(MachineStateSchema);

/** Shape check of an untrusted snapshot; undefined when it conforms. */
export function stateProblem(value: unknown): string | undefined {
  if (checkState.Check(value)) return undefined;
  const first = checkState.Errors(value)[0];
  return first ? `${first.instancePath || '/'} ${first.message}` : 'does not match the vmmr state schema';
}

// ---------------------------------------------------------------------------------------------
// Version 1

const V1_QUEUE_FIELDS = 9;
const V1_ENTRY_DWORDS = 4;

const DeviceStateV1Schema = Type.Object(
  {
    ...DeviceRegisterFields,
    queues: Type.Union([Type.Array(Uint(0xffffffff)), Type.Null()]),
    config: Type.Union([Type.Array(Uint(0xff)), Type.Null()]),
    msix: Type.Union([Type.Array(Uint(0xffffffff)), Type.Null()]),
  },
  { additionalProperties: false },
);
const DwordsV1 = Type.Array(Type.Tuple([Uint(1023), Uint(0xffffffff)]));
const MachineStateV1Schema = Type.Object(
  {
    format: Type.Literal(STATE_FORMAT),
    version: Type.Literal(1),
    pfs: Type.Array(TopologyPfSchema),
    functions: Type.Array(
      Type.Object(
        { bdf: Type.String(), config: DwordsV1, device: DeviceStateV1Schema, guest: Type.Optional(DwordsV1) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
type MachineStateV1 = Static<typeof MachineStateV1Schema>;
const checkV1 = Compile(MachineStateV1Schema);

function changesV1(dwords: ReadonlyArray<readonly [number, number]>): ConfigChange[] {
  return dwords.map(([index, value]) => ({ offset: hex(index * 4, 2), value: hex(value, 4) }));
}

function queuesV1(slots: readonly number[]): QueueRegisters[] {
  if (slots.length % V1_QUEUE_FIELDS !== 0)
    throw new Error(`queues: ${slots.length} slots are not whole queues`);
  const out: QueueRegisters[] = [];
  const wide = (at: number): string => `0x${hex(slots[at + 1]!, 4).slice(2)}${hex(slots[at]!, 4).slice(2)}`;
  for (let at = 0; at < slots.length; at += V1_QUEUE_FIELDS) {
    out.push({
      size: slots[at]!,
      vector: slots[at + 1]!,
      enabled: slots[at + 2] === 1,
      desc: wide(at + 3),
      driver: wide(at + 5),
      device: wide(at + 7),
    });
  }
  return out;
}

function msixV1(dwords: readonly number[]): MsixState {
  let vectors = 0;
  while (vectors * V1_ENTRY_DWORDS + Math.ceil(vectors / 32) < dwords.length) vectors++;
  if (vectors * V1_ENTRY_DWORDS + Math.ceil(vectors / 32) !== dwords.length) {
    throw new Error(`msix: ${dwords.length} dwords are no MSI-X table and PBA`);
  }
  const table: MsixState['vectors'] = [];
  const pending: number[] = [];
  for (let v = 0; v < vectors; v++) {
    const at = v * V1_ENTRY_DWORDS;
    table.push({
      address: `0x${hex(dwords[at + 1]!, 4).slice(2)}${hex(dwords[at]!, 4).slice(2)}`,
      data: dwords[at + 2]!,
      masked: (dwords[at + 3]! & 1) === 1,
    });
    if ((dwords[vectors * V1_ENTRY_DWORDS + (v >>> 5)]! >>> (v & 31)) & 1) pending.push(v);
  }
  return { vectors: table, pending };
}

function deviceV1(d: MachineStateV1['functions'][number]['device']): DeviceState {
  return {
    status: d.status,
    isr: d.isr,
    generation: d.generation,
    queueSelect: d.queueSelect,
    configVector: d.configVector,
    deviceFeatureSelect: d.deviceFeatureSelect,
    driverFeatureSelect: d.driverFeatureSelect,
    driverFeatures: d.driverFeatures,
    queues: d.queues === null ? null : queuesV1(d.queues),
    config: d.config === null ? null : Buffer.from(d.config).toString('hex'),
  };
}

/**
 * A version-1 snapshot in today's form, or undefined when the value is not one; a version-1
 * document whose arrays fit no device is VMMR_ERR_STATE.
 */
export function migrateStateV1(value: unknown): MachineState | undefined {
  if (!checkV1.Check(value)) return undefined;
  try {
    return convertV1(value);
  } catch (e) {
    throw new VmmrError('VMMR_ERR_STATE', `version 1 state not converted: ${(e as Error).message}`);
  }
}

function convertV1(value: MachineStateV1): MachineState {
  return {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    pfs: value.pfs as ResolvedPf[],
    functions: value.functions.map((f) => ({
      bdf: f.bdf,
      config: changesV1(f.config),
      device: deviceV1(f.device),
      msix: f.device.msix === null ? null : msixV1(f.device.msix),
      ...(f.guest ? { guest: changesV1(f.guest) } : {}),
    })),
  };
}
