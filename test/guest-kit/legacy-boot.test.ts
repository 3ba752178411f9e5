/**
 * The guest kit end to end: QEMU 10.2 from .ci/qemu.sh has the vfio-user-pci client, and
 * Debian 12's kernel from .ci/guest.sh, booted with test/support/guest.ts, binds its
 * legacy virtio_pci driver to QEMU's own legacy-only virtio-net (1af4:1000) and
 * virtio-blk (1af4:1001) devices.
 *
 * Opt-in (the boot takes a while under TCG on 2 cores):
 *   bash .ci/qemu.sh && bash .ci/guest.sh && VMMR_GUEST_TESTS=1 npx vitest run test/guest-kit
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootGuest,
  buildInitramfs,
  findGuestKit,
  findQemu,
  INIT_READY,
  killAllGuests,
  type GuestKit,
  type GuestResult,
  type QemuInstall,
} from '../support/guest.js';

const ENABLED = process.env.VMMR_GUEST_TESTS === '1';
const TITLE = ENABLED
  ? 'guest kit: Debian 12 guest under QEMU 10.2, legacy virtio'
  : 'guest kit (skipped: set VMMR_GUEST_TESTS=1 after bash .ci/qemu.sh and bash .ci/guest.sh)';

const MAC = '52:54:00:76:6d:72';
const MARKER = 'vmmr-partition-1-marker';
const PART_START_SECTOR = 2048;

/** What the guest prints, one fact per line, for the host to parse. */
const SCRIPT = `
for d in /sys/bus/pci/devices/*; do
  drv=-
  [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
  echo "fact pci \${d##*/} $(cat "$d/vendor"):$(cat "$d/device") driver=$drv bar0=$(head -n1 "$d/resource" | cut -d' ' -f3)"
done
for v in /sys/bus/virtio/devices/*; do
  drv=-
  [ -e "$v/driver" ] && drv=$(basename "$(readlink "$v/driver")")
  echo "fact virtio \${v##*/} device=$(cat "$v/device") driver=$drv features=$(cat "$v/features")"
done
echo "fact netdevs $(ls /sys/class/net | tr '\\n' ' ')"
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  echo "fact eth0 mac=$(cat /sys/class/net/eth0/address) carrier=$(cat /sys/class/net/eth0/carrier 2>/dev/null)"
fi
echo "fact blockdevs $(ls /dev | grep '^vd' | tr '\\n' ' ')"
if [ -e /dev/vda1 ]; then
  echo "fact vda1 start=$(cat /sys/block/vda/vda1/start) size=$(cat /sys/block/vda/vda1/size) data=$(dd if=/dev/vda1 bs=${MARKER.length} count=1 2>/dev/null)"
fi
`;

function facts(log: string, kind: string): string[] {
  return log
    .split('\n')
    .filter((l) => l.startsWith(`fact ${kind} `))
    .map((l) => l.slice(`fact ${kind} `.length));
}

function sfdiskPath(): string {
  for (const p of ['sfdisk', '/usr/sbin/sfdisk', '/sbin/sfdisk']) {
    if (spawnSync(p, ['--version']).status === 0) return p;
  }
  throw new Error('sfdisk not found: bash .ci/guest.sh installs it (Debian package fdisk)');
}

describe.skipIf(!ENABLED)(TITLE, () => {
  let qemu: QemuInstall;
  let kit: GuestKit;
  let tmp = '';
  let result: GuestResult;
  let bootToInitMs = 0;

  beforeAll(async () => {
    qemu = findQemu();
    kit = findGuestKit();
    tmp = mkdtempSync(join(tmpdir(), 'vmmr-guest-'));

    // A 16 MiB raw disk with a DOS label and one Linux partition from 1 MiB, with a marker
    // at the partition's start.
    const disk = join(tmp, 'disk.raw');
    const fd = openSync(disk, 'w');
    ftruncateSync(fd, 16 * 1024 * 1024);
    writeSync(fd, Buffer.from(MARKER), 0, MARKER.length, PART_START_SECTOR * 512);
    closeSync(fd);
    const sf = spawnSync(sfdiskPath(), ['--no-reread', '--no-tell-kernel', '-q', disk], {
      input: `label: dos\nstart=${PART_START_SECTOR}, type=83\n`,
      encoding: 'utf8',
    });
    if (sf.status !== 0) throw new Error(`sfdisk failed: ${sf.stderr}`);

    const initrd = buildInitramfs({
      init: SCRIPT,
      modules: ['virtio_pci', 'virtio_net', 'virtio_blk'],
      outDir: tmp,
    });
    console.log(`initramfs ${initrd.path}, modules in load order: ${initrd.modules.join(' ')}`);

    const guest = bootGuest({
      qemu,
      kernel: kit.kernel,
      initrd: initrd.path,
      extraArgs: [
        // restrict=on: the guest's frames reach no host or outside address.
        '-netdev',
        'user,id=n0,restrict=on',
        '-device',
        `virtio-net-pci,netdev=n0,disable-modern=on,romfile=,mac=${MAC}`,
        '-drive',
        `file=${disk},format=raw,if=none,id=d0`,
        '-device',
        'virtio-blk-pci,drive=d0,disable-modern=on,romfile=',
      ],
      timeoutMs: 240_000,
    });
    const t0 = Date.now();
    await guest.waitFor(INIT_READY, 240_000);
    bootToInitMs = Date.now() - t0;
    result = await guest.result;
    console.log(
      `kernel ${kit.kernelVersion}; QEMU spawn to /init ready: ${bootToInitMs} ms; ` +
        `to poweroff: ${result.elapsedMs} ms; exit code ${result.code}`,
    );
    console.log(
      result.log
        .split('\n')
        .filter((l) => /^(fact|vmmr-init)/.test(l))
        .join('\n'),
    );
    if (result.stderr.trim()) console.log(`qemu stderr:\n${result.stderr}`);
  }, 300_000);

  afterAll(async () => {
    await killAllGuests();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('QEMU lists the vfio-user-pci client device', () => {
    const help = spawnSync(qemu.binary, ['-device', 'help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/name "vfio-user-pci"/);
    const version = spawnSync(qemu.binary, ['-version'], { encoding: 'utf8' });
    expect(version.stdout).toMatch(/QEMU emulator version (\d+)\.(\d+)/);
    const [, major, minor] = /version (\d+)\.(\d+)/.exec(version.stdout) ?? [];
    expect(Number(major) * 100 + Number(minor)).toBeGreaterThanOrEqual(1001);
  });

  it('boots to the init script, which runs to completion and powers off', () => {
    expect(result.timedOut).toBe(false);
    expect(result.killed).toBe(false);
    expect(result.kernelPanic).toBe(false);
    expect(result.log).not.toMatch(/insmod \S+ FAILED/);
    expect(result.scriptExit).toBe(0);
    expect(result.code).toBe(0);
  });

  it('binds the legacy virtio_pci driver to 1af4:1000 and shows eth0 with its MAC', () => {
    const net = facts(result.log, 'pci').filter((l) => l.includes(' 0x1af4:0x1000 '));
    expect(net).toHaveLength(1);
    expect(net[0]).toMatch(/driver=virtio-pci /);
    // BAR0 of a legacy virtio device is I/O space (IORESOURCE_IO 0x100).
    expect(Number(/bar0=(0x[0-9a-f]+)/.exec(net[0] ?? '')?.[1]) & 0x100).toBe(0x100);
    const vnet = facts(result.log, 'virtio').filter((l) => l.includes('device=0x0001'));
    expect(vnet).toHaveLength(1);
    expect(vnet[0]).toMatch(/driver=virtio_net/);
    // The legacy interface never negotiates VIRTIO_F_VERSION_1 (bit 32).
    const features = /features=([01]+)/.exec(vnet[0] ?? '')?.[1] ?? '';
    expect(features.length).toBeGreaterThan(32);
    expect(features[32]).toBe('0');
    expect(facts(result.log, 'netdevs')[0]).toMatch(/\beth0\b/);
    expect(facts(result.log, 'eth0')[0]).toMatch(new RegExp(`^mac=${MAC} `));
  });

  it('binds 1af4:1001 legacy and shows /dev/vda and /dev/vda1 with the partition data', () => {
    const blk = facts(result.log, 'pci').filter((l) => l.includes(' 0x1af4:0x1001 '));
    expect(blk).toHaveLength(1);
    expect(blk[0]).toMatch(/driver=virtio-pci /);
    const vblk = facts(result.log, 'virtio').filter((l) => l.includes('device=0x0002'));
    expect(vblk[0]).toMatch(/driver=virtio_blk/);
    expect(facts(result.log, 'blockdevs')[0]?.split(' ')).toEqual(expect.arrayContaining(['vda', 'vda1']));
    expect(facts(result.log, 'vda1')[0]).toBe(
      `start=${PART_START_SECTOR} size=${16 * 2048 - PART_START_SECTOR} data=${MARKER}`,
    );
  });
});

describe.skipIf(!ENABLED)(`${TITLE}: memfd RAM and the console`, () => {
  let tmp = '';

  afterAll(async () => {
    await killAllGuests();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('boots with memfd-backed RAM, answers on the serial console and powers off', async () => {
    const qemu = findQemu();
    const kit = findGuestKit();
    tmp = mkdtempSync(join(tmpdir(), 'vmmr-guest-'));
    // The script waits for a line from the host on the console, so the test drives it.
    const initrd = buildInitramfs({
      init: 'echo "ask: ready"\nread -r line\necho "got: $line"\n',
      modules: [],
      outDir: tmp,
    });
    expect(initrd.modules).toEqual([]);
    const guest = bootGuest({
      qemu,
      kernel: kit.kernel,
      initrd: initrd.path,
      append: 'quiet',
      memfd: true,
      memoryMiB: 256,
      timeoutMs: 180_000,
    });
    expect(guest.args).toEqual(
      expect.arrayContaining(['memory-backend-memfd,id=vmmr-ram,size=256M,share=on']),
    );
    await guest.waitFor(/^ask: ready/, 180_000);
    guest.send('hello-from-host\n');
    await guest.waitFor(/^got: hello-from-host/, 30_000);
    const result = await guest.result;
    expect(result.scriptExit).toBe(0);
    expect(result.code).toBe(0);
    expect(result.timedOut).toBe(false);
    console.log(`memfd boot: spawn to poweroff ${result.elapsedMs} ms`);
  }, 200_000);
});
