/**
 * A real client: QEMU 10.2's vfio-user-pci attached to the guest view of MMR VFs (legacyOnly),
 * booting Debian 12's kernel, whose stock legacy virtio_pci driver binds them unforced:
 *
 * - net: 1af4:1000 bound to virtio-pci, eth0 with the VF's MAC; with guest RAM in a memfd the
 *   guest pings 10.0.2.2, answered by frames injected into the VF (ARP reply, ICMP echo reply)
 *   as they show up in its capture;
 * - block: 1af4:1001, /dev/vda is the VF's disk image with the partition table sfdisk wrote.
 *
 * Opt-in, like the guest kit's own boot test (a TCG boot takes a while on 2 cores):
 *   bash .ci/qemu.sh && bash .ci/guest.sh && VMMR_GUEST_TESTS=1 npx vitest run test/vfio-user/qemu-boot.test.ts
 * It drives QEMU with the guest kit helper test/support/guest.ts (VMMR_GUEST_HELPER points
 * elsewhere if needed).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { NetDevice } from '../../src/devices/net/device.js';
import { Machine } from '../../src/machine/machine.js';
import { parseTopology } from '../../src/machine/topology.js';
import { exportFunction, InterruptRouter } from '../../src/vfio-user/adapter.js';
import { VfioUserServer } from '../../src/vfio-user/server.js';
import { arp, ethernet, icmpEcho, ip, ipv4, mac } from '../support/frames.js';
import { enableVfs } from '../support/functions.js';

const ENABLED = process.env.VMMR_GUEST_TESTS === '1';
const HELPER = process.env.VMMR_GUEST_HELPER ?? '../support/guest.js';
const MAC = '52:54:00:12:34:56';
const PEER_MAC = '52:54:00:00:00:02';
const GUEST_IP = '10.0.2.15';
const PEER_IP = '10.0.2.2';
const VF = '0000:01:00.1';

interface GuestHelper {
  findQemu(): unknown;
  findGuestKit(): { kernel: string };
  buildInitramfs(o: { init: string; modules: string[]; outDir: string }): { path: string };
  bootGuest(o: {
    qemu: unknown;
    kernel: string;
    initrd: string;
    append?: string;
    extraArgs?: string[];
    memfd?: boolean;
    timeoutMs: number;
  }): {
    result: Promise<{ log: string; stderr: string; scriptExit: number | null; timedOut: boolean }>;
  };
  killAllGuests(): Promise<void>;
}

const PCI_FACTS = `
for d in /sys/bus/pci/devices/*; do
  drv=-
  [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
  echo "fact pci $(cat "$d/vendor"):$(cat "$d/device") driver=$drv"
done
for v in /sys/bus/virtio/devices/*; do
  drv=-
  [ -e "$v/driver" ] && drv=$(basename "$(readlink "$v/driver")")
  echo "fact virtio device=$(cat "$v/device") driver=$drv"
done
`;

const NET_SCRIPT = `${PCI_FACTS}
if [ -e /sys/class/net/eth0 ]; then
  ip addr add ${GUEST_IP}/24 dev eth0
  ip link set eth0 up
  sleep 1
  echo "fact eth0 mac=$(cat /sys/class/net/eth0/address) operstate=$(cat /sys/class/net/eth0/operstate) carrier=$(cat /sys/class/net/eth0/carrier)"
  ping -c 3 -W 5 ${PEER_IP} > /tmp/ping 2>&1
  echo "fact ping $(grep 'packets transmitted' /tmp/ping)"
fi
grep -i virtio /proc/interrupts | sed 's/^/fact irq /'
`;

const BLOCK_SCRIPT = `${PCI_FACTS}
sed 's/^/fact part /' /proc/partitions
[ -b /dev/vda ] && echo "fact mbr $(dd if=/dev/vda bs=1 skip=510 count=2 2>/dev/null | od -An -tx1 | tr -d ' ')"
`;

function facts(log: string, kind: string): string[] {
  return log
    .split('\n')
    .filter((l) => l.startsWith(`fact ${kind} `))
    .map((l) => l.slice(`fact ${kind} `.length).trim());
}

/** Answers the guest's ARP requests and pings for PEER_IP by injecting replies into the VF. */
function peer(net: () => NetDevice | undefined): { stop(): void; answered: () => number } {
  let seen = 0;
  let answered = 0;
  const timer = setInterval(() => {
    const device = net();
    if (!device) return;
    for (const f of device.capture.frames().filter((x) => x.seq > seen)) {
      seen = f.seq;
      const frame = Buffer.from(f.data);
      const type = frame.readUInt16BE(12);
      if (type === 0x0806 && frame.readUInt16BE(20) === 1 && ip(PEER_IP).equals(frame.subarray(38, 42))) {
        const reply = arp(2, mac(PEER_MAC), ip(PEER_IP), frame.subarray(22, 28), frame.subarray(28, 32));
        device.inject(ethernet(frame.subarray(6, 12), mac(PEER_MAC), 0x0806, reply));
        answered++;
      } else if (type === 0x0800 && frame[23] === 1 && frame[34] === 8) {
        const icmp = frame.subarray(34);
        const echo = icmpEcho(0, icmp.readUInt16BE(4), icmp.readUInt16BE(6), icmp.subarray(8));
        const packet = ipv4(ip(PEER_IP), frame.subarray(26, 30), 1, echo);
        device.inject(ethernet(frame.subarray(6, 12), mac(PEER_MAC), 0x0800, packet));
        answered++;
      }
    }
  }, 5);
  return { stop: () => clearInterval(timer), answered: () => answered };
}

describe.skipIf(!ENABLED)('QEMU 10.2 vfio-user-pci on legacy-only guest views', () => {
  const dirs: string[] = [];
  let helper: GuestHelper | undefined;
  afterAll(async () => {
    await helper?.killAllGuests();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function boot(
    machine: Machine,
    bdf: string,
    script: string,
    modules: string[],
    memfd: boolean,
    during: () => void = () => undefined,
  ) {
    helper = (await import(HELPER)) as GuestHelper;
    const dir = mkdtempSync(join(tmpdir(), 'vmmr-qemu-'));
    dirs.push(dir);
    const server = new VfioUserServer({
      socketPath: join(dir, 'vf.sock'),
      socketDir: dir,
      device: exportFunction(machine, machine.findVf(bdf), 'guest', new InterruptRouter(machine.events)),
    });
    try {
      const initrd = helper.buildInitramfs({ init: script, modules, outDir: dir });
      const device = JSON.stringify({
        driver: 'vfio-user-pci',
        socket: { path: server.socketPath, type: 'unix' },
      });
      const guest = helper.bootGuest({
        qemu: helper.findQemu(),
        kernel: helper.findGuestKit().kernel,
        initrd: initrd.path,
        extraArgs: ['-device', device],
        memfd,
        timeoutMs: 240_000,
      });
      let seen = server.status().session;
      const poll = setInterval(() => {
        seen = server.status().session ?? seen;
        during();
      }, 20);
      const result = await guest.result;
      clearInterval(poll);
      console.log(
        `QEMU messages ${JSON.stringify(seen?.byCommand)}; refusals ${seen?.refusals}; last ${seen?.lastRefusal ?? '-'}`,
      );
      console.log(
        result.log
          .split('\n')
          .filter((l) => /fact|virtio|vfio|eth0|vda/i.test(l))
          .join('\n'),
      );
      if (result.stderr.trim()) console.log(`QEMU stderr:\n${result.stderr}`);
      expect(result.timedOut).toBe(false);
      return { result, session: seen };
    } finally {
      server.close();
    }
  }

  const netMachine = (): Machine => {
    const topology = parseTopology(
      {
        pfs: [
          { bdf: '0000:01:00.0', type: 'net', totalVfs: 4, vfs: { [VF]: { mac: MAC, legacyOnly: true } } },
        ],
      },
      'boot test',
    );
    const machine = new Machine(topology);
    enableVfs(machine.findPf('0000:01:00.0'), 2);
    return machine;
  };

  for (const memfd of [true, false]) {
    it(`net: the legacy driver binds 1af4:1000 unforced, eth0 has the VF's MAC${memfd ? ' and ping answers come back' : ''} (guest RAM ${memfd ? 'in a memfd' : 'without an fd'})`, async () => {
      const machine = netMachine();
      const vf = machine.findVf(VF);
      const net = () => machine.dataPath.existing(vf)?.existingBackend as NetDevice | undefined;
      const responder = peer(net);
      let statusBits = 0;
      const { result, session } = await boot(
        machine,
        VF,
        NET_SCRIPT,
        ['virtio_pci', 'virtio_net'],
        memfd,
        () => (statusBits |= vf.device.status),
      );
      responder.stop();
      expect(facts(result.log, 'pci')).toContain('0x1af4:0x1000 driver=virtio-pci');
      expect(facts(result.log, 'virtio')).toContain('device=0x0001 driver=virtio_net');
      expect(facts(result.log, 'eth0')[0]).toMatch(new RegExp(`^mac=${MAC} `));
      expect(statusBits & 0x7).toBe(0x7);
      expect(session?.byCommand['VFIO_USER_VERSION (1)']).toBe(1);
      expect(session?.dmaMaps ?? 0).toBeGreaterThan(0);
      if (memfd) {
        expect(facts(result.log, 'ping')[0]).toMatch(/^3 packets transmitted, 3 packets received/);
        expect(responder.answered()).toBeGreaterThanOrEqual(4);
      }
    }, 300_000);
  }

  it('block: 1af4:1001 shows its disk image as /dev/vda with the partition sfdisk wrote', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmmr-disk-'));
    dirs.push(dir);
    const image = join(dir, 'disk.img');
    writeFileSync(image, Buffer.alloc(16 << 20));
    execFileSync('sfdisk', ['--quiet', image], { input: 'label: dos\nstart=2048, size=16384, type=83\n' });
    const topology = parseTopology(
      {
        pfs: [
          {
            bdf: '0000:81:00.0',
            type: 'block',
            totalVfs: 2,
            vfs: { '0000:81:00.1': { image, legacyOnly: true } },
          },
        ],
      },
      'boot test',
    );
    const machine = new Machine(topology);
    enableVfs(machine.findPf('0000:81:00.0'), 1);
    const { result } = await boot(machine, '0000:81:00.1', BLOCK_SCRIPT, ['virtio_pci', 'virtio_blk'], true);
    expect(facts(result.log, 'pci')).toContain('0x1af4:0x1001 driver=virtio-pci');
    expect(facts(result.log, 'virtio')).toContain('device=0x0002 driver=virtio_blk');
    const parts = facts(result.log, 'part').map((l) => l.split(/\s+/));
    // /proc/partitions: major minor #blocks (1 KiB) name
    expect(parts.find((p) => p[3] === 'vda')?.[2]).toBe(String(16 << 10));
    expect(parts.find((p) => p[3] === 'vda1')?.[2]).toBe(String(16384 / 2));
    expect(facts(result.log, 'mbr')).toEqual(['55aa']);
  }, 300_000);
});
