/**
 * The one place the service keeps its Machine. Restore and reset build a new Machine and swap
 * it in with one assignment; route handlers read `emulator.machine` once per request and never
 * await in between, so no request ever sees half of a swap.
 *
 * Event subscribers (the SSE streams) subscribe here, not on a Machine: the emulator forwards
 * the current machine's events and moves its own subscription when the machine is replaced. It
 * subscribes to a machine only while it has listeners, so with nobody listening the core skips
 * building events altogether.
 */
import { VmmrError, isVmmrError } from '../base/errors.js';
import type { VmmrEvent } from '../base/events.js';
import { Machine, type MachineOptions } from './machine.js';
import type { MachineState } from './state.js';
import { TopologyError, parseTopology, type ResolvedTopology } from './topology.js';

/** Something other than a device event changed which functions exist. */
export type TopologyChange =
  | { kind: 'pf-added'; bdf: string }
  | { kind: 'pf-removed'; bdf: string }
  | { kind: 'restore' }
  | { kind: 'reset' };

export interface EmulatorListener {
  event(event: VmmrEvent): void;
  topology(change: TopologyChange): void;
}

export class Emulator {
  private current: Machine;
  private readonly listeners = new Set<EmulatorListener>();
  private detach: (() => void) | undefined;

  constructor(
    /** The topology the service started with: what POST /api/v1/reset goes back to. */
    readonly startup: ResolvedTopology,
    readonly machineOptions: MachineOptions = {},
  ) {
    this.current = new Machine(startup, machineOptions);
  }

  get machine(): Machine {
    return this.current;
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  subscribe(listener: EmulatorListener): () => void {
    this.listeners.add(listener);
    if (!this.detach) this.attach();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.detach) {
        this.detach();
        this.detach = undefined;
      }
    };
  }

  private attach(): void {
    this.detach = this.current.events.subscribe((event) => {
      for (const listener of [...this.listeners]) listener.event(event);
    });
  }

  /** Tells subscribers that functions appeared or went away outside the device model. */
  topologyChanged(change: TopologyChange): void {
    for (const listener of [...this.listeners]) listener.topology(change);
  }

  private replace(machine: Machine, change: TopologyChange): void {
    if (this.detach) {
      this.detach();
      this.detach = undefined;
    }
    this.current.close();
    this.current = machine;
    if (this.listeners.size > 0) this.attach();
    this.topologyChanged(change);
  }

  /** Back to the startup topology, every function fresh. */
  reset(): Machine {
    this.replace(new Machine(this.startup, this.machineOptions), { kind: 'reset' });
    return this.current;
  }

  /**
   * Replaces the machine by one rebuilt from a snapshot (GET /api/v1/state). The PF definitions
   * go through the topology rules first; any refusal is VMMR_ERR_STATE naming what is wrong, and
   * leaves the current machine untouched.
   */
  restore(state: MachineState): Machine {
    let machine: Machine;
    try {
      const { pfs } = parseTopology({ pfs: state.pfs }, 'state');
      const platform = this.startup.platform;
      machine = Machine.restore(
        { ...state, pfs },
        { ...(platform ? { platform } : {}), ...this.machineOptions },
      );
    } catch (e) {
      if (isVmmrError(e) && e.code === 'VMMR_ERR_STATE') throw e;
      const why = e instanceof TopologyError || isVmmrError(e) || e instanceof Error ? e.message : String(e);
      const code = isVmmrError(e) ? ` (${e.code})` : '';
      throw new VmmrError('VMMR_ERR_STATE', `state not restored${code}: ${why}`);
    }
    this.replace(machine, { kind: 'restore' });
    return machine;
  }
}
