/**
 * The Linux legacy virtio_pci probe (src/driver-sim.ts legacyProbe) driven over vfio-user through
 * the guest view of a net VF: config accesses as REGION_READ/REGION_WRITE on the config region,
 * legacy register accesses on the I/O BAR0 region, as QEMU forwards a guest's port accesses. The
 * transcript must be the same as the probe run in process on the translator, and the VF must end
 * up in DRIVER_OK with its queues placed and its MAC read from the device config.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { read, write, type Space } from '../../src/access/index.js';
import {
  legacyProbe,
  runSim,
  runSimAsync,
  type AsyncSimPort,
  type SimOp,
  type SimPort,
} from '../../src/driver-sim/probes.js';
import { withVfs } from '../support/functions.js';
import { VFIO, le, leBytes, type TestClient } from '../support/vfio-user-client.js';
import { exported, type Exported } from '../support/vfio-user-fixture.js';

let fx: Exported | undefined;
afterEach(() => {
  fx?.cleanup();
  fx = undefined;
});

const BAR0 = 0;

/** DriverSim spaces as vfio-user regions: config → the config region, legacy → I/O BAR0. */
function vfioPort(c: TestClient): AsyncSimPort {
  const region = (op: SimOp): number => (op.space === 'config' ? VFIO.REGION_CONFIG : BAR0);
  return {
    read: async (op) => le(await c.regionRead(region(op), op.offset, op.width)),
    write: async (op) => {
      await c.regionWrite(region(op), op.offset, leBytes(op.value ?? 0, op.width));
    },
  };
}

function inProcessPort(fn: Parameters<typeof read>[0]): SimPort {
  const space = (op: SimOp): Space => (op.space === 'config' ? 'guest-config' : 'io');
  return {
    read: (op) => Number(read(fn, space(op), op.offset, op.width)),
    write: (op) => write(fn, space(op), op.offset, op.width, op.value ?? 0),
  };
}

const OPTIONS = { msix: true, notify: [0, 1], configBytes: 12, teardown: false, pfnBase: 0x20000 };

describe('legacy probe of a net VF guest view over vfio-user', () => {
  it('reaches DRIVER_OK with 3 queues placed by PFN and MSI-X vectors, as the same probe in process does', async () => {
    fx = exported({ pf: { vfs: { '0000:01:00.1': { mac: '52:54:00:12:34:56' } } } });
    const c = await fx.ready();
    await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
    const transcript = await runSimAsync(legacyProbe(OPTIONS), vfioPort(c));

    const d = fx.vf.device;
    expect(d.status).toBe(1 | 2 | 4);
    expect(
      transcript
        .filter((t) => t.space === 'legacy' && t.offset === 8 && t.op === 'write')
        .map((t) => t.value),
    ).toEqual([0x20000, 0x20010, 0x20020]);
    // Device config at 24 (MSI-X on): the MAC, read byte by byte as Linux's vp_get does.
    const mac = transcript
      .filter((t) => t.space === 'legacy' && t.op === 'read' && t.offset >= 24 && t.offset < 30)
      .map((t) => t.value);
    expect(mac).toEqual([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    const reference = withVfs('net', 2, { vfs: { '0000:01:00.1': { mac: '52:54:00:12:34:56' } } });
    write(reference.machine.translator.view(reference.vf), 'guest-config', 4, 2, 1);
    const expected = runSim(
      legacyProbe(OPTIONS),
      inProcessPort(reference.machine.translator.view(reference.vf)),
    );
    expect(transcript).toEqual(expected);
  });
});
