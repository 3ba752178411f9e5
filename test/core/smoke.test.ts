import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine.js';
import { DEFAULT_TOPOLOGY } from '../../src/topology.js';
import { read, write } from '../../src/access/index.js';
import { formatLspciDump } from '../../src/dump.js';
import { legacyProbe, runSim } from '../../src/driver-sim.js';

describe('smoke', () => {
  it('enables VFs and probes one', () => {
    const m = new Machine(DEFAULT_TOPOLOGY);
    const pf = m.findPf('0000:01:00.0');
    console.log(formatLspciDump(pf.bdf, 'pf', pf.config.snapshot()));
    const sriov = pf.sriov;
    write(pf, 'config', sriov + 0x10, 2, 4);
    write(pf, 'config', sriov + 8, 2, 0x9);
    const vf = m.find('0000:01:00.1');
    console.log(formatLspciDump(vf.bdf, 'vf', vf.config.snapshot()));
    const t = runSim(legacyProbe({ msix: true, notify: [0, 1], configBytes: 6 }), {
      read: (op) => Number(read(vf, op.space === 'legacy' ? 'bar2' : 'config', op.space === 'legacy' ? 0x1000 + op.offset : op.offset, op.width)),
      write: (op) => write(vf, op.space === 'legacy' ? 'bar2' : 'config', op.space === 'legacy' ? 0x1000 + op.offset : op.offset, op.width, op.value!),
    });
    console.log(t.length, t.slice(0, 12));
    expect(t.length).toBeGreaterThan(10);
  });
});
