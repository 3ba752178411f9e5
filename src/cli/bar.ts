/**
 * `vmmr bar BDF N SPEC...`: read or write a memory BAR of a function, setpci style,
 * with .Q (8 bytes, delivered as one access) besides .B/.W/.L.
 *
 *   vmmr bar 01:00.1 2 LEGACY+12.b      # the VF's legacy STATUS through the MMR block
 *   vmmr bar 01:00.0 0 20.q=0x1000      # a 64-bit register write
 */
import type { Command } from 'commander';
import { barLayout } from '../spec/index.js';
import { runSpecs } from './access.js';
import { addClientOptions, functionPath, withClient, type ClientOptions } from './client.js';
import type { CliIo } from './context.js';
import { UsageError } from './errors.js';
import { bdfArgument } from './format.js';
import { parseSpec, registerNames, type SpecSyntax } from './regspec.js';

/** Region names of the BAR layout (COMMON_CFG, NOTIFY, LEGACY, ...): `LEGACY+12.b`. */
export const BAR_SYNTAX: SpecSyntax = {
  widths: [1, 2, 4, 8],
  // Regions are wider than any access, so a width must always be given.
  registers: Object.fromEntries(
    Object.entries(registerNames(barLayout.registers)).map(([name, r]) => [
      name,
      { offset: r.offset, size: 0 },
    ]),
  ),
  what: 'BAR offset',
};

export function registerBarCommand(program: Command, io: CliIo): void {
  addClientOptions(
    program
      .command('bar')
      .summary('read or write a memory BAR, setpci syntax (.Q = 8 bytes)')
      .description(
        'read or write a memory BAR: OFF.B|W|L|Q[=VAL[,VAL...]] (hex, 0x optional; region names such as LEGACY+12.b); ' +
          'reads print hex, writes print nothing',
      )
      .argument('<bdf>', 'function address [dddd:]bb:dd.f')
      .argument('<n>', 'BAR index 0..5')
      .argument('<spec...>', 'register specs, executed in order'),
  ).action(async (bdfText: string, barText: string, specTexts: string[], opts: ClientOptions) => {
    const bdf = bdfArgument(bdfText);
    if (!/^[0-5]$/.test(barText)) throw new UsageError(`BAR index ${JSON.stringify(barText)} is not 0..5`);
    const specs = specTexts.map((s) => parseSpec(s, BAR_SYNTAX));
    const space = { name: `bar${barText}`, path: functionPath(bdf, 'bars', barText) };
    await withClient(opts, io, (client) => runSpecs(client, io, bdf, space, specs, !!opts.json));
  });
}
