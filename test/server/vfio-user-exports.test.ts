/**
 * vfio-user exports over REST (docs/vfio-user.md "Starting and stopping"): POST starts a socket
 * a real client connects to, GET lists it with the client, DELETE closes it (the client sees the
 * socket close), a VF going away or a PF removed closes it, the topology starts per-VF exports,
 * sockets are 0600 and stay inside VMMR_SOCKET_DIR.
 */
import { existsSync, mkdirSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTopology } from '../../src/machine/topology.js';
import type { VmmrApp } from '../../src/server/app.js';
import type { VfioUserExport } from '../../src/views/shapes.js';
import { TestClient, VFIO, le } from '../support/vfio-user-client.js';
import { openFds, until } from '../support/vfio-user-fixture.js';
import {
  BLK_PF,
  NET_PF,
  VF1,
  VF2,
  call,
  enableVfs,
  ok,
  problem,
  socketDir,
  testApp,
} from '../support/server.js';

const DIR = socketDir();
const clients: TestClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function connect(path: string): TestClient {
  const c = TestClient.connect(path);
  clients.push(c);
  return c;
}

async function app(env: Record<string, string> = { VMMR_SOCKET_DIR: DIR }): Promise<VmmrApp> {
  return testApp({ env });
}

const exportOf = (bdf: string) => `/api/v1/functions/${bdf}/vfio-user`;

describe('POST, GET, DELETE /api/v1/functions/{bdf}/vfio-user', () => {
  it('a client of the guest view reads 1af4:1000 and is listed; DELETE closes its socket', async () => {
    const a = await app();
    await enableVfs(a, 2);
    const res = await call(a, 'POST', exportOf(VF1), { socket: 'vf1.sock' });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe(exportOf(VF1));
    const info = res.json() as VfioUserExport;
    expect(info).toMatchObject({
      bdf: VF1,
      view: 'guest',
      socket: join(DIR, 'vf1.sock'),
      source: 'api',
      client: null,
    });
    expect(statSync(info.socket).mode & 0o777).toBe(0o600);
    expect(statSync(info.socket).isSocket()).toBe(true);

    const c = connect(info.socket);
    await c.version();
    const ids = le(await c.regionRead(VFIO.REGION_CONFIG, 0, 4));
    expect(ids).toBe(0x1000_1af4);
    const listed = await ok<{ items: VfioUserExport[] }>(a, 'GET', '/api/v1/vfio-user');
    expect(listed.items).toHaveLength(1);
    expect(listed.items[0]!.client).toMatchObject({ negotiated: true, commands: 2, refusals: 0 });
    expect(listed.items[0]!.client!.byCommand).toEqual({
      'VFIO_USER_VERSION (1)': 1,
      'VFIO_USER_REGION_READ (9)': 1,
    });

    expect((await call(a, 'DELETE', exportOf(VF1))).statusCode).toBe(204);
    await c.eof();
    expect(existsSync(info.socket)).toBe(false);
    expect((await ok<{ items: unknown[] }>(a, 'GET', '/api/v1/vfio-user')).items).toEqual([]);
    expect(problem(await call(a, 'GET', exportOf(VF1))).code).toBe('VMMR_ERR_NOT_EXPORTED');
  });

  it('the function view of a PF serves its own config space (1af4:1041)', async () => {
    const a = await app();
    const info = await ok<VfioUserExport>(a, 'POST', exportOf(NET_PF), {
      socket: 'pf.sock',
      view: 'function',
    });
    const c = connect(info.socket);
    await c.version();
    expect(le(await c.regionRead(VFIO.REGION_CONFIG, 0, 4))).toBe(0x1041_1af4);
  });

  it('409 when exported already; the first export keeps working', async () => {
    const a = await app();
    await enableVfs(a, 1);
    const first = await ok<VfioUserExport>(a, 'POST', exportOf(VF1), { socket: 'twice.sock' });
    const again = await call(a, 'POST', exportOf(VF1), { socket: 'twice-2.sock', view: 'function' });
    expect(again.statusCode).toBe(409);
    expect(problem(again)).toMatchObject({ code: 'VMMR_ERR_EXPORTED', bdf: VF1 });
    expect(problem(again).detail).toContain(first.socket);
    expect(existsSync(join(DIR, 'twice-2.sock'))).toBe(false);
    const c = connect(first.socket);
    expect((await c.version()).error).toBe(0);
  });

  it('refuses sockets outside VMMR_SOCKET_DIR (.., a symlink out, another directory) and names why', async () => {
    const a = await app();
    const outside = socketDir();
    const link = join(DIR, 'out');
    symlinkSync(outside, link);
    for (const socket of ['../escape.sock', `${outside}/x.sock`, 'out/x.sock', '/tmp/vmmr-x.sock']) {
      const res = await call(a, 'POST', exportOf(NET_PF), { socket, view: 'function' });
      expect(res.statusCode, socket).toBe(400);
      expect(problem(res)).toMatchObject({ code: 'VMMR_ERR_BAD_VALUE' });
      expect(problem(res).detail).toMatch(/outside the socket directory/);
    }
    mkdirSync(join(DIR, 'sub'), { recursive: true });
    const inside = await call(a, 'POST', exportOf(NET_PF), { socket: 'sub/pf.sock', view: 'function' });
    expect(inside.statusCode).toBe(201);
  });

  it('without VMMR_SOCKET_DIR: 409 VMMR_ERR_NOT_CONFIGURED', async () => {
    const a = await app({});
    const res = await call(a, 'POST', exportOf(NET_PF), { socket: '/tmp/x.sock', view: 'function' });
    expect(problem(res)).toMatchObject({ status: 409, code: 'VMMR_ERR_NOT_CONFIGURED' });
    expect(problem(res).detail).toContain('VMMR_SOCKET_DIR');
  });

  it('the guest view of a PF is refused (422), a VF that is not enabled is 410', async () => {
    const a = await app();
    expect(problem(await call(a, 'POST', exportOf(NET_PF), { socket: 'g.sock' })).code).toBe(
      'VMMR_ERR_NOT_TRANSITIONAL',
    );
    expect((await call(a, 'POST', exportOf(VF1), { socket: 'g.sock' })).statusCode).toBe(410);
    expect(existsSync(join(DIR, 'g.sock'))).toBe(false);
  });
});

describe('exports close when their function goes away', () => {
  it('VF Enable cleared: the VF export closes (the client sees it), the PF export stays', async () => {
    const a = await app();
    await enableVfs(a, 2);
    const vf = await ok<VfioUserExport>(a, 'POST', exportOf(VF2), { socket: 'gone-vf.sock' });
    const pf = await ok<VfioUserExport>(a, 'POST', exportOf(NET_PF), {
      socket: 'gone-pf.sock',
      view: 'function',
    });
    const c = connect(vf.socket);
    await c.version();
    const fdsBefore = openFds();
    await enableVfs(a, 0);
    await c.eof();
    expect(existsSync(vf.socket)).toBe(false);
    expect(existsSync(pf.socket)).toBe(true);
    expect(
      (await ok<{ items: VfioUserExport[] }>(a, 'GET', '/api/v1/vfio-user')).items.map((e) => e.bdf),
    ).toEqual([NET_PF]);
    // the listening socket and the accepted connection are closed
    await until(() => openFds() <= fdsBefore - 2);
  });

  it('PF removed: its exports and its VFs exports close', async () => {
    const a = await app();
    await enableVfs(a, 1, BLK_PF);
    const blkVf = '0000:81:00.1';
    await ok(a, 'POST', exportOf(blkVf), { socket: 'blk-vf.sock' });
    const pf = await ok<VfioUserExport>(a, 'POST', exportOf(BLK_PF), {
      socket: 'blk-pf.sock',
      view: 'function',
    });
    const c = connect(pf.socket);
    await c.version();
    expect((await call(a, 'DELETE', `/api/v1/pfs/${BLK_PF}`)).statusCode).toBe(204);
    await c.eof();
    expect((await ok<{ items: unknown[] }>(a, 'GET', '/api/v1/vfio-user')).items).toEqual([]);
  });

  it('POST /api/v1/reset closes every export', async () => {
    const a = await app();
    const pf = await ok<VfioUserExport>(a, 'POST', exportOf(NET_PF), {
      socket: 'reset.sock',
      view: 'function',
    });
    const c = connect(pf.socket);
    await c.version();
    await ok(a, 'POST', '/api/v1/reset');
    await c.eof();
    expect((await ok<{ items: unknown[] }>(a, 'GET', '/api/v1/vfio-user')).items).toEqual([]);
  });

  it('closing the app closes every export and removes its socket', async () => {
    const a = await app();
    const pf = await ok<VfioUserExport>(a, 'POST', exportOf(NET_PF), {
      socket: 'close.sock',
      view: 'function',
    });
    const c = connect(pf.socket);
    await c.version();
    await a.close();
    await c.eof();
    expect(existsSync(pf.socket)).toBe(false);
  });
});

describe('per-VF exports in the topology', () => {
  const topology = parseTopology(
    {
      pfs: [
        {
          bdf: NET_PF,
          type: 'net',
          totalVfs: 4,
          initialVfs: 4,
          vfs: {
            [VF1]: { vfioUser: { socket: 'topo-vf1.sock' }, legacyOnly: true },
            [VF2]: { vfioUser: { socket: join(DIR, 'topo-vf2.sock'), view: 'function' } },
          },
        },
      ],
    },
    'test topology',
  );

  it('start when the VF is live, close when it goes, start again when it comes back', async () => {
    const a = await testApp({ env: { VMMR_SOCKET_DIR: DIR }, topology });
    const listed = async (): Promise<VfioUserExport[]> =>
      (await ok<{ items: VfioUserExport[] }>(a, 'GET', '/api/v1/vfio-user')).items;
    expect(await listed()).toEqual([]);
    await enableVfs(a, 2);
    expect((await listed()).map((e) => [e.bdf, e.view, e.source])).toEqual([
      [VF1, 'guest', 'topology'],
      [VF2, 'function', 'topology'],
    ]);
    const c = connect(join(DIR, 'topo-vf1.sock'));
    await c.version();
    // legacyOnly from the same entry: the guest's capability list is PCI Express, MSI-X, end
    const ids: number[] = [];
    for (let at = le(await c.regionRead(VFIO.REGION_CONFIG, 0x34, 1)); at !== 0;) {
      ids.push(le(await c.regionRead(VFIO.REGION_CONFIG, at, 1)));
      at = le(await c.regionRead(VFIO.REGION_CONFIG, at + 1, 1));
    }
    expect(ids).toEqual([0x10, 0x11]);
    await enableVfs(a, 0);
    await c.eof();
    expect(await listed()).toEqual([]);
    await enableVfs(a, 1);
    expect((await listed()).map((e) => e.bdf)).toEqual([VF1]);
  });

  it('a topology export whose socket is refused stops the start-up with the reason', async () => {
    const bad = parseTopology(
      {
        pfs: [
          { bdf: NET_PF, type: 'net', totalVfs: 1, vfs: { [VF1]: { vfioUser: { socket: '/etc/x.sock' } } } },
        ],
      },
      'bad topology',
    );
    await expect(testApp({ env: { VMMR_SOCKET_DIR: DIR }, topology: bad })).rejects.toThrow(
      /outside the socket directory/,
    );
  });
});
