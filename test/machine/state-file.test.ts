/**
 * State that survives: the state file (src/machine/state-file.ts) round-trips every function byte for
 * byte; a save is atomic even under kill -9; anything but a good file of this format and version
 * is refused with an error naming the file (never a silent fresh start).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'undici';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine/machine.js';
import { STATE_FORMAT, STATE_VERSION, type MachineState } from '../../src/machine/state.js';
import { formatBdf } from '../../src/pci/bdf.js';
import { Emulator } from '../../src/machine/emulator.js';
import {
  loadStateFile,
  removeStaleTemporaryFiles,
  saveStateFile,
  StateFileError,
} from '../../src/machine/state-file.js';
import { parseTopology } from '../../src/machine/topology.js';
import { activity, applyActivity } from '../support/robustness/activity.js';
import { buildForChildren, type Built } from '../support/build.js';
import { diffDumps, dumpMachine } from '../support/robustness/oracle.js';
import { call, expectProblem, start } from '../support/robustness/server.js';

const LONG = process.env.FUZZ_LONG === '1';
const TMP = mkdtempSync(join(tmpdir(), 'vmmr-state-'));

const TOPOLOGY = parseTopology(
  {
    pfs: [
      {
        bdf: '0000:01:00.0',
        type: 'net',
        totalVfs: 8,
        vfs: { '0000:01:00.3': { mac: '52:54:00:aa:bb:cc' } },
      },
      {
        bdf: '0000:02:00.0',
        type: 'block',
        totalVfs: 6,
        firstVfOffset: 4,
        vfStride: 2,
        policy: 'compat',
        vfs: { '02:00.4': { serial: 'disk-1' } },
      },
      { bdf: '0001:03:00.0', type: 'console', totalVfs: 3, notify: 'legacy-register' },
      { bdf: '0000:04:00.0', type: 'scsi', totalVfs: 2, queueSize: 32 },
      { bdf: '0000:05:00.0', type: 'rng', totalVfs: 1, vfStride: 0 },
      { bdf: '0000:06:00.0', type: '9p', totalVfs: 2 },
      { bdf: '0000:07:00.0', type: 'balloon', totalVfs: 0 },
    ],
  },
  'state test topology',
);

export const faults = {
  restarts: 0,
  midWrite: 0,
  kills: 0,
  killChecks: 0,
  corruptFilesRefused: 0,
  roundTrips: 0,
  lost: 0,
};

afterAll(() => {
  rmSync(TMP, { recursive: true, force: true });
  console.log(
    `state-file: ${faults.roundTrips} save/load round trips, ${faults.corruptFilesRefused} bad files refused, ` +
      `${faults.kills} kill -9 during saves (${faults.midWrite} mid-write, ${faults.killChecks} files checked), ` +
      `${faults.restarts} service restarts, ${faults.lost} lost or corrupted`,
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
    const bad = {
      ...m.snapshot(),
      functions: [{ bdf: '0000:01:00.0', config: [], device: { x: 1n } }],
    } as unknown as MachineState;
    expect(() => saveStateFile(file, bad)).toThrow();
    expect(readFileSync(file, 'utf8')).toBe(good);
    expect(readdirSync(TMP).filter((f) => f.includes('keep.json') && f !== 'keep.json')).toEqual([]);
  });
});

describe('bad files stop startup with an error naming the file', () => {
  const m = new Machine(TOPOLOGY);
  applyActivity(m, {
    numVfs: [3, 2, 1, 1, 1, 1, 0, 0],
    pageSizeShift: 1,
    probes: [
      { pick: 1, legacy: true, msix: true },
      { pick: 0, legacy: false, msix: false },
    ],
    writes: [],
  });
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
    [
      'a config dword out of range',
      JSON.stringify({ ...goodState, functions: [{ ...goodState.functions[0]!, config: [[4096, 0]] }] }),
    ],
    [
      'a negative register value',
      JSON.stringify({ ...goodState, functions: [{ ...goodState.functions[0]!, config: [[1, -1]] }] }),
    ],
    [
      'a device array of the wrong length',
      JSON.stringify({
        ...goodState,
        functions: [
          { ...goodState.functions[0]!, device: { ...goodState.functions[0]!.device, msix: [1, 2, 3] } },
        ],
      }),
    ],
    [
      'a function that does not exist',
      JSON.stringify({
        ...goodState,
        functions: [...goodState.functions, { ...goodState.functions[0]!, bdf: '0000:09:00.0' }],
      }),
    ],
    [
      'a VF that is not enabled',
      JSON.stringify({
        ...goodState,
        functions: [...goodState.functions, { ...goodState.functions[0]!, bdf: '0000:01:00.8' }],
      }),
    ],
    [
      'a malformed BDF',
      JSON.stringify({ ...goodState, functions: [{ ...goodState.functions[0]!, bdf: 'zz' }] }),
    ],
    ['colliding PFs', JSON.stringify({ ...goodState, pfs: [goodState.pfs[0], goodState.pfs[0]] })],
    [
      'a PF of an unknown type',
      JSON.stringify({ ...goodState, pfs: [{ ...goodState.pfs[0]!, type: 'gpu' }] }),
    ],
  ])('%s', (_name, text) => {
    const { error } = startupError(text);
    expect(error).toBeDefined();
  });

  it('a directory or an unreadable path is an error, not a fresh start', () => {
    expect(() => loadStateFile(TMP)).toThrow(StateFileError);
    expect(() => loadStateFile(TMP)).toThrow(TMP);
  });

  it('format and version are named when they are what differs', () => {
    expect(startupError(JSON.stringify({ ...goodState, version: 99 })).error?.message).toMatch(
      new RegExp(`not a ${STATE_FORMAT} version ${STATE_VERSION} file.*version 99`),
    );
  });
});

let built: Built;
beforeAll(async () => {
  built = await buildForChildren('state');
}, 60_000);
afterAll(() => built?.remove());

describe('kill -9 during saves', () => {
  /** Generation written into a loaded state; throws when functions disagree (a torn file). */
  function generationOf(state: MachineState): number {
    const gens = new Set<number>();
    for (const f of state.functions) {
      if (f.msix) gens.add(f.msix.vectors[0]!.data);
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
        const child = spawn(
          process.execPath,
          [built.out('test/support/robustness/saver.ts'), file, String(known + 1), '1024'],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let reported = known;
        const reports: number[] = [];
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
                reports.push(Date.now());
                if (reports.length >= 2) resolveFirst();
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
        // Kill at a random moment: early (maybe before the first save), at a random point of a
        // save loop iteration, or right inside a write (once the temporary file appears).
        if (k % 3 === 0) {
          await new Promise((r) => setTimeout(r, Math.random() * 250));
        } else if (k % 3 === 1) {
          await firstSave;
          const iteration = reports[reports.length - 1]! - reports[reports.length - 2]!;
          await new Promise((r) => setTimeout(r, Math.random() * iteration));
        } else {
          // Right inside a write: as soon as the next temporary file appears.
          await firstSave;
          const temp = join(TMP, `.killed.json.${child.pid}.tmp`);
          const until = Date.now() + 5000;
          while (!existsSync(temp) && Date.now() < until) await new Promise((r) => setImmediate(r));
        }
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

// ---------------------------------------------------------------------------------------------
// The service: VMMR_STATE_FILE end to end

interface Child {
  url: string;
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env))
    if (k.startsWith('VMMR_') || ['HOST', 'PORT', 'LOG_LEVEL'].includes(k)) delete env[k];
  return { ...env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...extra };
}

/** Runs `vmmr serve` (the built CLI); resolves once it listens, or rejects with its exit. */
function serveChild(env: Record<string, string>): Promise<Child> {
  const proc = spawn(process.execPath, [built.cli, 'serve'], {
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.on('close', (code, signal) => r({ code, signal })),
  );
  return new Promise((resolveChild, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const url = /vmmr ready on (http:\/\/[^"\s]+)/.exec(out)?.[1];
      if (url) resolveChild({ url, proc, stdout: () => out, stderr: () => err, exited });
    });
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    void exited.then(({ code, signal }) =>
      reject(Object.assign(new Error(`vmmr exited ${code ?? signal}: ${err}`), { code, stderr: err })),
    );
  });
}

async function stopChild(c: Child): Promise<void> {
  c.proc.kill('SIGTERM');
  const { code } = await c.exited;
  expect(code, c.stderr()).toBe(0);
}

async function api(
  url: string,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string; json: unknown }> {
  const res = await request(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, text, json };
}

/** Every function's config dump and full description, and the whole state document. */
async function fullDump(url: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  out.set('state', (await api(url, 'GET', '/api/v1/state')).text);
  let cursor: string | null = null;
  do {
    const page = (
      await api(
        url,
        'GET',
        `/api/v1/functions?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      )
    ).json as {
      items: Array<{ bdf: string }>;
      nextCursor: string | null;
    };
    for (const { bdf } of page.items) {
      const description = await api(url, 'GET', `/api/v1/functions/${bdf}`);
      const config = await api(url, 'GET', `/api/v1/functions/${bdf}/config`);
      out.set(bdf, `${description.text}\n${config.text}`);
    }
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

/** Driver activity over HTTP: VFs, BAR placement, probes' effects, MSI-X, device config. */
async function activityOverHttp(url: string, salt: number): Promise<void> {
  expect((await api(url, 'PUT', '/api/v1/pfs/0000:01:00.0/sriov', { numVfs: 40 })).status).toBe(200);
  expect((await api(url, 'PUT', '/api/v1/pfs/0000:81:00.0/sriov', { numVfs: 7 })).status).toBe(200);
  const ops: unknown[] = [];
  for (const [pf, n] of [
    ['0000:01:00.0', 40],
    ['0000:81:00.0', 7],
  ] as const) {
    ops.push({ bdf: pf, space: 'config', op: 'write', offset: 4, width: 2, value: 6 });
    ops.push({ bdf: pf, space: 'config', op: 'write', offset: 0x10, width: 4, value: 0xfe000000 });
    ops.push({ bdf: pf, space: 'bar0', op: 'write', offset: 0x14, width: 1, value: 3 });
    const base = parseInt(pf.slice(5, 7), 16) << 8;
    for (let i = 0; i < n; i += 3) {
      const vf = formatBdf(0, base + 1 + i);
      ops.push({
        bdf: vf,
        space: 'bar2',
        op: 'write',
        offset: 0x2000 + 8,
        width: 4,
        value: (salt * 1000 + i) >>> 0,
      });
      ops.push({ bdf: vf, space: 'bar2', op: 'write', offset: 0x16, width: 2, value: i % 2 });
      ops.push({
        bdf: vf,
        space: 'bar2',
        op: 'write',
        offset: 0x20,
        width: 8,
        value: `0x${(0x12345000 + salt + i).toString(16)}00000000`,
      });
      ops.push({ bdf: vf, space: 'bar2', op: 'write', offset: 0x1012, width: 1, value: 7 });
      ops.push({ bdf: vf, space: 'config', op: 'write', offset: 0x4, width: 2, value: 4 });
    }
  }
  const res = await api(url, 'POST', '/api/v1/access', { ops, onError: 'continue' });
  expect(res.status, res.text.slice(0, 300)).toBe(200);
  const failed = (res.json as { results: Array<{ ok: boolean; error?: unknown }> }).results.filter(
    (r) => !r.ok,
  );
  expect(failed.slice(0, 3)).toEqual([]);
  expect((await api(url, 'POST', '/api/v1/functions/0000:01:00.4/interrupt', { config: true })).status).toBe(
    200,
  );
}

describe('the service keeps its state across restarts', () => {
  it('graceful restart (real CLI process): every function byte-for-byte the same', async () => {
    const file = join(TMP, 'service.json');
    const first = await serveChild({ VMMR_STATE_FILE: file });
    expect(first.stdout()).toContain('fresh start from the topology');
    await activityOverHttp(first.url, 1);
    const before = await fullDump(first.url);
    expect(before.size).toBeGreaterThan(40);
    await stopChild(first);
    faults.restarts++;
    const second = await serveChild({ VMMR_STATE_FILE: file });
    expect(second.stdout()).toContain(`state restored from ${file}`);
    const after = await fullDump(second.url);
    const diffs = [...before].filter(([k, v]) => after.get(k) !== v).map(([k]) => k);
    if (diffs.length || after.size !== before.size) faults.lost++;
    expect(diffs).toEqual([]);
    expect(after.size).toBe(before.size);
    // POST /api/v1/state/save answers the file and its size.
    const saved = await api(second.url, 'POST', '/api/v1/state/save');
    expect(saved.status, saved.text).toBe(200);
    expect(saved.json).toEqual({ file, bytes: statSync(file).size });
    await stopChild(second);
  }, 60_000);

  it('kill -9 of the service between and during saves: it restarts with the last or the next state', async () => {
    const file = join(TMP, 'service-killed.json');
    let acknowledged = 0;
    for (let k = 0; k < (LONG ? 10 : 1); k++) {
      const child = await serveChild({ VMMR_STATE_FILE: file });
      faults.restarts++;
      // What it restored: the Interrupt Line of PF 01:00.0 counts the saves.
      const line = Number(
        (
          (await api(child.url, 'GET', '/api/v1/functions/0000:01:00.0/config/0x3c?width=1')).json as {
            value: string;
          }
        ).value,
      );
      expect([acknowledged & 0xff, (acknowledged + 1) & 0xff]).toContain(line);
      acknowledged = line;
      if (k === 0) await activityOverHttp(child.url, 2);
      const saving = (async () => {
        for (let n = acknowledged + 1; ; n++) {
          const w = await api(child.url, 'PUT', '/api/v1/functions/0000:01:00.0/config/0x3c', {
            width: 1,
            value: n & 0xff,
          });
          if (w.status !== 200) return;
          const s = await api(child.url, 'POST', '/api/v1/state/save').catch(() => undefined);
          if (s?.status !== 200) return;
          acknowledged = n;
        }
      })().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 300));
      child.proc.kill('SIGKILL');
      faults.kills++;
      await child.exited;
      await saving;
    }
    const last = await serveChild({ VMMR_STATE_FILE: file });
    const line = Number(
      (
        (await api(last.url, 'GET', '/api/v1/functions/0000:01:00.0/config/0x3c?width=1')).json as {
          value: string;
        }
      ).value,
    );
    expect([acknowledged & 0xff, (acknowledged + 1) & 0xff]).toContain(line);
    await stopChild(last);
  }, 60_000);

  /** A bad file of each kind, written to a fresh path. */
  function badStateFile(kind: string): string {
    const file = join(TMP, `startup-${kind}-${Math.random().toString(36).slice(2)}.json`);
    const m = new Machine(TOPOLOGY);
    applyActivity(m, { numVfs: [2, 2, 1, 1, 1, 1, 0, 0], pageSizeShift: 0, probes: [], writes: [] });
    const good = `${JSON.stringify(m.snapshot())}\n`;
    const content: Record<string, string> = {
      corrupt: '{"format":"vmmr-state","version":1,"pfs":[{"bdf"',
      truncated: good.slice(0, Math.floor(good.length * 0.6)),
      format: JSON.stringify({ format: 'something-else', version: 1, pfs: [], functions: [] }),
      version: JSON.stringify({ format: STATE_FORMAT, version: 7, pfs: [], functions: [] }),
      unrestorable: JSON.stringify({ ...m.snapshot(), pfs: [] }),
    };
    writeFileSync(file, content[kind]!);
    return file;
  }

  it('a corrupt file, or one of another version, stops `vmmr serve` with exit code 2 and one line naming the file', async () => {
    await Promise.all(
      ['corrupt', 'version'].map(async (kind) => {
        const file = badStateFile(kind);
        const before = readFileSync(file);
        const failed = await serveChild({ VMMR_STATE_FILE: file }).then(
          async (c) => {
            await stopChild(c);
            return undefined;
          },
          (e: Error & { code: number; stderr: string }) => e,
        );
        expect(failed, `${kind}: the service started`).toBeDefined();
        expect(failed!.code).toBe(2);
        const lines = failed!.stderr.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(
          new RegExp(`^vmmr: state file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `),
        );
        // The bad file is left as it was (no fresh state written over it).
        expect(readFileSync(file).equals(before)).toBe(true);
        faults.corruptFilesRefused++;
      }),
    );
  }, 30_000);

  it.each(['corrupt', 'truncated', 'format', 'version', 'unrestorable'])(
    'startup refuses a %s state file (in process)',
    async (kind) => {
      const file = badStateFile(kind);
      const before = readFileSync(file);
      const started = start({ VMMR_STATE_FILE: file }, TOPOLOGY);
      await expect(started).rejects.toThrow(StateFileError);
      await expect(started).rejects.toThrow(`state file ${file}: `);
      expect(readFileSync(file).equals(before)).toBe(true);
      faults.corruptFilesRefused++;
    },
  );

  it('POST /api/v1/state/save without VMMR_STATE_FILE is 409 problem+json; with it, {file, bytes}', async () => {
    const plain = await start({}, TOPOLOGY);
    const a = await call(plain.url, 'POST', '/api/v1/state/save');
    expect(expectProblem(a, 'save without a state file', [409]).code).toBe('VMMR_ERR_NOT_CONFIGURED');
    await plain.close();
    const file = join(TMP, 'in-process.json');
    const kept = await start({ VMMR_STATE_FILE: file }, TOPOLOGY);
    expect((await call(kept.url, 'PUT', '/api/v1/pfs/0000:01:00.0/sriov', { numVfs: 3 })).status).toBe(200);
    // A PF added at run time is part of the state too.
    expect(
      (await call(kept.url, 'POST', '/api/v1/pfs', { bdf: '0000:40:00.0', type: 'rng', totalVfs: 2 })).status,
    ).toBe(201);
    expect((await call(kept.url, 'PUT', '/api/v1/pfs/0000:40:00.0/sriov', { numVfs: 1 })).status).toBe(200);
    expect(
      (await call(kept.url, 'PUT', '/api/v1/functions/0000:40:00.1/bars/2/0x2008', { width: 4, value: 77 }))
        .status,
    ).toBe(200);
    const b = await call(kept.url, 'POST', '/api/v1/state/save');
    expect(b.status, b.text).toBe(200);
    expect(b.json).toEqual({ file, bytes: statSync(file).size });
    const before = await call(kept.url, 'GET', '/api/v1/state');
    await kept.close(); // graceful: saves again
    faults.restarts++;
    const again = await start({ VMMR_STATE_FILE: file }, TOPOLOGY);
    expect((await call(again.url, 'GET', '/api/v1/state')).text).toBe(before.text);
    const kept40 = await call(again.url, 'GET', '/api/v1/functions/0000:40:00.1/bars/2/0x2008?width=4');
    expect(Number((kept40.json as { value: string }).value)).toBe(77);
    await again.close();
  });
});
