/**
 * One machine as a guest (or the host) sees it: port I/O, memory and PCI configuration through
 * configuration mechanism #1 (0xCF8/0xCFC) and the ECAM window, decoded by the BARs' current
 * values (src/platform/decode.ts). Every register access goes through the access layer
 * (src/access: same checks, events and trace as any access), with its width, in order.
 *
 * What answers where nothing is decoded, as QEMU's PC machine answers (system/ioport.c
 * unassigned_io_ops, system/memory.c unassigned_mem_ops, hw/pci/pci_host.c):
 * - a port no I/O BAR claims reads all-ones, writes are dropped;
 * - configuration reads of a bus/device/function nothing answers read all-ones (master abort),
 *   writes are dropped; so are CONFIG_DATA accesses while CONFIG_ADDRESS bit 31 is clear;
 * - memory no BAR and no ECAM claims is the view's DMA memory (DmaProvider); without one, or
 *   where the DMA space maps nothing, reads return 0 and writes are dropped.
 * A refusal of the core (an access a register does not take, a decode the host side has off…)
 * is thrown as the core's VmmrError; so is an access that straddles two regions.
 */
import { read, write, type AccessValue } from '../access/index.js';
import { DMA_ADDRESS_LIMIT, DmaFault, type DmaSpace } from '../dma/space.js';
import { VmmrError } from '../base/errors.js';
import type { Machine } from '../machine/machine.js';
import { pcPlatform } from '../spec/index.js';
import {
  AddressDecoder,
  accessTarget,
  configSpaceOf,
  functionAt,
  type Target,
  type ViewName,
} from './decode.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';
import { DEFAULT_PLATFORM_MAP, type PlatformMap } from '../machine/platform-map.js';

const P = pcPlatform.constants;
const CONFIG_ADDRESS = P.CONFIG_ADDRESS_PORT.value;
const CONFIG_DATA = P.CONFIG_DATA_PORT.value;
const CONFIG_DATA_END = CONFIG_DATA + P.CONFIG_DATA_SIZE.value;
const CONFIG_ENABLE = P.CONFIG_ENABLE.value;
const CONFIG_BUS_SHIFT = P.CONFIG_BUS_SHIFT.value;
const CONFIG_DEVFN_SHIFT = P.CONFIG_DEVFN_SHIFT.value;
const CONFIG_OFFSET_MASK = P.CONFIG_OFFSET_MASK.value;
const ECAM_SIZE = P.ECAM_SIZE.value;
const ECAM_BUS_SHIFT = P.ECAM_BUS_SHIFT.value;
const ECAM_DEVFN_SHIFT = P.ECAM_DEVFN_SHIFT.value;
const ECAM_FUNCTION_SIZE = P.ECAM_FUNCTION_SIZE.value;
const PORT_MAX = P.PORT_MAX.value;
const BULK_PIECE_MAX = P.BULK_PIECE_MAX.value;
const DMA_PAGE = 4096;

/** Where a view's memory outside its BARs lives (the lead wires per-function or per-session RAM). */
export interface DmaProvider {
  /** The DMA memory of a `view` session of `machine`, or undefined when there is none. */
  spaceFor(view: ViewName, machine: Machine): DmaSpace | undefined;
}

export interface PlatformBusOptions {
  view: ViewName;
  /** The machine to decode against, asked on every access (a service may swap it). */
  machine: () => Machine;
  map?: PlatformMap;
  dma?: DmaProvider;
}

export type PortWidth = 1 | 2 | 4;

interface ConfigTarget {
  fn: VirtioPciFunction;
  offset: number;
}
export type MemoryWidth = 1 | 2 | 4 | 8;

const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffffffff];

function allOnes(width: number): number {
  return ALL_ONES[width]!;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function straddle(what: string, address: number, width: number, why: string): never {
  throw new VmmrError(
    'VMMR_ERR_OUT_OF_RANGE',
    `${what} ${hex(address)} width ${width} straddles ${why}: it would not be one access`,
  );
}

/** Little-endian bytes of a value of `width` bytes. */
function toBytes(value: AccessValue, width: number, into: Uint8Array, at: number): void {
  if (width === 8) {
    const big = BigInt(value);
    for (let i = 0; i < 8; i++) into[at + i] = Number((big >> BigInt(8 * i)) & 0xffn);
    return;
  }
  const n = Number(value);
  for (let i = 0; i < width; i++) into[at + i] = Math.floor(n / 2 ** (8 * i)) & 0xff;
}

function fromBytes(bytes: Uint8Array, at: number, width: number): AccessValue {
  if (width === 8) {
    let big = 0n;
    for (let i = 7; i >= 0; i--) big = (big << 8n) | BigInt(bytes[at + i]!);
    return big;
  }
  let n = 0;
  for (let i = width - 1; i >= 0; i--) n = n * 256 + bytes[at + i]!;
  return n;
}

/** The largest naturally aligned piece at `address` of at most `remaining` bytes (QEMU memory_access_size). */
function pieceWidth(address: number, remaining: number): number {
  let w = BULK_PIECE_MAX;
  while (w > 1 && (address % w !== 0 || w > remaining)) w >>= 1;
  return w;
}

export class PlatformBus {
  readonly view: ViewName;
  readonly map: PlatformMap;
  /** CONFIG_ADDRESS (0xCF8) as last written with a 4-byte write; QEMU keeps all 32 bits. */
  configAddress = 0;
  private readonly decoder: AddressDecoder;
  private readonly machineOf: () => Machine;
  private readonly dma: DmaProvider | undefined;
  private readonly scratch = new Uint8Array(8);

  constructor(options: PlatformBusOptions) {
    this.view = options.view;
    this.map = options.map ?? DEFAULT_PLATFORM_MAP;
    this.machineOf = options.machine;
    this.dma = options.dma;
    this.decoder = new AddressDecoder(options.view);
  }

  get machine(): Machine {
    return this.machineOf();
  }

  // ---- port I/O ----

  private checkPort(port: number, width: number): void {
    if (width !== 1 && width !== 2 && width !== 4) {
      throw new VmmrError('VMMR_ERR_BAD_WIDTH', `port accesses are 1, 2 or 4 bytes wide, not ${width}`);
    }
    if (!Number.isSafeInteger(port) || port < 0 || port + width - 1 > PORT_MAX) {
      throw new VmmrError(
        'VMMR_ERR_BAD_OFFSET',
        `port ${String(port)} width ${width} is outside port space 0x0..0xffff`,
      );
    }
  }

  /**
   * How a port access meets the configuration mechanism (PCI 3.0 §3.2.2.3.2): `address` only for
   * a 4-byte access at 0xCF8 (other accesses to 0xCF8..0xCFB are normal I/O), `data` inside
   * 0xCFC..0xCFF, `none` elsewhere; an access across a boundary of either is refused.
   */
  private configPort(port: number, width: number): 'address' | 'data' | 'none' {
    const end = port + width;
    if (end <= CONFIG_ADDRESS || port >= CONFIG_DATA_END) return 'none';
    if (port >= CONFIG_DATA && end <= CONFIG_DATA_END) return 'data';
    if (port === CONFIG_ADDRESS && width === 4) return 'address';
    if (end <= CONFIG_DATA) return 'none';
    return straddle('port', port, width, 'CONFIG_ADDRESS (0xcf8..0xcfb) and CONFIG_DATA (0xcfc..0xcff)');
  }

  /** The function and offset CONFIG_DATA at `port` reaches, or undefined (disabled, or nothing there). */
  private configTarget(port: number): ConfigTarget | undefined {
    const address = this.configAddress;
    if ((address & CONFIG_ENABLE) === 0) return undefined;
    // QEMU hw/pci/pci_host.c: config_reg | (addr & 3), so the low bits of CONFIG_ADDRESS count.
    const at = (address | (port - CONFIG_DATA)) >>> 0;
    const rid = (((at >>> CONFIG_BUS_SHIFT) & 0xff) << 8) | ((at >>> CONFIG_DEVFN_SHIFT) & 0xff);
    const fn = functionAt(this.machine, this.view, rid);
    return fn ? { fn, offset: at & CONFIG_OFFSET_MASK } : undefined;
  }

  private ioTarget(port: number, width: number): Target | undefined {
    const machine = this.machine;
    const target = this.decoder.ioAt(machine, port);
    if (!target && width > 1 && this.decoder.ioAt(machine, port + width - 1)) {
      straddle('port', port, width, 'the start of an I/O BAR');
    }
    return target;
  }

  portRead(port: number, width: PortWidth): number {
    this.checkPort(port, width);
    switch (this.configPort(port, width)) {
      case 'address':
        return this.configAddress;
      case 'data': {
        const t = this.configTarget(port);
        return t
          ? (read(
              accessTarget(this.machine, t.fn, configSpaceOf(this.view)),
              configSpaceOf(this.view),
              t.offset,
              width,
            ) as number)
          : allOnes(width);
      }
      default: {
        const target = this.ioTarget(port, width);
        return target
          ? (read(
              accessTarget(this.machine, target.fn, target.space),
              target.space,
              target.offset,
              width,
            ) as number)
          : allOnes(width);
      }
    }
  }

  portWrite(port: number, width: PortWidth, value: number): void {
    this.checkPort(port, width);
    switch (this.configPort(port, width)) {
      case 'address':
        this.configAddress = value >>> 0;
        return;
      case 'data': {
        const t = this.configTarget(port);
        if (t) this.configWrite(t, width, value);
        return;
      }
      default: {
        const target = this.ioTarget(port, width);
        if (target)
          write(
            accessTarget(this.machine, target.fn, target.space),
            target.space,
            target.offset,
            width,
            value,
          );
      }
    }
  }

  /** A config write; the decoder then updates just the claims of the function written. */
  private configWrite(t: ConfigTarget, width: number, value: AccessValue): void {
    const machine = this.machine;
    const before = machine.events.configWrites;
    try {
      write(
        accessTarget(this.machine, t.fn, configSpaceOf(this.view)),
        configSpaceOf(this.view),
        t.offset,
        width,
        value,
      );
    } finally {
      this.decoder.afterConfigWrite(machine, t.fn, before);
    }
  }

  // ---- memory ----

  private inEcam(address: number): boolean {
    return address >= this.map.ecamBase && address < this.map.ecamBase + ECAM_SIZE;
  }

  /** The function and offset an ECAM address reaches (PCIe §7.2.2), or undefined (nothing there). */
  private ecamTarget(address: number): ConfigTarget | undefined {
    const at = address - this.map.ecamBase;
    const rid = (((at >>> ECAM_BUS_SHIFT) & 0xff) << 8) | ((at >>> ECAM_DEVFN_SHIFT) & 0xff);
    const fn = functionAt(this.machine, this.view, rid);
    return fn ? { fn, offset: at & (ECAM_FUNCTION_SIZE - 1) } : undefined;
  }

  private checkMemoryWidth(width: number): void {
    if (width !== 1 && width !== 2 && width !== 4 && width !== 8) {
      throw new VmmrError('VMMR_ERR_BAD_WIDTH', `memory accesses are 1, 2, 4 or 8 bytes wide, not ${width}`);
    }
  }

  /** The end of the RAM run starting at `address` (the next ECAM or BAR start). */
  private ramEnd(address: number): number {
    const ecam = this.map.ecamBase;
    const nextBar = this.decoder.nextMemoryClaim(this.machine, address);
    return Math.min(address < ecam ? ecam : Number.POSITIVE_INFINITY, nextBar, DMA_ADDRESS_LIMIT);
  }

  private space(): DmaSpace | undefined {
    return this.dma?.spaceFor(this.view, this.machine);
  }

  memoryRead(address: number, width: MemoryWidth): AccessValue {
    this.checkMemoryWidth(width);
    if (this.inEcam(address)) {
      if (!this.inEcam(address + width - 1))
        straddle('address', address, width, 'the end of the ECAM window');
      const t = this.ecamTarget(address);
      if (!t) return width === 8 ? 0xffffffffffffffffn : allOnes(width);
      return read(
        accessTarget(this.machine, t.fn, configSpaceOf(this.view)),
        configSpaceOf(this.view),
        t.offset,
        width,
      );
    }
    const target = this.decoder.memoryAt(this.machine, address);
    if (target)
      return read(accessTarget(this.machine, target.fn, target.space), target.space, target.offset, width);
    if (address >= DMA_ADDRESS_LIMIT) return width === 8 ? 0n : 0;
    if (this.ramEnd(address) < address + width)
      straddle('address', address, width, 'the start of a BAR or of the ECAM window');
    const bytes = this.scratch;
    this.ramRead(address, bytes, 0, width);
    return fromBytes(bytes, 0, width);
  }

  memoryWrite(address: number, width: MemoryWidth, value: AccessValue): void {
    this.checkMemoryWidth(width);
    if (this.inEcam(address)) {
      if (!this.inEcam(address + width - 1))
        straddle('address', address, width, 'the end of the ECAM window');
      const t = this.ecamTarget(address);
      if (t) this.configWrite(t, width, value);
      return;
    }
    const target = this.decoder.memoryAt(this.machine, address);
    if (target) {
      write(accessTarget(this.machine, target.fn, target.space), target.space, target.offset, width, value);
      return;
    }
    if (address >= DMA_ADDRESS_LIMIT) return;
    if (this.ramEnd(address) < address + width)
      straddle('address', address, width, 'the start of a BAR or of the ECAM window');
    const bytes = this.scratch;
    toBytes(value, width, bytes, 0);
    this.ramWrite(address, bytes, 0, width);
  }

  /**
   * `length` bytes from `address`: RAM runs are copied whole; BARs and ECAM are read as naturally
   * aligned pieces of at most 4 bytes, in ascending order (QEMU memory_access_size).
   */
  readBytes(address: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let pos = 0;
    while (pos < length) {
      const at = address + pos;
      const run = this.runAt(at, length - pos);
      if (run.kind === 'ram') {
        if (at < DMA_ADDRESS_LIMIT) this.ramRead(at, out, pos, run.length);
        pos += run.length;
        continue;
      }
      for (const end = pos + run.length; pos < end;) {
        const w = pieceWidth(address + pos, end - pos);
        toBytes(this.memoryRead(address + pos, w as MemoryWidth), w, out, pos);
        pos += w;
      }
    }
    return out;
  }

  writeBytes(address: number, data: Uint8Array): void {
    let pos = 0;
    while (pos < data.length) {
      const at = address + pos;
      const run = this.runAt(at, data.length - pos);
      if (run.kind === 'ram') {
        if (at < DMA_ADDRESS_LIMIT) this.ramWrite(at, data, pos, run.length);
        pos += run.length;
        continue;
      }
      for (const end = pos + run.length; pos < end;) {
        const w = pieceWidth(address + pos, end - pos);
        this.memoryWrite(address + pos, w as MemoryWidth, fromBytes(data, pos, w));
        pos += w;
      }
    }
  }

  /** The region at `address` and how many of the next `max` bytes stay in it. */
  private runAt(address: number, max: number): { kind: 'ram' | 'mmio'; length: number } {
    if (this.inEcam(address)) {
      return { kind: 'mmio', length: Math.min(max, this.map.ecamBase + ECAM_SIZE - address) };
    }
    const target = this.decoder.memoryAt(this.machine, address);
    if (target) return { kind: 'mmio', length: Math.min(max, target.limit) };
    if (address >= DMA_ADDRESS_LIMIT) return { kind: 'ram', length: max };
    return { kind: 'ram', length: Math.min(max, this.ramEnd(address) - address) };
  }

  // ---- DMA memory ----

  private ramRead(address: number, into: Uint8Array, at: number, length: number): void {
    const space = this.space();
    if (!space) {
      into.fill(0, at, at + length);
      return;
    }
    this.pagewise(
      address,
      length,
      (a, off, n) => space.read(a, into, at + off, n),
      (off, n) => into.fill(0, at + off, at + off + n),
    );
  }

  private ramWrite(address: number, from: Uint8Array, at: number, length: number): void {
    const space = this.space();
    if (!space) return;
    this.pagewise(
      address,
      length,
      (a, off, n) => space.write(a, from, at + off, n),
      () => undefined,
    );
  }

  /**
   * Runs `op` on the whole range; where the DMA space maps nothing it is retried page by page,
   * unmapped pages being `unassigned` (QEMU: reads 0, writes dropped). A full space is an error.
   */
  private pagewise(
    address: number,
    length: number,
    op: (address: number, offset: number, length: number) => void,
    unassigned: (offset: number, length: number) => void,
  ): void {
    const attempt = (a: number, off: number, n: number): boolean => {
      try {
        op(a, off, n);
        return true;
      } catch (e) {
        if (!(e instanceof DmaFault)) throw e;
        if (e.reason === 'limit')
          throw new VmmrError('VMMR_ERR_LIMIT', `DMA memory ${hex(a)} length ${n}: ${e.message}`);
        return false;
      }
    };
    if (attempt(address, 0, length)) return;
    for (let off = 0; off < length;) {
      const a = address + off;
      const n = Math.min(length - off, DMA_PAGE - (a % DMA_PAGE));
      if (!attempt(a, off, n)) unassigned(off, n);
      off += n;
    }
  }
}
