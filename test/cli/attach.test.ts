/**
 * `vmmr attach` / `vmmr detach` against the real REST service started in process with a socket
 * directory: the printed socket accepts a vfio-user client that reads the guest view's IDs;
 * detach closes it; refusals come back as one line with the service's code.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import { loadConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/main.js';
import { vmmr, type CliRun } from '../support/cli.js';
import { socketDir } from '../support/server.js';
import { TestClient, VFIO, le } from '../support/vfio-user-client.js';

const DIR = socketDir();
let server: RunningServer;

beforeAll(async () => {
  const config = {
    ...loadConfig({ VMMR_SOCKET_DIR: DIR }),
    host: '127.0.0.1',
    port: 0,
    logLevel: 'silent' as const,
  };
  server = await startServer(config, DEFAULT_TOPOLOGY, { handleSignals: false, logger: false });
});

afterAll(async () => {
  await server?.close();
});

function cli(args: string[]): Promise<CliRun> {
  return vmmr(args, { env: { VMMR_URL: server.url } });
}

describe('vmmr attach and vmmr detach', () => {
  it('attach prints the socket; a client reads 1af4:1000 there; the list shows it; detach closes it', async () => {
    expect((await cli(['sriov', '01:00.0', '2'])).code).toBe(0);
    const attach = await cli(['attach', '01:00.1', 'vf1.sock']);
    expect(attach.stderr).toBe('');
    expect(attach.code).toBe(0);
    const socket = join(DIR, 'vf1.sock');
    expect(attach.stdout).toBe(`${socket}\n`);

    const c = TestClient.connect(socket);
    try {
      await c.version();
      expect(le(await c.regionRead(VFIO.REGION_CONFIG, 0, 4))).toBe(0x1000_1af4);
      const list = await cli(['attach']);
      expect(list.stdout).toMatch(
        new RegExp(
          `^0000:01:00\\.1  guest     ${socket}  client connected \\(2 commands, 0 DMA maps, 0 refusals\\)\\n$`,
        ),
      );
      const detach = await cli(['detach', '01:00.1']);
      expect(detach).toMatchObject({ code: 0, stdout: '', stderr: '' });
      await c.eof();
      expect(existsSync(socket)).toBe(false);
    } finally {
      c.close();
    }
  });

  it('--view function exports the PF as it is; --json answers the export', async () => {
    const r = await cli(['attach', '01:00.0', 'pf.sock', '--view', 'function', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ bdf: '0000:01:00.0', view: 'function', client: null });
    expect((await cli(['detach', '01:00.0'])).code).toBe(0);
  });

  it('refusals: twice, outside the directory, detach of nothing, a bad view', async () => {
    expect((await cli(['attach', '81:00.0', 'blk.sock', '--view', 'function'])).code).toBe(0);
    const twice = await cli(['attach', '81:00.0', 'blk2.sock', '--view', 'function']);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/^vmmr: 0000:81:00\.0 is already exported .*\(VMMR_ERR_EXPORTED\)\n$/);
    const outside = await cli(['attach', '01:00.0', '/etc/x.sock', '--view', 'function']);
    expect(outside.stderr).toMatch(/outside the socket directory.*\(VMMR_ERR_BAD_VALUE\)/);
    const nothing = await cli(['detach', '01:00.0']);
    expect(nothing.stderr).toMatch(/is not exported over vfio-user \(VMMR_ERR_NOT_EXPORTED\)/);
    const view = await cli(['attach', '01:00.0', 'x.sock', '--view', 'modern']);
    expect(view.code).toBe(2);
    expect(view.stderr).toBe('vmmr: --view "modern": expected guest or function\n');
    expect((await cli(['detach', '81:00.0'])).code).toBe(0);
  });
});
