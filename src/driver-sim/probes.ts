import {
  capabilityIds,
  msixCap,
  pciHeader,
  commonCfg,
  legacy,
  virtioPciCap,
  virtioStatus,
  mmrLocator,
  features,
} from '../spec/index.js';
import { decodeExtHeader } from '../pci/capabilities.js';

/**
 * DriverSim: the Linux virtio_pci probe sequences, driven purely through register accesses
 * (like rust-vmm's mock driver). A sequence is a generator of accesses, so one sequence runs
 * in process (runSim), through the translator, or over HTTP (runSimAsync) unchanged.
 *
 * Spaces: `config` (the function's config space), `legacy` (offsets inside the legacy block:
 * the MMR block in the VF BAR, or the translator's I/O BAR0), `bar` (the function's memory BAR
 * given by `bar` in the op, for the modern interface).
 */
export interface SimOp {
  space: 'config' | 'legacy' | 'bar';
  op: 'read' | 'write';
  offset: number;
  width: 1 | 2 | 4;
  value?: number;
  bar?: number;
}

export type Sim = Generator<SimOp, unknown, number>;

export interface TranscriptEntry extends SimOp {
  value: number;
}

export interface SimPort {
  read(op: SimOp): number;
  write(op: SimOp): void;
}

export interface AsyncSimPort {
  read(op: SimOp): Promise<number>;
  write(op: SimOp): Promise<void>;
}

export class SimFailure extends Error {
  override readonly name = 'SimFailure';
}

export function runSim(sim: Sim, port: SimPort): TranscriptEntry[] {
  const transcript: TranscriptEntry[] = [];
  let step = sim.next(0);
  while (!step.done) {
    const op = step.value;
    let result = 0;
    if (op.op === 'read') result = port.read(op);
    else port.write(op);
    transcript.push({ ...op, value: op.op === 'read' ? result : op.value! });
    step = sim.next(result);
  }
  return transcript;
}

export async function runSimAsync(sim: Sim, port: AsyncSimPort): Promise<TranscriptEntry[]> {
  const transcript: TranscriptEntry[] = [];
  let step = sim.next(0);
  while (!step.done) {
    const op = step.value;
    let result = 0;
    if (op.op === 'read') result = await port.read(op);
    else await port.write(op);
    transcript.push({ ...op, value: op.op === 'read' ? result : op.value! });
    step = sim.next(result);
  }
  return transcript;
}

const L = legacy.registers;
const C = commonCfg.registers;
const S = virtioStatus.constants;
const H = pciHeader.registers;
const VC = virtioPciCap.registers;
const NO_VECTOR = legacy.constants.NO_VECTOR.value;
const MSIX_FLAGS = msixCap.registers.FLAGS;

function* cfgRead(offset: number, width: 1 | 2 | 4): Generator<SimOp, number, number> {
  return yield { space: 'config', op: 'read', offset, width };
}

function* cfgWrite(offset: number, width: 1 | 2 | 4, value: number): Generator<SimOp, void, number> {
  yield { space: 'config', op: 'write', offset, width, value };
}

/** Walks the standard capability list for the first capability with `id`. */
export function* findCapability(id: number): Generator<SimOp, number, number> {
  const status = yield* cfgRead(H.STATUS.offset, 2);
  if (!(status & pciHeader.constants.STATUS_CAP_LIST.value)) return -1;
  let ptr = (yield* cfgRead(H.CAPABILITY_LIST.offset, 1)) & ~3;
  for (let guard = 0; ptr !== 0 && guard < 48; guard++) {
    const capId = yield* cfgRead(ptr, 1);
    if (capId === id) return ptr;
    ptr = (yield* cfgRead(ptr + 1, 1)) & ~3;
  }
  return -1;
}

/** PCI core MSI-X enable as Linux does it: Enable with Mask-all, program vectors, then unmask. */
function* enableMsix(): Generator<SimOp, void, number> {
  const cap = yield* findCapability(capabilityIds.constants.CAP_ID_MSIX.value);
  if (cap < 0) throw new SimFailure('no MSI-X capability');
  const flags = msixCap.constants;
  yield* cfgWrite(cap + MSIX_FLAGS.offset, 2, flags.FLAGS_ENABLE.value | flags.FLAGS_MASKALL.value);
  yield* cfgWrite(cap + MSIX_FLAGS.offset, 2, flags.FLAGS_ENABLE.value);
}

function* legacyRead(offset: number, width: 1 | 2 | 4): Generator<SimOp, number, number> {
  return yield { space: 'legacy', op: 'read', offset, width };
}

function* legacyWrite(offset: number, width: 1 | 2 | 4, value: number): Generator<SimOp, void, number> {
  yield { space: 'legacy', op: 'write', offset, width, value };
}

function* legacyAddStatus(bit: number): Generator<SimOp, void, number> {
  const status = yield* legacyRead(L.STATUS.offset, 1);
  yield* legacyWrite(L.STATUS.offset, 1, status | bit);
}

export interface LegacyProbeOptions {
  msix: boolean;
  /** Queues to kick after DRIVER_OK. */
  notify?: readonly number[];
  /** Bytes of device config to read, byte by byte as Linux's legacy vp_get does. */
  configBytes?: number;
  /** First queue PFN; queue n is placed at pfnBase + n * 0x10. */
  pfnBase?: number;
  /** Tear down afterwards (queue PFN 0 and reset). */
  teardown?: boolean;
}

/**
 * The Linux legacy virtio_pci probe (drivers/virtio/virtio_pci_legacy.c, virtio.c): reset,
 * ACKNOWLEDGE, DRIVER, features, MSI-X vectors, per queue select → size → PFN, DRIVER_OK,
 * notify, teardown. Returns the number of queues set up.
 */
export function* legacyProbe(options: LegacyProbeOptions): Generator<SimOp, number, number> {
  const pfnBase = options.pfnBase ?? 0x10000;
  yield* legacyWrite(L.STATUS.offset, 1, 0);
  if ((yield* legacyRead(L.STATUS.offset, 1)) !== 0) throw new SimFailure('status did not reset');
  yield* legacyAddStatus(S.ACKNOWLEDGE.value);
  yield* legacyAddStatus(S.DRIVER.value);
  const hostFeatures = yield* legacyRead(L.HOST_FEATURES.offset, 4);
  if (!(hostFeatures & (1 << features.common.constants.ANY_LAYOUT.value))) {
    throw new SimFailure('a transitional device must offer VIRTIO_F_ANY_LAYOUT');
  }
  yield* legacyWrite(L.GUEST_FEATURES.offset, 4, hostFeatures);
  if (options.msix) {
    yield* enableMsix();
    yield* legacyWrite(L.MSI_CONFIG_VECTOR.offset, 2, 0);
    if ((yield* legacyRead(L.MSI_CONFIG_VECTOR.offset, 2)) === NO_VECTOR)
      throw new SimFailure('config vector refused');
  }
  const configStart = options.msix
    ? legacy.constants.CONFIG_OFF_MSIX.value
    : legacy.constants.CONFIG_OFF_NO_MSIX.value;
  for (let i = 0; i < (options.configBytes ?? 0); i++) yield* legacyRead(configStart + i, 1);
  let queues = 0;
  for (let q = 0; ; q++) {
    yield* legacyWrite(L.QUEUE_SEL.offset, 2, q);
    const num = yield* legacyRead(L.QUEUE_NUM.offset, 2);
    if (num === 0) break;
    if ((yield* legacyRead(L.QUEUE_PFN.offset, 4)) !== 0) throw new SimFailure(`queue ${q} already active`);
    yield* legacyWrite(L.QUEUE_PFN.offset, 4, pfnBase + q * 0x10);
    if (options.msix) {
      yield* legacyWrite(L.MSI_QUEUE_VECTOR.offset, 2, q + 1);
      if ((yield* legacyRead(L.MSI_QUEUE_VECTOR.offset, 2)) === NO_VECTOR)
        throw new SimFailure(`queue ${q} vector refused`);
    }
    queues++;
  }
  yield* legacyAddStatus(S.DRIVER_OK.value);
  for (const q of options.notify ?? []) yield* legacyWrite(L.QUEUE_NOTIFY.offset, 2, q);
  yield* legacyRead(L.ISR.offset, 1);
  if (options.teardown ?? true) {
    for (let q = 0; q < queues; q++) {
      yield* legacyWrite(L.QUEUE_SEL.offset, 2, q);
      if (options.msix) {
        yield* legacyWrite(L.MSI_QUEUE_VECTOR.offset, 2, NO_VECTOR);
        yield* legacyRead(L.MSI_QUEUE_VECTOR.offset, 2);
      }
      yield* legacyWrite(L.QUEUE_PFN.offset, 4, 0);
    }
    yield* legacyWrite(L.STATUS.offset, 1, 0);
    yield* legacyRead(L.STATUS.offset, 1);
  }
  return queues;
}

/** Finds the MMR locator in the extended capability list: [bar, offset] of the legacy block. */
export function* findMmrLocator(): Generator<SimOp, { bar: number; offset: number; length: number }, number> {
  const R = mmrLocator.registers;
  let ptr = pciHeader.constants.EXT_CAP_START.value;
  for (let guard = 0; ptr !== 0 && guard < 64; guard++) {
    const header = decodeExtHeader(yield* cfgRead(ptr, 4));
    if (header.id === capabilityIds.constants.EXT_CAP_ID_VNDR.value) {
      const vsec = yield* cfgRead(ptr + R.VSEC_HEADER.offset, 4);
      if ((vsec & 0xffff) === mmrLocator.constants.VSEC_ID.value) {
        return {
          bar: yield* cfgRead(ptr + R.BAR.offset, 1),
          offset: yield* cfgRead(ptr + R.OFFSET.offset, 4),
          length: yield* cfgRead(ptr + R.LENGTH.offset, 4),
        };
      }
    }
    ptr = header.next;
  }
  throw new SimFailure('no MMR locator capability');
}

interface ModernLayout {
  common: { bar: number; offset: number };
  notify: { bar: number; offset: number; multiplier: number };
  isr: { bar: number; offset: number };
}

function* findModernLayout(): Generator<SimOp, ModernLayout, number> {
  const found: Partial<ModernLayout> = {};
  const status = yield* cfgRead(H.STATUS.offset, 2);
  if (!(status & pciHeader.constants.STATUS_CAP_LIST.value)) throw new SimFailure('no capability list');
  let ptr = (yield* cfgRead(H.CAPABILITY_LIST.offset, 1)) & ~3;
  const T = virtioPciCap.constants;
  for (let guard = 0; ptr !== 0 && guard < 48; guard++) {
    if ((yield* cfgRead(ptr, 1)) === capabilityIds.constants.CAP_ID_VNDR.value) {
      const type = yield* cfgRead(ptr + VC.CFG_TYPE.offset, 1);
      const bar = yield* cfgRead(ptr + VC.BAR.offset, 1);
      const offset = yield* cfgRead(ptr + VC.OFFSET.offset, 4);
      if (type === T.CFG_TYPE_COMMON.value) found.common ??= { bar, offset };
      else if (type === T.CFG_TYPE_ISR.value) found.isr ??= { bar, offset };
      else if (type === T.CFG_TYPE_NOTIFY.value) {
        found.notify ??= {
          bar,
          offset,
          multiplier: yield* cfgRead(ptr + VC.NOTIFY_OFF_MULTIPLIER.offset, 4),
        };
      }
    }
    ptr = (yield* cfgRead(ptr + 1, 1)) & ~3;
  }
  if (!found.common || !found.notify || !found.isr) throw new SimFailure('missing virtio capabilities');
  return found as ModernLayout;
}

export interface ModernProbeOptions {
  msix: boolean;
  notify?: readonly number[];
  teardown?: boolean;
}

/**
 * The Linux modern virtio_pci probe (drivers/virtio/virtio_pci_modern*.c): capabilities,
 * reset, ACKNOWLEDGE, DRIVER, 64-bit features, FEATURES_OK (checked), MSI-X vectors, per queue
 * select → size → vector → desc/driver/device (two 32-bit halves) → notify_off → enable,
 * DRIVER_OK, notify, reset. Returns the number of queues.
 */
export function* modernProbe(options: ModernProbeOptions): Generator<SimOp, number, number> {
  const layout = yield* findModernLayout();
  const c = layout.common;
  const rd = function* (reg: { offset: number }, width: 1 | 2 | 4): Generator<SimOp, number, number> {
    return yield { space: 'bar', bar: c.bar, op: 'read', offset: c.offset + reg.offset, width };
  };
  const wr = function* (
    reg: { offset: number },
    width: 1 | 2 | 4,
    value: number,
  ): Generator<SimOp, void, number> {
    yield { space: 'bar', bar: c.bar, op: 'write', offset: c.offset + reg.offset, width, value };
  };
  const addStatus = function* (bit: number): Generator<SimOp, number, number> {
    const status = yield* rd(C.DEVICE_STATUS, 1);
    yield* wr(C.DEVICE_STATUS, 1, status | bit);
    return yield* rd(C.DEVICE_STATUS, 1);
  };
  yield* wr(C.DEVICE_STATUS, 1, 0);
  if ((yield* rd(C.DEVICE_STATUS, 1)) !== 0) throw new SimFailure('status did not reset');
  yield* addStatus(S.ACKNOWLEDGE.value);
  yield* addStatus(S.DRIVER.value);
  yield* wr(C.DEVICE_FEATURE_SELECT, 4, 0);
  const lo = yield* rd(C.DEVICE_FEATURE, 4);
  yield* wr(C.DEVICE_FEATURE_SELECT, 4, 1);
  const hi = yield* rd(C.DEVICE_FEATURE, 4);
  const version1 = 1 << (features.common.constants.VERSION_1.value - 32);
  if (!(hi & version1)) throw new SimFailure('device does not offer VIRTIO_F_VERSION_1');
  yield* wr(C.DRIVER_FEATURE_SELECT, 4, 0);
  yield* wr(C.DRIVER_FEATURE, 4, lo);
  yield* wr(C.DRIVER_FEATURE_SELECT, 4, 1);
  yield* wr(C.DRIVER_FEATURE, 4, hi);
  if (!((yield* addStatus(S.FEATURES_OK.value)) & S.FEATURES_OK.value))
    throw new SimFailure('FEATURES_OK not accepted');
  if (options.msix) {
    yield* enableMsix();
    yield* wr(C.MSIX_CONFIG, 2, 0);
    if ((yield* rd(C.MSIX_CONFIG, 2)) === NO_VECTOR) throw new SimFailure('config vector refused');
  }
  const numQueues = yield* rd(C.NUM_QUEUES, 2);
  const notifyOffsets: number[] = [];
  for (let q = 0; q < numQueues; q++) {
    yield* wr(C.QUEUE_SELECT, 2, q);
    const size = yield* rd(C.QUEUE_SIZE, 2);
    if (size === 0) throw new SimFailure(`queue ${q} has size 0`);
    if ((yield* rd(C.QUEUE_ENABLE, 2)) !== 0) throw new SimFailure(`queue ${q} already enabled`);
    if (options.msix) {
      yield* wr(C.QUEUE_MSIX_VECTOR, 2, q + 1);
      if ((yield* rd(C.QUEUE_MSIX_VECTOR, 2)) === NO_VECTOR)
        throw new SimFailure(`queue ${q} vector refused`);
    }
    const base = (0x100000 + q * 0x4000) >>> 0;
    for (const [reg, addr] of [
      [C.QUEUE_DESC, base],
      [C.QUEUE_DRIVER, base + 0x1000],
      [C.QUEUE_DEVICE, base + 0x2000],
    ] as const) {
      yield* wr(reg, 4, addr);
      yield { space: 'bar', bar: c.bar, op: 'write', offset: c.offset + reg.offset + 4, width: 4, value: 0 };
    }
    notifyOffsets.push(yield* rd(C.QUEUE_NOTIFY_OFF, 2));
    yield* wr(C.QUEUE_ENABLE, 2, 1);
  }
  yield* addStatus(S.DRIVER_OK.value);
  for (const q of options.notify ?? []) {
    const n = layout.notify;
    yield {
      space: 'bar',
      bar: n.bar,
      op: 'write',
      offset: n.offset + notifyOffsets[q]! * n.multiplier,
      width: 2,
      value: q,
    };
  }
  yield { space: 'bar', bar: layout.isr.bar, op: 'read', offset: layout.isr.offset, width: 1 };
  if (options.teardown ?? true) {
    yield* wr(C.DEVICE_STATUS, 1, 0);
    yield* rd(C.DEVICE_STATUS, 1);
  }
  return numQueues;
}
