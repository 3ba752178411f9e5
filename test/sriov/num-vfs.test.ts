/**
 * NumVFs above TotalVFs (PCIe 5.0 §9.3.3.7: NumVFs may not exceed TotalVFs). QEMU 10.1
 * hw/pci/pcie_sriov.c (consume_config, commit cad9aa6f for CVE-2025-54566/54567) stores the value
 * and takes VF Enable out of the Control register's write mask while NumVFs exceeds TotalVFs:
 * compat does the same; strict refuses the NumVFs write.
 */
import { describe, expect, it } from 'vitest';
import { cfg, record, refusal, setCfg, singlePf } from '../support/functions.js';

// <linux/pci_regs.h>
const PCI_SRIOV_CTRL = 0x08;
const PCI_SRIOV_CTRL_VFE = 0x01;
const PCI_SRIOV_CTRL_MSE = 0x08;
const PCI_SRIOV_TOTAL_VF = 0x0e;
const PCI_SRIOV_NUM_VF = 0x10;

const TOTAL = 16;

function pfOf(policy: 'strict' | 'compat') {
  const { machine, pf } = singlePf('net', { policy, totalVfs: TOTAL });
  const at = (reg: number): number => pf.sriov + reg;
  expect(cfg(pf, at(PCI_SRIOV_TOTAL_VF), 2)).toBe(TOTAL);
  return { machine, pf, at };
}

describe('compat: NumVFs above TotalVFs is stored and VF Enable does not take (QEMU 10.1)', () => {
  it('the value reads back; a VF Enable write sets VF MSE but not VF Enable; no VF appears', () => {
    const { machine, pf, at } = pfOf('compat');
    const events = record(machine);
    setCfg(pf, at(PCI_SRIOV_NUM_VF), 2, TOTAL + 1);
    expect(cfg(pf, at(PCI_SRIOV_NUM_VF), 2)).toBe(TOTAL + 1);
    setCfg(pf, at(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
    expect(cfg(pf, at(PCI_SRIOV_CTRL), 2)).toBe(PCI_SRIOV_CTRL_MSE);
    expect(pf.vfs).toHaveLength(0);
    expect(events.filter((e) => e.type === 'vf-enable')).toEqual([]);
  });

  it('a 4-byte write of Control and Status together drops only VF Enable', () => {
    const { pf, at } = pfOf('compat');
    setCfg(pf, at(PCI_SRIOV_NUM_VF), 2, 0xffff);
    setCfg(pf, at(PCI_SRIOV_CTRL), 4, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
    expect(cfg(pf, at(PCI_SRIOV_CTRL), 2)).toBe(PCI_SRIOV_CTRL_MSE);
    expect(pf.vfs).toHaveLength(0);
  });

  it('once NumVFs is back within TotalVFs, VF Enable takes again', () => {
    const { pf, at } = pfOf('compat');
    setCfg(pf, at(PCI_SRIOV_NUM_VF), 2, TOTAL + 1);
    setCfg(pf, at(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE);
    setCfg(pf, at(PCI_SRIOV_NUM_VF), 2, TOTAL);
    setCfg(pf, at(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
    expect(cfg(pf, at(PCI_SRIOV_CTRL), 2)).toBe(PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
    expect(pf.vfs).toHaveLength(TOTAL);
  });

  it('NumVFs stays read-only while VF Enable is set', () => {
    const { pf, at } = pfOf('compat');
    setCfg(pf, at(PCI_SRIOV_NUM_VF), 2, 2);
    setCfg(pf, at(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE);
    setCfg(pf, at(PCI_SRIOV_NUM_VF), 2, TOTAL + 1);
    expect(cfg(pf, at(PCI_SRIOV_NUM_VF), 2)).toBe(2);
  });
});

describe('strict: NumVFs above TotalVFs is refused', () => {
  it('VMMR_ERR_SRIOV_RANGE naming NumVFs and TotalVFs; NumVFs keeps its value', () => {
    const { pf, at } = pfOf('strict');
    setCfg(pf, at(PCI_SRIOV_NUM_VF), 2, 3);
    const e = refusal(
      () => setCfg(pf, at(PCI_SRIOV_NUM_VF), 2, TOTAL + 1),
      'VMMR_ERR_SRIOV_RANGE',
      'SR-IOV NumVFs',
    );
    expect(e.message).toMatch(new RegExp(`${TOTAL + 1} exceeds TotalVFs ${TOTAL}`));
    expect(cfg(pf, at(PCI_SRIOV_NUM_VF), 2)).toBe(3);
  });
});
