/**
 * The client commands against the real REST service, started in process on a free port.
 * One service for the file: each test sets the state it reads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/main.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import { lspci, setpci, tmpFile, vmmr, type CliRun, type RunOptions } from '../support/cli.js';

let server: RunningServer;

beforeAll(async () => {
  const config = { ...loadConfig({}), host: '127.0.0.1', port: 0, logLevel: 'silent' as const };
  server = await startServer(config, DEFAULT_TOPOLOGY, {
    handleSignals: false,
    logger: false,
  });
});

afterAll(async () => {
  await server?.close();
});

/** `vmmr ARGS...` against the test service (through VMMR_URL, as a user would set it). */
function cli(args: string[], options: RunOptions = {}): Promise<CliRun> {
  return vmmr(args, { ...options, env: { VMMR_URL: server.url, ...options.env } });
}

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

/** Resolves once the service at `url` has `n` event streams open (its /metrics gauge). */
async function subscribers(url: string, n: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const text = await (await fetch(`${url}/metrics`)).text();
    if (new RegExp(`^vmmr_event_subscribers ${n}$`, 'm').test(text)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the service never had ${n} event streams open`);
}

/** NumVFs = n the sysfs way: through 0, since one nonzero count cannot become another. */
async function setVfs(pf: string, n: number): Promise<void> {
  expect(await ok(['sriov', pf, '0'])).toBe('');
  if (n > 0) expect(await ok(['sriov', pf, String(n)])).toBe('');
}

describe('vmmr sriov and vmmr ls', () => {
  it('lists the PFs of the topology, without VFs at start', async () => {
    await setVfs('01:00.0', 0);
    await setVfs('81:00.0', 0);
    expect(await ok(['ls'])).toBe(
      '0000:01:00.0  1af4:1041  Virtio 1.0 network device  [SR-IOV: 0/1024 VFs]\n' +
        '0000:81:00.0  1af4:1042  Virtio 1.0 block device  [SR-IOV: 0/1024 VFs]\n',
    );
  });

  it('sets NumVFs silently, like sysfs sriov_numvfs, and shows the state', async () => {
    expect(await ok(['sriov', '01:00.0', '4'])).toBe('');
    expect(await ok(['sriov', '0000:01:00.0'])).toBe(
      [
        'sriov_numvfs      4',
        'sriov_totalvfs    1024',
        'sriov_offset      1',
        'sriov_stride      1',
        'sriov_vf_device   10f9',
        'vf_enable         1',
        'vf_memory_enable  1',
        'virtfn0           0000:01:00.1',
        'virtfn1           0000:01:00.2',
        'virtfn2           0000:01:00.3',
        'virtfn3           0000:01:00.4',
        '',
      ].join('\n'),
    );
    const json = JSON.parse(await ok(['sriov', '01:00.0', '--json'])) as Record<string, unknown>;
    expect(json).toMatchObject({
      bdf: '0000:01:00.0',
      numVfs: 4,
      totalVfs: 1024,
      vfEnabled: true,
      vfMemoryEnabled: true,
    });
  });

  it('draws each PF with its VFs', async () => {
    await setVfs('01:00.0', 3);
    const vf = '1af4:10f9  virtfn';
    const name = 'Virtio network device (transitional MMR VF)';
    expect(await ok(['ls'])).toBe(
      '0000:01:00.0  1af4:1041  Virtio 1.0 network device  [SR-IOV: 3/1024 VFs, NumVFs 3, VF Enable 1, VF MSE 1]\n' +
        ` +-0000:01:00.1  ${vf}0  ${name}\n` +
        ` +-0000:01:00.2  ${vf}1  ${name}\n` +
        ` \\-0000:01:00.3  ${vf}2  ${name}\n` +
        '0000:81:00.0  1af4:1042  Virtio 1.0 block device  [SR-IOV: 0/1024 VFs]\n',
    );
  });

  it('summarises long VF runs unless -a', async () => {
    await setVfs('01:00.0', 1000);
    const lines = (await ok(['ls'])).split('\n');
    expect(lines.slice(1, 4)).toEqual([
      ' +-0000:01:00.1  1af4:10f9  virtfn0  Virtio network device (transitional MMR VF)',
      // Routing IDs 0x102..0x4e7, then 0x4e8 (PF 0x100 + First VF Offset 1 + n).
      ' +-...  998 more VFs 0000:01:00.2 .. 0000:04:1c.7 (virtfn1..virtfn998; -a lists them)',
      ' \\-0000:04:1d.0  1af4:10f9  virtfn999  Virtio network device (transitional MMR VF)',
    ]);
    const all = (await ok(['ls', '-a'])).split('\n');
    expect(all).toHaveLength(1 + 1000 + 1 + 1);
    expect(all[500]).toBe(
      ' +-0000:02:1e.4  1af4:10f9  virtfn499  Virtio network device (transitional MMR VF)',
    );
    expect((await ok(['ls', '--max', '1000'])).split('\n')).toEqual(all);
    const json = JSON.parse(await ok(['ls', '--json'])) as { pfs: Array<Record<string, unknown>> };
    expect(json.pfs[0]).toMatchObject({
      bdf: '0000:01:00.0',
      type: 'net',
      numVfs: 1000,
      deviceId: '0x1041',
      vfs: { count: 1000, first: '0000:01:00.1', last: '0000:04:1d.0' },
    });
    const sriov = (await ok(['sriov', '01:00.0'])).split('\n');
    expect(sriov.slice(7, 10)).toEqual([
      'virtfn0           0000:01:00.1',
      '...               998 more (-a lists them)',
      'virtfn999         0000:04:1d.0',
    ]);
  });

  it('reports refusals with the problem detail and code on one line, exit 1', async () => {
    await setVfs('01:00.0', 2);
    const busy = await cli(['sriov', '01:00.0', '3']);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/^vmmr: .*EBUSY.* \(VMMR_ERR_SRIOV_STATE\)\n$/);
    await setVfs('01:00.0', 0);
    const r = await cli(['sriov', '01:00.0', '2000']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^vmmr: .*2000 exceeds TotalVFs 1024.* \(VMMR_ERR_SRIOV_RANGE\)\n$/);
    const notPf = await cli(['sriov', '01:00.1']);
    expect(notPf.code).toBe(1);
    expect(notPf.stderr).toMatch(/^vmmr: .*0000:01:00\.1.* \(VMMR_ERR_[A-Z_]+\)\n$/);
  });

  it('refuses bad arguments before asking the service (exit 2)', async () => {
    expect(await cli(['sriov', '01:00.0', 'many'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'vmmr: NumVFs "many" is not an integer 0..65535\n',
    });
    const bad = await cli(['sriov', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^vmmr: PF: "x" is not a PCI address/);
  });
});

describe('vmmr cfg', () => {
  it('reads like setpci, writes silently, runs specs in order', async () => {
    expect(await ok(['cfg', '01:00.0', 'VENDOR_ID', 'DEVICE_ID', '0x08.b'])).toBe('1af4\n1041\n01\n');
    expect(await ok(['cfg', '01:00.0', '4.w=0'])).toBe('');
    expect(await ok(['cfg', '01:00.0', 'COMMAND', '4.w=6', 'COMMAND', 'command.l'])).toBe(
      '0000\n0006\n00100006\n',
    );
    expect(await ok(['cfg', '01:00.0', 'COMMAND=0400:0400', 'COMMAND'])).toBe('0406\n');
    expect(await ok(['cfg', '01:00.0', 'COMMAND=0:ffff'])).toBe('');
  });

  it('resolves capability names by walking the config space', async () => {
    await setVfs('01:00.0', 4);
    expect(
      await ok(['cfg', '01:00.0', 'ECAP_SRIOV+10.w', 'ECAP_SRIOV+0x0e.w', 'ECAP_SRIOV+1a.w', 'CAP_EXP+2.w']),
    ).toBe('0004\n0400\n10f9\n0002\n');
    // The same registers as setpci reads them from the service's own dump.
    const dump = await ok(['dump', '01:00.0']);
    expect(
      setpci(tmpFile(dump), '01:00.0', 'ECAP_SRIOV+10.w', 'CAP_EXP+8.w', 'CAP_VNDR+3.b@1')
        .split('\n')
        .slice(0, 3),
    ).toEqual(
      (await ok(['cfg', '01:00.0', 'ECAP_SRIOV+10.w', 'CAP_EXP+8.w', 'CAP_VNDR+3.b@1']))
        .split('\n')
        .slice(0, 3),
    );
    // The VF's MMR locator.
    expect(await ok(['cfg', '01:00.1', 'ECAP_VNDR+4.l', 'ECAP_VNDR+8.b'])).toBe('01c0000a\n02\n');
  });

  it('prints every access as JSON with --json', async () => {
    const doc = JSON.parse(
      await ok(['cfg', '01:00.0', '--json', 'COMMAND', '4.w=2', 'ECAP_SRIOV+10.w']),
    ) as unknown;
    expect(doc).toEqual({
      bdf: '0000:01:00.0',
      space: 'config',
      accesses: [
        { spec: 'COMMAND', op: 'read', offset: '0x4', width: 2, value: '0x0000' },
        { spec: '4.w=2', op: 'write', offset: '0x4', width: 2, value: '0x0002' },
        {
          spec: 'ECAP_SRIOV+10.w',
          op: 'read',
          offset: expect.stringMatching(/^0x1[0-9a-f]{2}$/),
          width: 2,
          value: '0x0004',
        },
      ],
    });
  });

  it('stops at the first refusal: what ran is printed, the refusal goes to stderr, exit 1', async () => {
    const r = await cli(['cfg', '01:00.0', 'COMMAND', '3.w', 'COMMAND']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('0002\n');
    expect(r.stderr).toMatch(/^vmmr: .*0x3.* \(VMMR_ERR_UNALIGNED\)\n$/);
    const missing = await cli(['cfg', '01:00.1', 'ECAP_SRIOV.l']);
    expect(missing).toEqual({
      code: 1,
      stdout: '',
      stderr: 'vmmr: 0000:01:00.1 has no capability ECAP_SRIOV (extended ID 0x10)\n',
    });
    const disabled = await cli(['cfg', '01:01.0', 'COMMAND']);
    expect(disabled.code).toBe(1);
    expect(disabled.stderr).toMatch(/\(VMMR_ERR_VF_DISABLED\)\n$/);
    expect((await cli(['cfg', '01:00.0', '4'])).stderr).toBe(
      'vmmr: 4: missing width: append one of .B .W .L (e.g. 4.B)\n',
    );
  });
});

describe('vmmr bar and vmmr io', () => {
  it('reads and writes a VF memory BAR, 8-byte accesses included', async () => {
    await setVfs('01:00.0', 2);
    expect(await ok(['bar', '01:00.1', '2', 'LEGACY+12.b'])).toBe('00\n');
    expect(await ok(['bar', '01:00.1', '2', 'LEGACY+12.b=1', 'LEGACY+12.b', '1012.b'])).toBe('01\n01\n');
    expect(await ok(['bar', '01:00.1', '2', 'LEGACY+12.b=0'])).toBe('');
    const q = await ok(['bar', '01:00.1', '2', 'COMMON_CFG+20.q']);
    expect(q).toMatch(/^[0-9a-f]{16}\n$/);
  });

  it('refuses a width the space does not take, and a disabled VF', async () => {
    expect((await cli(['bar', '01:00.1', '2', '0.x'])).code).toBe(2);
    expect((await cli(['bar', '01:00.1', '6', '0.b'])).stderr).toBe('vmmr: BAR index "6" is not 0..5\n');
    const r = await cli(['bar', '01:00.1', '0', '0.l']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ \(VMMR_ERR_[A-Z_]+\)\n$/);
  });

  it('translates guest I/O once the guest enables I/O decode', async () => {
    const off = await cli(['io', '01:00.1', 'STATUS']);
    expect(off.code).toBe(1);
    expect(off.stderr).toMatch(/\(VMMR_ERR_IO_DISABLED\)\n$/);
    expect(await ok(['cfg', '01:00.1', '--guest', 'COMMAND=1', 'COMMAND', 'DEVICE_ID'])).toBe('0001\n1000\n');
    expect(await ok(['io', '01:00.1', 'STATUS=1', 'STATUS', '12.b', '0x12.b'])).toBe('01\n01\n01\n');
    expect(await ok(['io', '01:00.1', 'HOST_FEATURES'])).toMatch(/^[0-9a-f]{8}\n$/);
    expect(await ok(['io', '01:00.1', 'STATUS=0'])).toBe('');
    expect((await cli(['io', '01:00.1', '0.q'])).stderr).toBe('vmmr: 0.q: width .q is not one of .B .W .L\n');
  });
});

describe('vmmr dump (online)', () => {
  it("prints the service's dump, which lspci -F reads", async () => {
    await setVfs('01:00.0', 5);
    const pf = await ok(['dump', '01:00.0']);
    expect(lspci(tmpFile(pf), '-vvv')).toContain('Number of VFs: 5,');
    const vf = await ok(['dump', '01:00.5']);
    expect(lspci(tmpFile(vf), '-vvv')).toContain('Vendor Specific Information: ID=000a Rev=0 Len=01c');
    const guest = await ok(['dump', '01:00.5', '--guest']);
    const out = lspci(tmpFile(guest), '-vvv');
    expect(out).toContain('I/O ports at');
    expect(out).not.toContain('ID=000a');
    const json = JSON.parse(await ok(['dump', '01:00.5', '--json'])) as Record<string, unknown>;
    expect(json).toMatchObject({ bdf: '0000:01:00.5', source: 'service' });
  });

  it("reports the service's refusal instead of falling back", async () => {
    const r = await cli(['dump', '01:01.0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\(VMMR_ERR_VF_DISABLED\)\n$/);
  });
});

describe('vmmr events', () => {
  it('prints one line per event and stops after --count', async () => {
    await setVfs('81:00.0', 0);
    await subscribers(server.url, 0);
    const lines: string[] = [];
    const following = cli(['events', '--types', 'vf-enable,vf-disable', '--bdf', '81:00.0', '--count', '2'], {
      onStdout: (t) => lines.push(t),
    });
    await subscribers(server.url, 1);
    await setVfs('81:00.0', 2);
    await setVfs('81:00.0', 0);
    const r = await following;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout.trim().split('\n');
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^\d+ vf-enable 0000:81:00\.0 numVfs=2 first=0000:81:00\.1 last=0000:81:00\.2$/);
    expect(out[1]).toMatch(/^\d+ vf-disable 0000:81:00\.0 numVfs=2$/);
  });

  it('prints JSON lines with --json and ends cleanly when interrupted', async () => {
    await subscribers(server.url, 0);
    const stop = new AbortController();
    const following = cli(['events', '--json', '--types', 'vf-enable'], {
      signal: stop.signal,
      onStdout: () => stop.abort(),
    });
    await subscribers(server.url, 1);
    await setVfs('81:00.0', 1);
    const r = await following;
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const event = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(event).toMatchObject({ type: 'vf-enable', bdf: '0000:81:00.0', numVfs: 1 });
    expect(typeof event.seq).toBe('number');
    await setVfs('81:00.0', 0);
  });

  it('refuses unknown event types (exit 2)', async () => {
    const r = await cli(['events', '--types', 'vf-enable,bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^vmmr: --types: unknown event type bogus: expected notify, interrupt, /);
  });
});

describe('a service of its own', () => {
  async function start(token?: string): Promise<RunningServer> {
    const config = {
      ...loadConfig({}),
      host: '127.0.0.1',
      port: 0,
      logLevel: 'silent' as const,
      ...(token ? { token } : {}),
    };
    return startServer(config, DEFAULT_TOPOLOGY, { handleSignals: false, logger: false });
  }

  it('sends --token / VMMR_TOKEN as a bearer token; without it the refusal says what to do', async () => {
    const s = await start('s3cret');
    try {
      const denied = await vmmr(['ls', '--url', s.url]);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/^vmmr: .*: pass --token or set VMMR_TOKEN \(VMMR_ERR_UNAUTHORIZED\)\n$/);
      expect((await vmmr(['ls', '--url', s.url, '--token', 's3cret'])).code).toBe(0);
      const env = await vmmr(['cfg', '01:00.0', 'VENDOR_ID'], {
        env: { VMMR_URL: s.url, VMMR_TOKEN: 's3cret' },
      });
      expect(env).toEqual({ code: 0, stdout: '1af4\n', stderr: '' });
      const wrong = await vmmr(['dump', '01:00.0', '--url', s.url, '--token', 'nope']);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/\(VMMR_ERR_UNAUTHORIZED\)\n$/);
    } finally {
      await s.close();
    }
  });

  it('ends `vmmr events` cleanly (exit 0) when the service shuts down', async () => {
    const s = await start();
    const following = vmmr(['events', '--url', s.url]);
    await subscribers(s.url, 1);
    await vmmr(['sriov', '81:00.0', '1'], { env: { VMMR_URL: s.url } });
    await s.close();
    const r = await following;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^1 vf-enable 0000:81:00\.0 numVfs=1 first=0000:81:00\.1 last=0000:81:00\.1\n$/);
    expect(r.stderr).toBe('vmmr: the service ended the event stream after event 1: shutdown\n');
  });
});
