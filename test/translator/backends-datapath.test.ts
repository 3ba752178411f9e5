/**
 * The translator's two backends with the data path (docs/admin-commands.md): the same legacy
 * DriverSim sequence — probe, feature negotiation, queue setup, then 1,000 net frames from one VF
 * to another over a switch, or block writes and reads — through mmr (MMIO on the MMR block) and
 * through admin (legacy admin commands on the PF), on two fresh machines, gives identical
 * frames (read back by tcpdump -r, an independent decoder), identical sectors, identical
 * guest-visible register values, identical device state and identical events. The topology routes
 * mmr's QUEUE_NOTIFY to the legacy register, where the admin backend's NOTIFY_INFO address is.
 */
import { describe, expect, it } from 'vitest';
import type { VmmrEvent } from '../../src/base/events.js';
import { NetDevice } from '../../src/devices/net/device.js';
import type { Machine } from '../../src/machine/machine.js';
import { deviceConfigs } from '../../src/spec/index.js';
import { mac, tcpdumpPackets } from '../support/frames.js';
import { record } from '../support/functions.js';
import { blockDriverOn, netDriverOn, wiredMachine } from '../support/wired.js';

const T = deviceConfigs.block.constants;
const BACKENDS = ['mmr', 'admin'] as const;
type Backend = (typeof BACKENDS)[number];

function frames(n: number, src: string, dst: string): Buffer[] {
  return Array.from({ length: n }, (_, i) => {
    const b = Buffer.alloc(60 + (i % 300));
    for (let k = 14; k < b.length; k++) b[k] = (i * 13 + k) & 0xff;
    mac(dst).copy(b, 0);
    mac(src).copy(b, 6);
    b.writeUInt16BE(0x88b5, 12);
    b.writeUInt32BE(i, 14);
    return b;
  });
}

/** The guest-visible legacy header (each register at its width, ISR left alone) and device config, through I/O BAR0. */
function guestRegisters(machine: Machine, bdf: string): number[] {
  const view = machine.guestView(bdf);
  const msix = view.vf.msixEnabled();
  const header: Array<[number, number]> = [
    [0, 4],
    [4, 4],
    [8, 4],
    [12, 2],
    [14, 2],
    [18, 1],
    ...(msix
      ? ([
          [20, 2],
          [22, 2],
        ] as Array<[number, number]>)
      : []),
  ];
  const start = msix ? 24 : 20;
  const config = Array.from({ length: view.vf.device.model.config.size }, (_, i): [number, number] => [
    start + i,
    1,
  ]);
  return [...header, ...config].map(([port, width]) => view.ioRead(port, width));
}

interface NetRun {
  sent: Buffer[];
  captured: Buffer[];
  received: Buffer[];
  registers: number[][];
  state: unknown[];
  events: VmmrEvent[];
  adminCommands: number;
}

function netRun(backend: Backend): NetRun {
  const PF = '0000:01:00.0';
  const [A, B] = ['0000:01:00.1', '0000:01:00.2'];
  const machine = wiredMachine([
    {
      bdf: PF,
      type: 'net',
      totalVfs: 2,
      initialVfs: 2,
      switch: 'lan',
      adminQueue: true,
      translator: backend,
      notify: 'legacy-register',
      vfs: { [A]: { mac: '02:00:00:00:00:0a' }, [B]: { mac: '02:00:00:00:00:0b' } },
    },
  ]);
  const events = record(machine);
  const a = netDriverOn(machine, A, { via: 'legacy-io', names: [] }).driver;
  const b = netDriverOn(machine, B, { via: 'legacy-io', names: [] }).driver;
  const sent = frames(1000, '02:00:00:00:00:0a', '02:00:00:00:00:0b');
  const received: Buffer[] = [];
  for (let i = 0; i < sent.length; i += 50) {
    a.send(sent.slice(i, i + 50));
    received.push(...b.receive().map((f) => Buffer.from(f.frame)));
  }
  const net = machine.dataPathOf(A).backend;
  if (!(net instanceof NetDevice)) throw new Error('no net back-end');
  return {
    sent,
    captured: tcpdumpPackets(net.capture.toPcap()),
    received,
    registers: [A, B].map((bdf) => guestRegisters(machine, bdf)),
    state: [A, B].map((bdf) => machine.find(bdf).device.getState()),
    events,
    adminCommands: machine.pfs[0]!.admin!.uses(3) ? 1 : 0,
  };
}

function blockRun(backend: Backend) {
  const PF = '0000:81:00.0';
  const VF = '0000:81:00.1';
  const machine = wiredMachine([
    {
      bdf: PF,
      type: 'block',
      totalVfs: 1,
      initialVfs: 1,
      ramDiskSize: 4 << 20,
      adminQueue: true,
      translator: backend,
      notify: 'legacy-register',
    },
  ]);
  const events = record(machine);
  const { driver } = blockDriverOn(machine, VF, { via: 'legacy-io', names: [] });
  const sectors = Array.from({ length: 64 }, (_, i) => {
    const data = Buffer.alloc(4096);
    for (let k = 0; k < data.length; k++) data[k] = (i * 31 + k * 7) & 0xff;
    return { sector: i * 97, data };
  });
  const writes = driver.submit(sectors.map((s) => ({ type: T.T_OUT.value, sector: s.sector, out: s.data })));
  const reads = driver.submit(sectors.map((s) => ({ type: T.T_IN.value, sector: s.sector, inLength: 4096 })));
  const beyond = driver.read(((4 << 20) >> 9) - 1, 2);
  return {
    sectors,
    writes: writes.map((r) => r.status),
    reads: reads.map((r) => Buffer.from(r.data)),
    beyond: beyond.status,
    registers: guestRegisters(machine, VF),
    state: machine.find(VF).device.getState(),
    events,
  };
}

describe('mmr and admin backends with the data path', () => {
  it('1,000 net frames from one VF to another: the same frames on the wire and in the receiver, the same state and events', () => {
    const [viaMmr, viaAdmin] = BACKENDS.map(netRun);
    // the independent decoder sees exactly the frames sent, through either backend
    expect(viaMmr!.captured).toEqual(viaMmr!.sent);
    expect(viaAdmin!.captured).toEqual(viaAdmin!.sent);
    expect(viaAdmin!.received).toEqual(viaMmr!.received);
    expect(viaAdmin!.received).toHaveLength(1000);
    expect(viaAdmin!.registers).toEqual(viaMmr!.registers);
    expect(viaAdmin!.state).toEqual(viaMmr!.state);
    expect(viaAdmin!.events).toEqual(viaMmr!.events);
    expect(new Set(viaAdmin!.events.map((e) => e.type))).toContain('notify');
    // the admin run really went through admin commands: the PF's driver list holds the legacy commands
    expect([viaMmr!.adminCommands, viaAdmin!.adminCommands]).toEqual([0, 1]);
  });

  it('block writes and reads: the same sectors, statuses, state and events', () => {
    const [viaMmr, viaAdmin] = BACKENDS.map(blockRun);
    expect(viaMmr!.writes.every((s) => s === T.S_OK.value)).toBe(true);
    expect(viaMmr!.reads).toEqual(viaMmr!.sectors.map((s) => s.data));
    expect(viaAdmin!.reads).toEqual(viaMmr!.reads);
    expect(viaAdmin!.writes).toEqual(viaMmr!.writes);
    expect(viaAdmin!.beyond).toBe(viaMmr!.beyond);
    expect(viaMmr!.beyond).toBe(T.S_IOERR.value);
    expect(viaAdmin!.registers).toEqual(viaMmr!.registers);
    expect(viaAdmin!.state).toEqual(viaMmr!.state);
    expect(viaAdmin!.events).toEqual(viaMmr!.events);
  });
});
