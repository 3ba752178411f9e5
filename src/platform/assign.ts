/**
 * Firmware-like BAR assignment: what SeaBIOS (src/fw/pciinit.c) and the Linux PCI core
 * (drivers/pci/setup-bus.c, drivers/pci/iov.c) do before a driver runs, applied to both views of
 * the machine:
 *
 * - host: each PF's BAR0 (16 KiB) and its SR-IOV VF BAR — one resource of per-VF size × TotalVFs,
 *   aligned to the per-VF size (Linux sriov_init sizes it so; pci_sriov_resource_alignment); VF k's
 *   BAR then sits at VF BAR base + k × per-VF size;
 * - guest: each enabled VF's translated I/O BAR0 (ports from 0xC000 up) and its passed-through
 *   memory BAR.
 *
 * Placement: resources sorted by alignment, largest first (as both do; then by size), each at the
 * lowest free address of its window aligned to its alignment. Every vmmr memory BAR is 64-bit
 * non-prefetchable (the legacy block and ISR have read side effects): Linux puts non-prefetchable
 * resources into a bridge's non-prefetchable window, which is 32-bit only (setup-bus.c
 * pbus_select_window_for_type), so they go to the 32-bit window; one that no longer fits there
 * moves to the 64-bit window, as SeaBIOS moves 64-bit BARs of the root bus above 4 GiB when the
 * 32-bit window is full (pci_region_migrate_64bit_entries). A resource that fits nowhere stays
 * unassigned (0), as Linux leaves it ("no space for …") — the report says which.
 *
 * Only unassigned BARs (address 0) get an address: BARs a harness or an earlier run programmed
 * keep theirs and are avoided, so the same call serves startup and every VF enable. Interrupt
 * Line is written for a function with an INTx pin whose Interrupt Line still reads 0 (SeaBIOS'
 * q35 routing, intxLine). Every write goes through the access layer; Command decode bits are left
 * as they are (a driver enables decode).
 */
import { read, write, type AccessTarget, type Space } from '../access/index.js';
import type { Machine } from '../machine/machine.js';
import type { GuestView } from '../translator/guest-view.js';
import { pciHeader, sriovCap } from '../spec/index.js';
import type { VirtioPf } from '../mmr/pf.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';
import { accessTarget, type ViewName } from './decode.js';
import { DEFAULT_PLATFORM_MAP, intxLine, type AddressWindow, type PlatformMap } from './options.js';

const H = pciHeader.registers;
const HC = pciHeader.constants;
const S = sriovCap.registers;
const TWO_32 = 2 ** 32;

export type WindowName = 'io' | 'mem32' | 'mem64';

export interface BarAssignment {
  readonly bdf: string;
  readonly view: ViewName;
  /** `BAR0`, `BAR2`, or `VF BAR2` (the PF's SR-IOV VF BAR). */
  readonly register: string;
  readonly base: number;
  readonly size: number;
  readonly window: WindowName;
}

export interface UnassignedBar {
  readonly bdf: string;
  readonly view: ViewName;
  readonly register: string;
  readonly size: number;
  readonly reason: string;
}

export interface AssignmentReport {
  readonly assigned: BarAssignment[];
  readonly unassigned: UnassignedBar[];
  /** Interrupt Line values written, by BDF. */
  readonly interruptLines: Array<{ bdf: string; view: ViewName; line: number }>;
}

/** One BAR register pair (or I/O BAR) of one function in one view. */
interface Resource {
  readonly fn: VirtioPciFunction;
  /** What the BAR register accesses reach (the guest view for a guest BAR). */
  readonly target: AccessTarget;
  readonly space: Space;
  /** Config offset of the (low) BAR register. */
  readonly register: number;
  readonly name: string;
  readonly io: boolean;
  readonly size: number;
  readonly align: number;
  readonly order: number;
}

function readReg(r: Resource, offset: number): number {
  return read(r.target, r.space, offset, 4) as number;
}

function currentBase(r: Resource): number {
  if (r.io) return (readReg(r, r.register) & HC.BASE_ADDRESS_IO_MASK.value) >>> 0;
  const low = (readReg(r, r.register) & HC.BASE_ADDRESS_MEM_MASK.value) >>> 0;
  return low + readReg(r, r.register + 4) * TWO_32;
}

function program(r: Resource, base: number): void {
  write(r.target, r.space, r.register, 4, base % TWO_32);
  if (!r.io) write(r.target, r.space, r.register + 4, 4, Math.floor(base / TWO_32));
}

function hostResources(pf: VirtioPf, order: number): Resource[] {
  const out: Resource[] = [];
  const index = pf.template.barIndex;
  out.push({
    fn: pf,
    target: pf,
    space: 'config',
    register: H.BASE_ADDRESS_0.offset + index * 4,
    name: `BAR${index}`,
    io: false,
    size: pf.barSize(),
    align: pf.barSize(),
    order,
  });
  const total = pf.definition.totalVfs;
  if (total > 0) {
    const vfIndex = pf.vfTemplate.barIndex;
    const perVf = pf.vfBarSize();
    out.push({
      fn: pf,
      target: pf,
      space: 'config',
      register: pf.sriov + S.BAR0.offset + vfIndex * 4,
      name: `VF BAR${vfIndex}`,
      io: false,
      size: perVf * total,
      align: perVf,
      order: order + 1,
    });
  }
  return out;
}

function guestResources(view: GuestView, order: number): Resource[] {
  const vf = view.vf;
  const io = view.ioLength;
  const index = vf.template.barIndex;
  return [
    {
      fn: vf,
      target: view,
      space: 'guest-config',
      register: H.BASE_ADDRESS_0.offset,
      name: 'BAR0',
      io: true,
      size: io,
      align: io,
      order,
    },
    {
      fn: vf,
      target: view,
      space: 'guest-config',
      register: H.BASE_ADDRESS_0.offset + index * 4,
      name: `BAR${index}`,
      io: false,
      size: vf.barSize(),
      align: vf.barSize(),
      order: order + 1,
    },
  ];
}

/** Free ranges of a window given the ranges already taken in it; first fit, aligned. */
class FreeList {
  private readonly gaps: Array<{ start: number; end: number }> = [];

  constructor(window: AddressWindow, taken: ReadonlyArray<{ base: number; end: number }>) {
    let cursor = window.base;
    const end = window.base + window.size;
    for (const t of [...taken].sort((a, b) => a.base - b.base)) {
      if (t.end <= cursor || t.base >= end) continue;
      if (t.base > cursor) this.gaps.push({ start: cursor, end: t.base });
      cursor = Math.max(cursor, t.end);
    }
    if (cursor < end) this.gaps.push({ start: cursor, end });
  }

  take(size: number, align: number): number | undefined {
    for (let i = 0; i < this.gaps.length; i++) {
      const gap = this.gaps[i]!;
      const start = Math.ceil(gap.start / align) * align;
      if (start + size > gap.end) continue;
      const pieces = [];
      if (start > gap.start) pieces.push({ start: gap.start, end: start });
      if (start + size < gap.end) pieces.push({ start: start + size, end: gap.end });
      this.gaps.splice(i, 1, ...pieces);
      return start;
    }
    return undefined;
  }
}

function assignView(machine: Machine, view: ViewName, map: PlatformMap): AssignmentReport {
  const resources: Resource[] = [];
  let order = 0;
  for (const pf of machine.pfs) {
    if (view === 'host') resources.push(...hostResources(pf, order));
    order += 2;
    if (view !== 'guest') continue;
    for (const vf of pf.vfs) {
      resources.push(...guestResources(machine.translator.view(vf), order));
      order += 2;
    }
  }
  const bases = resources.map(currentBase);
  const taken = (io: boolean) =>
    resources.flatMap((r, i) =>
      r.io === io && bases[i]! !== 0 ? [{ base: bases[i]!, end: bases[i]! + r.size }] : [],
    );
  const ioFree = new FreeList(map.io, taken(true));
  const memTaken = taken(false);
  const mem32Free = new FreeList(map.mem32, memTaken);
  const mem64Free = new FreeList(map.mem64, memTaken);

  const report: AssignmentReport = { assigned: [], unassigned: [], interruptLines: [] };
  const pending = resources
    .filter((_, i) => bases[i] === 0)
    .sort((a, b) => b.align - a.align || b.size - a.size || a.order - b.order);
  for (const r of pending) {
    const choices: Array<[WindowName, FreeList]> = r.io
      ? [['io', ioFree]]
      : [
          ['mem32', mem32Free],
          ['mem64', mem64Free],
        ];
    let placed = false;
    for (const [window, free] of choices) {
      const base = free.take(r.size, r.align);
      if (base === undefined) continue;
      program(r, base);
      report.assigned.push({ bdf: r.fn.bdf, view, register: r.name, base, size: r.size, window });
      placed = true;
      break;
    }
    if (!placed) {
      const where = choices.map(([w]) => w).join(' or ');
      report.unassigned.push({
        bdf: r.fn.bdf,
        view,
        register: r.name,
        size: r.size,
        reason: `no room for ${r.size} bytes in the ${where} window`,
      });
    }
  }
  report.assigned.sort((a, b) => a.base - b.base);
  assignInterruptLines(machine, view, map, report);
  return report;
}

function assignInterruptLines(
  machine: Machine,
  view: ViewName,
  map: PlatformMap,
  report: AssignmentReport,
): void {
  const space: Space = view === 'guest' ? 'guest-config' : 'config';
  const fns: VirtioPciFunction[] = view === 'host' ? [...machine.pfs] : machine.pfs.flatMap((pf) => pf.vfs);
  for (const fn of fns) {
    const target = accessTarget(machine, fn, space);
    const pin = read(target, space, H.INTERRUPT_PIN.offset, H.INTERRUPT_PIN.size) as number;
    if (pin === 0 || read(target, space, H.INTERRUPT_LINE.offset, H.INTERRUPT_LINE.size) !== 0) continue;
    const line = intxLine(map, (fn.rid >> 3) & 0x1f, pin);
    write(target, space, H.INTERRUPT_LINE.offset, H.INTERRUPT_LINE.size, line);
    report.interruptLines.push({ bdf: fn.bdf, view, line });
  }
}

/**
 * Assigns every unassigned BAR of both views (host: PFs and their VF BARs; guest: the enabled
 * VFs' translated BARs) and the Interrupt Lines firmware would. Call it when the machine is built
 * and after VFs are enabled; BARs already assigned keep their addresses.
 */
export function assignAddresses(
  machine: Machine,
  map: PlatformMap = DEFAULT_PLATFORM_MAP,
): Record<ViewName, AssignmentReport> {
  return { host: assignView(machine, 'host', map), guest: assignView(machine, 'guest', map) };
}
