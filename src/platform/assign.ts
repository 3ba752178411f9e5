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
 *
 * Guest views open on first use, so the guest side can also be planned without opening them
 * (planGuest): the enabled VFs whose view is not open are placed as runs of consecutive VFs, and
 * a view that opens later takes its planned addresses (programGuestView). Identical resources
 * placed one by one first-fit land exactly where a run puts them, so both give the same map.
 */
import { read, write, type AccessTarget, type Space } from '../access/index.js';
import type { Machine } from '../machine/machine.js';
import type { GuestView } from '../translator/guest-view.js';
import { pciHeader, sriovCap } from '../spec/index.js';
import type { VirtioPf } from '../mmr/pf.js';
import type { VirtioPciFunction } from '../virtio/pci-function.js';
import { accessTarget, type ViewName } from './decode.js';
import {
  DEFAULT_PLATFORM_MAP,
  intxLine,
  type AddressWindow,
  type PlatformMap,
} from '../machine/platform-map.js';
import type { MmrVf } from '../mmr/vf.js';

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
}

/** Consecutive VFs of one PF placed one BAR apart: VF first + k at base + k × stride. */
export interface Run {
  readonly first: number;
  readonly count: number;
  readonly base: number;
  readonly stride: number;
}

/** The planned guest addresses of one PF's VFs whose views were not open. */
export interface GuestPlan {
  readonly io: Run[];
  readonly mem: Run[];
}

/** `count` identical resources in enumeration order, placed together. */
interface Group {
  readonly io: boolean;
  readonly count: number;
  readonly size: number;
  readonly align: number;
  readonly order: number;
  /** Members first..first+count-1 go to base, base + size, … in `window`. */
  place(first: number, count: number, base: number, window: WindowName): void;
  unplaced(first: number, count: number, reason: string): void;
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

function hostResources(pf: VirtioPf): Resource[] {
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
    });
  }
  return out;
}

function guestResources(view: GuestView): Resource[] {
  const vf = view.vf;
  const index = vf.template.barIndex;
  const common = { fn: vf, target: view, space: 'guest-config' as const };
  return [
    {
      ...common,
      register: H.BASE_ADDRESS_0.offset,
      name: 'BAR0',
      io: true,
      size: view.ioLength,
      align: view.ioLength,
    },
    {
      ...common,
      register: H.BASE_ADDRESS_0.offset + index * 4,
      name: `BAR${index}`,
      io: false,
      size: vf.barSize(),
      align: vf.barSize(),
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

  /**
   * Up to `max` consecutive blocks of `size` (a multiple of `align`) in the first gap that holds
   * one: where one-by-one first fit would put the first of them and the ones that follow it.
   */
  take(size: number, align: number, max: number): { start: number; count: number } | undefined {
    for (let i = 0; i < this.gaps.length; i++) {
      const gap = this.gaps[i]!;
      const start = Math.ceil(gap.start / align) * align;
      if (start + size > gap.end) continue;
      const count = Math.min(max, Math.floor((gap.end - start) / size));
      const stop = start + count * size;
      const pieces = [];
      if (start > gap.start) pieces.push({ start: gap.start, end: start });
      if (stop < gap.end) pieces.push({ start: stop, end: gap.end });
      this.gaps.splice(i, 1, ...pieces);
      return { start, count };
    }
    return undefined;
  }
}

interface Windows {
  io: FreeList;
  mem32: FreeList;
  mem64: FreeList;
}

function windowsAround(map: PlatformMap, taken: { io: Range[]; mem: Range[] }): Windows {
  return {
    io: new FreeList(map.io, taken.io),
    mem32: new FreeList(map.mem32, taken.mem),
    mem64: new FreeList(map.mem64, taken.mem),
  };
}

interface Range {
  base: number;
  end: number;
}

/** Largest alignment first, then size, then enumeration order; each group first fit. */
function placeGroups(groups: Group[], windows: Windows): void {
  groups.sort((a, b) => b.align - a.align || b.size - a.size || a.order - b.order);
  for (const g of groups) {
    const choices: Array<[WindowName, FreeList]> = g.io
      ? [['io', windows.io]]
      : [
          ['mem32', windows.mem32],
          ['mem64', windows.mem64],
        ];
    let next = 0;
    for (const [window, free] of choices) {
      for (;;) {
        if (next === g.count) break;
        const got = free.take(g.size, g.align, g.count - next);
        if (!got) break;
        g.place(next, got.count, got.start, window);
        next += got.count;
      }
    }
    if (next < g.count) {
      const where = choices.map(([w]) => w).join(' or ');
      g.unplaced(next, g.count - next, `no room for ${g.size} bytes in the ${where} window`);
    }
  }
}

/** Splits resources into taken ranges (BARs that hold an address) and groups of one to place. */
function singles(
  resources: readonly Resource[],
  view: ViewName,
  report: AssignmentReport,
  taken: { io: Range[]; mem: Range[] },
  orderOf: (r: Resource) => number,
): Group[] {
  const groups: Group[] = [];
  for (const r of resources) {
    const base = currentBase(r);
    if (base !== 0) {
      (r.io ? taken.io : taken.mem).push({ base, end: base + r.size });
      continue;
    }
    groups.push({
      io: r.io,
      count: 1,
      size: r.size,
      align: r.align,
      order: orderOf(r),
      place: (_first, _count, at, window) => {
        program(r, at);
        report.assigned.push({ bdf: r.fn.bdf, view, register: r.name, base: at, size: r.size, window });
      },
      unplaced: (_first, _count, reason) =>
        report.unassigned.push({ bdf: r.fn.bdf, view, register: r.name, size: r.size, reason }),
    });
  }
  return groups;
}

function emptyReport(): AssignmentReport {
  return { assigned: [], unassigned: [], interruptLines: [] };
}

function assignHost(machine: Machine, map: PlatformMap): AssignmentReport {
  const report = emptyReport();
  const resources = machine.pfs.flatMap((pf) => hostResources(pf));
  const taken = { io: [], mem: [] };
  const groups = singles(resources, 'host', report, taken, (r) => resources.indexOf(r));
  placeGroups(groups, windowsAround(map, taken));
  report.assigned.sort((a, b) => a.base - b.base);
  for (const pf of machine.pfs) assignInterruptLine(machine, pf, 'host', map, report);
  return report;
}

/** Enumeration order of guest resources: PF by PF, VF by VF, BAR0 before the memory BAR. */
const PF_ORDER_STRIDE = 2 ** 18;

function vfOrder(machine: Machine, vf: MmrVf): number {
  return machine.pfs.indexOf(vf.pf) * PF_ORDER_STRIDE + vf.index * 2;
}

/** Ranges of consecutive VF indices of `pf` whose guest BARs are not placed (`placed` are). */
function closedRuns(pf: VirtioPf, placed: ReadonlySet<MmrVf>): Array<{ first: number; count: number }> {
  const open = pf.vfs.flatMap((vf) => (placed.has(vf) ? [vf.index] : []));
  const runs: Array<{ first: number; count: number }> = [];
  let from = 0;
  for (const at of [...open, pf.vfs.length]) {
    if (at > from) runs.push({ first: from, count: at - from });
    from = at + 1;
  }
  return runs;
}

function planGroups(machine: Machine, pf: VirtioPf, plan: GuestPlan, placed: ReadonlySet<MmrVf>): Group[] {
  const vf0 = pf.vfs[0];
  if (!vf0) return [];
  const io = vf0.template.model.legacyLength;
  const mem = vf0.barSize();
  const order = machine.pfs.indexOf(pf) * PF_ORDER_STRIDE;
  return closedRuns(pf, placed).flatMap(({ first, count }) =>
    [
      { io: true, size: io, runs: plan.io },
      { io: false, size: mem, runs: plan.mem },
    ].map(({ io: isIo, size, runs }) => ({
      io: isIo,
      count,
      size,
      align: size,
      order: order + first * 2 + (isIo ? 0 : 1),
      place: (k: number, n: number, base: number) => {
        runs.push({ first: first + k, count: n, base, stride: size });
      },
      unplaced: () => undefined,
    })),
  );
}

/** Whether neither guest BAR of a view holds an address. */
function unassignedView(view: GuestView): boolean {
  return guestResources(view).every((r) => currentBase(r) === 0);
}

/**
 * Assigns the guest side. Without `plans`: every open view's unassigned BARs get addresses now,
 * named in the report. With `plans`: the enabled VFs whose view is closed or wholly unassigned
 * are planned into it (the open ones then take their planned addresses), around the BARs the
 * other open views hold — so what firmware gives a VF depends on the VF, not on when its view
 * opened, and a restored machine gets the same map again.
 */
function assignGuest(machine: Machine, map: PlatformMap, plans?: Map<VirtioPf, GuestPlan>): AssignmentReport {
  const report = emptyReport();
  const views = [...machine.translator.openViews()].filter((v) => v.vf.live);
  const placed = plans ? views.filter((v) => !unassignedView(v)) : views;
  const placedVfs = new Set(placed.map((v) => v.vf));
  const resources = placed.flatMap((view) => guestResources(view));
  const taken = { io: [], mem: [] };
  const groups = singles(
    resources,
    'guest',
    report,
    taken,
    (r) => vfOrder(machine, r.fn as MmrVf) + (r.io ? 0 : 1),
  );
  plans?.clear();
  if (plans) {
    for (const pf of machine.pfs) {
      const plan: GuestPlan = { io: [], mem: [] };
      plans.set(pf, plan);
      groups.push(...planGroups(machine, pf, plan, placedVfs));
    }
  }
  placeGroups(groups, windowsAround(map, taken));
  if (plans)
    for (const view of views)
      if (!placedVfs.has(view.vf)) programGuestView(machine, view, plans.get(view.vf.pf));
  report.assigned.sort((a, b) => a.base - b.base);
  for (const view of views) assignInterruptLine(machine, view.vf, 'guest', map, report);
  return report;
}

function assignInterruptLine(
  machine: Machine,
  fn: VirtioPciFunction,
  view: ViewName,
  map: PlatformMap,
  report: AssignmentReport,
): void {
  const space: Space = view === 'guest' ? 'guest-config' : 'config';
  const target = accessTarget(machine, fn, space);
  const pin = read(target, space, H.INTERRUPT_PIN.offset, H.INTERRUPT_PIN.size) as number;
  if (pin === 0 || read(target, space, H.INTERRUPT_LINE.offset, H.INTERRUPT_LINE.size) !== 0) return;
  const line = intxLine(map, (fn.rid >> 3) & 0x1f, pin);
  write(target, space, H.INTERRUPT_LINE.offset, H.INTERRUPT_LINE.size, line);
  report.interruptLines.push({ bdf: fn.bdf, view, line });
}

function plannedBase(runs: readonly Run[], index: number): number {
  for (const r of runs)
    if (index >= r.first && index < r.first + r.count) return r.base + (index - r.first) * r.stride;
  return 0;
}

/** A view that just opened takes its planned addresses (where its BARs still read 0) and its Interrupt Line. */
export function programGuestView(machine: Machine, view: GuestView, plan: GuestPlan | undefined): void {
  const [io, mem] = guestResources(view);
  for (const [r, runs] of [
    [io!, plan?.io ?? []],
    [mem!, plan?.mem ?? []],
  ] as const) {
    const base = plannedBase(runs, view.vf.index);
    if (base !== 0 && currentBase(r) === 0) program(r, base);
  }
  assignInterruptLine(machine, view.vf, 'guest', machine.platform, emptyReport());
}

/** What a register write of `value` leaves in the dword at `offset` of a view's fresh config space. */
function written(view: GuestView, offset: number, value: number): number {
  const t = view.config.template;
  const i = offset >>> 2;
  return ((t.dwords[i]! & ~t.wmaskDwords[i]!) | (value & t.wmaskDwords[i]!)) >>> 0;
}

/**
 * The value firmware leaves in guest config dword `offset` of a view (its planned BARs, its
 * Interrupt Line), or undefined where firmware writes nothing (or planned nothing for it).
 */
export function firmwareDword(
  machine: Machine,
  view: GuestView,
  plan: GuestPlan | undefined,
  offset: number,
): number | undefined {
  const [io, mem] = guestResources(view);
  const index = view.vf.index;
  const ioBase = plannedBase(plan?.io ?? [], index);
  const memBase = plannedBase(plan?.mem ?? [], index);
  if (offset === io!.register) return ioBase === 0 ? undefined : written(view, offset, ioBase);
  if (offset === mem!.register && memBase !== 0) return written(view, offset, memBase % TWO_32);
  if (offset === mem!.register + 4 && memBase !== 0)
    return written(view, offset, Math.floor(memBase / TWO_32));
  if (offset === (H.INTERRUPT_LINE.offset & ~3)) {
    const pin = view.config.template.get(H.INTERRUPT_PIN.offset, H.INTERRUPT_PIN.size);
    if (pin === 0) return undefined;
    const line = intxLine(machine.platform, (view.vf.rid >> 3) & 0x1f, pin);
    return written(view, offset, line << ((H.INTERRUPT_LINE.offset & 3) * 8));
  }
  return undefined;
}

/** Host assignment, and the guest plan of the VFs whose views are not open (into `plans`). */
export function assignAndPlan(machine: Machine, plans: Map<VirtioPf, GuestPlan>): void {
  assignHost(machine, machine.platform);
  assignGuest(machine, machine.platform, plans);
}

/**
 * Assigns every unassigned BAR of both views (host: PFs and their VF BARs; guest: the enabled
 * VFs' translated BARs, opening their views) and the Interrupt Lines firmware would, and reports
 * what went where. BARs already assigned keep their addresses.
 */
export function assignAddresses(
  machine: Machine,
  map: PlatformMap = DEFAULT_PLATFORM_MAP,
): Record<ViewName, AssignmentReport> {
  const host = assignHost(machine, map);
  for (const pf of machine.pfs) for (const vf of pf.vfs) machine.translator.view(vf);
  return { host, guest: assignGuest(machine, map) };
}
