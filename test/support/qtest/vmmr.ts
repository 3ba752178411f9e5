/**
 * vmmr under qtest for the tests: an Emulator built from topology PF objects (resolved with the
 * topology file's documented defaults), VFs enabled through the PF's SR-IOV registers as a PF
 * driver does, and the qtest listeners on a temporary Unix socket and a loopback TCP port.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { write } from '../../../src/access/index.js';
import { normalizeBdf } from '../../../src/pci/bdf.js';
import type { DmaProvider } from '../../../src/platform/bus.js';
import type { PlatformMap } from '../../../src/machine/platform-map.js';
import { startQtestServer, type QtestServer } from '../../../src/qtest/server.js';
import { Emulator } from '../../../src/machine/emulator.js';
import { sriovCap } from '../../../src/spec/index.js';
import type { ResolvedPf, TopologyPf } from '../../../src/machine/topology.js';
import { QtestClient } from './client.js';

const S = sriovCap.registers;
const SC = sriovCap.constants;

export type PfSpec = Partial<TopologyPf> & Pick<TopologyPf, 'bdf' | 'type' | 'totalVfs'>;

export function resolvePf(p: PfSpec): ResolvedPf {
  return {
    bdf: normalizeBdf(p.bdf),
    type: p.type,
    totalVfs: p.totalVfs,
    initialVfs: p.initialVfs ?? p.totalVfs,
    firstVfOffset: p.firstVfOffset ?? 1,
    vfStride: p.vfStride ?? 1,
    queueSize: p.queueSize ?? 256,
    policy: p.policy ?? 'strict',
    notify: p.notify ?? 'notify-region',
    adminQueue: p.adminQueue ?? false,
    translator: p.translator ?? 'mmr',
    vfs: Object.fromEntries(
      Object.entries(p.vfs ?? {}).map(([bdf, { vfioUser, ...o }]) => [
        normalizeBdf(bdf),
        vfioUser ? { ...o, vfioUser: { socket: vfioUser.socket, view: vfioUser.view ?? 'guest' } } : o,
      ]),
    ),
  };
}

export function emulatorOf(pfs: readonly PfSpec[]): Emulator {
  return new Emulator({ pfs: pfs.map(resolvePf) });
}

/** NumVFs = count, then VF Enable | VF MSE (PCIe SR-IOV §9.3.3.3), through the access layer. */
export function enableVfs(emulator: Emulator, pfBdf: string, count: number): void {
  const pf = emulator.machine.findPf(pfBdf);
  write(pf, 'config', pf.sriov + S.NUM_VF.offset, S.NUM_VF.size, count);
  write(pf, 'config', pf.sriov + S.CTRL.offset, S.CTRL.size, SC.CTRL_VFE.value | SC.CTRL_MSE.value);
}

/**
 * The net PF the QEMU comparison uses: at 00:03.0 with First VF Offset 8, so that VF 0 sits at
 * 00:04.0 — the slot QEMU's virtio-net-pci gets with addr=04.0 — with QEMU's default MAC.
 */
export const PROBE_PF = '0000:00:03.0';
export const PROBE_VF = '0000:00:04.0';
export const PROBE_MAC = '52:54:00:12:34:56';
export const PROBE_TOPOLOGY: readonly PfSpec[] = [
  { bdf: PROBE_PF, type: 'net', totalVfs: 4, firstVfOffset: 8, vfs: { [PROBE_VF]: { mac: PROBE_MAC } } },
];

export interface VmmrQtest {
  emulator: Emulator;
  server: QtestServer;
  socketPath: string;
  tcp: { host: string; port: number };
  connect(over?: 'unix' | 'tcp'): Promise<QtestClient>;
  stop(): Promise<void>;
}

export async function startVmmrQtest(
  emulator: Emulator,
  options: { token?: string; map?: PlatformMap; dma?: DmaProvider } = {},
): Promise<VmmrQtest> {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-qtest-'));
  const socketPath = join(dir, 'qtest.sock');
  const server = await startQtestServer({ emulator, socketPath, port: 0, host: '127.0.0.1', ...options });
  const tcp = { host: '127.0.0.1', port: server.tcp!.port };
  const clients: QtestClient[] = [];
  return {
    emulator,
    server,
    socketPath,
    tcp,
    async connect(over = 'unix') {
      const client = await QtestClient.connect(over === 'unix' ? socketPath : tcp);
      clients.push(client);
      return client;
    },
    async stop() {
      for (const c of clients) c.socket.destroy();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
