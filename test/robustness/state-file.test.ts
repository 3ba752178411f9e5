/**
 * State that survives: the state file (src/state-file.ts) round-trips every function byte for
 * byte; a save is atomic even under kill -9; anything but a good file of this format and version
 * is refused with an error naming the file (never a silent fresh start).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Machine, STATE_FORMAT, STATE_VERSION, type MachineState } from '../../src/machine.js';
import { Emulator } from '../../src/server/emulator.js';
import { loadStateFile, removeStaleTemporaryFiles, saveStateFile, StateFileError } from '../../src/state-file.js';
import { parseTopology } from '../../src/topology.js';
import { activity, applyActivity } from './support/activity.js';
import { buildForChildren, type Built } from './support/build.js';
import { diffDumps, dumpMachine } from './support/oracle.js';

const LONG = process.env.FUZZ_LONG === '1';
const TMP = mkdtempSync(join(tmpdir(), 'vmmr-state-'));

const TOPOLOGY = parseTopology(
  {
    pfs: [
      { bdf: '0000:01:00.0', type: 'net', totalVfs: 8, vfs: { '0000:01:00.3': { mac: '52:54:00:aa:bb:cc' } } },
      { bdf: '0000:02:00.0', type: 'block', totalVfs: 6, firstVfOffset: 4, vfStride: 2, policy: 'compat', vfs: { '02:00.4': { serial: 'disk-1' } } },
      { bdf: '0001:03:00.0', type: 'console', totalVfs: 3, notify: 'legacy-register' },
      { bdf: '0000:04:00.0', type: 'scsi', totalVfs: 2, queueSize: 32 },
      { bdf: '0000:05:00.0', type: 'rng', totalVfs: 1, vfStride: 0 },
      { bdf: '0000:06:00.0', type: '9p', totalVfs: 2 },
      { bdf: '0000:07:00.0', type: 'balloon', totalVfs: 0 },
    ],
  },
  'state test topology',
);

export const faults = { midWrite: 0, kills: 0, killChecks: 0, corruptFilesRefused: 0, roundTrips: 0, lost: 0 };

afterAll(() => {
  rmSync(TMP, { recursive: true, force: true });
  console.log(
    `state-file: ${faults.roundTrips} save/load round trips, ${faults.corruptFilesRefused} bad files refused, ` +
      `${faults.kills} kill -9 during saves (${faults.midWrite} mid-write, ${faults.killChecks} files checked), ${faults.lost} lost or corrupted`,
  );
});

/** Restores through the service's own path (Emulator.restore: topology rules, then Machine.restore). */
function restoreLikeTheService(state: MachineState): Machine {
  return new Emulator(TOPOLOGY).restore(state);
}

describe('round trip', () => {
  it('save, load and restore give every function back byte for byte (config, BARs, device)', () => {
    let n = 0;
    fc.assert(
      fc.property(activity, (a) => {
        const m = new Machine(TOPOLOGY);
        applyActivity(m, a);
        const before = dumpMachine(m);
        const file = join(TMP, `round-${n++}.json`);
        saveStateFile(file, m.snapshot());
        const state = loadStateFile(file);
        expect(state).toBeDefined();
        const after = dumpMachine(restoreLikeTheService(state!));
        faults.roundTrips++;
        const diff = diffDumps(before, after);
        if (diff.length) faults.lost++;
        expect(diff).toEqual([]);
        // Saved twice, the state is the same file (stable order, nothing depends on history).
        const again = join(TMP, `again-${n}.json`);
        saveStateFile(again, restoreLikeTheService(state!).snapshot());
        expect(readFileSync(again, 'utf8')).toBe(readFileSync(file, 'utf8'));
        rmSync(file);
        rmSync(again);
      }),
      { numRuns: LONG ? 500 : 40 },
    );
  });

  it('a missing file is "no state yet", not an error', () => {
    expect(loadStateFile(join(TMP, 'does-not-exist.json'))).toBeUndefined();
  });

  it('a save that fails half-way leaves the previous file and no temporary file', () => {
    const file = join(TMP, 'keep.json');
    const m = new Machine(TOPOLOGY);
    saveStateFile(file, m.snapshot());
    const good = readFileSync(file, 'utf8');
    const bad = { ...m.snapshot(), functions: [{ bdf: '0000:01:00.0', config: [], device: { x: 1n } }] } as unknown as MachineState;
    expect(() => saveStateFile(file, bad)).toThrow();
    expect(readFileSync(file, 'utf8')).toBe(good);
    expect(readdirSync(TMP).filter((f) => f.includes('keep.json') && f !== 'keep.json')).toEqual([]);
  });
});

describe('bad files stop startup with an error naming the file', () => {
  const m = new Machine(TOPOLOGY);
  applyActivity(m, { numVfs: [3, 2, 1, 1, 1, 1, 0, 0], pageSizeShift: 1, probes: [{ pick: 1, legacy: true, msix: true }, { pick: 0, legacy: false, msix: false }], writes: [] });
  const goodState = m.snapshot();
  const goodText = `${JSON.stringify(goodState)}\n`;

  /** Loads and restores like startup does; returns the error or undefined when accepted. */
  function startupError(text: string | Buffer): { error?: Error; state?: MachineState } {
    const file = join(TMP, `bad-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, text);
    try {
      const state = loadStateFile(file);
      if (state) {
        try {
          restoreLikeTheService(state);
        } catch (e) {
          // What the service does with a restore refusal at startup (src/server integration).
          throw new StateFileError(file, `cannot be restored: ${(e as Error).message}`);
        }
      }
      return { state };
    } catch (e) {
      expect(e).toBeInstanceOf(StateFileError);
      expect((e as Error).message).toContain(file);
      expect((e as Error).message).not.toContain('\n');
      faults.corruptFilesRefused++;
      return { error: e as Error };
    } finally {
      rmSync(file, { force: true });
    }
  }

  it('the good file is accepted', () => {
    expect(startupError(goodText).error).toBeUndefined();
  });

  it('every truncation of a good file is refused (or is the whole state)', () => {
    const cuts = new Set<number>([0, 1, goodText.length - 2, goodText.length - 1]);
    for (let i = 0; i < (LONG ? 2000 : 150); i++) cuts.add(Math.floor(Math.random() * goodText.length));
    for (const cut of cuts) {
      const { error, state } = startupError(goodText.slice(0, cut));
      if (!error) expect(JSON.stringify(state)).toBe(JSON.stringify(goodState));
    }
  });

  it('flipped bytes are refused or give a state that validates and restores', () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const bytes = Buffer.from(goodText);
        const i = at % bytes.length;
        bytes[i] = bytes[i]! ^ xor;
        startupError(bytes); // asserts inside: either accepted, or a StateFileError naming the file
      }),
      { numRuns: LONG ? 5000 : 300 },
    );
  });

  it.each([
    ['empty file', ''],
    ['not JSON', 'vmmr state\n'],
    ['binary junk', Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x22])],
    ['a JSON array', '[]'],
    ['null', 'null'],
    ['another format', JSON.stringify({ ...goodState, format: 'qemu-savevm' })],
    ['a future version', JSON.stringify({ ...goodState, version: STATE_VERSION + 1 })],
    ['a topology file', JSON.stringify({ pfs: goodState.pfs })],
    ['an unknown field', JSON.stringify({ ...goodState, extra: 1 })],
    ['a config dword out of range', JSON.stringify({ ...goodState, functions: [{ ...goodState.functions[0]!, config: [[4096, 0]] }] })],
    ['a negative register value', JSON.stringify({ ...goodState, functions: [{ ...goodState.functions[0]!, config: [[1, -1]] }] })],
    ['a device array of the wrong length', JSON.stringify({ ...goodState, functions: [{ ...goodState.functions[0]!, device: { ...goodState.functions[0]!.device, msix: [1, 2, 3] } }] })],
    ['a function that does not exist', JSON.stringify({ ...goodState, functions: [...goodState.functions, { ...goodState.functions[0]!, bdf: '0000:09:00.0' }] })],
    ['a VF that is not enabled', JSON.stringify({ ...goodState, functions: [...goodState.functions, { ...goodState.functions[0]!, bdf: '0000:01:00.8' }] })],
    ['a malformed BDF', JSON.stringify({ ...goodState, functions: [{ ...goodState.functions[0]!, bdf: 'zz' }] })],
    ['colliding PFs', JSON.stringify({ ...goodState, pfs: [goodState.pfs[0], goodState.pfs[0]] })],
    ['a PF of an unknown type', JSON.stringify({ ...goodState, pfs: [{ ...goodState.pfs[0]!, type: 'gpu' }] })],
  ])('%s', (_name, text) => {
    const { error } = startupError(text);
    expect(error).toBeDefined();
  });

  it('a directory or an unreadable path is an error, not a fresh start', () => {
    expect(() => loadStateFile(TMP)).toThrow(StateFileError);
    expect(() => loadStateFile(TMP)).toThrow(TMP);
  });

  it('format and version are named when they are what differs', () => {
    expect(startupError(JSON.stringify({ ...goodState, version: 99 })).error?.message).toMatch(new RegExp(`not a ${STATE_FORMAT} version ${STATE_VERSION} file.*version 99`));
  });
});

describe('kill -9 during saves', () => {
  let built: Built;
  beforeAll(async () => {
    built = await buildForChildren('state');
  }, 60_000);
  afterAll(() => built?.remove());

  /** Generation written into a loaded state; throws when functions disagree (a torn file). */
  function generationOf(state: MachineState): number {
    const gens = new Set<number>();
    for (const f of state.functions) {
      if (f.device.msix) gens.add(f.device.msix[2]!);
    }
    if (gens.size !== 1) throw new Error(`functions hold generations ${[...gens].join(', ')}`);
    return [...gens][0]!;
  }

  it(
    'the file always parses to the old or the new state',
    async () => {
      const file = join(TMP, 'killed.json');
      const kills = LONG ? 60 : 6;
      let known = 0; // generation the file holds for sure
      for (let k = 0; k < kills; k++) {
        const child = spawn(process.execPath, [built.out('test/robustness/support/saver.ts'), file, String(known + 1), '1024'], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let reported = known;
        let stderr = '';
        let buffered = '';
        const firstSave = new Promise<void>((resolveFirst, reject) => {
          child.stdout.on('data', (d: Buffer) => {
            buffered += d.toString();
            const lines = buffered.split('\n');
            buffered = lines.pop()!;
            for (const line of lines) {
              const g = Number(/^saved (\d+)$/.exec(line)?.[1]);
              if (g) {
                reported = g;
                resolveFirst();
              }
            }
          });
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('exit', (_code, signal) => {
            if (signal !== 'SIGKILL') reject(new Error(`saver exited: ${stderr}`));
          });
        });
        // 'close': the process is gone AND its stdout is drained, so `reported` is final.
        const exited = new Promise<void>((r) => child.on('close', () => r()));
        // Kill at a random moment: before the first save, or after some saves, mid-write mostly.
        if (k % 4 !== 0) await firstSave;
        await new Promise((r) => setTimeout(r, Math.random() * 250));
        child.kill('SIGKILL');
        faults.kills++;
        await exited;
        if (!existsSync(file)) {
          expect(known).toBe(0); // nothing was ever saved yet
          continue;
        }
        let g: number;
        try {
          g = generationOf(loadStateFile(file)!);
        } catch (e) {
          faults.lost++;
          throw new Error(`after kill ${k}: ${(e as Error).message}`);
        }
        faults.killChecks++;
        // The old state (last one reported saved) or the new one (renamed just before the kill).
        expect([reported, reported + 1]).toContain(g);
        expect(g).toBeGreaterThanOrEqual(known);
        known = g;
      }
      expect(statSync(file).size).toBeGreaterThan(500_000);
      // Kills that landed mid-write left their temporary file; startup removes them.
      const leftovers = readdirSync(TMP).filter((f) => f.startsWith('.killed.json.'));
      faults.midWrite += leftovers.length;
      expect(removeStaleTemporaryFiles(file)).toBe(leftovers.length);
      expect(readdirSync(TMP).filter((f) => f.startsWith('.killed.json.'))).toEqual([]);
      expect(generationOf(loadStateFile(file)!)).toBe(known);
    },
    LONG ? 600_000 : 45_000,
  );
});
