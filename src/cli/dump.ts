/**
 * `vmmr dump BDF`: a function's 4 KiB config space in the `lspci -xxxx` format, which
 * `lspci -F FILE` reads back (setpci too, with its dump access method):
 *
 *   vmmr dump 01:00.0 --num-vfs 4 > pf.txt && lspci -F pf.txt -vvv
 *   vmmr dump 01:00.1 --guest > guest.txt && setpci -A dump -O dump.name=guest.txt -s 01:00.1 DEVICE_ID
 *
 * Online, the dump comes from the service at --url. Offline (with --offline, with
 * --topology or --num-vfs, or when no service answers) the machine is built in this
 * process from the topology file or the embedded default, VFs are enabled through the
 * PF's SR-IOV registers as a driver would, and the function is dumped.
 */
import type { Command } from 'commander';
import {
  addClientOptions,
  ApiClient,
  functionPath,
  isConnectionError,
  type ClientOptions,
} from './client.js';
import type { CliIo } from './context.js';
import { UsageError } from './errors.js';
import {
  bdfArgument,
  countArgument,
  describeFunction,
  hexString,
  jsonLine,
  parseLspciDump,
} from './format.js';

export interface DumpOptions extends ClientOptions {
  guest?: boolean;
  topology?: string;
  numVfs?: string;
  offline?: boolean;
}

export interface OfflineDumpRequest {
  bdf: string;
  guest?: boolean;
  /** Topology file; undefined = the embedded default. */
  topology?: string;
  /** VFs to enable on the function's PF; undefined = none for a PF, enough to reach a VF. */
  numVfs?: number;
}

export interface DumpResult {
  bdf: string;
  description: string;
  bytes: Uint8Array;
  text: string;
}

/** Builds the machine in process and dumps one function (no service involved). */
export async function offlineDump(req: OfflineDumpRequest): Promise<DumpResult> {
  const [
    { Machine },
    { DEFAULT_TOPOLOGY, loadTopologyFile },
    { write },
    spec,
    { parseBdf },
    { formatLspciDump },
    { withFirmware },
  ] = await Promise.all([
    import('../machine/machine.js'),
    import('../machine/topology.js'),
    import('../access/index.js'),
    import('../spec/index.js'),
    import('../pci/bdf.js'),
    import('../views/dump.js'),
    import('../platform/firmware.js'),
  ]);
  const topology = req.topology === undefined ? DEFAULT_TOPOLOGY : loadTopologyFile(req.topology);
  const machine = new Machine(topology, { firmware: withFirmware });
  const { domain, rid } = parseBdf(req.bdf);

  // The PF that owns the address: the PF itself, or the PF one of whose VFs sits there.
  let pf = machine.pfs.find((p) => p.domain === domain && p.rid === rid);
  let vfIndex = -1;
  for (const candidate of pf ? [] : machine.pfs) {
    if (candidate.domain !== domain) continue;
    const n = candidate.vfIndexAt(rid);
    if (n >= 0) {
      pf = candidate;
      vfIndex = n;
      break;
    }
  }
  if (!pf) {
    const where =
      req.topology === undefined ? 'the embedded default topology' : `topology file ${req.topology}`;
    const pfs = machine.pfs.map((p) => p.bdf).join(', ') || 'none';
    throw new UsageError(`${req.bdf} is neither a PF nor a VF of a PF in ${where} (PFs: ${pfs})`);
  }

  const S = spec.sriovCap.registers;
  const SC = spec.sriovCap.constants;
  const totalVfs = pf.definition.totalVfs;
  const numVfs = req.numVfs ?? (vfIndex >= 0 ? vfIndex + 1 : undefined);
  if (numVfs !== undefined && numVfs > totalVfs) {
    throw new UsageError(`--num-vfs ${numVfs} exceeds TotalVFs ${totalVfs} of PF ${pf.bdf}`);
  }
  if (vfIndex >= 0 && numVfs !== undefined && numVfs <= vfIndex) {
    throw new UsageError(
      `${req.bdf} is VF ${vfIndex + 1} of PF ${pf.bdf}: --num-vfs ${numVfs} does not enable it (at least ${vfIndex + 1} needed)`,
    );
  }
  if (numVfs !== undefined) {
    // As a driver would: NumVFs first, then VF Enable and VF Memory Space Enable.
    write(pf, 'config', pf.sriov + S.NUM_VF.offset, S.NUM_VF.size, numVfs);
    if (numVfs > 0) {
      write(pf, 'config', pf.sriov + S.CTRL.offset, S.CTRL.size, SC.CTRL_VFE.value | SC.CTRL_MSE.value);
    }
  }

  const fn = req.guest ? machine.findVf(req.bdf) : machine.find(req.bdf);
  const view = req.guest ? 'guest' : fn.kind;
  const description = describeFunction(pf.type, view);
  const bytes = req.guest ? machine.guestView(req.bdf).snapshot() : fn.config.snapshot();
  return { bdf: fn.bdf, description, bytes, text: formatLspciDump(fn.bdf, description, bytes) };
}

/** The dump from the service; a ConnectionError when nobody answers. */
export async function onlineDump(client: ApiClient, bdf: string, guest: boolean): Promise<DumpResult> {
  const path = guest ? functionPath(bdf, 'guest', 'config') : functionPath(bdf, 'config');
  const text = await client.getText(path, { format: 'lspci' });
  const parsed = parseLspciDump(text);
  return {
    ...parsed,
    text: text.endsWith('\n\n') ? text : text.endsWith('\n') ? `${text}\n` : `${text}\n\n`,
  };
}

export function registerDumpCommand(program: Command, io: CliIo): void {
  addClientOptions(
    program
      .command('dump')
      .summary('config space in lspci -xxxx format, for lspci -F; works without a service')
      .description(
        "print a function's config space in lspci -xxxx format (lspci -F FILE, setpci -A dump -O dump.name=FILE); " +
          'from the service at --url, or built offline when none answers',
      )
      .argument('<bdf>', 'function address [dddd:]bb:dd.f')
      .option('--guest', "the translator's guest view of a VF (I/O BAR0, transitional Device ID)")
      .option('--offline', 'do not contact a service: build the machine in this process')
      .option(
        '--topology <file>',
        'offline: topology JSON file (default: the embedded default; implies --offline)',
      )
      .option(
        '--num-vfs <n>',
        "offline: enable N VFs on the function's PF first (default: none for a PF, up to the VF for a VF; implies --offline)",
      ),
  ).action(async (bdfText: string, opts: DumpOptions) => {
    const bdf = bdfArgument(bdfText);
    const numVfs = opts.numVfs === undefined ? undefined : countArgument(opts.numVfs, '--num-vfs');
    const offlineRequest: OfflineDumpRequest = {
      bdf,
      ...(opts.guest ? { guest: true } : {}),
      ...(opts.topology !== undefined ? { topology: opts.topology } : {}),
      ...(numVfs !== undefined ? { numVfs } : {}),
    };
    let result: DumpResult | undefined;
    let source: 'service' | 'offline' = 'offline';
    if (!opts.offline && opts.topology === undefined && numVfs === undefined) {
      const client = ApiClient.from(opts, io);
      try {
        result = await onlineDump(client, bdf, !!opts.guest);
        source = 'service';
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        io.stderr(
          `vmmr: no service at ${err.url} (${err.reason}): dumping offline from the embedded default topology\n`,
        );
      } finally {
        await client.close();
      }
    }
    result ??= await offlineDump(offlineRequest);
    if (opts.json) {
      io.stdout(
        jsonLine({
          bdf: result.bdf,
          description: result.description,
          source,
          config: hexString(result.bytes),
        }),
      );
    } else {
      io.stdout(result.text);
    }
  });
}
