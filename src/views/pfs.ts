/**
 * Plain-JSON views of PFs and their SR-IOV state (the shapes in shapes.ts). Read-only: nothing
 * here changes the machine; nothing here knows a transport.
 */
import { hex, hex64 } from '../base/hex.js';
import type { VirtioPf } from '../mmr/pf.js';
import { formatBdf } from '../pci/bdf.js';
import { pciHeader, sriovCap } from '../spec/index.js';
import { badCursor, checkLimit, DEFAULT_PAGE_LIMIT, parseCursor } from './paging.js';
import type { Page, PfSummary, SriovState } from './shapes.js';

const H = pciHeader.registers;
const HC = pciHeader.constants;
const S = sriovCap.registers;
const SC = sriovCap.constants;

export function sriovRegister(pf: VirtioPf, reg: { offset: number; size: number }): number {
  return pf.config.read(pf.sriov + reg.offset, reg.size);
}

/** A 64-bit memory BAR's address as hex, from its register pair at `offset`. */
function memoryBarAddress(pf: VirtioPf, offset: number): string {
  return hex64(pf.config.read(offset, 4) & HC.BASE_ADDRESS_MEM_MASK.value, pf.config.read(offset + 4, 4));
}

function vfBarRegister(pf: VirtioPf): number {
  return pf.sriov + S.BAR0.offset + pf.vfTemplate.barIndex * 4;
}

export function pfSummary(pf: VirtioPf): PfSummary {
  const d = pf.definition;
  const ctrl = sriovRegister(pf, S.CTRL);
  return {
    bdf: pf.bdf,
    type: d.type,
    totalVfs: d.totalVfs,
    initialVfs: d.initialVfs,
    firstVfOffset: d.firstVfOffset,
    vfStride: d.vfStride,
    queueSize: d.queueSize,
    policy: d.policy,
    notify: d.notify,
    adminQueue: d.adminQueue,
    translator: d.translator,
    numVfs: sriovRegister(pf, S.NUM_VF),
    vfEnabled: (ctrl & SC.CTRL_VFE.value) !== 0,
    vfMemoryEnabled: (ctrl & SC.CTRL_MSE.value) !== 0,
    vfDeviceId: hex(sriovRegister(pf, S.VF_DID), S.VF_DID.size),
    barAddress: memoryBarAddress(pf, H.BASE_ADDRESS_0.offset + pf.template.barIndex * 4),
    vfBarBase: memoryBarAddress(pf, vfBarRegister(pf)),
    vfBarSize: pf.vfBarSize(),
  };
}

/** The enabled VFs of a PF as BDFs, a page at a time; the cursor is the last BDF returned. */
export function vfPage(pf: VirtioPf, limit = DEFAULT_PAGE_LIMIT, cursor?: string): Page<string> {
  checkLimit(limit);
  let start = 0;
  if (cursor !== undefined && cursor !== '') {
    const at = parseCursor(cursor);
    const n = at.domain === pf.domain ? pf.vfIndexAt(at.rid) : -1;
    if (n < 0) throw badCursor(cursor, `it is not a VF address of PF ${pf.bdf}`);
    start = n + 1;
  }
  const vfs = pf.vfs;
  const end = Math.min(vfs.length, start + limit);
  const items: string[] = [];
  for (let n = start; n < end; n++) items.push(formatBdf(pf.domain, pf.vfRid(n)));
  return {
    items,
    total: vfs.length,
    nextCursor: end < vfs.length && items.length > 0 ? items[items.length - 1]! : null,
  };
}

export function sriovState(pf: VirtioPf, limit = DEFAULT_PAGE_LIMIT, cursor?: string): SriovState {
  const s = pfSummary(pf);
  return {
    numVfs: s.numVfs,
    totalVfs: s.totalVfs,
    initialVfs: s.initialVfs,
    vfEnabled: s.vfEnabled,
    vfMemoryEnabled: s.vfMemoryEnabled,
    firstVfOffset: s.firstVfOffset,
    vfStride: s.vfStride,
    vfDeviceId: s.vfDeviceId,
    systemPageSize: hex(sriovRegister(pf, S.SYS_PGSIZE), S.SYS_PGSIZE.size),
    vfBarSize: s.vfBarSize,
    vfBarBase: s.vfBarBase,
    vfs: vfPage(pf, limit, cursor),
  };
}
