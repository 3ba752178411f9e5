/**
 * End to end over a real socket: enable VFs, watch events, drive Linux's legacy virtio probe
 * through the translator's guest I/O BAR0 over HTTP, raise a queue interrupt, then replay the
 * whole sequence as one batch on a fresh VF; dumps decoded by lspci itself.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { read, write } from '../../src/access/index.js';
import {
  legacyProbe,
  runSim,
  runSimAsync,
  type SimOp,
  type TranscriptEntry,
} from '../../src/driver-sim/probes.js';
import { setNumVfs } from '../../src/control/sriov.js';
import { Machine } from '../../src/machine/machine.js';
import { pciHeader } from '../../src/spec/index.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import { SseReader, api, apiOk, startTestServer } from '../support/http.js';

const PF = '0000:01:00.0';
const VF = '0000:01:00.3';
const COMMAND = pciHeader.registers.COMMAND.offset;
const COMMAND_IO = pciHeader.constants.COMMAND_IO.value;
const PROBE = { msix: true, notify: [0, 1], configBytes: 6, teardown: false } as const;

const spaceOf = (op: SimOp): 'io' | 'guest-config' => {
  if (op.space === 'legacy') return 'io';
  if (op.space === 'config') return 'guest-config';
  throw new Error(`the legacy probe does not use space ${op.space}`);
};
const routeOf = (op: SimOp): string => (op.space === 'legacy' ? 'guest/io' : 'guest/config');

describe('end to end over HTTP', () => {
  it('probes a VF through guest I/O, sees its events, and a batch replay gives the same results', async () => {
    const { url } = await startTestServer();

    const sriov = await apiOk<{ numVfs: number; vfs: { items: string[] } }>(
      url,
      'PUT',
      `/api/v1/pfs/${PF}/sriov`,
      { numVfs: 16 },
    );
    expect(sriov.numVfs).toBe(16);
    expect(sriov.vfs.items).toHaveLength(16);

    const events = await SseReader.open(`${url}/api/v1/events?bdf=${VF}`);
    expect(events.status).toBe(200);
    expect(events.contentType).toMatch(/^text\/event-stream/);

    await apiOk(url, 'PUT', `/api/v1/functions/${VF}/guest/config/${COMMAND}`, {
      width: 2,
      value: COMMAND_IO,
    });
    const transcript = await runSimAsync(legacyProbe(PROBE), {
      async read(op) {
        const r = await apiOk<{ value: string }>(
          url,
          'GET',
          `/api/v1/functions/${VF}/${routeOf(op)}/${op.offset}?width=${op.width}`,
        );
        return Number(r.value);
      },
      async write(op) {
        await apiOk(url, 'PUT', `/api/v1/functions/${VF}/${routeOf(op)}/${op.offset}`, {
          width: op.width,
          value: op.value,
        });
      },
    });
    expect(transcript.length).toBeGreaterThan(30);

    const irq = await apiOk<{ events: Array<{ type: string }> }>(
      url,
      'POST',
      `/api/v1/functions/${VF}/interrupt`,
      { queue: 0 },
    );
    expect(irq.events.map((e) => e.type)).toContain('interrupt');

    await events.waitFor(
      (r) => r.of('notify').length >= 2 && r.of('interrupt').length >= 1,
      5000,
      'notify and interrupt events',
    );
    const notify = events.of('notify').map((e) => e.json);
    expect(notify.map((n) => n.queue)).toEqual([0, 1]);
    expect(notify[0]).toMatchObject({ type: 'notify', bdf: VF, via: 'notify-region' });
    expect(events.of('interrupt').at(-1)!.json).toMatchObject({ type: 'interrupt', bdf: VF });
    expect(events.of('status').length).toBeGreaterThan(0);
    // Dense per-stream numbering: 1, 2, 3… and data.seq equal to the id.
    expect(events.events.map((e) => Number(e.id))).toEqual(events.events.map((_, i) => i + 1));
    for (const e of events.events) expect(e.json.seq).toBe(Number(e.id));
    expect(events.events.every((e) => e.json.bdf === VF)).toBe(true);

    // The same sequence, as one batch, on a fresh VF at the same address.
    expect(await apiOk(url, 'POST', '/api/v1/reset')).toEqual({ pfs: 2, vfs: 0 });
    await events.waitForEnd();
    expect(events.of('end').at(-1)!.json).toMatchObject({ reason: 'function-removed', bdf: VF });
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 16 });
    const ops = [
      { bdf: VF, space: 'guest-config', op: 'write', offset: COMMAND, width: 2, value: COMMAND_IO },
      ...transcript.map((t) =>
        t.op === 'read'
          ? { bdf: VF, space: spaceOf(t), op: 'read', offset: t.offset, width: t.width }
          : {
              bdf: VF,
              space: spaceOf(t),
              op: 'write',
              offset: t.offset,
              width: t.width,
              value: `0x${t.value.toString(16)}`,
            },
      ),
    ];
    const batch = await apiOk<{
      results: Array<{ ok: boolean; value?: string }>;
      executed: number;
      failed: number;
    }>(url, 'POST', '/api/v1/access', { ops });
    expect(batch.failed).toBe(0);
    expect(batch.executed).toBe(ops.length);
    const replayed: TranscriptEntry[] = transcript.map((t, i) => {
      const r = batch.results[i + 1]!;
      return { ...t, value: t.op === 'read' ? Number(r.value) : t.value };
    });
    expect(replayed).toEqual(transcript);

    // And the core in process, without HTTP, agrees with both.
    const machine = new Machine(DEFAULT_TOPOLOGY);
    setNumVfs(machine.findPf(PF), 16);
    write(machine.guestView(VF), 'guest-config', COMMAND, 2, COMMAND_IO);
    const local = runSim(legacyProbe(PROBE), {
      read: (op) => Number(read(machine.target(VF, spaceOf(op)), spaceOf(op), op.offset, op.width)),
      write: (op) => write(machine.target(VF, spaceOf(op)), spaceOf(op), op.offset, op.width, op.value!),
    });
    expect(local).toEqual(transcript);
  });

  it('serves block reads as application/octet-stream over the socket', async () => {
    const { url } = await startTestServer();
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 1 });
    const res = await request(`${url}/api/v1/functions/${PF}/config/0?length=16`, {
      headers: { accept: 'application/octet-stream' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const bytes = Buffer.from(await res.body.arrayBuffer());
    expect(bytes.subarray(0, 4).toString('hex')).toBe('f41a4110');
    const put = await request(`${url}/api/v1/functions/0000:01:00.1/bars/2/0x2004`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.from('0100000022000000', 'hex'),
    });
    expect(put.statusCode).toBe(200);
    await put.body.text();
    expect(
      (await apiOk<{ value: string }>(url, 'GET', '/api/v1/functions/0000:01:00.1/bars/2/0x2008?width=4'))
        .value,
    ).toBe('0x00000022');
  });

  it('answers problem+json over the socket, with 401 first when a token is set', async () => {
    const { url } = await startTestServer({ VMMR_TOKEN: 'tok' });
    const denied = await api(url, 'GET', '/api/v1/pfs');
    expect(denied.status).toBe(401);
    expect(denied.headers['content-type']).toMatch(/^application\/problem\+json/);
    const allowed = await api(url, 'GET', '/api/v1/functions/0000:01:00.1', undefined, {
      authorization: 'Bearer tok',
    });
    expect(allowed.status).toBe(410);
    expect(allowed.body).toMatchObject({ code: 'VMMR_ERR_VF_DISABLED' });
  });
});

describe('lspci -F decodes the dumps', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-lspci-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function lspci(url: string, path: string, name: string): Promise<string> {
    const res = await request(`${url}${path}`);
    expect(res.statusCode).toBe(200);
    expect(String(res.headers['content-type'])).toMatch(/^text\/plain/);
    const file = join(dir, name);
    writeFileSync(file, await res.body.text());
    return execFileSync('lspci', ['-F', file, '-vvv'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  it('a PF with VFs enabled: SR-IOV capability with the VF count, offset, stride and Device ID', async () => {
    const { url } = await startTestServer();
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 16 });
    const out = await lspci(url, `/api/v1/functions/${PF}/config?format=lspci`, 'pf.dump');
    expect(out).toContain('01:00.0 Ethernet controller: Red Hat, Inc. Virtio 1.0 network device (rev 01)');
    expect(out).toContain('Capabilities: [108 v1] Single Root I/O Virtualization (SR-IOV)');
    expect(out).toMatch(/IOVCtl:\s+Enable\+ Migration- Interrupt- MSE\+/);
    expect(out).toContain('Initial VFs: 1024, Total VFs: 1024, Number of VFs: 16');
    expect(out).toContain('VF offset: 1, stride: 1, Device ID: 10f9');
    expect(out).toContain('Alternative Routing-ID Interpretation (ARI)');
    expect(out).toContain('Vendor Specific Information: VirtIO: CommonCfg');
  });

  it('a VF: the MMR locator as a Vendor-Specific Extended Capability (ID 000a, Len 01c)', async () => {
    const { url } = await startTestServer();
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 2 });
    const out = await lspci(url, '/api/v1/functions/0000:01:00.2/config?format=lspci', 'vf.dump');
    expect(out).toMatch(/^01:00\.2 /m);
    expect(out).toContain('Vendor Specific Information: ID=000a Rev=0 Len=01c');
    expect(out).toContain('MSI-X: Enable- Count=4');
  });

  it("the translator's guest view: a transitional virtio device with an I/O BAR0", async () => {
    const { url } = await startTestServer();
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 1 });
    const out = await lspci(url, '/api/v1/functions/0000:01:00.1/guest/config?format=lspci', 'guest.dump');
    expect(out).toContain('Red Hat, Inc. Virtio network device');
    expect(out).toMatch(/Region 0: I\/O ports/);
    expect(out).not.toContain('Vendor Specific Information: ID=000a');
  });
});
