/**
 * virtio-net wired into the functions: a legacy driver through a VF's translated guest view
 * (10-byte header, PFN rings, INTx of the guest view) and a modern driver on the PF (12-byte
 * header), their transmitted frames read back from the capture by tcpdump -r, an independent
 * decoder; two VFs on one switch exchange ARP and ICMP echo through their rings.
 */
import { describe, expect, it } from 'vitest';
import { NetDevice } from '../../src/devices/net/device.js';
import type { Machine } from '../../src/machine/machine.js';
import { arp, ethernet, icmpEcho, ip, ipv4, mac, tcpdumpPackets } from '../support/frames.js';
import { netDriverOn, wiredMachine } from '../support/wired.js';

const PF = '0000:01:00.0';
const VF0 = '0000:01:00.1';
const VF1 = '0000:01:00.2';

function frames(n: number, src: string): Buffer[] {
  return Array.from({ length: n }, (_, i) => {
    const b = Buffer.alloc(60 + (i % 200));
    for (let k = 14; k < b.length; k++) b[k] = (i * 7 + k) & 0xff;
    mac('02:00:00:00:00:99').copy(b, 0);
    mac(src).copy(b, 6);
    b.writeUInt16BE(0x88b5, 12);
    b.writeUInt32BE(i, 14);
    return b;
  });
}

function netOf(machine: Machine, bdf: string): NetDevice {
  const backend = machine.dataPathOf(bdf).backend;
  if (!(backend instanceof NetDevice)) throw new Error(`${bdf} has no net back-end`);
  return backend;
}

describe('net through the register model', () => {
  it('a legacy driver sends 1,000 frames through the guest I/O view; tcpdump reads exactly them', () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 2, initialVfs: 2 }]);
    const { driver, headerSize } = netDriverOn(machine, VF0, { via: 'legacy-io', names: [] });
    expect(headerSize).toBe(10);
    const sent = frames(1000, '02:00:00:00:00:01');
    for (let i = 0; i < sent.length; i += 100) driver.send(sent.slice(i, i + 100));
    const net = netOf(machine, VF0);
    expect(net.headerSize).toBe(10);
    expect(net.stats.txFrames).toBe(1000);
    expect(tcpdumpPackets(net.capture.toPcap())).toEqual(sent);
    const view = machine.guestView(VF0);
    expect(machine.find(VF0).device.isr & 1).toBe(1);
    expect(view.intxAsserted).toBe(true);
  });

  it('a modern driver on the PF sends 1,000 frames with the 12-byte header', () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 0 }]);
    const { driver, headerSize } = netDriverOn(machine, PF, { via: 'modern', names: ['VERSION_1'] });
    expect(headerSize).toBe(12);
    const sent = frames(1000, '02:00:00:00:00:02');
    driver.send(sent.slice(0, 500));
    driver.send(sent.slice(500));
    const net = netOf(machine, PF);
    expect(net.headerSize).toBe(12);
    expect(tcpdumpPackets(net.capture.toPcap())).toEqual(sent);
    expect(machine.pfs[0]!.intxAsserted).toBe(true);
  });

  it('nothing is processed before DRIVER_OK or without Bus Master; held notifications run once both are set', () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 1, initialVfs: 1 }]);
    const { driver } = netDriverOn(machine, VF0, { via: 'legacy-io', names: [] });
    const view = machine.guestView(VF0);
    view.writeConfig(4, 2, 0x1); // I/O only: Bus Master clear
    driver.send(frames(3, '02:00:00:00:00:01'));
    const net = netOf(machine, VF0);
    expect(net.stats.txFrames).toBe(0);
    view.writeConfig(4, 2, 0x5);
    machine.drain();
    expect(net.stats.txFrames).toBe(3);
  });
});

describe('two VFs on one switch', () => {
  it('exchange ARP and ICMP echo through their rings', () => {
    const machine = wiredMachine([{ bdf: PF, type: 'net', totalVfs: 2, initialVfs: 2, switch: 'lan' }]);
    const a = netDriverOn(machine, VF0, { via: 'legacy-io', names: [] }).driver;
    const b = netDriverOn(machine, VF1, { via: 'modern', names: ['VERSION_1'] }).driver;
    const macA = Buffer.from(netOf(machine, VF0).mac);
    const macB = Buffer.from(netOf(machine, VF1).mac);
    const ipA = ip('10.0.0.1');
    const ipB = ip('10.0.0.2');
    const bcast = mac('ff:ff:ff:ff:ff:ff');
    const request = ethernet(bcast, macA, 0x0806, arp(1, macA, ipA, Buffer.alloc(6), ipB));
    a.send([request]);
    const gotRequest = b.receive();
    expect(gotRequest.map((f) => Buffer.from(f.frame))).toEqual([request]);
    const reply = ethernet(macA, macB, 0x0806, arp(2, macB, ipB, macA, ipA));
    b.send([reply]);
    expect(a.receive().map((f) => Buffer.from(f.frame))).toEqual([reply]);
    const ping = ethernet(macB, macA, 0x0800, ipv4(ipA, ipB, 1, icmpEcho(8, 7, 1, Buffer.from('vmmr'))));
    a.send([ping]);
    const gotPing = b.receive();
    expect(gotPing.map((f) => Buffer.from(f.frame))).toEqual([ping]);
    const pong = ethernet(macA, macB, 0x0800, ipv4(ipB, ipA, 1, icmpEcho(0, 7, 1, Buffer.from('vmmr'))));
    b.send([pong]);
    expect(a.receive().map((f) => Buffer.from(f.frame))).toEqual([pong]);
  });
});
