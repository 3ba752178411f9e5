/**
 * Building blocks shared by the benchmark sections: topologies, VF enabling through the PF's
 * SR-IOV registers, and DriverSim sequences recorded once and replayed as plain access lists.
 */
import { read, write, type AccessTarget, type Space } from '../../src/access/index.js';
import {
  legacyProbe,
  runSim,
  type LegacyProbeOptions,
  type SimOp,
  type TranscriptEntry,
} from '../../src/driver-sim/probes.js';
import { Machine } from '../../src/machine/machine.js';
import { barLayout, mmrLocator, pciHeader, sriovCap } from '../../src/spec/index.js';
import type { VirtioPf } from '../../src/mmr/pf.js';
import { parseTopology, type ResolvedTopology } from '../../src/machine/topology.js';
import type { GuestView } from '../../src/translator/guest-view.js';

const S = sriovCap.registers;
const SC = sriovCap.constants;
const H = pciHeader.registers;

/** The memory BAR of a VF, as an access space ("bar2"). */
export const VF_BAR_SPACE = `bar${barLayout.constants.VF_BAR_INDEX.value}` as Space;
/** Offset of the legacy (MMR) block inside the VF BAR. */
export const LEGACY_BLOCK = mmrLocator.constants.LEGACY_BLOCK_OFFSET.value;

/** First VF at PF + 1, stride 1: the PF routing ID (0x0100) + N stays within 16 bits for N <= 65279. */
export const SCALE_PF_BDF = '0000:01:00.0';

/** One net PF with TotalVFs = n, no VF enabled at start. */
export function scaleTopology(totalVfs: number): ResolvedTopology {
  return parseTopology(
    {
      pfs: [
        { bdf: SCALE_PF_BDF, type: 'net', totalVfs, initialVfs: totalVfs, firstVfOffset: 1, vfStride: 1 },
      ],
    },
    'bench',
  );
}

export function scaleMachine(totalVfs: number): Machine {
  return new Machine(scaleTopology(totalVfs), { maxVfs: Math.max(totalVfs, 1) });
}

/** Sets NumVFs, then VF Enable and VF MSE, as a PF driver does (PCIe SR-IOV §9.3.3.3). */
export function enableVfs(pf: VirtioPf, count: number): void {
  write(pf, 'config', pf.sriov + S.NUM_VF.offset, S.NUM_VF.size, count);
  write(pf, 'config', pf.sriov + S.CTRL.offset, S.CTRL.size, SC.CTRL_VFE.value | SC.CTRL_MSE.value);
}

export function disableVfs(pf: VirtioPf): void {
  write(pf, 'config', pf.sriov + S.CTRL.offset, S.CTRL.size, 0);
}

/** Sets the guest's Command.IO so the translator decodes the VF's I/O BAR0. */
export function enableGuestIo(view: GuestView): void {
  write(view, 'guest-config', H.COMMAND.offset, H.COMMAND.size, pciHeader.constants.COMMAND_IO.value);
}

/** Where the legacy-space ops of a DriverSim sequence go. */
export type LegacyRoute = 'mmr' | 'io';

function placeOp(op: SimOp, route: LegacyRoute): { space: Space; offset: number } {
  if (op.space === 'config') return { space: 'config', offset: op.offset };
  if (op.space === 'bar') return { space: `bar${op.bar ?? 0}` as Space, offset: op.offset };
  return route === 'mmr'
    ? { space: VF_BAR_SPACE, offset: LEGACY_BLOCK + op.offset }
    : { space: 'io', offset: op.offset };
}

/** Runs a legacy probe once on a VF and returns what it did (reads carry the values seen). */
export function recordLegacyProbe(
  vf: AccessTarget,
  route: LegacyRoute,
  options: LegacyProbeOptions,
): TranscriptEntry[] {
  return runSim(legacyProbe(options), {
    read: (op) => {
      const at = placeOp(op, route);
      return Number(read(vf, at.space, at.offset, op.width));
    },
    write: (op) => {
      const at = placeOp(op, route);
      write(vf, at.space, at.offset, op.width, op.value ?? 0);
    },
  });
}

/** A recorded sequence as flat arrays, replayed without the generator. */
export interface Replay {
  readonly length: number;
  readonly isWrite: readonly boolean[];
  readonly spaces: readonly Space[];
  readonly offsets: readonly number[];
  readonly widths: readonly number[];
  readonly values: readonly number[];
}

export function compileReplay(transcript: readonly TranscriptEntry[], route: LegacyRoute): Replay {
  const placed = transcript.map((e) => placeOp(e, route));
  return {
    length: transcript.length,
    isWrite: transcript.map((e) => e.op === 'write'),
    spaces: placed.map((p) => p.space),
    offsets: placed.map((p) => p.offset),
    widths: transcript.map((e) => e.width),
    values: transcript.map((e) => e.value),
  };
}

/** Replays a sequence once on a function; returns the sum of the values read (a checksum). */
export function replay(fn: AccessTarget, r: Replay): number {
  let sum = 0;
  for (let i = 0; i < r.length; i++) {
    if (r.isWrite[i]) write(fn, r.spaces[i]!, r.offsets[i]!, r.widths[i]!, r.values[i]!);
    else sum += read(fn, r.spaces[i]!, r.offsets[i]!, r.widths[i]!) as number;
  }
  return sum;
}

/** Replays once and checks every read returns what the recording saw (the replay is faithful). */
export function verifyReplay(fn: AccessTarget, r: Replay, what: string): void {
  for (let i = 0; i < r.length; i++) {
    if (r.isWrite[i]) {
      write(fn, r.spaces[i]!, r.offsets[i]!, r.widths[i]!, r.values[i]!);
      continue;
    }
    const got = Number(read(fn, r.spaces[i]!, r.offsets[i]!, r.widths[i]!));
    if (got !== r.values[i]) {
      throw new Error(
        `${what}: access ${i} (${r.spaces[i]} +0x${r.offsets[i]!.toString(16)} width ${r.widths[i]}) read ${got}, recorded ${r.values[i]}`,
      );
    }
  }
}
