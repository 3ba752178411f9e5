/**
 * `vmmr io BDF SPEC...`: guest I/O port accesses through the translator (I/O BAR0 of a
 * VF's guest view; ports are offsets from BAR0). Each access becomes one MMIO access of
 * the same width on the VF's memory BAR.
 *
 *   vmmr cfg 01:00.1 --guest COMMAND=1   # the guest enables I/O decode first
 *   vmmr io 01:00.1 STATUS               # legacy register names: 00
 *   vmmr io 01:00.1 12.b=1               # ACKNOWLEDGE
 */
import type { Command } from 'commander';
import { legacy } from '../spec/index.js';
import { runSpecs } from './access.js';
import { addClientOptions, functionPath, withClient, type ClientOptions } from './client.js';
import type { CliIo } from './context.js';
import { bdfArgument } from './format.js';
import { parseSpec, registerNames, type SpecSyntax } from './regspec.js';

/** Legacy virtio header register names (HOST_FEATURES, QUEUE_PFN, STATUS, ISR, ...), width implied. */
export const IO_SYNTAX: SpecSyntax = {
  widths: [1, 2, 4],
  registers: registerNames(legacy.registers),
  what: 'I/O port',
};

export function registerIoCommand(program: Command, io: CliIo): void {
  addClientOptions(
    program
      .command('io')
      .summary('guest I/O port accesses through the translator, setpci syntax')
      .description(
        "guest I/O port accesses through the translator: PORT.B|W|L[=VAL[,VAL...]] (hex offset into the guest's I/O BAR0, " +
          '0x optional; legacy register names such as STATUS, QUEUE_PFN); reads print hex, writes print nothing',
      )
      .argument('<bdf>', 'VF address [dddd:]bb:dd.f')
      .argument('<spec...>', 'port specs, executed in order'),
  ).action(async (bdfText: string, specTexts: string[], opts: ClientOptions) => {
    const bdf = bdfArgument(bdfText);
    const specs = specTexts.map((s) => parseSpec(s, IO_SYNTAX));
    const space = { name: 'io', path: functionPath(bdf, 'guest', 'io') };
    await withClient(opts, io, (client) => runSpecs(client, io, bdf, space, specs, !!opts.json));
  });
}
