/**
 * qtest section: single register accesses per second over the qtest line protocol, against REST
 * and against QEMU's own qtest, on the same legacy probe (the Linux legacy virtio-net sequence on
 * a transitional device's I/O BAR0 at 0xC000: reset, ACKNOWLEDGE, DRIVER, features, three queues
 * by PFN, DRIVER_OK, MAC and status from device config, the ISR — 29 accesses).
 *
 * - vmmr: `bench/server.ts vmmr` in a child process with VMMR_QTEST_SOCKET; a guest view of
 *   VF 01:00.1 (VFs enabled over REST, BAR0 and Command programmed over qtest, as a guest does).
 * - QEMU: Debian's qemu-system-x86_64 (or $VMMR_QEMU), q35, `-device
 *   virtio-net-pci,disable-modern=on` at 00:04.0, started as libqtest starts it (bench/lib/qemu.ts;
 *   `-qtest-log /dev/null`). Without it the QEMU rows say "not measured".
 * - REST: the same accesses as GET/PUT …/guest/io/{port} on one keep-alive connection.
 * - the floor: a bare Node echo server (one `OK` line per line received, nothing else) in its own
 *   process, same socket type and client: what any Node server pays per wake-up, read and write.
 *
 * One at a time: the next command is written when the answer to the last one has arrived (as
 * libqtest does). Pipelined: the probe repeated to 992 commands, written at once, all answers
 * awaited, repeated. The client (this process) is the same for every server. The cases alternate
 * round by round; ratios are medians of per-round ratios. Server CPU per access comes from the
 * server process (IPC for vmmr, /proc for QEMU) over each measurement.
 *
 * `node dist/bench/qtest.js` prints the section; --json prints it as one JSON line (for run.ts);
 * --profile DIR runs the vmmr server under `node --cpu-prof` and leaves its profile in DIR.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'undici';
import { processCpuMicros, qemuVersion, startQemuQtest, type QemuQtestProcess } from './lib/qemu.js';
import { median, now } from './lib/measure.js';
import { formatSection, type Row, type Section, type Target } from './lib/results.js';
import { runIfScript } from './lib/script.js';
import { BENCH_VF, enableBenchVfs, startServerChild, type ServerHandle } from './lib/servers.js';

export interface QtestBenchOptions {
  rounds: number;
  /** Length of one measurement of one case. */
  measureMs: number;
  /** Commands per pipelined write. */
  pipelineDepth: number;
  /** Run the vmmr server under `node --cpu-prof`, its profile left here (`--profile DIR`). */
  profileDir?: string;
}

export const QTEST_DEFAULTS: QtestBenchOptions = { rounds: 5, measureMs: 700, pipelineDepth: 992 };

/** vmmr qtest one at a time ÷ QEMU qtest one at a time. */
export const ONE_AT_A_TIME_GOAL = 2;
/** vmmr qtest pipelined ÷ QEMU qtest pipelined. */
export const PIPELINED_GOAL = 5;

const IO_BASE = 0xc000;
/** <linux/virtio_pci.h> legacy offsets. */
const L = {
  HOST_FEATURES: 0,
  GUEST_FEATURES: 4,
  QUEUE_PFN: 8,
  QUEUE_NUM: 12,
  QUEUE_SEL: 14,
  STATUS: 18,
  ISR: 19,
  CONFIG: 20,
};

interface Access {
  op: 'in' | 'out';
  offset: number;
  width: 1 | 2 | 4;
  value?: number;
}

/** The legacy probe as accesses on I/O BAR0 (no branching: the same accesses on every device). */
export function legacyProbeAccesses(): Access[] {
  const out = (offset: number, width: 1 | 2 | 4, value: number): Access => ({
    op: 'out',
    offset,
    width,
    value,
  });
  const inp = (offset: number, width: 1 | 2 | 4): Access => ({ op: 'in', offset, width });
  const list: Access[] = [
    out(L.STATUS, 1, 0),
    inp(L.STATUS, 1),
    out(L.STATUS, 1, 1),
    out(L.STATUS, 1, 3),
    inp(L.HOST_FEATURES, 4),
    out(L.GUEST_FEATURES, 4, 0x10020),
    inp(L.GUEST_FEATURES, 4),
  ];
  for (let q = 0; q < 3; q++) {
    list.push(
      out(L.QUEUE_SEL, 2, q),
      inp(L.QUEUE_NUM, 2),
      out(L.QUEUE_PFN, 4, 0x100 + q * 0x10),
      inp(L.QUEUE_PFN, 4),
    );
  }
  list.push(out(L.STATUS, 1, 7), inp(L.STATUS, 1));
  for (let i = 0; i < 6; i++) list.push(inp(L.CONFIG + i, 1));
  list.push(inp(L.CONFIG + 6, 2), inp(L.ISR, 1));
  return list;
}

const SUFFIX = { 1: 'b', 2: 'w', 4: 'l' } as const;

function qtestLine(a: Access): string {
  const port = `0x${(IO_BASE + a.offset).toString(16)}`;
  return a.op === 'in'
    ? `in${SUFFIX[a.width]} ${port}\n`
    : `out${SUFFIX[a.width]} ${port} 0x${a.value!.toString(16)}\n`;
}

/** CONFIG_ADDRESS for a register of bus 0/1 functions (PCI 3.0 §3.2.2.3.2). */
function cf8(rid: number, offset: number): string {
  return `0x${((0x80000000 | (rid << 8) | offset) >>> 0).toString(16)}`;
}

/** What a guest does first: BAR0 at 0xC000, then I/O, memory and bus mastering on. */
function setupLines(rid: number): string[] {
  return [
    `outl 0xcf8 ${cf8(rid, 0x10)}\n`,
    `outl 0xcfc 0x${IO_BASE.toString(16)}\n`,
    `outl 0xcf8 ${cf8(rid, 0x04)}\n`,
    'outw 0xcfc 0x7\n',
  ];
}

/** A connection that counts answer lines (every line is one: nothing here intercepts IRQs). */
class LineCounter {
  private answered = 0;
  private waiting: { count: number; resolve: () => void } | undefined;
  private text = '';
  keepText = false;

  constructor(readonly socket: Socket) {
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  private onData(chunk: Buffer): void {
    if (this.keepText) this.text += chunk.toString('latin1');
    for (let k = chunk.indexOf(10); k >= 0; k = chunk.indexOf(10, k + 1)) this.answered++;
    if (this.waiting && this.answered >= this.waiting.count) {
      const w = this.waiting;
      this.waiting = undefined;
      w.resolve();
    }
  }

  private until(count: number): Promise<void> {
    if (this.answered >= count) return Promise.resolve();
    return new Promise((resolve) => (this.waiting = { count, resolve }));
  }

  /** Sends lines at once; resolves with their answers. */
  async exchange(lines: readonly string[]): Promise<string[]> {
    this.keepText = true;
    this.text = '';
    const target = this.answered + lines.length;
    this.socket.write(lines.join(''));
    await this.until(target);
    this.keepText = false;
    return this.text.split('\n').slice(0, lines.length);
  }

  /** `total` commands, each written once the previous answer arrived; returns milliseconds. */
  oneAtATime(lines: readonly string[], total: number): Promise<number> {
    return new Promise((resolve) => {
      const start = now();
      let sent = 1;
      let next = 1 % lines.length;
      const base = this.answered;
      const onData = (): void => {
        const done = this.answered - base;
        if (done >= total) {
          this.socket.off('data', onData);
          resolve(now() - start);
          return;
        }
        if (done === sent) {
          this.socket.write(lines[next]!);
          next = (next + 1) % lines.length;
          sent++;
        }
      };
      this.socket.on('data', onData);
      this.socket.write(lines[0]!);
    });
  }

  /** `batches` writes of `batch` (joined lines), each awaited whole; returns milliseconds. */
  async pipelined(batch: string, perBatch: number, batches: number): Promise<number> {
    const start = now();
    for (let i = 0; i < batches; i++) {
      const target = this.answered + perBatch;
      this.socket.write(batch);
      await this.until(target);
    }
    return now() - start;
  }
}

interface Measurement {
  accesses: number;
  ms: number;
  cpuUs: number;
}

interface CaseRunner {
  name: string;
  /** Runs about `ms` of work; returns what was done. */
  run(ms: number): Promise<Measurement>;
}

/** Accesses per second of a case at the last measured rate, to size the next run. */
function sized(rate: number, ms: number): number {
  return Math.max(100, Math.round((rate * ms) / 1000));
}

function qtestCases(
  label: string,
  conn: LineCounter,
  cpu: () => Promise<number>,
  depth: number,
): CaseRunner[] {
  const lines = legacyProbeAccesses().map(qtestLine);
  const reps = Math.max(1, Math.floor(depth / lines.length));
  const batch = Array.from({ length: reps }, () => lines.join('')).join('');
  const perBatch = reps * lines.length;
  let seqRate = 20_000;
  let pipeRate = 100_000;
  return [
    {
      name: `${label}, one at a time`,
      async run(ms) {
        const total = sized(seqRate, ms);
        const cpu0 = await cpu();
        const elapsed = await conn.oneAtATime(lines, total);
        const used = (await cpu()) - cpu0;
        seqRate = (total * 1000) / elapsed;
        return { accesses: total, ms: elapsed, cpuUs: used };
      },
    },
    {
      name: `${label}, pipelined ${perBatch}`,
      async run(ms) {
        const batches = Math.max(1, Math.round(sized(pipeRate, ms) / perBatch));
        const cpu0 = await cpu();
        const elapsed = await conn.pipelined(batch, perBatch, batches);
        const used = (await cpu()) - cpu0;
        pipeRate = (batches * perBatch * 1000) / elapsed;
        return { accesses: batches * perBatch, ms: elapsed, cpuUs: used };
      },
    },
  ];
}

function restCase(server: ServerHandle): { runner: CaseRunner; client: Client } {
  const client = new Client(server.url, { pipelining: 1 });
  const path = (a: Access): string => `/api/v1/functions/${BENCH_VF}/guest/io/0x${a.offset.toString(16)}`;
  const requests = legacyProbeAccesses().map((a) =>
    a.op === 'in'
      ? { method: 'GET' as const, path: `${path(a)}?width=${a.width}` }
      : {
          method: 'PUT' as const,
          path: path(a),
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ width: a.width, value: a.value }),
        },
  );
  let rate = 5_000;
  return {
    client,
    runner: {
      name: 'vmmr REST (GET/PUT …/guest/io), one at a time',
      async run(ms) {
        const total = sized(rate, ms);
        const cpu0 = await server.cpuMicros();
        const start = now();
        for (let i = 0; i < total; i++) {
          const res = await client.request(requests[i % requests.length]!);
          await res.body.dump();
          if (res.statusCode >= 300)
            throw new Error(`REST ${requests[i % requests.length]!.path}: ${res.statusCode}`);
        }
        const elapsed = now() - start;
        const used = (await server.cpuMicros()) - cpu0;
        rate = (total * 1000) / elapsed;
        return { accesses: total, ms: elapsed, cpuUs: used };
      },
    },
  };
}

/** Runs the probe once with its setup and checks the answers: every one OK, DRIVER_OK read back. */
async function checkProbe(conn: LineCounter, rid: number, who: string): Promise<string[]> {
  const setup = await conn.exchange(setupLines(rid));
  const probe = await conn.exchange(legacyProbeAccesses().map(qtestLine));
  const bad = [...setup, ...probe].filter((a) => !a.startsWith('OK'));
  if (bad.length > 0) throw new Error(`${who}: the probe was refused: ${bad.join('; ')}`);
  const readBack =
    legacyProbeAccesses().findIndex((a) => a.op === 'out' && a.offset === L.STATUS && a.value === 7) + 1;
  if (probe[readBack] !== 'OK 0x0007')
    throw new Error(`${who}: STATUS after DRIVER_OK read ${probe[readBack]}`);
  return probe;
}

/** The bare Node echo server: answers every line it receives with one line, in its own process. */
const ECHO_SERVER = `
const net = require('node:net');
net.createServer((s) => s.on('data', (d) => {
  let n = 0;
  for (let k = d.indexOf(10); k >= 0; k = d.indexOf(10, k + 1)) n++;
  if (n > 0) s.write('OK 0x0000\\n'.repeat(n));
})).listen(process.argv[1], () => process.stdout.write('ready\\n'));
`;

async function startEcho(path: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', ECHO_SERVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
  });
  return child;
}

function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

export async function runQtest(o: QtestBenchOptions = QTEST_DEFAULTS): Promise<Section> {
  const started = now();
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-bench-qtest-'));
  const socketPath = join(dir, 'qtest.sock');
  const server = await startServerChild('vmmr', {
    env: { VMMR_QTEST_SOCKET: socketPath },
    ...(o.profileDir ? { profileDir: o.profileDir } : {}),
  });
  const version = qemuVersion();
  let qemu: QemuQtestProcess | undefined;
  let rest: Client | undefined;
  let echo: ChildProcess | undefined;
  const notes: string[] = [];
  try {
    await enableBenchVfs(server);
    const vmmrConn = new LineCounter(await connectUnix(socketPath));
    const vmmrProbe = await checkProbe(vmmrConn, 0x0101, 'vmmr');
    const cases: CaseRunner[] = qtestCases('vmmr qtest', vmmrConn, () => server.cpuMicros(), o.pipelineDepth);
    echo = await startEcho(join(dir, 'echo.sock'));
    const echoPid = echo.pid!;
    const echoConn = new LineCounter(await connectUnix(join(dir, 'echo.sock')));
    cases.push(
      ...qtestCases(
        'bare Node echo server',
        echoConn,
        async () => processCpuMicros(echoPid),
        o.pipelineDepth,
      ),
    );
    const restRig = restCase(server);
    rest = restRig.client;
    cases.push(restRig.runner);
    if (version) {
      qemu = await startQemuQtest(['virtio-net-pci,disable-modern=on,romfile=,addr=04.0']);
      const qemuConn = new LineCounter(qemu.socket);
      const qemuProbe = await checkProbe(qemuConn, 0x0020, 'QEMU');
      const pid = qemu.pid;
      cases.push(...qtestCases('QEMU qtest', qemuConn, async () => processCpuMicros(pid), o.pipelineDepth));
      notes.push(
        `QEMU: ${version}, accel ${qemu.accel}${qemu.accel === 'tcg' ? ' with the CPUs stopped (-S): this build has no qtest accelerator' : ''}, -qtest-log /dev/null`,
      );
      notes.push(
        `answers checked before measuring: vmmr HOST_FEATURES ${vmmrProbe[4]}, QEMU ${qemuProbe[4]}; STATUS after DRIVER_OK 0x0007 on both`,
      );
    } else {
      notes.push(
        'QEMU: qemu-system-x86_64 not installed (Debian: apt-get install -y qemu-system-x86): its rows are not measured',
      );
    }
    // Warm-up: every case once.
    for (const c of cases) await c.run(o.measureMs / 2);
    const samples = new Map<string, Measurement[]>(cases.map((c) => [c.name, []]));
    for (let round = 0; round < o.rounds; round++) {
      for (let k = 0; k < cases.length; k++) {
        const c = cases[(round + k) % cases.length]!;
        samples.get(c.name)!.push(await c.run(o.measureMs));
      }
    }
    const rateOf = (m: Measurement): number => (m.accesses * 1000) / m.ms;
    const rates = (name: string): number[] => samples.get(name)!.map(rateOf);
    const perRoundRatio = (a: string, b: string): number => median(rates(a).map((r, i) => r / rates(b)[i]!));
    const qemuSeq = 'QEMU qtest, one at a time';
    const seqName = 'vmmr qtest, one at a time';
    const pipeName = cases.find((c) => c.name.startsWith('vmmr qtest, pipelined'))!.name;
    const qemuPipe = cases.find((c) => c.name.startsWith('QEMU qtest, pipelined'))?.name;
    const rows: Row[] = cases.map((c) => {
      const list = samples.get(c.name)!;
      const rate = median(list.map(rateOf));
      return {
        case: c.name,
        'accesses/s': Math.round(rate),
        'µs/access': 1e6 / rate,
        'server CPU µs/access': median(list.map((m) => m.cpuUs / m.accesses)),
        '× QEMU one at a time': version ? perRoundRatio(c.name, qemuSeq) : null,
      };
    });
    if (!version) {
      for (const name of [qemuSeq, 'QEMU qtest, pipelined']) {
        rows.push({
          case: name,
          'accesses/s': 'not measured',
          'µs/access': null,
          'server CPU µs/access': null,
          '× QEMU one at a time': null,
        });
      }
    }
    const targets: Target[] = [];
    if (version && qemuPipe) {
      const seq = perRoundRatio(seqName, qemuSeq);
      const pipe = perRoundRatio(pipeName, qemuPipe);
      targets.push(
        {
          name: 'one at a time: vmmr qtest ÷ QEMU qtest (accesses/s)',
          goal: `>= ${ONE_AT_A_TIME_GOAL}`,
          value: seq,
          met: seq >= ONE_AT_A_TIME_GOAL,
        },
        {
          name: 'pipelined: vmmr qtest ÷ QEMU qtest (accesses/s)',
          goal: `>= ${PIPELINED_GOAL}`,
          value: pipe,
          met: pipe >= PIPELINED_GOAL,
        },
      );
    }
    const floor = perRoundRatio(seqName, 'bare Node echo server, one at a time');
    notes.push(
      `one at a time, vmmr ÷ the bare Node echo server: ${floor.toFixed(2)} — what is left is the cost of a wake-up, a read and a write in Node, which no Node server avoids`,
    );
    const restName = restRig.runner.name;
    notes.push(
      `one at a time, qtest ÷ REST on the same accesses: ${perRoundRatio(seqName, restName).toFixed(2)}`,
    );
    notes.push(
      `${legacyProbeAccesses().length} accesses per probe on I/O BAR0 at 0x${IO_BASE.toString(16)}; ${o.rounds} alternating rounds of about ${o.measureMs} ms per case; medians`,
    );
    notes.push(
      'client: this process for every server (raw socket; the next command written from the answer callback)',
    );
    return {
      id: 'qtest',
      title:
        'qtest: single accesses per second over the qtest protocol, REST and QEMU qtest (legacy virtio-net probe)',
      baseline: version
        ? 'QEMU qtest one command at a time, in the same rounds'
        : 'REST one at a time (QEMU not installed)',
      rows,
      targets,
      notes,
      raw: Object.fromEntries(samples),
      seconds: (now() - started) / 1000,
    };
  } finally {
    await rest?.close();
    echo?.kill();
    await qemu?.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const profileAt = argv.indexOf('--profile');
  const profileDir = profileAt >= 0 ? resolve(argv[profileAt + 1] ?? '.') : undefined;
  const section = await runQtest({ ...QTEST_DEFAULTS, ...(profileDir ? { profileDir } : {}) });
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(section)}\n`);
  else process.stdout.write(`${formatSection(section)}\n`);
}

runIfScript(import.meta.url, 'qtest', main);
