/**
 * Address decode of one view of the machine: which function answers a configuration access at a
 * bus/device/function, and which BAR claims an I/O port or a memory address, following the BARs'
 * current values and decode enables (as QEMU hw/pci/pci.c pci_bar_address maps a BAR).
 *
 * Views (a qtest session picks one):
 * - `guest`: what a legacy guest enumerates — every enabled VF through the translator (its guest
 *   config space; I/O BAR0 decoded by the guest's Command.IO; the VF memory BAR passed through
 *   at the guest's BAR2, decoded by the guest's Command.Memory). PFs are not shown.
 * - `host`: the PFs (BAR0 decoded by Command.Memory) and their raw MMR VFs (config space; VF BAR
 *   n of VF k at the SR-IOV VF BAR base + k × per-VF size while VF Enable and VF MSE are set).
 *
 * Configuration accesses reach PCI segment 0 only (0xCF8/0xCFC and ECAM address one segment);
 * BARs of every segment share the one address space.
 *
 * The claims are cached per machine until a config-space write goes through the access layer
 * (EventBus.configWrites) or the set of PFs changes, so an access costs a binary search.
 */
import type { AccessTarget, Space } from '../access/index.js';
import { DMA_ADDRESS_LIMIT } from '../dma/space.js';
import type { Machine } from '../machine/machine.js';
import type { MmrVf } from '../mmr/vf.js';
import { pciHeader, sriovCap } from '../spec/index.js';
import type { VirtioPf } from '../mmr/pf.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';

export type ViewName = 'guest' | 'host';
export const VIEWS: readonly ViewName[] = ['guest', 'host'];

const H = pciHeader.registers;
const HC = pciHeader.constants;
const S = sriovCap.registers;
const IO_ADDRESS_MASK = HC.BASE_ADDRESS_IO_MASK.value;
const MEM_ADDRESS_MASK = HC.BASE_ADDRESS_MEM_MASK.value;
const TWO_32 = 2 ** 32;
/** Ports run 0..0xFFFF: an I/O BAR reaching past them is not decoded (QEMU pci_bar_address). */
const PORT_LIMIT = 0x10000;

/** Where an address landed: one function's space, at an offset, with `limit` bytes left there. */
export interface Target {
  readonly fn: VirtioPciFunction;
  readonly space: Space;
  readonly offset: number;
  /** Bytes from `offset` to the end of the BAR. */
  readonly limit: number;
  /** The claim's first address (for messages). */
  readonly base: number;
}

/** One decoded BAR (or, in the host view, the VF BARs of a PF as one run of equal strides). */
interface Claim {
  readonly base: number;
  readonly end: number;
  readonly stride: number;
  /** A single function, or the VFs of a PF indexed by (address - base) / stride. */
  readonly fns: readonly VirtioPciFunction[];
  readonly space: Space;
  /** The function whose config registers place the claim (a PF for its VFs' run). */
  readonly owner: VirtioPciFunction;
  /** Enumeration order: the lower one wins where two BARs overlap. */
  readonly order: number;
}

function byBase(a: Claim, b: Claim): number {
  return a.base - b.base || a.order - b.order;
}

/** Claims sorted by base, with the running maximum of their ends for overlap-safe lookups. */
class ClaimIndex {
  private readonly claims: Claim[];
  private readonly maxEnd: number[] = [];
  private readonly byOwner = new Map<VirtioPciFunction, Claim[]>();

  constructor(claims: Claim[]) {
    this.claims = claims.sort(byBase);
    for (const c of this.claims) {
      const list = this.byOwner.get(c.owner);
      if (list) list.push(c);
      else this.byOwner.set(c.owner, [c]);
    }
    this.reindex(0);
  }

  /** Recomputes the running maximum of ends from position `from` on. */
  private reindex(from: number): void {
    const claims = this.claims;
    this.maxEnd.length = claims.length;
    let max = from > 0 ? this.maxEnd[from - 1]! : 0;
    for (let i = from; i < claims.length; i++) {
      max = Math.max(max, claims[i]!.end);
      this.maxEnd[i] = max;
    }
  }

  get size(): number {
    return this.claims.length;
  }

  /** The first position whose claim sorts at or after `c`. */
  private position(c: Claim): number {
    let lo = 0;
    let hi = this.claims.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (byBase(this.claims[mid]!, c) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Replaces the claims `owner` places by `fresh` (one function's registers changed). */
  replace(owner: VirtioPciFunction, fresh: readonly Claim[]): void {
    const old = this.byOwner.get(owner) ?? [];
    const same =
      old.length === fresh.length &&
      old.every(
        (c, i) => c.base === fresh[i]!.base && c.end === fresh[i]!.end && c.space === fresh[i]!.space,
      );
    if (same) return;
    let lowest = this.claims.length;
    for (const c of old) {
      const at = this.claims.indexOf(c, this.position(c));
      this.claims.splice(at, 1);
      lowest = Math.min(lowest, at);
    }
    for (const c of fresh) {
      const at = this.position(c);
      this.claims.splice(at, 0, c);
      lowest = Math.min(lowest, at);
    }
    if (fresh.length > 0) this.byOwner.set(owner, [...fresh]);
    else this.byOwner.delete(owner);
    this.reindex(lowest);
  }

  find(address: number): Target | undefined {
    const claims = this.claims;
    let lo = 0;
    let hi = claims.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (claims[mid]!.base <= address) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    let best: Claim | undefined;
    for (let i = at; i >= 0 && this.maxEnd[i]! > address; i--) {
      const c = claims[i]!;
      if (address < c.end && (!best || c.order < best.order)) best = c;
    }
    if (!best) return undefined;
    const k = best.fns.length === 1 ? 0 : Math.floor((address - best.base) / best.stride);
    const fn = best.fns[k];
    if (!fn) return undefined;
    const base = best.base + k * best.stride;
    const offset = address - base;
    return { fn, space: best.space, offset, limit: best.stride - offset, base };
  }

  /** The lowest claim start above `from`, or Infinity. */
  nextStart(from: number): number {
    const claims = this.claims;
    let lo = 0;
    let hi = claims.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (claims[mid]!.base <= from) lo = mid + 1;
      else hi = mid;
    }
    return lo < claims.length ? claims[lo]!.base : Number.POSITIVE_INFINITY;
  }
}

function barSpace(index: number): Space {
  return `bar${index}` as Space;
}

/** A 64-bit memory BAR pair's address, or 0 (unmapped) when it cannot be decoded. */
function memoryBarAddress(low: number, high: number, size: number): number {
  const base = (low & MEM_ADDRESS_MASK) >>> 0;
  const address = base + high * TWO_32;
  // QEMU pci_bar_address: address 0 is unmapped, so is a range that wraps or ends at all-ones;
  // vmmr's addresses are exact numbers below 2^53 (src/dma/space.ts).
  if (address === 0 || address + size > DMA_ADDRESS_LIMIT) return 0;
  return address;
}

function ioBarAddress(value: number, size: number): number {
  const port = (value & IO_ADDRESS_MASK) >>> 0;
  return port === 0 || port + size > PORT_LIMIT ? 0 : port;
}

interface Claims {
  io: Claim[];
  mem: Claim[];
}

/**
 * Enumeration order of a function's claims: PF by PF (in machine.pfs order), the PF first, then
 * its VFs by index (VF_ORDER_STRIDE leaves room for 65535 VFs and the PF's two claims).
 */
const PF_ORDER_STRIDE = 2 ** 17;

function pfOrder(machine: Machine, pf: VirtioPf): number {
  return machine.pfs.indexOf(pf) * PF_ORDER_STRIDE;
}

function pfClaims(pf: VirtioPf, order: number, out: Claims): void {
  const command = pf.config.read(H.COMMAND.offset, H.COMMAND.size);
  const index = pf.template.barIndex;
  if (command & HC.COMMAND_MEMORY.value) {
    const reg = H.BASE_ADDRESS_0.offset + index * 4;
    const size = pf.barSize();
    const base = memoryBarAddress(pf.config.read(reg, 4), pf.config.read(reg + 4, 4), size);
    if (base)
      out.mem.push({
        base,
        end: base + size,
        stride: size,
        fns: [pf],
        space: barSpace(index),
        owner: pf,
        order,
      });
  }
  if (pf.vfs.length > 0 && pf.vfMemoryDecodeEnabled()) {
    const vfIndex = pf.vfTemplate.barIndex;
    const reg = pf.sriov + S.BAR0.offset + vfIndex * 4;
    const stride = pf.vfBarSize();
    const base = memoryBarAddress(pf.config.read(reg, 4), pf.config.read(reg + 4, 4), stride);
    const end = base + stride * pf.vfs.length;
    if (base && end <= DMA_ADDRESS_LIMIT) {
      out.mem.push({ base, end, stride, fns: pf.vfs, space: barSpace(vfIndex), owner: pf, order: order + 1 });
    }
  }
}

function guestClaims(machine: Machine, vf: MmrVf, order: number, out: Claims): void {
  const view = machine.translator.existing(vf);
  if (!view) return;
  const command = view.readConfig(H.COMMAND.offset, H.COMMAND.size);
  if (command & HC.COMMAND_IO.value) {
    const size = view.ioLength;
    const base = ioBarAddress(view.readConfig(H.BASE_ADDRESS_0.offset, 4), size);
    if (base) out.io.push({ base, end: base + size, stride: size, fns: [vf], space: 'io', owner: vf, order });
  }
  if (command & HC.COMMAND_MEMORY.value) {
    const index = vf.template.barIndex;
    const reg = H.BASE_ADDRESS_0.offset + index * 4;
    const size = vf.barSize();
    const base = memoryBarAddress(view.readConfig(reg, 4), view.readConfig(reg + 4, 4), size);
    if (base)
      out.mem.push({
        base,
        end: base + size,
        stride: size,
        fns: [vf],
        space: barSpace(index),
        owner: vf,
        order,
      });
  }
}

/** The function at a routing ID of segment 0 in a view, or undefined (nothing answers). */
export function functionAt(machine: Machine, view: ViewName, rid: number): VirtioPciFunction | undefined {
  for (const pf of machine.pfs) {
    if (pf.domain !== 0) continue;
    if (pf.rid === rid) return view === 'host' ? pf : undefined;
    const n = pf.vfIndexAt(rid);
    if (n >= 0) return pf.vfs[n];
  }
  return undefined;
}

/** The config space a view shows of a function. */
/** What an access of `space` to `fn` reaches: its guest view for the guest spaces (opened on first use). */
export function accessTarget(machine: Machine, fn: VirtioPciFunction, space: Space): AccessTarget {
  return (space === 'io' || space === 'guest-config') && fn.kind === 'vf'
    ? machine.translator.view(fn as MmrVf)
    : fn;
}

export function configSpaceOf(view: ViewName): Space {
  return view === 'guest' ? 'guest-config' : 'config';
}

export class AddressDecoder {
  private machine: Machine | undefined;
  private pfs: readonly VirtioPf[] | undefined;
  private writes = -1;
  private io = new ClaimIndex([]);
  private mem = new ClaimIndex([]);

  constructor(readonly view: ViewName) {}

  private current(machine: Machine): boolean {
    return (
      machine === this.machine && machine.pfs === this.pfs && machine.events.configWrites === this.writes
    );
  }

  /** Rebuilds every claim unless nothing changed since (O(functions); O(1) when current). */
  private refresh(machine: Machine): void {
    if (this.current(machine)) return;
    const out: Claims = { io: [], mem: [] };
    for (const pf of machine.pfs) {
      const order = pfOrder(machine, pf);
      if (this.view === 'host') pfClaims(pf, order, out);
      else for (const vf of pf.vfs) guestClaims(machine, vf, order + 2 + vf.index, out);
    }
    this.io = new ClaimIndex(out.io);
    this.mem = new ClaimIndex(out.mem);
    this.machine = machine;
    this.pfs = machine.pfs;
    this.writes = machine.events.configWrites;
  }

  /**
   * After one config write of this view to `fn` (writesBefore = EventBus.configWrites before it):
   * when nothing else was written meanwhile, only the claims `fn` places are updated — a guest
   * programming one VF among thousands does not rebuild them all. Otherwise the next access
   * rebuilds.
   */
  afterConfigWrite(machine: Machine, fn: VirtioPciFunction, writesBefore: number): void {
    if (machine !== this.machine || machine.pfs !== this.pfs || this.writes !== writesBefore) return;
    if (machine.events.configWrites !== writesBefore + 1) return;
    const out: Claims = { io: [], mem: [] };
    if (this.view === 'host') {
      // A VF's own registers place nothing: its BAR is its PF's to place.
      if (fn.kind === 'pf') pfClaims(fn as VirtioPf, pfOrder(machine, fn as VirtioPf), out);
    } else if (fn.kind === 'vf') {
      const vf = fn as MmrVf;
      guestClaims(machine, vf, pfOrder(machine, vf.pf) + 2 + vf.index, out);
    }
    if (this.view === 'guest' || fn.kind === 'pf') {
      this.io.replace(fn, out.io);
      this.mem.replace(fn, out.mem);
    }
    this.writes = writesBefore + 1;
  }

  /** The I/O BAR claiming `port`, if any. */
  ioAt(machine: Machine, port: number): Target | undefined {
    this.refresh(machine);
    return this.io.find(port);
  }

  /** The memory BAR claiming `address`, if any. */
  memoryAt(machine: Machine, address: number): Target | undefined {
    this.refresh(machine);
    return this.mem.find(address);
  }

  /** The lowest memory BAR start above `address` (Infinity when none): where RAM runs out. */
  nextMemoryClaim(machine: Machine, address: number): number {
    this.refresh(machine);
    return this.mem.nextStart(address);
  }

  /** How many BARs are decoded (I/O, memory), for inspection and tests. */
  claimCount(machine: Machine): { io: number; memory: number } {
    this.refresh(machine);
    return { io: this.io.size, memory: this.mem.size };
  }
}
