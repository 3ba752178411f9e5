/**
 * Differential test of the translator: the Linux legacy probe run through the guest view (I/O
 * BAR0 and guest config space) with either backend (mmr: MMIO on the MMR block; admin: legacy
 * admin commands on the PF, docs/admin-commands.md) and run directly on the MMR block (BAR2 +
 * 0x1000 and the VF's config space), on fresh machines, must give the same transcript, the same
 * device state, the same VF config space and the same events. The one difference allowed is where
 * a notify kick lands: through mmr I/O it goes to the notify region by default
 * (docs/device-model.md "Interrupts" and "The translator's guest view"), directly and through the
 * admin backend's LEGACY_NOTIFY_INFO address it is the legacy register; with the topology's
 * notify 'legacy-register' the events are identical.
 */
import { describe, expect, it } from 'vitest';
import type { Space } from '../../src/access/index.js';
import {
  legacyProbe,
  runSim,
  type SimOp,
  type SimPort,
  type TranscriptEntry,
} from '../../src/driver-sim/probes.js';
import type { VmmrEvent } from '../../src/base/events.js';
import type { MmrVf } from '../../src/mmr/vf.js';
import { IDS, TYPES, expectSameBytes, rd, record, withVfs, wr, type TypeName } from '../support/functions.js';
import type { TopologyPf } from '../../src/machine/topology.js';

type Route = 'io' | 'io-admin' | 'direct';

function port(vf: MmrVf, route: Route): SimPort {
  const io = route !== 'direct';
  const where = (op: SimOp): [Space, number] => {
    if (op.space === 'config') return [io ? 'guest-config' : 'config', op.offset];
    if (op.space === 'legacy') return io ? ['io', op.offset] : ['bar2', 0x1000 + op.offset];
    throw new Error(`the legacy probe made a ${op.space} access`);
  };
  return {
    read: (op) => {
      const [space, offset] = where(op);
      return rd(vf, space, offset, op.width);
    },
    write: (op) => {
      const [space, offset] = where(op);
      wr(vf, space, offset, op.width, op.value ?? 0);
    },
  };
}

interface Run {
  transcript: TranscriptEntry[];
  events: VmmrEvent[];
  vf: MmrVf;
}

function probe(
  type: TypeName,
  route: Route,
  msix: boolean,
  teardown: boolean,
  extra: Partial<TopologyPf> = {},
): Run {
  const backend = route === 'io-admin' ? 'admin' : 'mmr';
  const { machine, vf } = withVfs(type, 2, { adminQueue: true, translator: backend, ...extra });
  // the guest's PCI core turns I/O decode on before the driver probes (not part of the probe)
  if (route !== 'direct') wr(vf, 'guest-config', 0x04, 2, 0x0001);
  const events = record(machine);
  const queues = Array.from({ length: IDS[type].queues }, (_, q) => q);
  const transcript = runSim(
    legacyProbe({ msix, notify: queues, configBytes: vf.device.model.config.size, teardown }),
    port(vf, route),
  );
  return { transcript, events, vf };
}

/** Events with the notify route taken out (the only field allowed to differ). */
const withoutRoute = (events: VmmrEvent[]): unknown[] =>
  events.map((e) => (e.type === 'notify' ? { type: e.type, bdf: e.bdf, queue: e.queue } : e));

describe('legacy probe through I/O equals the legacy probe on the MMR block', () => {
  for (const type of TYPES) {
    for (const msix of [false, true]) {
      for (const teardown of [false, true]) {
        it(`${type}, MSI-X ${msix ? 'on' : 'off'}, ${teardown ? 'with' : 'without'} teardown`, () => {
          const viaIo = probe(type, 'io', msix, teardown);
          const direct = probe(type, 'direct', msix, teardown);
          expect(viaIo.transcript).toEqual(direct.transcript);
          expect(viaIo.vf.device.getState()).toEqual(direct.vf.device.getState());
          expectSameBytes(viaIo.vf.config.snapshot(), direct.vf.config.snapshot(), 'VF config');
          expect(withoutRoute(viaIo.events)).toEqual(withoutRoute(direct.events));
          // the events are not trivially empty: resets, status changes and one kick per queue
          const kinds = new Set(direct.events.map((e) => e.type));
          expect(kinds).toEqual(new Set(['status', 'reset', 'notify']));
          // the one documented difference: the route of the kicks
          const routes = (r: Run) => r.events.flatMap((e) => (e.type === 'notify' ? [e.via] : []));
          expect(routes(viaIo)).toEqual(Array(IDS[type].queues).fill('notify-region'));
          expect(routes(direct)).toEqual(Array(IDS[type].queues).fill('legacy-register'));
          // through admin commands everything is identical, the kicks included (the NOTIFY_INFO address)
          const viaAdmin = probe(type, 'io-admin', msix, teardown);
          expect(viaAdmin.transcript).toEqual(direct.transcript);
          expect(viaAdmin.vf.device.getState()).toEqual(direct.vf.device.getState());
          expectSameBytes(viaAdmin.vf.config.snapshot(), direct.vf.config.snapshot(), 'VF config');
          expect(viaAdmin.events).toEqual(direct.events);
        });
      }
    }
  }

  for (const type of TYPES) {
    it(`${type}: with notify 'legacy-register' in the topology the event streams are identical`, () => {
      for (const msix of [false, true]) {
        const viaIo = probe(type, 'io', msix, false, { notify: 'legacy-register' });
        const direct = probe(type, 'direct', msix, false, { notify: 'legacy-register' });
        expect(viaIo.transcript).toEqual(direct.transcript);
        expect(viaIo.vf.device.getState()).toEqual(direct.vf.device.getState());
        expect(viaIo.events).toEqual(direct.events);
      }
    });
  }

  it("the transcript has the probe's shape: reset, ACK, DRIVER, features, queues, DRIVER_OK", () => {
    const { transcript } = probe('net', 'io', true, false);
    const statusWrites = transcript
      .filter((t) => t.space === 'legacy' && t.op === 'write' && t.offset === 18)
      .map((t) => t.value);
    expect(statusWrites).toEqual([0, 1, 3, 7]);
    const pfns = transcript
      .filter((t) => t.space === 'legacy' && t.op === 'write' && t.offset === 8)
      .map((t) => t.value);
    expect(pfns).toHaveLength(IDS.net.queues);
    const configOps = transcript.filter((t) => t.space === 'config');
    expect(configOps.length).toBeGreaterThan(2); // capability walk and MSI-X enable
  });
});
