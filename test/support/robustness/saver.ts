/**
 * Child process of the kill -9 test: builds a large machine state and saves it over and over with
 * saveStateFile, generation after generation, printing "saved <g>" after each save returns.
 *
 *   node saver.js <file> <first generation> <VFs per PF>
 *
 * Generation g is written into every function (MSI-X vector 0 Message Data = g on every VF,
 * Interrupt Line = g & 0xff on every PF), so a file mixing two generations would show.
 */
import { write } from '../../../src/access/index.js';
import { Machine } from '../../../src/machine/machine.js';
import { sriovCap } from '../../../src/spec/index.js';
import { saveStateFile } from '../../../src/machine/state-file.js';
import { parseTopology } from '../../../src/machine/topology.js';

const [file, firstArg, perPfArg] = process.argv.slice(2);
if (!file) throw new Error('usage: saver <file> <first generation> <VFs per PF>');
const perPf = Number(perPfArg ?? 1024);
const S = sriovCap.registers;
const MSIX_DATA = 0x2000 + 8;
const QUEUE_DESC = 0x20;

const machine = new Machine(
  parseTopology(
    {
      pfs: [
        { bdf: '0000:01:00.0', type: 'net', totalVfs: perPf },
        { bdf: '0000:81:00.0', type: 'block', totalVfs: perPf },
      ],
    },
    'saver',
  ),
);
for (const pf of machine.pfs) {
  write(pf, 'config', 4, 2, 6);
  write(pf, 'config', pf.sriov + S.NUM_VF.offset, 2, perPf);
  write(pf, 'config', pf.sriov + S.CTRL.offset, 2, 9);
}

for (let g = Number(firstArg ?? 1); ; g++) {
  for (const fn of machine.functions()) {
    if (fn.kind === 'pf') write(fn, 'config', 0x3c, 1, g & 0xff);
    else {
      write(fn, 'bar2', MSIX_DATA, 4, g >>> 0);
      write(fn, 'bar2', QUEUE_DESC, 4, (g * 0x1000) >>> 0);
    }
  }
  saveStateFile(file, machine.snapshot());
  process.stdout.write(`saved ${g}\n`);
}
