/**
 * The client options work before the command (`vmmr --url X ls`), an unknown command says so,
 * and `--json` makes an error one JSON document too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, type VmmrApp } from '../../src/server/app.js';
import { loadConfig } from '../../src/server/config.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import { vmmr } from '../support/cli.js';

const apps: VmmrApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function service(): Promise<string> {
  const app = await buildApp({ config: loadConfig({}), topology: DEFAULT_TOPOLOGY, logger: false });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return `http://127.0.0.1:${address.port}`;
}

describe('vmmr options before the command', () => {
  it('takes --url and --json before the command as after it', async () => {
    const url = await service();
    const before = await vmmr(['--url', url, '--json', 'ls']);
    const after = await vmmr(['ls', '--url', url, '--json']);
    expect(before.stderr).toBe('');
    expect(before.code).toBe(0);
    expect(before.stdout).toBe(after.stdout);
    expect(JSON.parse(before.stdout)).toBeTruthy();
    const equals = await vmmr([`--url=${url}`, 'cfg', '01:00.0', 'VENDOR_ID']);
    expect(equals.stdout).toBe('1af4\n');
  });

  it('says a command is unknown instead of blaming serve', async () => {
    const r = await vmmr(['frob']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "vmmr: unknown command 'frob': one of serve, ls, sriov, cfg, bar, io, dump, events, attach, detach (vmmr --help)\n",
    );
    expect((await vmmr(['--url', 'http://127.0.0.1:1', 'frob'])).stderr).toContain("unknown command 'frob'");
  });

  it('prints an error as one JSON document with --json', async () => {
    const url = await service();
    const r = await vmmr(['--json', '--url', url, 'cfg', '01:00.1', 'VENDOR_ID']);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({
      error: {
        message:
          '0000:01:00.1 is VF 1 of PF 0000:01:00.0, which is not enabled (VF Enable 0, NumVFs 0) (VMMR_ERR_VF_DISABLED)',
        code: 'VMMR_ERR_VF_DISABLED',
        status: 410,
        exitCode: 1,
      },
    });
  });
});
