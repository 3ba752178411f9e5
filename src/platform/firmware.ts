/**
 * The firmware of a machine (docs/platform.md): what SeaBIOS and the Linux PCI core do before a
 * driver runs, done when the machine is built or restored, after every VF enable and when a
 * guest view opens — through src/platform/assign.ts, so every write goes through the access
 * layer and only BARs that read 0 get an address.
 *
 * A service passes `withFirmware` as MachineOptions.firmware; a library user may too, or call
 * assignAddresses when it wants a report.
 */
import type { FirmwareHook, Machine } from '../machine/machine.js';
import type { VirtioPf } from '../mmr/pf.js';
import type { GuestView } from '../translator/guest-view.js';
import { assignAndPlan, firmwareDword, programGuestView, type GuestPlan } from './assign.js';

class Firmware implements FirmwareHook {
  /** Guest addresses planned for the VFs whose views were not open, per PF. */
  private readonly plans = new Map<VirtioPf, GuestPlan>();

  constructor(private readonly machine: Machine) {}

  machineReady(): void {
    assignAndPlan(this.machine, this.plans);
  }

  vfsEnabled(_pf: VirtioPf): void {
    assignAndPlan(this.machine, this.plans);
  }

  guestViewOpened(view: GuestView): void {
    programGuestView(this.machine, view, this.plans.get(view.vf.pf));
  }

  setByFirmware(view: GuestView, offset: number, value: number): boolean {
    return firmwareDword(this.machine, view, this.plans.get(view.vf.pf), offset) === value;
  }
}

/** MachineOptions.firmware: the machine gets firmware-like address assignment. */
export function withFirmware(machine: Machine): FirmwareHook {
  return new Firmware(machine);
}
