import { read, write } from '../access/index.js';
import { VmmrError } from '../base/errors.js';
import type { VirtioPf } from '../mmr/pf.js';
import { sriovCap } from '../spec/index.js';

const S = sriovCap.registers;
const SC = sriovCap.constants;

/**
 * What writing N to sysfs `sriov_numvfs` does (Linux drivers/pci/iov.c), through the PF's own
 * config-space path so the outcome is exactly that of the same config writes:
 *
 * - N = 0: clear VF Enable and VF MSE in SR-IOV Control, then NumVFs = 0 (sriov_disable);
 * - N > 0 while VFs are disabled: NumVFs = N, then set VF Enable and VF MSE (sriov_enable); if
 *   enabling is refused (process VF limit…), NumVFs goes back to its previous value;
 * - N equal to the current count: nothing to do;
 * - N > TotalVFs: VMMR_ERR_SRIOV_RANGE; another nonzero N while VFs are enabled:
 *   VMMR_ERR_SRIOV_STATE (sysfs answers EBUSY: write 0 first).
 */
export function setNumVfs(pf: VirtioPf, n: number): void {
  const context = { bdf: pf.bdf, register: 'SR-IOV NumVFs' };
  if (!Number.isInteger(n) || n < 0) {
    throw new VmmrError(
      'VMMR_ERR_BAD_VALUE',
      `${pf.bdf}: numVfs ${String(n)} is not a non-negative integer`,
      context,
    );
  }
  const total = pf.definition.totalVfs;
  if (n > total) {
    throw new VmmrError('VMMR_ERR_SRIOV_RANGE', `${pf.bdf}: numVfs ${n} exceeds TotalVFs ${total}`, context);
  }
  const ctrlAt = pf.sriov + S.CTRL.offset;
  const numAt = pf.sriov + S.NUM_VF.offset;
  const enableBits = SC.CTRL_VFE.value | SC.CTRL_MSE.value;
  const ctrl = Number(read(pf, 'config', ctrlAt, S.CTRL.size));
  const enabled = (ctrl & SC.CTRL_VFE.value) !== 0;
  if (n === 0) {
    if (enabled || (ctrl & enableBits) !== 0) write(pf, 'config', ctrlAt, S.CTRL.size, ctrl & ~enableBits);
    if (pf.numVfs !== 0) write(pf, 'config', numAt, S.NUM_VF.size, 0);
    return;
  }
  if (enabled) {
    if (pf.numVfs === n) return;
    throw new VmmrError(
      'VMMR_ERR_SRIOV_STATE',
      `${pf.bdf}: ${pf.numVfs} VFs are enabled: set numVfs to 0 first, then to ${n} (sysfs sriov_numvfs answers EBUSY)`,
      context,
    );
  }
  const previous = pf.numVfs;
  write(pf, 'config', numAt, S.NUM_VF.size, n);
  try {
    write(pf, 'config', ctrlAt, S.CTRL.size, ctrl | enableBits);
  } catch (e) {
    write(pf, 'config', numAt, S.NUM_VF.size, previous);
    throw e;
  }
}
