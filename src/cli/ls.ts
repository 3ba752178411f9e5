/**
 * `vmmr ls`: the emulated functions as a tree, like `lspci -tv`: each PF with its
 * enabled VFs. Long VF runs are summarised (first, count, last) unless -a.
 *
 *   0000:01:00.0  1af4:1041  Virtio 1.0 network device  [mem 0xc2000000-0xc2003fff 64bit]  [SR-IOV: 1000/1024 VFs, VF Enable 1, VF MSE 1]
 *    +-0000:01:00.1  1af4:10f9  virtfn0  Virtio network device (transitional MMR VF)  [mem 0xc0000000-0xc0003fff 64bit]
 *    +-...  998 more VFs 0000:01:00.2 .. 0000:01:7c.7 (virtfn1..virtfn998; -a lists them)
 *    \-0000:01:7d.0  1af4:10f9  virtfn999  Virtio network device (transitional MMR VF)  [mem 0xc0f9c000-0xc0f9ffff 64bit]
 *
 * Memory BARs read as the Linux PCI core logs them ("[mem START-END 64bit]", drivers/pci/
 * setup-res.c); "[mem unassigned]" while a BAR holds no address.
 */
import type { Command } from 'commander';
import { barLayout, deviceTypes, isVirtioTypeName } from '../spec/index.js';
import type { PfList, PfSummary as PfInfo } from '../views/shapes.js';
import { addClientOptions, API_PREFIX, parseApiValue, withClient, type ClientOptions } from './client.js';
import type { CliIo } from './context.js';
import { countArgument, jsonLine, shortName } from './format.js';
import { vfBdf, vfRuns } from './vfs.js';

export interface LsOptions extends ClientOptions {
  all?: boolean;
  max?: string;
}

export const DEFAULT_MAX_LISTED = 8;

function hex4(value: number | bigint): string {
  return value.toString(16).padStart(4, '0');
}

export function pfDeviceId(type: string): string {
  return isVirtioTypeName(type) ? hex4(deviceTypes.types[type].modernId) : '????';
}

/** "10f9" from the API's "0x10f9" (or a number); "????" when unreadable. */
export function hexId(value: unknown): string {
  try {
    return hex4(parseApiValue(value));
  } catch {
    return '????';
  }
}

export function vfDeviceIdOf(pf: PfInfo): string {
  const id = hexId(pf.vfDeviceId);
  if (id !== '????' || !isVirtioTypeName(pf.type)) return id;
  return hex4(deviceTypes.types[pf.type].mmrId);
}

/** How many VFs a PF has right now: NumVFs while VF Enable is set. */
export function liveVfCount(pf: PfInfo): number {
  return pf.vfEnabled ? pf.numVfs : 0;
}

function sriovSummary(pf: PfInfo): string {
  const parts = [`${liveVfCount(pf)}/${pf.totalVfs} VFs`];
  if (pf.vfEnabled || pf.numVfs > 0) parts.push(`NumVFs ${pf.numVfs}`, `VF Enable ${pf.vfEnabled ? 1 : 0}`);
  if (pf.vfEnabled) parts.push(`VF MSE ${pf.vfMemoryEnabled ? 1 : 0}`);
  return `[SR-IOV: ${parts.join(', ')}]`;
}

const VENDOR = hex4(deviceTypes.constants.VENDOR_ID.value);
const PF_BAR_SIZE = barLayout.constants.BAR_SIZE.value;

/** "[mem 0xc0000000-0xc0003fff 64bit]" for a BAR at `base` of `size` bytes; unassigned at 0. */
export function memRange(base: bigint, size: number): string {
  if (base === 0n) return '[mem unassigned]';
  const end = base + BigInt(size) - 1n;
  return `[mem 0x${base.toString(16).padStart(8, '0')}-0x${end.toString(16).padStart(8, '0')} 64bit]`;
}

function apiAddress(value: unknown): bigint {
  try {
    return parseApiValue(value);
  } catch {
    return 0n;
  }
}

/** VF n's memory BAR: the PF's VF BAR base + n × per-VF size (PCIe SR-IOV §9.3.3.14). */
function vfRange(pf: PfInfo, n: number): string {
  const base = apiAddress(pf.vfBarBase);
  return memRange(base === 0n ? 0n : base + BigInt(n) * BigInt(pf.vfBarSize), pf.vfBarSize);
}

export function formatTree(pfs: readonly PfInfo[], all: boolean, max: number): string {
  const lines: string[] = [];
  for (const pf of pfs) {
    lines.push(
      `${pf.bdf}  ${VENDOR}:${pfDeviceId(pf.type)}  ${shortName(pf.type, 'pf')}  ` +
        `${memRange(apiAddress(pf.barAddress), PF_BAR_SIZE)}  ${sriovSummary(pf)}`,
    );
    const count = liveVfCount(pf);
    const vfName = shortName(pf.type, 'vf');
    const vfId = `${VENDOR}:${vfDeviceIdOf(pf)}`;
    const runs = vfRuns(count, all, max);
    runs.forEach((run, i) => {
      const branch = i === runs.length - 1 ? ' \\-' : ' +-';
      if (run.kind === 'vf') {
        lines.push(
          `${branch}${vfBdf(pf, run.index)}  ${vfId}  virtfn${run.index}  ${vfName}  ${vfRange(pf, run.index)}`,
        );
      } else {
        const n = run.to - run.from + 1;
        lines.push(
          `${branch}...  ${n} more VFs ${vfBdf(pf, run.from)} .. ${vfBdf(pf, run.to)} ` +
            `(virtfn${run.from}..virtfn${run.to}; -a lists them)`,
        );
      }
    });
  }
  return lines.length === 0 ? 'no functions\n' : `${lines.join('\n')}\n`;
}

export function treeJson(pfs: readonly PfInfo[], all: boolean): unknown {
  return {
    pfs: pfs.map((pf) => {
      const count = liveVfCount(pf);
      return {
        ...pf,
        deviceId: `0x${pfDeviceId(pf.type)}`,
        vfs: {
          count,
          first: count > 0 ? vfBdf(pf, 0) : null,
          last: count > 0 ? vfBdf(pf, count - 1) : null,
          ...(all ? { items: Array.from({ length: count }, (_, n) => vfBdf(pf, n)) } : {}),
        },
      };
    }),
  };
}

export function registerLsCommand(program: Command, io: CliIo): void {
  addClientOptions(
    program
      .command('ls')
      .description('list PFs and their VFs as a tree (like lspci -tv); long VF runs are summarised')
      .option('-a, --all', 'list every VF')
      .option('--max <n>', `list VFs one by one up to this many per PF (default ${DEFAULT_MAX_LISTED})`),
  ).action(async (opts: LsOptions) => {
    const max = opts.max === undefined ? DEFAULT_MAX_LISTED : countArgument(opts.max, '--max', 2 ** 31);
    const list = await withClient(opts, io, (client) => client.get<PfList>(`${API_PREFIX}/pfs`));
    io.stdout(
      opts.json
        ? jsonLine(treeJson(list.items, !!opts.all))
        : formatTree(list.items, !!opts.all, Math.max(max, 2)),
    );
  });
}
