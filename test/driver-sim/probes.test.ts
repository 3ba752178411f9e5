/**
 * DriverSim (the Linux virtio_pci probe sequences as register accesses) completes on vmmr: the
 * legacy sequence on an MMR VF's legacy block, the modern sequence on a PF and on a VF, for
 * every type, with MSI-X on and off. Completion is checked on the device, not on the transcript.
 */
import { describe, expect, it } from 'vitest';
import { legacyProbe, modernProbe, runSim, type SimOp, type SimPort } from '../../src/driver-sim/probes.js';
import type { VmmrEvent } from '../../src/base/events.js';
import type { VirtioPciFunction } from '../../src/virtio/pci-function.js';
import type { Space } from '../../src/access/index.js';
import { IDS, TYPES, enableMemory, rd, record, withVfs, wr } from '../support/functions.js';

const NO_VECTOR = 0xffff;
const ACKNOWLEDGE = 1;
const DRIVER = 2;
const DRIVER_OK = 4;
const FEATURES_OK = 8;

/** Maps DriverSim spaces onto a function: legacy → its MMR block, bar → bar<N>, config → config. */
export function portFor(fn: VirtioPciFunction): SimPort {
  const where = (op: SimOp): [Space, number] => {
    if (op.space === 'config') return ['config', op.offset];
    if (op.space === 'legacy') return ['bar2', 0x1000 + op.offset];
    return [`bar${op.bar ?? 0}` as Space, op.offset];
  };
  return {
    read: (op) => {
      const [space, offset] = where(op);
      return rd(fn, space, offset, op.width);
    },
    write: (op) => {
      const [space, offset] = where(op);
      wr(fn, space, offset, op.width, op.value ?? 0);
    },
  };
}

const notifies = (events: VmmrEvent[]) =>
  events.flatMap((e) => (e.type === 'notify' ? [[e.queue, e.via]] : []));

describe('legacy probe on an MMR VF (BAR2 + 0x1000)', () => {
  for (const type of TYPES) {
    for (const msix of [false, true]) {
      it(`${type}, MSI-X ${msix ? 'on' : 'off'}: DRIVER_OK with every queue placed by PFN`, () => {
        const { machine, vf } = withVfs(type);
        const events = record(machine);
        const queues = IDS[type].queues;
        const kick = Array.from({ length: queues }, (_, q) => q);
        const transcript = runSim(
          legacyProbe({
            msix,
            notify: kick,
            configBytes: vf.device.model.config.size,
            teardown: false,
            pfnBase: 0x4000,
          }),
          portFor(vf),
        );
        expect(transcript.length).toBeGreaterThan(10);
        const d = vf.device;
        expect(d.status).toBe(ACKNOWLEDGE | DRIVER | DRIVER_OK);
        expect(d.driverFeatures(0)).toBe(d.deviceFeatures(0));
        expect(d.driverFeatures(1)).toBe(0);
        expect(vf.msixEnabled()).toBe(msix);
        expect(d.configVector).toBe(msix ? 0 : NO_VECTOR);
        const states = d.queueStates();
        expect(states).toHaveLength(queues);
        for (const q of states) {
          expect(q.enabled).toBe(true);
          expect(BigInt(q.desc)).toBe(BigInt(0x4000 + q.index * 0x10) << 12n);
          expect(q.vector).toBe(msix ? q.index + 1 : NO_VECTOR);
        }
        expect(notifies(events)).toEqual(kick.map((q) => [q, 'legacy-register']));
        // the config bytes the driver read byte by byte are the device's
        const configStart = msix ? 24 : 20;
        const read = transcript.filter(
          (t) => t.space === 'legacy' && t.op === 'read' && t.offset >= configStart && t.width === 1,
        );
        expect(read.map((t) => t.value)).toEqual(
          Array.from({ length: d.model.config.size }, (_, i) => d.configByte(i)),
        );
      });
    }
  }

  it('teardown leaves the device reset', () => {
    const { machine, vf } = withVfs('net');
    const events = record(machine);
    runSim(legacyProbe({ msix: true, notify: [0] }), portFor(vf));
    expect(vf.device.status).toBe(0);
    expect(vf.device.queueStates().every((q) => !q.enabled)).toBe(true);
    expect(events.filter((e) => e.type === 'reset').map((e) => (e.type === 'reset' ? e.reason : ''))).toEqual(
      ['status', 'queue-pfn', 'queue-pfn', 'queue-pfn', 'status'],
    );
  });
});

describe('modern probe on a PF (BAR0) and on a VF (BAR2)', () => {
  for (const type of TYPES) {
    for (const msix of [false, true]) {
      for (const kind of ['pf', 'vf'] as const) {
        it(`${type} ${kind}, MSI-X ${msix ? 'on' : 'off'}: FEATURES_OK and DRIVER_OK, queues enabled`, () => {
          const { machine, pf, vf } = withVfs(type);
          enableMemory(pf);
          const fn = kind === 'pf' ? pf : vf;
          const events = record(machine);
          const queues = IDS[type].queues;
          const kick = Array.from({ length: queues }, (_, q) => q);
          runSim(modernProbe({ msix, notify: kick, teardown: false }), portFor(fn));
          const d = fn.device;
          expect(d.status).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
          expect([d.driverFeatures(0), d.driverFeatures(1)]).toEqual([
            d.deviceFeatures(0),
            d.deviceFeatures(1),
          ]);
          expect((d.driverFeatures(1) & 1) === 1).toBe(true); // VIRTIO_F_VERSION_1
          expect(fn.msixEnabled()).toBe(msix);
          for (const q of d.queueStates()) {
            expect(q.enabled).toBe(true);
            const base = 0x100000 + q.index * 0x4000;
            expect([BigInt(q.desc), BigInt(q.driver), BigInt(q.device)]).toEqual([
              BigInt(base),
              BigInt(base + 0x1000),
              BigInt(base + 0x2000),
            ]);
            expect(q.vector).toBe(msix ? q.index + 1 : NO_VECTOR);
          }
          expect(notifies(events)).toEqual(kick.map((q) => [q, 'notify-region']));
          expect(events.filter((e) => e.type === 'notify').every((e) => e.bdf === fn.bdf)).toBe(true);
        });
      }
    }
  }
});
