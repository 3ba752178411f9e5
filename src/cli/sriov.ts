/**
 * `vmmr sriov PF [N]`: show a PF's SR-IOV state, or set NumVFs like writing sysfs
 * `sriov_numvfs` (N = 0 disables the VFs). Setting prints nothing. As with sysfs, going
 * from one nonzero count to another needs a 0 in between (the service refuses it with
 * VMMR_ERR_SRIOV_STATE, sysfs with EBUSY).
 */
import type { Command } from 'commander';
import type { SriovState } from '../views/shapes.js';
import { addClientOptions, pfPath, withClient, type ClientOptions } from './client.js';
import type { CliIo } from './context.js';
import { bdfArgument, countArgument, jsonLine } from './format.js';
import { hexId } from './ls.js';
import { vfBdf, vfRuns } from './vfs.js';

export interface SriovOptions extends ClientOptions {
  all?: boolean;
}

const SHOWN_VFS = 8;

export function formatSriov(pf: string, state: SriovState, all: boolean): string {
  const rows: Array<[string, string]> = [
    ['sriov_numvfs', String(state.numVfs)],
    ['sriov_totalvfs', String(state.totalVfs)],
    ['sriov_offset', String(state.firstVfOffset)],
    ['sriov_stride', String(state.vfStride)],
  ];
  if (state.vfDeviceId !== undefined) rows.push(['sriov_vf_device', hexId(state.vfDeviceId)]);
  rows.push(
    ['vf_enable', state.vfEnabled ? '1' : '0'],
    ['vf_memory_enable', state.vfMemoryEnabled ? '1' : '0'],
  );
  const geometry = { bdf: pf, firstVfOffset: state.firstVfOffset, vfStride: state.vfStride };
  const count = state.vfEnabled ? state.numVfs : 0;
  for (const run of vfRuns(count, all, SHOWN_VFS)) {
    if (run.kind === 'vf') rows.push([`virtfn${run.index}`, vfBdf(geometry, run.index)]);
    else rows.push(['...', `${run.to - run.from + 1} more (-a lists them)`]);
  }
  const pad = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => `${k.padEnd(pad)}${v}\n`).join('');
}

export function registerSriovCommand(program: Command, io: CliIo): void {
  addClientOptions(
    program
      .command('sriov')
      .description("show a PF's SR-IOV state, or set NumVFs (like sysfs sriov_numvfs; 0 disables the VFs)")
      .argument('<pf>', 'PF address [dddd:]bb:dd.f')
      .argument('[numvfs]', 'number of VFs to enable')
      .option('-a, --all', 'list every VF'),
  ).action(async (pfText: string, numText: string | undefined, opts: SriovOptions) => {
    const pf = bdfArgument(pfText, 'PF');
    const numVfs = numText === undefined ? undefined : countArgument(numText, 'NumVFs');
    await withClient(opts, io, async (client) => {
      if (numVfs !== undefined) {
        const state = await client.put<SriovState>(pfPath(pf, 'sriov'), { numVfs });
        if (opts.json) io.stdout(jsonLine({ bdf: pf, ...state }));
        return;
      }
      const state = await client.get<SriovState>(pfPath(pf, 'sriov'));
      if (opts.json) io.stdout(jsonLine({ bdf: pf, ...state }));
      else io.stdout(formatSriov(pf, state, !!opts.all));
    });
  });
}
