/**
 * Machines with a working data path for tests: a topology parsed as the service parses it, VFs
 * enabled the way sysfs does it, and simulated drivers on top of the register-level transport.
 */
import { setNumVfs } from '../../src/control/sriov.js';
import { BlockDriver } from '../../src/driver-sim/block-driver.js';
import { DmaArena } from '../../src/driver-sim/memory.js';
import { NetDriver } from '../../src/driver-sim/net-driver.js';
import { RegisterTransport, type DriverInterface } from '../../src/driver-sim/register-transport.js';
import { Machine, type MachineOptions } from '../../src/machine/machine.js';
import { parseTopology } from '../../src/machine/topology.js';
import type { VirtioTypeName } from '../../src/spec/index.js';
import { bits } from './datapath-rig.js';

export { bits };

export function wiredMachine(pfs: unknown[], options: MachineOptions = {}): Machine {
  const machine = new Machine(parseTopology({ pfs }, 'test topology'), options);
  for (const pf of machine.pfs) if (pf.definition.initialVfs > 0) setNumVfs(pf, pf.definition.initialVfs);
  return machine;
}

export interface DriverSetup {
  via: DriverInterface;
  names: readonly string[];
}

export function transport(
  machine: Machine,
  bdf: string,
  type: VirtioTypeName,
  setup: DriverSetup,
): RegisterTransport {
  return new RegisterTransport({ machine, bdf, via: setup.via, wanted: bits(type, setup.names) });
}

/** A net driver on a function; the header size follows what was negotiated (10 or 12 bytes). */
export function netDriverOn(
  machine: Machine,
  bdf: string,
  setup: DriverSetup,
): { driver: NetDriver; transport: RegisterTransport; headerSize: number } {
  const t = transport(machine, bdf, 'net', setup);
  const legacy = setup.via !== 'modern';
  const mergeable = (t.negotiated.lo & bits('net', ['MRG_RXBUF']).lo) !== 0;
  const headerSize = legacy && !mergeable ? 10 : 12;
  const driver = new NetDriver(t, {
    arena: new DmaArena(0x10_0000, 0x1000_0000),
    layout: legacy ? 'legacy' : 'modern',
    headerSize,
    mergeable,
  });
  t.ready();
  return { driver, transport: t, headerSize };
}

export function blockDriverOn(
  machine: Machine,
  bdf: string,
  setup: DriverSetup,
): { driver: BlockDriver; transport: RegisterTransport } {
  const t = transport(machine, bdf, 'block', setup);
  const driver = new BlockDriver(t, {
    arena: new DmaArena(0x10_0000, 0x1000_0000),
    layout: setup.via === 'modern' ? 'modern' : 'legacy',
    maxTransfer: 4 << 20,
  });
  t.ready();
  return { driver, transport: t };
}
