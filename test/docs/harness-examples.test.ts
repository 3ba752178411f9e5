/**
 * examples/legacy-probe.py (Python 3 standard library) and examples/legacy-probe.sh (curl) probe
 * a VF through the guest view as Linux's legacy virtio-pci driver does. Each runs against a
 * service on a real socket; the translator's trace of what reached the device must be the
 * access sequence the in-process DriverSim legacy probe makes on a machine of its own.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { read, write } from '../../src/access/index.js';
import { setNumVfs } from '../../src/control/sriov.js';
import { legacyProbe, runSim } from '../../src/driver-sim/probes.js';
import { Machine } from '../../src/machine/machine.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import { buildApp, type VmmrApp } from '../../src/server/app.js';
import { loadConfig } from '../../src/server/config.js';
import { ROOT } from '../support/build.js';

const PF = '0000:01:00.0';
const VF = '0000:01:00.1';
/** What both scripts print for VF 1 of the default net PF (virtio 1.x §4.1.2.1: 0x1000 is net). */
const OUTPUT = [
  `${VF}: 1af4:1000`,
  'host features 0x39bf802a',
  'mac 02:00:00:00:01:01',
  'queue 0: 256 entries, pfn 0x10000',
  'queue 1: 256 entries, pfn 0x10010',
  'queue 2: 256 entries, pfn 0x10020',
  'status 0x07 (ACKNOWLEDGE DRIVER DRIVER_OK), isr 0x00',
];
const SCRIPTS = [
  ['python3', 'examples/legacy-probe.py'],
  ['sh', 'examples/legacy-probe.sh'],
] as const;

const apps: VmmrApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function service(env: Record<string, string> = {}): Promise<string> {
  const app = await buildApp({ config: loadConfig(env), topology: DEFAULT_TOPOLOGY, logger: false });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return `http://127.0.0.1:${address.port}`;
}

async function api(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

function run(command: string, script: string, env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(command, [join(ROOT, script)], { env: { PATH: process.env['PATH'] ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The legacy accesses DriverSim's Linux probe makes, on a machine of the test's own. */
function driverSimAccesses() {
  const machine = new Machine(DEFAULT_TOPOLOGY);
  setNumVfs(machine.findPf(PF), 4);
  write(machine.guestView(VF), 'guest-config', 0x04, 2, 1);
  const io = () => machine.target(VF, 'io');
  const transcript = runSim(legacyProbe({ msix: false, configBytes: 6, notify: [0], teardown: false }), {
    read: (op) => Number(read(io(), 'io', op.offset, op.width)),
    write: (op) => write(io(), 'io', op.offset, op.width, op.value!),
  });
  return transcript.map(({ op, offset, width, value }) => ({ op, port: offset, width, value }));
}

describe.each(SCRIPTS)('%s %s', (command, script) => {
  it('probes the VF through the guest view in the order Linux does', async () => {
    const url = await service();
    await api(url, 'PUT', `/pfs/${PF}/sriov`, { numVfs: 4 });
    await api(url, 'PUT', `/functions/${VF}/trace`, { enabled: true });
    const r = await run(command, script, { VMMR_URL: url });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toEqual(OUTPUT);
    const trace = (await api(url, 'GET', `/functions/${VF}/trace?after=0`)) as {
      entries: { op: string; port: number; width: number; value: string; outcome: string }[];
    };
    expect(trace.entries.every((e) => e.outcome === 'ok')).toBe(true);
    expect(
      trace.entries.map(({ op, port, width, value }) => ({ op, port, width, value: Number(value) })),
    ).toEqual([
      ...driverSimAccesses(),
      // The scripts read STATUS once more, to print it.
      { op: 'read', port: 0x12, width: 1, value: 0x07 },
    ]);
  });

  it('enables VFs itself when the PF has none, and sends VMMR_TOKEN', async () => {
    const url = await service({ VMMR_TOKEN: 'harness-token' });
    const r = await run(command, script, { VMMR_URL: url, VMMR_TOKEN: 'harness-token' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trimEnd().split('\n')).toEqual(OUTPUT);
  });

  it('stops with one line naming the refusal', async () => {
    const url = await service({ VMMR_TOKEN: 'harness-token' });
    const r = await run(command, script, { VMMR_URL: url, VMMR_TOKEN: 'wrong' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^legacy-probe: GET \/pfs\/0000:01:00.0\/sriov: .*VMMR_ERR_UNAUTHORIZED/);
  });
});
