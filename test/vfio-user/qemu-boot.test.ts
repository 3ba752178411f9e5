/**
 * A real client: QEMU 10.2's vfio-user-pci attached to the guest view of a net VF, booting
 * Debian 12's kernel, whose stock legacy virtio_pci driver (virtio_pci.force_legacy=1) binds
 * 1af4:1000 and brings up eth0 with the VF's MAC. Without a data path no packet moves yet.
 *
 * Opt-in, like the guest kit's own boot test (a TCG boot takes a while on 2 cores):
 *   bash .ci/qemu.sh && bash .ci/guest.sh && VMMR_GUEST_TESTS=1 npx vitest run test/vfio-user/qemu-boot.test.ts
 * It drives QEMU with the guest kit helper test/support/guest.ts (VMMR_GUEST_HELPER points
 * elsewhere if needed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exportFunction, InterruptRouter } from '../../src/vfio-user/adapter.js';
import { VfioUserServer } from '../../src/vfio-user/server.js';
import { withVfs } from '../support/functions.js';

const ENABLED = process.env.VMMR_GUEST_TESTS === '1';
const HELPER = process.env.VMMR_GUEST_HELPER ?? '../support/guest.js';
const MAC = '52:54:00:12:34:56';

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

const SCRIPT = `
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
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  sleep 1
  echo "fact eth0 mac=$(cat /sys/class/net/eth0/address) operstate=$(cat /sys/class/net/eth0/operstate) carrier=$(cat /sys/class/net/eth0/carrier)"
fi
grep -i virtio /proc/interrupts | sed 's/^/fact irq /'
`;

function facts(log: string, kind: string): string[] {
  return log
    .split('\n')
    .filter((l) => l.startsWith(`fact ${kind} `))
    .map((l) => l.slice(`fact ${kind} `.length).trim());
}

describe.skipIf(!ENABLED)('QEMU 10.2 vfio-user-pci on the guest view of a net VF', () => {
  const dirs: string[] = [];
  let helper: GuestHelper | undefined;
  afterAll(async () => {
    await helper?.killAllGuests();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  for (const memfd of [true, false]) {
    it(`the legacy virtio_pci driver binds 1af4:1000 and eth0 has the VF's MAC (guest RAM ${memfd ? 'in a memfd' : 'without an fd'})`, async () => {
      helper = (await import(HELPER)) as GuestHelper;
      const { machine, vf } = withVfs('net', 2, { vfs: { '0000:01:00.1': { mac: MAC } } });
      const dir = mkdtempSync(join(tmpdir(), 'vmmr-qemu-'));
      dirs.push(dir);
      const logs: string[] = [];
      const server = new VfioUserServer({
        socketPath: join(dir, 'vf.sock'),
        socketDir: dir,
        device: exportFunction(machine, vf, 'guest', new InterruptRouter(machine.events)),
        log: (level, message) => logs.push(`${level} ${message}`),
      });
      try {
        const kit = helper.findGuestKit();
        const initrd = helper.buildInitramfs({
          init: SCRIPT,
          modules: ['virtio_pci', 'virtio_net'],
          outDir: dir,
        });
        const device = JSON.stringify({
          driver: 'vfio-user-pci',
          socket: { path: server.socketPath, type: 'unix' },
        });
        const guest = helper.bootGuest({
          qemu: helper.findQemu(),
          kernel: kit.kernel,
          initrd: initrd.path,
          append: 'virtio_pci.force_legacy=1',
          extraArgs: ['-device', device],
          memfd,
          timeoutMs: 150_000,
        });
        const status = () => server.status().session;
        let seen = status();
        let statusBits = 0;
        const poll = setInterval(() => {
          seen = status() ?? seen;
          statusBits |= vf.device.status;
        }, 20);
        const result = await guest.result;
        clearInterval(poll);
        console.log(
          `QEMU (guest RAM ${memfd ? 'memfd' : 'no fd'}): messages ${JSON.stringify(seen?.byCommand)}; refusals ${seen?.refusals}; last ${seen?.lastRefusal ?? '-'}; maps ${seen?.dmaMaps}`,
        );
        console.log(
          result.log
            .split('\n')
            .filter((l) => /fact|virtio|vfio|eth0/i.test(l))
            .join('\n'),
        );
        if (result.stderr.trim()) console.log(`QEMU stderr:\n${result.stderr}`);
        console.log(
          logs.filter((l) => /SET_IRQS|DMA_MAP|DMA_UNMAP|DEVICE_RESET|negotiated|refus/.test(l)).join('\n'),
        );
        expect(result.timedOut).toBe(false);
        expect(facts(result.log, 'pci')).toContain('0x1af4:0x1000 driver=virtio-pci');
        expect(facts(result.log, 'virtio')).toContain('device=0x0001 driver=virtio_net');
        expect(facts(result.log, 'eth0')[0]).toMatch(new RegExp(`^mac=${MAC} `));
        // ACKNOWLEDGE | DRIVER | DRIVER_OK were all set while the guest ran.
        expect(statusBits & 0x7).toBe(0x7);
        expect(seen?.byCommand['VFIO_USER_VERSION (1)']).toBe(1);
        expect(seen?.dmaMaps ?? 0).toBeGreaterThan(0);
      } finally {
        server.close();
      }
    }, 180_000);
  }
});
