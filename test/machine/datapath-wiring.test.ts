/**
 * How the data path sits in the register model: processing after the notifying access, a broken
 * chain turning into DEVICE_NEEDS_RESET with a config interrupt (and no harm to a neighbour),
 * device reset, MSI-X vectors with their masks, device events on the machine's stream, and
 * functions that cost nothing until they are used.
 */
import { describe, expect, it } from 'vitest';
import type { VmmrEvent } from '../../src/base/events.js';
import { setNumVfs } from '../../src/control/sriov.js';
import { NetDevice } from '../../src/devices/net/device.js';
import type { SplitRingDriver } from '../../src/driver-sim/rings.js';
import { Machine } from '../../src/machine/machine.js';
import { barLayout, commonCfg, msixCap, virtioStatus } from '../../src/spec/index.js';
import { mac } from '../support/frames.js';
import { netDriverOn, wiredMachine } from '../support/wired.js';

const PF = '0000:01:00.0';
const VF0 = '0000:01:00.1';
const VF1 = '0000:01:00.2';
const C = commonCfg.registers;
const NEEDS_RESET = virtioStatus.constants.NEEDS_RESET.value;

function frame(i: number): Buffer {
  const b = Buffer.alloc(64);
  mac('02:00:00:00:00:99').copy(b, 0);
  mac('02:00:00:00:00:01').copy(b, 6);
  b.writeUInt16BE(0x88b5, 12);
  b.writeUInt32BE(i, 14);
  return b;
}

describe('data path wiring', () => {
  it('runs after the notifying access has returned, or at an explicit drain', async () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 1, initialVfs: 1 }]);
    const { driver, transport } = netDriverOn(machine, VF0, { via: 'legacy-io', names: [] });
    const net = machine.dataPathOf(VF0).backend as NetDevice;
    const tx = driver.tx;
    const dma = transport.dma;
    const at = 0x800_0000;
    const bytes = Buffer.concat([Buffer.alloc(10), frame(1)]);
    dma.write(at, bytes, 0, bytes.length);
    tx.add([{ address: at, length: bytes.length, writable: false }]);
    transport.write(16, 2, 1); // QUEUE_NOTIFY, without draining
    expect(net.stats.txFrames).toBe(0);
    await Promise.resolve();
    expect(net.stats.txFrames).toBe(1);
  });

  it('a broken chain sets DEVICE_NEEDS_RESET with a config interrupt and an event; the neighbour carries on; reset recovers', () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 2, initialVfs: 2 }]);
    const events: VmmrEvent[] = [];
    machine.events.subscribe((e) => events.push(e));
    const a = netDriverOn(machine, VF0, { via: 'legacy-io', names: [] });
    const b = netDriverOn(machine, VF1, { via: 'legacy-io', names: [] });
    const ring = a.driver.tx as SplitRingDriver;
    ring.putAvail(4000); // a head outside the 256-entry table
    a.transport.kick(1);
    const device = machine.find(VF0).device;
    expect(device.status & NEEDS_RESET).toBe(NEEDS_RESET);
    expect(a.transport.readIsr() & 2).toBe(2);
    const error = events.find((e) => e.type === 'queue-error');
    expect(error).toMatchObject({ bdf: VF0, error: { queue: 1, rule: 'head-range' } });
    b.driver.send([frame(2)]);
    expect((machine.dataPathOf(VF1).backend as NetDevice).stats.txFrames).toBe(1);

    const again = netDriverOn(machine, VF0, { via: 'legacy-io', names: [] });
    expect(device.status & NEEDS_RESET).toBe(0);
    again.driver.send([frame(3)]);
    expect((machine.dataPathOf(VF0).backend as NetDevice).stats.txFrames).toBe(1);
  });

  it("used buffers fire the queue's MSI-X vector, held pending while it is masked", () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 0 }]);
    const { driver, transport } = netDriverOn(machine, PF, { via: 'modern', names: ['VERSION_1'] });
    const pf = machine.pfs[0]!;
    const flags = pf.template.caps.msix + msixCap.registers.FLAGS.offset;
    pf.writeConfig(flags, 2, pf.readConfig(flags, 2) | msixCap.constants.FLAGS_ENABLE.value);
    const table = barLayout.registers.MSIX_TABLE.offset;
    const vector = 3;
    pf.writeBar(0, table + 16 * vector, 4, 0xfee0_0000);
    pf.writeBar(0, table + 16 * vector + 8, 4, 0x4321);
    transport.write(C.QUEUE_SELECT.offset, 2, 1);
    transport.write(C.QUEUE_MSIX_VECTOR.offset, 2, vector);
    const events: VmmrEvent[] = [];
    machine.events.subscribe((e) => events.push(e));
    driver.send([frame(1)]);
    expect(events.filter((e) => e.type === 'interrupt')).toEqual([
      { type: 'interrupt', bdf: PF, mode: 'msix-pending', vector },
    ]);
    events.length = 0;
    pf.writeBar(0, table + 16 * vector + 12, 4, 0); // unmask: the pending message is sent
    expect(events.filter((e) => e.type === 'interrupt')).toEqual([
      { type: 'interrupt', bdf: PF, mode: 'msix', vector, address: '0x00000000fee00000', data: 0x4321 },
    ]);
    events.length = 0;
    driver.send([frame(2)]);
    expect(events.filter((e) => e.type === 'interrupt')).toHaveLength(1);
    expect(events.find((e) => e.type === 'net-tx')).toMatchObject({ bdf: PF, queue: 1 });
  });

  it('idle functions have no data path; disabled VFs give theirs back', () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 64, initialVfs: 64, switch: 'lan' }]);
    expect(machine.dataPath.functionCount).toBe(0);
    netDriverOn(machine, VF0, { via: 'legacy-io', names: [] }).driver.send([frame(1)]);
    expect(machine.dataPath.functionCount).toBe(1);
    expect(machine.dataPath.existingSwitch('lan')!.portNames).toEqual([VF0]);
    expect(machine.dataPath.budget.used).toBeGreaterThan(0);
    setNumVfs(machine.pfs[0]!, 0);
    expect(machine.dataPath.functionCount).toBe(0);
    expect(machine.dataPath.existingSwitch('lan')!.portNames).toEqual([]);
    expect(machine.dataPath.budget.used).toBe(0);
  });
});

describe('data path in the snapshot', () => {
  it('keeps touched DMA pages and queue run states: a restored device does not process old chains again', () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 1, initialVfs: 1 }]);
    netDriverOn(machine, VF0, { via: 'legacy-io', names: [] }).driver.send([frame(1), frame(2), frame(3)]);
    const state = JSON.parse(JSON.stringify(machine.snapshot())) as ReturnType<Machine['snapshot']>;
    const vf = state.functions.find((f) => f.bdf === VF0)!;
    expect(Object.keys(vf.dma!.pages).length).toBeGreaterThan(0);
    expect(vf.queues![1]).toMatchObject({ format: 'split', lastAvail: 3, used: 3, requests: 3 });

    const restored = Machine.restore(state);
    const a = machine.dataPathOf(VF0).dma;
    const b = restored.dataPathOf(VF0).dma;
    expect(b.getState()).toEqual(a.getState());
    restored.find(VF0).device.notify(1, 'legacy-register');
    restored.drain();
    const net = restored.dataPathOf(VF0).backend as NetDevice;
    expect(net.stats.txFrames).toBe(0);
    expect(restored.dataPathOf(VF0).queueViews()[1]!.run).toMatchObject({ lastAvail: 3, requests: 3 });
  });
});
