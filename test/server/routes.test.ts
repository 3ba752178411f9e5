/** Every route through app.inject(): shapes, conventions and behaviour. */
import { describe, expect, it } from 'vitest';
import { formatBdf } from '../../src/pci/bdf.js';
import { sriovCap, pciHeader, legacy } from '../../src/spec/index.js';
import { BLK_PF, NET_PF, VF1, VF2, call, enableVfs, ok, problem, testApp } from '../support/server.js';
import { STATE_VERSION } from '../../src/machine/state.js';

const fn = (bdf: string): string => `/api/v1/functions/${bdf}`;
const H = pciHeader.registers;
const L = legacy.registers;
const LEGACY = 0x1000;

describe('service routes', () => {
  it('GET /healthz and /readyz', async () => {
    const app = await testApp();
    expect(await ok(app, 'GET', '/healthz')).toEqual({ status: 'ok' });
    expect(await ok(app, 'GET', '/readyz')).toEqual({ status: 'ready', pfs: 2, vfs: 0 });
    await enableVfs(app, 3);
    expect(await ok(app, 'GET', '/readyz')).toEqual({ status: 'ready', pfs: 2, vfs: 3 });
  });

  it('GET /metrics: accesses by space/width/outcome, VFs per PF, subscribers, latency', async () => {
    const app = await testApp();
    await enableVfs(app, 5);
    await call(app, 'GET', `${fn(NET_PF)}/config/0?width=4`);
    await call(app, 'GET', `${fn(NET_PF)}/config/2?width=4`);
    await call(app, 'POST', '/api/v1/access', {
      ops: [
        { bdf: VF1, space: 'bar2', op: 'read', offset: LEGACY, width: 4 },
        { bdf: VF1, space: 'bar2', op: 'read', offset: LEGACY, length: 4 },
      ],
    });
    const res = await call(app, 'GET', '/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const text = res.body;
    expect(text).toContain('vmmr_accesses_total{space="config",width="4",op="read",outcome="ok"} 1');
    expect(text).toContain(
      'vmmr_accesses_total{space="config",width="4",op="read",outcome="VMMR_ERR_UNALIGNED"} 1',
    );
    expect(text).toContain('vmmr_accesses_total{space="bar2",width="4",op="read",outcome="ok"} 1');
    expect(text).toContain('vmmr_accesses_total{space="bar2",width="block",op="read",outcome="ok"} 1');
    expect(text).toContain(`vmmr_vfs_enabled{pf="${NET_PF}"} 5`);
    expect(text).toContain(`vmmr_vfs_enabled{pf="${BLK_PF}"} 0`);
    expect(text).toContain('vmmr_event_subscribers 0');
    expect(text).toMatch(
      /vmmr_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/access",status_code="200"\} 1/,
    );
  });

  it('keeps metrics per app instance', async () => {
    const a = await testApp();
    const b = await testApp();
    await call(a, 'GET', `${fn(NET_PF)}/config/0?width=4`);
    expect((await call(b, 'GET', '/metrics')).body).not.toContain('outcome="ok"');
  });
});

describe('PFs and SR-IOV', () => {
  it('GET /api/v1/pfs lists PF summaries', async () => {
    const app = await testApp();
    const { items } = await ok<{ items: Array<Record<string, unknown>> }>(app, 'GET', '/api/v1/pfs');
    expect(items).toEqual([
      {
        bdf: NET_PF,
        type: 'net',
        totalVfs: 1024,
        initialVfs: 1024,
        firstVfOffset: 1,
        vfStride: 1,
        queueSize: 256,
        policy: 'strict',
        notify: 'notify-region',
        numVfs: 0,
        vfEnabled: false,
        vfMemoryEnabled: false,
        vfDeviceId: '0x10f9',
      },
      expect.objectContaining({ bdf: BLK_PF, type: 'block', vfDeviceId: '0x10fa' }),
    ]);
  });

  it('POST /api/v1/pfs adds a PF (201, Location), GET and DELETE it', async () => {
    const app = await testApp();
    const res = await call(app, 'POST', '/api/v1/pfs', {
      bdf: 'a0:00.0',
      type: 'console',
      totalVfs: 8,
      vfStride: 2,
      policy: 'compat',
      notify: 'legacy-register',
    });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe('/api/v1/pfs/0000:a0:00.0');
    expect(res.json()).toMatchObject({
      bdf: '0000:a0:00.0',
      type: 'console',
      totalVfs: 8,
      initialVfs: 8,
      vfStride: 2,
      vfDeviceId: '0x10fc',
    });
    expect(await ok(app, 'GET', '/api/v1/pfs/a0:00.0')).toMatchObject({
      bdf: '0000:a0:00.0',
      policy: 'compat',
    });
    await enableVfs(app, 2, '0000:a0:00.0');
    expect(
      (await ok<{ vfs: { items: string[] } }>(app, 'GET', '/api/v1/pfs/0000:a0:00.0/sriov')).vfs.items,
    ).toEqual(['0000:a0:00.1', '0000:a0:00.3']);
    const del = await call(app, 'DELETE', '/api/v1/pfs/0000:a0:00.0');
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe('');
    expect(problem(await call(app, 'GET', '/api/v1/pfs/0000:a0:00.0')).code).toBe('VMMR_ERR_NO_FUNCTION');
    expect(problem(await call(app, 'GET', fn('0000:a0:00.1'))).code).toBe('VMMR_ERR_NO_FUNCTION');
  });

  it('POST /api/v1/pfs applies the topology rules, naming the field', async () => {
    const app = await testApp();
    const p = problem(
      await call(app, 'POST', '/api/v1/pfs', { bdf: '02:00.0', type: 'net', totalVfs: 4, queueSize: 100 }),
    );
    expect(p).toMatchObject({ code: 'VMMR_ERR_BAD_REQUEST', status: 400 });
    expect(p.detail).toBe('body.queueSize: expected a power of two 1..32768, got 100');
    const q = problem(
      await call(app, 'POST', '/api/v1/pfs', {
        bdf: '02:00.0',
        type: 'block',
        totalVfs: 4,
        vfs: { '02:00.1': { mac: '52:54:00:00:00:01' } },
      }),
    );
    expect(q.detail).toBe('body.vfs["02:00.1"].mac: "mac" applies only to a net PF, this PF is block');
  });

  it('PUT …/sriov enables, keeps, refuses a nonzero change, disables', async () => {
    const app = await testApp();
    const url = `/api/v1/pfs/${NET_PF}/sriov`;
    const on = await ok<Record<string, unknown>>(app, 'PUT', url, { numVfs: 16 });
    expect(on).toMatchObject({
      numVfs: 16,
      totalVfs: 1024,
      vfEnabled: true,
      vfMemoryEnabled: true,
      firstVfOffset: 1,
      vfStride: 1,
      vfDeviceId: '0x10f9',
      vfBarSize: 16384,
      vfs: { total: 16, nextCursor: null },
    });
    expect((on.vfs as { items: string[] }).items).toHaveLength(16);
    expect((on.vfs as { items: string[] }).items[15]).toBe('0000:01:02.0');
    // The same count again changes nothing.
    expect(await ok(app, 'PUT', url, { numVfs: 16 })).toMatchObject({ numVfs: 16, vfEnabled: true });
    const busy = problem(await call(app, 'PUT', url, { numVfs: 8 }));
    expect(busy).toMatchObject({ code: 'VMMR_ERR_SRIOV_STATE', status: 409, bdf: NET_PF });
    expect(busy.detail).toContain('set numVfs to 0 first');
    const off = await ok(app, 'PUT', url, { numVfs: 0 });
    expect(off).toMatchObject({
      numVfs: 0,
      vfEnabled: false,
      vfMemoryEnabled: false,
      vfs: { items: [], total: 0, nextCursor: null },
    });
    expect(await ok(app, 'PUT', url, { numVfs: 8 })).toMatchObject({ numVfs: 8, vfEnabled: true });
  });

  it('PUT …/sriov goes through the PF config space: the registers show it', async () => {
    const app = await testApp();
    const pf = app.vmmr.emulator.machine.findPf(NET_PF);
    await enableVfs(app, 4);
    const ctrl = await ok<{ value: string }>(
      app,
      'GET',
      `${fn(NET_PF)}/config/${pf.sriov + sriovCap.registers.CTRL.offset}?width=2`,
    );
    expect(Number(ctrl.value)).toBe(sriovCap.constants.CTRL_VFE.value | sriovCap.constants.CTRL_MSE.value);
    const num = await ok<{ value: string }>(
      app,
      'GET',
      `${fn(NET_PF)}/config/${pf.sriov + sriovCap.registers.NUM_VF.offset}?width=2`,
    );
    expect(num.value).toBe('0x0004');
  });

  it('PUT …/sriov reverts NumVFs when the process VF limit refuses VF Enable', async () => {
    const app = await testApp({ env: { VMMR_MAX_VFS: '10' } });
    await enableVfs(app, 6);
    const p = problem(await call(app, 'PUT', `/api/v1/pfs/${BLK_PF}/sriov`, { numVfs: 5 }));
    expect(p).toMatchObject({ code: 'VMMR_ERR_LIMIT', status: 409 });
    expect(await ok(app, 'GET', `/api/v1/pfs/${BLK_PF}`)).toMatchObject({ numVfs: 0, vfEnabled: false });
    expect(await ok(app, 'PUT', `/api/v1/pfs/${BLK_PF}/sriov`, { numVfs: 4 })).toMatchObject({ numVfs: 4 });
  });

  it('GET …/sriov pages the VF list with limit and cursor', async () => {
    const app = await testApp();
    await enableVfs(app, 10);
    const url = `/api/v1/pfs/${NET_PF}/sriov`;
    const seen: string[] = [];
    let cursor: string | null = '';
    let pages = 0;
    while (cursor !== null) {
      const page: { vfs: { items: string[]; total: number; nextCursor: string | null } } = await ok(
        app,
        'GET',
        `${url}?limit=4${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.vfs.total).toBe(10);
      seen.push(...page.vfs.items);
      cursor = page.vfs.nextCursor;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(
      Array.from(
        { length: 10 },
        (_, n) => `0000:01:${(((n + 1) >> 3) & 0x1f).toString(16).padStart(2, '0')}.${(n + 1) & 7}`,
      ),
    );
    expect(problem(await call(app, 'GET', `${url}?limit=4097`)).code).toBe('VMMR_ERR_BAD_REQUEST');
    expect(problem(await call(app, 'GET', `${url}?cursor=nope`)).code).toBe('VMMR_ERR_BAD_REQUEST');
    // PUT answers with the same page parameters.
    const put = await ok<{ vfs: { items: string[]; nextCursor: string } }>(app, 'PUT', `${url}?limit=2`, {
      numVfs: 10,
    });
    expect(put.vfs.items).toEqual([VF1, VF2]);
    expect(put.vfs.nextCursor).toBe(VF2);
  });
});

describe('functions', () => {
  it('GET /api/v1/functions pages PFs followed by their VFs', async () => {
    const app = await testApp();
    await enableVfs(app, 3);
    await enableVfs(app, 2, BLK_PF);
    const all = await ok<{
      items: Array<{ bdf: string; kind: string }>;
      total: number;
      nextCursor: string | null;
    }>(app, 'GET', '/api/v1/functions');
    expect(all.total).toBe(7);
    expect(all.nextCursor).toBeNull();
    expect(all.items.map((f) => f.bdf)).toEqual([
      NET_PF,
      VF1,
      VF2,
      '0000:01:00.3',
      BLK_PF,
      '0000:81:00.1',
      '0000:81:00.2',
    ]);
    expect(all.items[1]).toEqual({
      bdf: VF1,
      kind: 'vf',
      type: 'net',
      pf: NET_PF,
      vfIndex: 0,
      vendorId: '0x1af4',
      deviceId: '0x10f9',
      status: '0x00',
    });
    expect(all.items[0]).toMatchObject({ kind: 'pf', vendorId: '0x1af4', deviceId: '0x1041' });

    const pages: string[][] = [];
    let cursor = '';
    for (;;) {
      const page: { items: Array<{ bdf: string }>; nextCursor: string | null } = await ok(
        app,
        'GET',
        `/api/v1/functions?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      pages.push(page.items.map((i) => i.bdf));
      if (page.nextCursor === null) break;
      cursor = page.nextCursor;
    }
    expect(pages.flat()).toEqual(all.items.map((f) => f.bdf));
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);

    const vfs = await ok<{ items: Array<{ bdf: string }>; total: number }>(
      app,
      'GET',
      `/api/v1/functions?kind=vf&pf=${BLK_PF}`,
    );
    expect(vfs.total).toBe(2);
    expect(vfs.items.map((f) => f.bdf)).toEqual(['0000:81:00.1', '0000:81:00.2']);
    const pfs = await ok<{ items: Array<{ bdf: string }>; total: number }>(
      app,
      'GET',
      '/api/v1/functions?kind=pf',
    );
    expect(pfs.items.map((f) => f.bdf)).toEqual([NET_PF, BLK_PF]);
  });

  it('GET /api/v1/functions resumes after a cursor whose VF went away', async () => {
    const app = await testApp();
    await enableVfs(app, 4);
    await enableVfs(app, 1, BLK_PF);
    const first = await ok<{ nextCursor: string }>(app, 'GET', '/api/v1/functions?limit=3');
    expect(first.nextCursor).toBe(VF2);
    await ok(app, 'PUT', `/api/v1/pfs/${NET_PF}/sriov`, { numVfs: 0 });
    const next = await ok<{ items: Array<{ bdf: string }> }>(
      app,
      'GET',
      `/api/v1/functions?cursor=${first.nextCursor}`,
    );
    expect(next.items.map((f) => f.bdf)).toEqual([BLK_PF, '0000:81:00.1']);
  });

  it('GET /api/v1/functions stays cheap with 60,000 VFs', async () => {
    const app = await testApp({
      topology: {
        pfs: [
          {
            bdf: '0000:10:00.0',
            type: 'net',
            totalVfs: 60000,
            initialVfs: 0,
            firstVfOffset: 1,
            vfStride: 1,
            queueSize: 256,
            policy: 'strict',
            notify: 'notify-region',
            vfs: {},
          },
        ],
      },
    });
    await enableVfs(app, 60000, '0000:10:00.0');
    const t0 = performance.now();
    const page = await ok<{ items: unknown[]; total: number; nextCursor: string }>(
      app,
      'GET',
      '/api/v1/functions?kind=vf&limit=256&cursor=0000:10:00.1',
    );
    const firstPageMs = performance.now() - t0;
    expect(page.total).toBe(60000);
    expect(page.items).toHaveLength(256);
    // The page after VF 59989 (0-based): the last ten VFs.
    const cursor = formatBdf(0, 0x1000 + 1 + 59989);
    const last = await ok<{ items: Array<{ bdf: string; vfIndex: number }>; nextCursor: string | null }>(
      app,
      'GET',
      `/api/v1/functions?limit=100&cursor=${cursor}`,
    );
    expect(last.items.map((f) => f.vfIndex)).toEqual(Array.from({ length: 10 }, (_, k) => 59990 + k));
    expect(last.nextCursor).toBeNull();
    // Not a timing assertion of the service: a sanity bound far above a page's cost.
    expect(firstPageMs).toBeLessThan(5000);
  });

  it('GET /api/v1/functions/{bdf} describes a VF', async () => {
    const app = await testApp();
    await enableVfs(app, 2);
    const d = await ok<Record<string, unknown>>(app, 'GET', fn(VF2));
    expect(d).toMatchObject({
      bdf: VF2,
      kind: 'vf',
      type: 'net',
      pf: NET_PF,
      vfIndex: 1,
      vendorId: '0x1af4',
      deviceId: '0x10f9',
      configVendorId: '0xffff',
      configDeviceId: '0xffff',
      revision: '0x00',
      classCode: '0x020000',
      subsystemVendorId: '0x1af4',
      subsystemId: '0x0001',
      bars: [
        {
          index: 2,
          type: 'memory',
          is64: true,
          prefetchable: false,
          size: 16384,
          address: '0x0000000000004000',
          decoding: true,
        },
      ],
      mmrLocator: { bar: 2, offset: 0x1000, length: expect.any(Number) },
      identity: { mac: '02:00:00:00:01:02' },
    });
    const caps = d.capabilities as Array<{
      kind: string;
      id: string;
      name: string;
      offset: number;
      vsec?: unknown;
      virtio?: unknown;
    }>;
    expect(caps.map((c) => c.name)).toEqual([
      'PCI Express',
      'MSI-X',
      'virtio common configuration',
      'virtio notifications',
      'virtio ISR status',
      'virtio device-specific configuration',
      'virtio PCI configuration access',
      'virtio MMR locator (Vendor-Specific Extended, cfg_type 10)',
    ]);
    expect(caps[7]).toMatchObject({
      kind: 'extended',
      id: '0x000b',
      offset: 0x100,
      version: 1,
      vsec: { id: '0x000a', rev: 0, length: 0x1c },
    });
    expect(caps[2]).toMatchObject({
      kind: 'standard',
      id: '0x09',
      virtio: { cfgType: 1, bar: 2, offset: 0, length: 64 },
    });
    const virtio = d.virtio as Record<string, unknown>;
    expect(virtio).toMatchObject({
      status: '0x00',
      statusBits: [],
      isr: '0x00',
      configGeneration: 0,
      configVector: 0xffff,
      legacyConfigOffset: 20,
      msix: { enabled: false, masked: false, vectors: 4 },
    });
    expect(virtio.deviceFeatures).toMatch(/^0x[0-9a-f]{16}$/);
    expect((virtio.queues as unknown[]).length).toBe(3);
    expect(d).not.toHaveProperty('guest');
  });

  it('GET /api/v1/functions/{bdf} describes a PF and a block VF', async () => {
    const app = await testApp();
    await enableVfs(app, 1, BLK_PF);
    const pf = await ok<Record<string, unknown>>(app, 'GET', fn(BLK_PF));
    expect(pf).toMatchObject({
      kind: 'pf',
      vendorId: '0x1af4',
      deviceId: '0x1042',
      configDeviceId: '0x1042',
      revision: '0x01',
      bars: [{ index: 0, is64: true, prefetchable: false, decoding: false }],
      sriov: { numVfs: 1, totalVfs: 1024, vfEnabled: true, vfDeviceId: '0x10fa' },
      intx: { pin: 'A', asserted: false },
      identity: { serial: 'VMMR00008100' },
    });
    const names = (pf.capabilities as Array<{ name: string }>).map((c) => c.name);
    expect(names).toContain('Single Root I/O Virtualization (SR-IOV)');
    expect(names).toContain('Alternative Routing-ID Interpretation (ARI)');
    const vf = await ok<Record<string, unknown>>(app, 'GET', fn('0000:81:00.1'));
    expect(vf).toMatchObject({ type: 'block', deviceId: '0x10fa', identity: { serial: 'VMMR00008101' } });
  });

  it('decodes the virtio status bits', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    await ok(app, 'PUT', `${fn(VF1)}/bars/2/${LEGACY + L.STATUS.offset}`, { width: 1, value: 7 });
    const d = await ok<{ status: string; virtio: { status: string; statusBits: string[] } }>(
      app,
      'GET',
      fn(VF1),
    );
    expect(d.status).toBe('0x07');
    expect(d.virtio.statusBits).toEqual(['ACKNOWLEDGE', 'DRIVER', 'DRIVER_OK']);
  });
});

describe('config space', () => {
  it('GET …/config as json, hex and lspci', async () => {
    const app = await testApp();
    const json = await ok<{ bdf: string; length: number; data: string }>(app, 'GET', `${fn(NET_PF)}/config`);
    expect(json.bdf).toBe(NET_PF);
    expect(json.length).toBe(4096);
    expect(json.data).toHaveLength(8192);
    expect(json.data.slice(0, 8)).toBe('f41a4110');
    const hex = await call(app, 'GET', `${fn(NET_PF)}/config?format=hex`);
    expect(hex.headers['content-type']).toMatch(/^text\/plain/);
    expect(hex.body.split('\n')[0]).toBe('000: f4 1a 41 10 00 00 10 00 01 00 00 02 00 00 00 00');
    const lspci = await call(app, 'GET', `${fn(NET_PF)}/config?format=lspci`);
    expect(lspci.headers['content-type']).toMatch(/^text\/plain/);
    const lines = lspci.body.split('\n');
    expect(lines[0]).toBe(`${NET_PF} Ethernet controller: Red Hat, Inc. Virtio 1.0 network device`);
    expect(lines[1]).toBe('00: f4 1a 41 10 00 00 10 00 01 00 00 02 00 00 00 00');
    expect(lines[17]).toMatch(/^100: /);
    expect(problem(await call(app, 'GET', `${fn(NET_PF)}/config?format=xml`)).code).toBe(
      'VMMR_ERR_BAD_REQUEST',
    );
  });

  it('GET/PUT …/config/{offset}: hex or decimal offsets, values as hex strings or numbers', async () => {
    const app = await testApp();
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/0?width=2`)).toEqual({
      bdf: NET_PF,
      space: 'config',
      offset: 0,
      width: 2,
      value: '0x1af4',
    });
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/0x2?width=2`)).toMatchObject({
      offset: 2,
      value: '0x1041',
    });
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/8?width=1`)).toMatchObject({ value: '0x01' });
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/0?width=4`)).toMatchObject({ value: '0x10411af4' });
    const cmd = H.COMMAND.offset;
    expect(await ok(app, 'PUT', `${fn(NET_PF)}/config/${cmd}`, { width: 2, value: '0x0006' })).toEqual({
      bdf: NET_PF,
      space: 'config',
      offset: cmd,
      width: 2,
      value: '0x0006',
    });
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/${cmd}?width=2`)).toMatchObject({ value: '0x0006' });
    await ok(app, 'PUT', `${fn(NET_PF)}/config/0x${cmd.toString(16)}`, { width: 2, value: 2 });
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/${cmd}?width=2`)).toMatchObject({ value: '0x0002' });
    await ok(app, 'PUT', `${fn(NET_PF)}/config/${cmd}`, { width: 2, value: '4' });
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/${cmd}?width=2`)).toMatchObject({ value: '0x0004' });
    // Read-only bits stay (Vendor ID).
    await ok(app, 'PUT', `${fn(NET_PF)}/config/0`, { width: 2, value: '0xffff' });
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/0?width=2`)).toMatchObject({ value: '0x1af4' });
  });

  it('needs exactly one of width and length, and {width, value} or {data}', async () => {
    const app = await testApp();
    expect(problem(await call(app, 'GET', `${fn(NET_PF)}/config/0`)).code).toBe('VMMR_ERR_BAD_REQUEST');
    expect(problem(await call(app, 'GET', `${fn(NET_PF)}/config/0?width=4&length=4`)).code).toBe(
      'VMMR_ERR_BAD_REQUEST',
    );
    expect(problem(await call(app, 'PUT', `${fn(NET_PF)}/config/4`, { width: 2 })).code).toBe(
      'VMMR_ERR_BAD_REQUEST',
    );
    expect(
      problem(await call(app, 'PUT', `${fn(NET_PF)}/config/4`, { width: 2, value: 1, data: '00' })).code,
    ).toBe('VMMR_ERR_BAD_REQUEST');
    expect(problem(await call(app, 'PUT', `${fn(NET_PF)}/config/4`, { width: 2, value: 'zz' })).code).toBe(
      'VMMR_ERR_BAD_VALUE',
    );
    expect(problem(await call(app, 'PUT', `${fn(NET_PF)}/config/4`, { width: 2, value: 2 ** 53 })).code).toBe(
      'VMMR_ERR_BAD_VALUE',
    );
    expect(problem(await call(app, 'PUT', `${fn(NET_PF)}/config/4`, { data: 'abc' })).code).toBe(
      'VMMR_ERR_BAD_VALUE',
    );
  });

  it('block reads and writes of config space', async () => {
    const app = await testApp();
    const r = await ok<Record<string, unknown>>(app, 'GET', `${fn(NET_PF)}/config/0?length=8`);
    expect(r).toEqual({ bdf: NET_PF, space: 'config', offset: 0, length: 8, data: 'f41a411000001000' });
    const w = await ok(app, 'PUT', `${fn(NET_PF)}/config/4`, { data: '0600' });
    expect(w).toEqual({ bdf: NET_PF, space: 'config', offset: 4, length: 2, data: '0600' });
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/4?width=2`)).toMatchObject({ value: '0x0006' });
  });
});

describe('BARs', () => {
  it('single accesses of 1, 2, 4 and 8 bytes', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const sel = LEGACY + L.QUEUE_SEL.offset;
    await ok(app, 'PUT', `${fn(VF1)}/bars/2/0x${sel.toString(16)}`, { width: 2, value: 1 });
    expect(await ok(app, 'GET', `${fn(VF1)}/bars/2/${sel}?width=2`)).toEqual({
      bdf: VF1,
      space: 'bar2',
      offset: sel,
      width: 2,
      value: '0x0001',
    });
    // An 8-byte write and read of an MSI-X table entry's address, whole.
    await ok(app, 'PUT', `${fn(VF1)}/bars/2/0x2000`, { width: 8, value: '0x00000001fee01000' });
    expect(await ok(app, 'GET', `${fn(VF1)}/bars/2/0x2000?width=8`)).toMatchObject({
      width: 8,
      value: '0x00000001fee01000',
    });
    expect(await ok(app, 'GET', `${fn(VF1)}/bars/2/0x2004?width=4`)).toMatchObject({ value: '0x00000001' });
    // Above 2^53: hex strings carry every bit.
    await ok(app, 'PUT', `${fn(VF1)}/bars/2/0x2010`, { width: 8, value: '0xfedcba9876543210' });
    expect(await ok(app, 'GET', `${fn(VF1)}/bars/2/0x2010?width=8`)).toMatchObject({
      value: '0xfedcba9876543210',
    });
  });

  it('block read and write: JSON hex and application/octet-stream', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    // 16 bytes of MSI-X vector 0: two 8-byte pieces.
    const entry = '0010e0fe010000002100000000000000';
    expect(await ok(app, 'PUT', `${fn(VF1)}/bars/2/0x2000`, { data: entry })).toEqual({
      bdf: VF1,
      space: 'bar2',
      offset: 0x2000,
      length: 16,
      data: entry,
    });
    expect(await ok(app, 'GET', `${fn(VF1)}/bars/2/0x2000?length=16`)).toMatchObject({
      length: 16,
      data: entry,
    });
    expect(await ok(app, 'GET', `${fn(VF1)}/bars/2/0x2008?width=4`)).toMatchObject({ value: '0x00000021' });
    const bin = await call(app, 'GET', `${fn(VF1)}/bars/2/0x2000?length=16`, undefined, {
      accept: 'application/octet-stream',
    });
    expect(bin.headers['content-type']).toBe('application/octet-stream');
    expect(bin.rawPayload.toString('hex')).toBe(entry);
    const json = await call(app, 'GET', `${fn(VF1)}/bars/2/0x2000?length=16`, undefined, {
      accept: 'application/json, application/octet-stream;q=0.5',
    });
    expect(json.headers['content-type']).toMatch(/^application\/json/);
    // Raw bytes in.
    const raw = Buffer.from('0020e0fe000000004100000000000000', 'hex');
    const put = await call(app, 'PUT', `${fn(VF1)}/bars/2/0x2010`, raw, {
      'content-type': 'application/octet-stream',
    });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({ offset: 0x2010, length: 16, data: raw.toString('hex') });
    expect(await ok(app, 'GET', `${fn(VF1)}/bars/2/0x2010?length=16`)).toMatchObject({
      data: raw.toString('hex'),
    });
  });

  it('a block read of the legacy device config returns the MAC', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const cfg = LEGACY + legacy.constants.CONFIG_OFF_NO_MSIX.value;
    const r = await ok<{ data: string }>(app, 'GET', `${fn(VF1)}/bars/2/${cfg}?length=6`);
    expect(r.data).toBe('020000000101');
  });

  it('a block stops at the first refused piece and names it', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const p = problem(await call(app, 'GET', `${fn(VF1)}/bars/2/0x1000?length=16`));
    expect(p).toMatchObject({
      code: 'VMMR_ERR_WIDTH_MISMATCH',
      offset: 0x1000,
      width: 8,
      register: 'HOST_FEATURES',
    });
    expect(p.detail).toContain('block read of 16 bytes at 0x1000 stopped after 0 bytes');
    const q = problem(await call(app, 'GET', `${fn(VF1)}/bars/2/0x3ff8?length=16`));
    expect(q).toMatchObject({ code: 'VMMR_ERR_OUT_OF_RANGE' });
    const r = problem(await call(app, 'GET', `${fn(VF1)}/bars/2/0?length=4097`));
    expect(r.code).toBe('VMMR_ERR_BAD_WIDTH');
  });

  it('a VF BAR decodes only while its PF has VF MSE set', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const pf = app.vmmr.emulator.machine.findPf(NET_PF);
    const ctrl = pf.sriov + sriovCap.registers.CTRL.offset;
    await ok(app, 'PUT', `${fn(NET_PF)}/config/${ctrl}`, {
      width: 2,
      value: sriovCap.constants.CTRL_VFE.value,
    });
    const p = problem(await call(app, 'GET', `${fn(VF1)}/bars/2/0x1000?width=4`));
    expect(p).toMatchObject({ code: 'VMMR_ERR_DECODE_DISABLED', status: 409 });
    expect(problem(await call(app, 'GET', `${fn(VF1)}/bars/x/0?width=4`)).code).toBe('VMMR_ERR_BAD_SPACE');
  });
});

describe('guest view', () => {
  it('guest config: dump, read, write Command.IO, then guest I/O', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const dump = await ok<{ data: string }>(app, 'GET', `${fn(VF1)}/guest/config`);
    expect(dump.data.slice(0, 8)).toBe('f41a0010');
    const lspci = await call(app, 'GET', `${fn(VF1)}/guest/config?format=lspci`);
    expect(lspci.body.split('\n')[0]).toBe(`${VF1} Ethernet controller: Red Hat, Inc. Virtio network device`);
    expect(await ok(app, 'GET', `${fn(VF1)}/guest/config/0?width=4`)).toMatchObject({
      space: 'guest-config',
      value: '0x10001af4',
    });
    expect(problem(await call(app, 'GET', `${fn(VF1)}/guest/io/0?width=4`)).code).toBe(
      'VMMR_ERR_IO_DISABLED',
    );
    await ok(app, 'PUT', `${fn(VF1)}/guest/config/${H.COMMAND.offset}`, {
      width: 2,
      value: pciHeader.constants.COMMAND_IO.value,
    });
    const features = await ok<{ value: string }>(app, 'GET', `${fn(VF1)}/guest/io/0?width=4`);
    const direct = await ok<{ value: string }>(app, 'GET', `${fn(VF1)}/bars/2/0x1000?width=4`);
    expect(features).toMatchObject({ space: 'io', offset: 0, width: 4 });
    expect(features.value).toBe(direct.value);
    expect(await ok(app, 'PUT', `${fn(VF1)}/guest/io/0x12`, { width: 1, value: 1 })).toMatchObject({
      space: 'io',
      offset: 0x12,
    });
    expect(await ok(app, 'GET', `${fn(VF1)}/bars/2/0x1012?width=1`)).toMatchObject({ value: '0x01' });
    expect(await ok(app, 'GET', `${fn(VF1)}/guest/io/0?length=8`)).toMatchObject({ space: 'io', length: 8 });
    const d = await ok<{ guest: Record<string, unknown> }>(app, 'GET', fn(VF1));
    expect(d.guest).toMatchObject({
      vendorId: '0x1af4',
      deviceId: '0x1000',
      ioEnabled: true,
      memoryEnabled: false,
      intxAsserted: false,
    });
  });

  it('guest routes exist for VFs only', async () => {
    const app = await testApp();
    expect(problem(await call(app, 'GET', `${fn(NET_PF)}/guest/config`)).code).toBe(
      'VMMR_ERR_NOT_TRANSITIONAL',
    );
    expect(problem(await call(app, 'GET', `${fn(NET_PF)}/guest/io/0?width=1`)).code).toBe(
      'VMMR_ERR_NOT_TRANSITIONAL',
    );
    expect(problem(await call(app, 'GET', `${fn(VF1)}/guest/config`)).code).toBe('VMMR_ERR_VF_DISABLED');
  });
});

describe('POST /api/v1/access', () => {
  const read = (
    offset: number,
    width: number,
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> => ({
    bdf: VF1,
    space: 'bar2',
    op: 'read',
    offset,
    width,
    ...extra,
  });

  it('runs operations in order and answers in order', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const sel = LEGACY + L.QUEUE_SEL.offset;
    const res = await call(app, 'POST', '/api/v1/access', {
      ops: [
        { bdf: VF1, space: 'bar2', op: 'write', offset: sel, width: 2, value: 2 },
        read(sel, 2),
        { bdf: VF1, space: 'bar2', op: 'write', offset: `0x${sel.toString(16)}`, width: 2, value: '0x1' },
        read(sel, 2),
        { bdf: NET_PF, space: 'config', op: 'read', offset: 0, length: 4 },
        { bdf: VF1, space: 'bar2', op: 'write', offset: 0x2000, data: '0010e0fe00000000' },
        read(0x2000, 8),
      ],
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      results: [
        { ok: true },
        { ok: true, value: '0x0002' },
        { ok: true },
        { ok: true, value: '0x0001' },
        { ok: true, data: 'f41a4110' },
        { ok: true },
        { ok: true, value: '0x00000000fee01000' },
      ],
      executed: 7,
      failed: 0,
    });
  });

  it('stops at the first refusal unless onError is continue', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const ops = [read(0x1000, 4), read(0x1001, 4), read(0x1000, 4)];
    const stop = await ok<{ results: unknown[]; executed: number; failed: number }>(
      app,
      'POST',
      '/api/v1/access',
      { ops },
    );
    expect(stop.executed).toBe(2);
    expect(stop.failed).toBe(1);
    expect(stop.results[1]).toEqual({
      ok: false,
      error: {
        code: 'VMMR_ERR_UNALIGNED',
        detail: `${VF1} bar2 offset 0x1001 width 4: offset 0x1001 is not aligned to width 4`,
        bdf: VF1,
        space: 'bar2',
        offset: 0x1001,
        width: 4,
      },
    });
    const cont = await ok<{ results: Array<{ ok: boolean }>; executed: number; failed: number }>(
      app,
      'POST',
      '/api/v1/access',
      {
        ops,
        onError: 'continue',
      },
    );
    expect(cont.executed).toBe(3);
    expect(cont.failed).toBe(1);
    expect(cont.results.map((r) => r.ok)).toEqual([true, false, true]);
  });

  it('fails bad values per operation, with the code and the access', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const res = await ok<{ results: Array<{ ok: boolean; error?: Record<string, unknown> }> }>(
      app,
      'POST',
      '/api/v1/access',
      {
        onError: 'continue',
        ops: [
          { bdf: 'nope', space: 'config', op: 'read', offset: 0, width: 4 },
          { bdf: VF1, space: 'bar9', op: 'read', offset: 0, width: 4 },
          { bdf: VF1, space: 'config', op: 'read', offset: '0xq', width: 4 },
          { bdf: VF1, space: 'config', op: 'write', offset: 4, width: 2, value: '0xq' },
          { bdf: VF1, space: 'config', op: 'write', offset: 4, data: 'xyz' },
          { bdf: VF1, space: 'config', op: 'read', offset: 0, width: 0 },
          { bdf: VF1, space: 'config', op: 'read', offset: 0, width: 3 },
          { bdf: '0000:01:01.0', space: 'config', op: 'read', offset: 0, width: 4 },
          { bdf: VF1, space: 'bar2', op: 'read', offset: 0x1000, length: 16 },
          { bdf: NET_PF, space: 'io', op: 'read', offset: 0, width: 1 },
        ],
      },
    );
    expect(res.results.map((r) => r.error?.code)).toEqual([
      'VMMR_ERR_BAD_BDF',
      'VMMR_ERR_BAD_SPACE',
      'VMMR_ERR_BAD_OFFSET',
      'VMMR_ERR_BAD_VALUE',
      'VMMR_ERR_BAD_VALUE',
      'VMMR_ERR_BAD_WIDTH',
      'VMMR_ERR_BAD_WIDTH',
      'VMMR_ERR_VF_DISABLED',
      'VMMR_ERR_WIDTH_MISMATCH',
      'VMMR_ERR_NOT_TRANSITIONAL',
    ]);
    expect(res.results[8]!.error).toMatchObject({
      bdf: VF1,
      space: 'bar2',
      offset: 0x1000,
      width: 8,
      length: 16,
      register: 'HOST_FEATURES',
    });
    for (const r of res.results)
      expect(r.error).toMatchObject({
        bdf: expect.any(String),
        space: expect.any(String),
        offset: expect.any(Number),
      });
  });

  it('rejects a malformed batch with 400 before running anything', async () => {
    const app = await testApp();
    const write = { bdf: NET_PF, space: 'config', op: 'write', offset: 4, width: 2, value: 6 };
    const cases: Array<[unknown, string]> = [
      [
        { ops: [write, { bdf: NET_PF, space: 'config', op: 'read', offset: 0 }] },
        'body/ops/1: a read needs exactly one of width and length',
      ],
      [
        { ops: [write, { bdf: 1, space: 'config', op: 'read', offset: 0, width: 4 }] },
        'body/ops/1/bdf: must be string',
      ],
      [
        { ops: [write, { bdf: NET_PF, space: 'config', op: 'peek', offset: 0, width: 4 }] },
        'body/ops/1/op: must be one of "read", "write"',
      ],
      [
        { ops: [write, { bdf: NET_PF, space: 'config', op: 'read', width: 4 }] },
        'body/ops/1: missing required property "offset"',
      ],
      [
        { ops: [write, { bdf: NET_PF, space: 'config', op: 'read', offset: 0, width: '4' }] },
        'body/ops/1/width: must be integer',
      ],
      [
        { ops: [write, { bdf: NET_PF, space: 'config', op: 'write', offset: 0, width: 4 }] },
        'body/ops/1: a write needs width and value, or data',
      ],
      [
        { ops: [write, { bdf: NET_PF, space: 'config', op: 'read', offset: 0, width: 4, value: 1 }] },
        'body/ops/1/value: is not allowed on a read',
      ],
      [{ ops: [write, 'x'] }, 'body/ops/1: must be object or must be array'],
      [{ ops: [write, ['r', 0]] }, 'body/ops/1: must be object or must not have fewer than 3 items'],
      [{ bdf: NET_PF, space: 'config', ops: [write, ['w', 0, 4, null]] }, 'body/ops/1'],
      [{ ops: [write, ['r', 0, 4]] }, 'body/ops/1/bdf: is required (or give the batch a default bdf)'],
      [{ ops: [write], onError: 'ignore' }, 'body/onError: must be one of "stop", "continue"'],
      [{ ops: [write], extra: 1 }, 'body: unknown property "extra"'],
      [{}, 'body: missing required property "ops"'],
    ];
    for (const [body, detail] of cases) {
      const p = problem(await call(app, 'POST', '/api/v1/access', body));
      expect(p.code).toBe('VMMR_ERR_BAD_REQUEST');
      expect(p.detail).toContain(detail);
    }
    // Nothing ran: Command is still 0.
    expect(await ok(app, 'GET', `${fn(NET_PF)}/config/4?width=2`)).toMatchObject({ value: '0x0000' });
  });

  it('answers 413 above VMMR_MAX_BATCH', async () => {
    const app = await testApp({ env: { VMMR_MAX_BATCH: '3' } });
    const op = { bdf: NET_PF, space: 'config', op: 'read', offset: 0, width: 4 };
    expect(
      (await ok<{ executed: number }>(app, 'POST', '/api/v1/access', { ops: [op, op, op] })).executed,
    ).toBe(3);
    const p = problem(await call(app, 'POST', '/api/v1/access', { ops: [op, op, op, op] }));
    expect(p).toMatchObject({ code: 'VMMR_ERR_TOO_LARGE', status: 413 });
    expect(p.detail).toContain('VMMR_MAX_BATCH');
  });

  it('takes compact tuples beside objects, with the same results', async () => {
    const app = await testApp();
    const objects = {
      bdf: NET_PF,
      space: 'config',
      ops: [
        { op: 'write', offset: 0x3c, width: 1, value: '0x0b' },
        { op: 'read', offset: 0x3c, width: 1 },
        { op: 'write', offset: 0x3c, data: '0c' },
        { op: 'read', offset: 0, length: 4 },
        { op: 'read', offset: '0xzz', width: 1 },
      ],
      onError: 'continue',
    };
    const tuples = {
      ...objects,
      ops: [
        ['w', 0x3c, 1, '0x0b'],
        ['r', 0x3c, 1],
        ['wb', 0x3c, '0c'],
        ['rb', 0, 4],
        ['r', '0xzz', 1],
      ],
    };
    const a = await ok<{ results: unknown[] }>(app, 'POST', '/api/v1/access', objects);
    const b = await ok<{ results: unknown[] }>(app, 'POST', '/api/v1/access', tuples);
    expect(b).toEqual(a);
    expect(a.results.slice(0, 4)).toEqual([
      { ok: true },
      { ok: true, value: '0x0b' },
      { ok: true },
      { ok: true, data: 'f41a4110' },
    ]);
    expect(a.results[4]).toMatchObject({ ok: false, error: { code: 'VMMR_ERR_BAD_OFFSET' } });
  });

  it('re-resolves functions after a config write that changes them', async () => {
    const app = await testApp();
    const pf = app.vmmr.emulator.machine.findPf(NET_PF);
    const S = sriovCap.registers;
    const res = await ok<{ results: Array<{ ok: boolean; value?: string; error?: { code: string } }> }>(
      app,
      'POST',
      '/api/v1/access',
      {
        onError: 'continue',
        ops: [
          { bdf: VF1, space: 'config', op: 'read', offset: 0x10c, width: 4 },
          {
            bdf: NET_PF,
            space: 'config',
            op: 'write',
            offset: pf.sriov + S.NUM_VF.offset,
            width: 2,
            value: 2,
          },
          { bdf: NET_PF, space: 'config', op: 'write', offset: pf.sriov + S.CTRL.offset, width: 2, value: 9 },
          { bdf: VF1, space: 'bar2', op: 'read', offset: LEGACY + L.QUEUE_NUM.offset, width: 2 },
          { bdf: NET_PF, space: 'config', op: 'write', offset: pf.sriov + S.CTRL.offset, width: 2, value: 0 },
          { bdf: VF1, space: 'bar2', op: 'read', offset: LEGACY + L.QUEUE_NUM.offset, width: 2 },
        ],
      },
    );
    expect(res.results.map((r) => r.ok)).toEqual([false, true, true, true, true, false]);
    expect(res.results[0]!.error!.code).toBe('VMMR_ERR_VF_DISABLED');
    expect(res.results[3]!.value).toBe('0x0100');
    expect(res.results[5]!.error!.code).toBe('VMMR_ERR_VF_DISABLED');
  });
});

describe('device side', () => {
  it('POST …/interrupt raises queue and config interrupts and lists the events', async () => {
    const app = await testApp();
    const q = await ok<{ isr: string; events: Array<Record<string, unknown>> }>(
      app,
      'POST',
      `${fn(NET_PF)}/interrupt`,
      { queue: 1 },
    );
    expect(q).toEqual({
      bdf: NET_PF,
      isr: '0x01',
      configGeneration: 0,
      events: [{ type: 'interrupt', bdf: NET_PF, mode: 'intx', level: true }],
    });
    const c = await ok<{ isr: string; configGeneration: number; events: Array<{ type: string }> }>(
      app,
      'POST',
      `${fn(NET_PF)}/interrupt`,
      {
        config: true,
      },
    );
    expect(c.isr).toBe('0x03');
    expect(c.configGeneration).toBe(1);
    expect(c.events.map((e) => e.type)).toEqual(['config-change']);
    expect(problem(await call(app, 'POST', `${fn(NET_PF)}/interrupt`, { queue: 3 })).code).toBe(
      'VMMR_ERR_BAD_VALUE',
    );
    expect(problem(await call(app, 'POST', `${fn(NET_PF)}/interrupt`, {})).code).toBe('VMMR_ERR_BAD_REQUEST');
    expect(problem(await call(app, 'POST', `${fn(NET_PF)}/interrupt`, { queue: 0, config: true })).code).toBe(
      'VMMR_ERR_BAD_REQUEST',
    );
  });

  it('PUT …/device-config changes a field and raises a config change', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    const res = await ok<{ configGeneration: number; events: Array<{ type: string }> }>(
      app,
      'PUT',
      `${fn(VF1)}/device-config`,
      {
        offset: 0,
        data: '525400abcdef',
      },
    );
    expect(res.configGeneration).toBe(1);
    expect(res.events.map((e) => e.type)).toContain('config-change');
    const d = await ok<{ identity: { mac: string } }>(app, 'GET', fn(VF1));
    expect(d.identity.mac).toBe('52:54:00:ab:cd:ef');
    const cfg = LEGACY + legacy.constants.CONFIG_OFF_NO_MSIX.value;
    expect(await ok(app, 'GET', `${fn(VF1)}/bars/2/${cfg}?length=6`)).toMatchObject({ data: '525400abcdef' });
    expect(
      problem(await call(app, 'PUT', `${fn(VF1)}/device-config`, { offset: '0x10', data: '00000000' })).code,
    ).toBe('VMMR_ERR_OUT_OF_RANGE');
    expect(problem(await call(app, 'PUT', `${fn(VF1)}/device-config`, { offset: 0, data: '' })).code).toBe(
      'VMMR_ERR_BAD_VALUE',
    );
  });
});

describe('trace', () => {
  it('PUT …/trace enables a ring; GET lists translated I/O accesses', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    expect(await ok(app, 'GET', `${fn(VF1)}/trace`)).toEqual({
      enabled: false,
      depth: 0,
      recorded: 0,
      entries: [],
    });
    expect(await ok(app, 'PUT', `${fn(VF1)}/trace`, { enabled: true, depth: 2 })).toEqual({
      enabled: true,
      depth: 2,
      recorded: 0,
    });
    await ok(app, 'PUT', `${fn(VF1)}/guest/config/${H.COMMAND.offset}`, { width: 2, value: 1 });
    await ok(app, 'GET', `${fn(VF1)}/guest/io/0?width=4`);
    await ok(app, 'PUT', `${fn(VF1)}/guest/io/0x12`, { width: 1, value: 1 });
    await call(app, 'GET', `${fn(VF1)}/guest/io/0x11?width=1`);
    const t = await ok<{
      enabled: boolean;
      depth: number;
      recorded: number;
      entries: Array<Record<string, unknown>>;
    }>(app, 'GET', `${fn(VF1)}/trace`);
    expect(t).toMatchObject({ enabled: true, depth: 2, recorded: 3 });
    expect(t.entries).toHaveLength(2);
    expect(t.entries[0]).toMatchObject({
      seq: 2,
      op: 'write',
      port: 0x12,
      width: 1,
      value: '0x01',
      bar: 2,
      offset: 0x1012,
      register: 'STATUS',
      outcome: 'ok',
    });
    expect(t.entries[1]).toMatchObject({
      seq: 3,
      op: 'read',
      port: 0x11,
      outcome: 'VMMR_ERR_WIDTH_MISMATCH',
    });
    const after = await ok<{ entries: Array<{ seq: number }> }>(app, 'GET', `${fn(VF1)}/trace?after=2`);
    expect(after.entries.map((e) => e.seq)).toEqual([3]);
    expect(await ok(app, 'PUT', `${fn(VF1)}/trace`, { enabled: false })).toEqual({
      enabled: false,
      depth: 0,
      recorded: 0,
    });
    expect(problem(await call(app, 'PUT', `${fn(VF1)}/trace`, { enabled: true, depth: 0 })).code).toBe(
      'VMMR_ERR_BAD_VALUE',
    );
    expect(problem(await call(app, 'GET', `${fn(NET_PF)}/trace`)).code).toBe('VMMR_ERR_NOT_TRANSITIONAL');
  });

  it('defaults to a depth of 4096', async () => {
    const app = await testApp();
    await enableVfs(app, 1);
    expect(await ok(app, 'PUT', `${fn(VF1)}/trace`, { enabled: true })).toMatchObject({ depth: 4096 });
  });
});

describe('state', () => {
  it('GET /api/v1/state, PUT it back, POST /api/v1/reset', async () => {
    const app = await testApp();
    await enableVfs(app, 3);
    await ok(app, 'PUT', `${fn(VF2)}/bars/2/${LEGACY + L.STATUS.offset}`, { width: 1, value: 3 });
    await ok(app, 'POST', '/api/v1/pfs', { bdf: 'c0:00.0', type: 'rng', totalVfs: 2 });
    const state = await ok<{
      format: string;
      version: number;
      pfs: unknown[];
      functions: Array<{ bdf: string }>;
    }>(app, 'GET', '/api/v1/state');
    expect(state.format).toBe('vmmr-state');
    expect(state.version).toBe(STATE_VERSION);
    expect(state.pfs).toHaveLength(3);
    expect(state.functions.map((f) => f.bdf)).toContain(VF2);

    expect(await ok(app, 'POST', '/api/v1/reset')).toEqual({ pfs: 2, vfs: 0 });
    expect(problem(await call(app, 'GET', fn(VF2))).code).toBe('VMMR_ERR_VF_DISABLED');
    expect(problem(await call(app, 'GET', '/api/v1/pfs/c0:00.0')).code).toBe('VMMR_ERR_NO_FUNCTION');

    expect(await ok(app, 'PUT', '/api/v1/state', state)).toEqual({ pfs: 3, vfs: 3 });
    expect(await ok(app, 'GET', fn(VF2))).toMatchObject({ status: '0x03' });
    expect(await ok(app, 'GET', '/api/v1/state')).toEqual(state);
  });

  it('refuses a malformed or unrestorable state and keeps the machine', async () => {
    const app = await testApp();
    await enableVfs(app, 2);
    const state = await ok<Record<string, unknown>>(app, 'GET', '/api/v1/state');
    const bad = problem(await call(app, 'PUT', '/api/v1/state', { ...state, functions: 'x' }));
    expect(bad).toMatchObject({ code: 'VMMR_ERR_BAD_REQUEST', status: 400, path: '/functions' });
    const wrongPf = problem(
      await call(app, 'PUT', '/api/v1/state', {
        ...state,
        pfs: [{ bdf: '01:00.0', type: 'net', totalVfs: 4, queueSize: 3 }],
      }),
    );
    expect(wrongPf).toMatchObject({ code: 'VMMR_ERR_STATE', status: 422 });
    expect(wrongPf.detail).toContain('pfs[0].queueSize');
    const ghost = problem(
      await call(app, 'PUT', '/api/v1/state', {
        ...state,
        functions: [
          ...(state.functions as unknown[]),
          { ...(state.functions as Array<Record<string, unknown>>)[0], bdf: '0000:01:00.9' },
        ],
      }),
    );
    expect(ghost.code).toBe('VMMR_ERR_STATE');
    expect(await ok(app, 'GET', '/readyz')).toMatchObject({ vfs: 2 });
  });
});

describe('POST /api/v1/access defaults', () => {
  it('takes bdf and space from the batch when an operation gives none', async () => {
    const app = await testApp();
    await enableVfs(app, 2);
    const res = await ok<{ results: Array<{ ok: boolean; value?: string }> }>(app, 'POST', '/api/v1/access', {
      bdf: VF1,
      space: 'bar2',
      ops: [
        { op: 'write', offset: LEGACY + L.QUEUE_SEL.offset, width: 2, value: 2 },
        { op: 'read', offset: LEGACY + L.QUEUE_SEL.offset, width: 2 },
        { bdf: VF2, op: 'read', offset: LEGACY + L.QUEUE_SEL.offset, width: 2 },
        { space: 'config', op: 'read', offset: 0, width: 4 },
      ],
    });
    expect(res.results).toEqual([
      { ok: true },
      { ok: true, value: '0x0002' },
      { ok: true, value: '0x0000' },
      { ok: true, value: '0xffffffff' },
    ]);
    const p = problem(
      await call(app, 'POST', '/api/v1/access', {
        ops: [{ op: 'read', offset: 0, width: 4, space: 'config' }],
      }),
    );
    expect(p.detail).toBe('body/ops/0/bdf: is required (or give the batch a default bdf)');
  });
});
