/**
 * `vmmr cfg BDF SPEC...`: setpci for an emulated function's config space.
 *
 *   vmmr cfg 01:00.0 COMMAND              # read the Command register: 0000
 *   vmmr cfg 01:00.0 4.w=6                # write it (Memory + Bus Master)
 *   vmmr cfg 01:00.0 ECAP_SRIOV+10.w      # NumVFs
 *   vmmr cfg 01:00.1 --guest 4.w=1        # the translator's guest view of a VF
 */
import type { Command } from 'commander';
import { configSpace, runSpecs } from './access.js';
import { addClientOptions, withClient, type ClientOptions } from './client.js';
import type { CliIo } from './context.js';
import { bdfArgument } from './format.js';
import { CONFIG_REGISTERS, parseSpec } from './regspec.js';

export interface CfgOptions extends ClientOptions {
  guest?: boolean;
}

export const CFG_SYNTAX = {
  widths: [1, 2, 4],
  registers: CONFIG_REGISTERS,
  capabilities: true,
  what: 'config register',
} as const;

export function registerCfgCommand(program: Command, io: CliIo): void {
  addClientOptions(
    program
      .command('cfg')
      .summary('read or write config space registers, setpci syntax')
      .description(
        'read or write config space registers, setpci syntax: OFF.B|W|L[=VAL[,VAL...]] (hex, 0x optional), ' +
          'register names (COMMAND), capabilities (CAP_EXP+8.w, ECAP_SRIOV+10.w, CAP_VNDR+3.b@1), VAL may be DATA:MASK; ' +
          'reads print hex, writes print nothing',
      )
      .argument('<bdf>', 'function address [dddd:]bb:dd.f')
      .argument('<spec...>', 'register specs, executed in order')
      .option('--guest', "the translator's guest view of a VF (guest config space)"),
  ).action(async (bdfText: string, specTexts: string[], opts: CfgOptions) => {
    const bdf = bdfArgument(bdfText);
    const specs = specTexts.map((s) => parseSpec(s, CFG_SYNTAX));
    await withClient(opts, io, (client) =>
      runSpecs(client, io, bdf, configSpace(bdf, opts.guest), specs, !!opts.json),
    );
  });
}
