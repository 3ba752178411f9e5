/**
 * `vmmr dump` without a service: the machine is built in process, VFs are enabled through the
 * PF's SR-IOV registers, and the dump is checked with the real pciutils (lspci -F, setpci -F).
 */
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deviceTypes } from '../../src/spec/index.js';
import { lspci, setpci, TMP, tmpFile, vmmr } from '../support/cli.js';

/** A URL where nothing listens (a port that was just free). */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('vmmr dump --offline: PF', () => {
  it('shows the SR-IOV capability with the requested Number of VFs (lspci -F -vvv)', async () => {
    const r = await vmmr(['dump', '01:00.0', '--offline', '--num-vfs', '4']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.split('\n')[0]).toBe(
      '0000:01:00.0 Ethernet controller: Red Hat, Inc. Virtio 1.0 network device',
    );
    const file = tmpFile(r.stdout);
    const out = lspci(file, '-vvv');
    expect(out).toContain('Single Root I/O Virtualization (SR-IOV)');
    expect(out).toMatch(/IOVCtl:\s+Enable\+ Migration- Interrupt- MSE\+/);
    expect(out).toContain('Initial VFs: 1024, Total VFs: 1024, Number of VFs: 4,');
    expect(out).toContain('VF offset: 1, stride: 1, Device ID: 10f9');
    expect(lspci(file, '-n')).toContain('01:00.0 0200: 1af4:1041 (rev 01)');
    expect(setpci(file, '01:00.0', 'ECAP_SRIOV+10.w', 'ECAP_SRIOV+8.w').trim().split('\n')).toEqual([
      '0004',
      '0009',
    ]);
  });

  it('leaves VF Enable clear without --num-vfs, and --num-vfs 0 keeps NumVFs 0', async () => {
    for (const extra of [[], ['--num-vfs', '0']]) {
      const r = await vmmr(['dump', '81:00.0', '--offline', ...extra]);
      expect(r.code).toBe(0);
      const file = tmpFile(r.stdout);
      const out = lspci(file, '-vvv');
      expect(out).toMatch(/IOVCtl:\s+Enable- Migration- Interrupt- MSE-/);
      expect(out).toContain('Number of VFs: 0,');
      expect(out).toContain('SCSI storage controller: Red Hat, Inc. Virtio 1.0 block device');
      expect(lspci(file, '-n')).toContain('81:00.0 0100: 1af4:1042');
    }
  });

  it('can enable every VF (TotalVFs 1024)', async () => {
    const r = await vmmr(['dump', '0000:01:00.0', '--num-vfs', '1024']);
    expect(r.code).toBe(0);
    expect(lspci(tmpFile(r.stdout), '-vvv')).toContain('Number of VFs: 1024,');
  });
});

describe('vmmr dump --offline: VF', () => {
  it('shows the MMR locator (VSEC ID 0x000a) and Vendor/Device ID 0xffff', async () => {
    const r = await vmmr(['dump', '01:00.1', '--offline', '--num-vfs', '2']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.split('\n')[0]).toBe(
      '0000:01:00.1 Ethernet controller: Red Hat, Inc. Virtio network device (transitional MMR VF)',
    );
    const file = tmpFile(r.stdout);
    const out = lspci(file, '-vvv');
    expect(out).toContain('Vendor Specific Information: ID=000a Rev=0 Len=01c');
    expect(out).not.toContain('I/O ports at');
    expect(lspci(file, '-n')).toContain('01:00.1 0200: ffff:ffff');
    // The locator through setpci: header, VSEC header, BAR index.
    expect(setpci(file, '01:00.1', 'ECAP_VNDR+4.l', 'ECAP_VNDR+8.b').trim().split('\n')).toEqual([
      '01c0000a',
      '02',
    ]);
  });

  it('enables just enough VFs to reach the VF by default', async () => {
    const r = await vmmr(['dump', '81:00.3', '--offline']);
    expect(r.code).toBe(0);
    expect(lspci(tmpFile(r.stdout), '-n')).toContain('81:00.3 0100: ffff:ffff');
    const pf = await vmmr(['dump', '81:00.0', '--offline', '--num-vfs', '3']);
    expect(setpci(tmpFile(pf.stdout), '81:00.0', 'ECAP_SRIOV+10.w').trim()).toBe('0003');
    // The last VF of the PF, 1024 routing IDs on.
    const last = await vmmr(['dump', '85:00.0', '--offline']);
    expect(last.stdout.split('\n')[0]).toMatch(/^0000:85:00\.0 /);
    expect(r.stdout).toMatch(
      /^0000:81:00\.3 SCSI storage controller: Red Hat, Inc\. Virtio block device \(transitional MMR VF\)\n/,
    );
  });

  it('refuses --num-vfs that does not reach the VF (usage error, exit 2)', async () => {
    const r = await vmmr(['dump', '01:00.5', '--num-vfs', '4']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'vmmr: 0000:01:00.5 is VF 5 of PF 0000:01:00.0: --num-vfs 4 does not enable it (at least 5 needed)\n',
    );
  });

  it('refuses --num-vfs above TotalVFs and addresses that are no function', async () => {
    const over = await vmmr(['dump', '01:00.0', '--num-vfs', '1025']);
    expect(over.code).toBe(2);
    expect(over.stderr).toBe('vmmr: --num-vfs 1025 exceeds TotalVFs 1024 of PF 0000:01:00.0\n');
    // VFs of 01:00.0 reach 05:00.0 (1024 VFs); 10:00.0 is nobody's.
    const none = await vmmr(['dump', '10:00.0', '--offline']);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe(
      'vmmr: 0000:10:00.0 is neither a PF nor a VF of a PF in the embedded default topology (PFs: 0000:01:00.0, 0000:81:00.0)\n',
    );
    const bad = await vmmr(['dump', '01:20.0', '--offline']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^vmmr: BDF: "01:20.0": device number 0x20 exceeds 0x1f\n$/);
  });
});

describe('vmmr dump --offline --guest', () => {
  it("shows the translator's transitional device: I/O BAR0, Device ID 1af4:1000, no MMR locator", async () => {
    const r = await vmmr(['dump', '01:00.1', '--guest', '--offline']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.split('\n')[0]).toBe(
      '0000:01:00.1 Ethernet controller: Red Hat, Inc. Virtio network device',
    );
    const file = tmpFile(r.stdout);
    const out = lspci(file, '-vvv');
    expect(out).toContain('Region 0: I/O ports at');
    expect(out).not.toContain('ID=000a');
    expect(out).toContain('Vendor Specific Information: VirtIO: CommonCfg');
    expect(lspci(file, '-n')).toContain('01:00.1 0200: 1af4:1000');
    expect(
      setpci(file, '01:00.1', 'VENDOR_ID', 'DEVICE_ID', 'REVISION', 'SUBSYSTEM_ID').trim().split('\n'),
    ).toEqual(['1af4', '1000', '00', '0001']);
  });

  it('uses the transitional Device ID of every type, from a topology file', async () => {
    const pfs = Object.keys(deviceTypes.types).map((type, i) => ({
      bdf: `0000:${(0x10 + i).toString(16)}:00.0`,
      type,
      totalVfs: 2,
    }));
    const topology = join(TMP, `topology-${process.pid}.json`);
    writeFileSync(topology, JSON.stringify({ pfs }));
    for (const [i, info] of Object.values(deviceTypes.types).entries()) {
      const vf = `${(0x10 + i).toString(16)}:00.1`;
      const r = await vmmr(['dump', vf, '--guest', '--topology', topology]);
      expect(r.code).toBe(0);
      const ids = lspci(tmpFile(r.stdout), '-n');
      expect(ids).toContain(`1af4:${info.transitionalId.toString(16)}`);
      const vfDump = await vmmr(['dump', vf, '--topology', topology]);
      expect(setpci(tmpFile(vfDump.stdout), vf, 'ECAP_VNDR+4.w').trim()).toBe('000a');
      const pfDump = await vmmr([
        'dump',
        `${(0x10 + i).toString(16)}:00.0`,
        '--topology',
        topology,
        '--num-vfs',
        '2',
      ]);
      expect(
        setpci(tmpFile(pfDump.stdout), `${(0x10 + i).toString(16)}:00.0`, 'ECAP_SRIOV+1a.w').trim(),
      ).toBe(info.mmrId.toString(16));
    }
  });

  it('refuses a PF (NOT_TRANSITIONAL, exit 1) and a bad topology file (exit 2)', async () => {
    const pf = await vmmr(['dump', '01:00.0', '--guest', '--offline']);
    expect(pf.code).toBe(1);
    expect(pf.stderr).toMatch(/^vmmr: .*0000:01:00\.0 is a PF.* \(VMMR_ERR_NOT_TRANSITIONAL\)\n$/);
    const missing = await vmmr(['dump', '01:00.0', '--topology', join(TMP, 'nope.json')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^vmmr: topology file .*nope\.json: cannot read: no such file\n$/);
  });
});

describe('vmmr dump falls back offline', () => {
  it('when no service answers at --url (or VMMR_URL), and says which URL it tried', async () => {
    const url = await deadUrl();
    const r = await vmmr(['dump', '01:00.0', '--url', url]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      `vmmr: no service at ${url} (connection refused): dumping offline from the embedded default topology\n`,
    );
    expect(lspci(tmpFile(r.stdout), '-n')).toContain('01:00.0 0200: 1af4:1041');
    const env = await vmmr(['dump', '01:00.1', '--guest'], { env: { VMMR_URL: url } });
    expect(env.code).toBe(0);
    expect(env.stderr).toContain(`no service at ${url} `);
    expect(lspci(tmpFile(env.stdout), '-n')).toContain('01:00.1 0200: 1af4:1000');
  });

  it('--json gives the bytes as hex and where they came from', async () => {
    const r = await vmmr(['dump', '01:00.2', '--offline', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { bdf: string; description: string; source: string; config: string };
    expect(doc.bdf).toBe('0000:01:00.2');
    expect(doc.source).toBe('offline');
    expect(doc.config).toHaveLength(8192);
    expect(doc.config.slice(0, 8)).toBe('ffffffff');
  });
});
