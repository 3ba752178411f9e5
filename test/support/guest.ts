/**
 * Booting a stock Linux guest under a real QEMU, for test suites that attach vmmr to it.
 *
 * - `.ci/qemu.sh` builds QEMU 10.2 (it has the `vfio-user-pci` client) into
 *   `${VMMR_CACHE:-~/.cache/vmmr}/qemu-10.2.2/` (bin/ and share/qemu/ for -L).
 * - `.ci/guest.sh` unpacks Debian 12's kernel, its virtio modules and busybox into
 *   `${VMMR_CACHE:-~/.cache/vmmr}/guest/`.
 * - `buildInitramfs` packs busybox, modules and an /init around a shell script;
 *   `bootGuest` runs QEMU on it and reads the serial console.
 *
 * The initramfs is written here (newc cpio + node:zlib) rather than with the cpio
 * program: no host tool to install, no root needed for the /dev/console node the kernel
 * wants before it runs /init, and the same bytes for the same inputs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

/** The QEMU version `.ci/qemu.sh` builds by default. */
export const QEMU_VERSION = '10.2.2';

/** Lines /init prints on the serial console. */
export const INIT_READY = /^vmmr-init: ready/;
export const SCRIPT_EXIT = /^vmmr-init: script exit (\d+)/;

export function cacheDir(): string {
  return process.env.VMMR_CACHE || join(homedir(), '.cache', 'vmmr');
}

export class GuestKitMissingError extends Error {
  override name = 'GuestKitMissingError';
}

// ---------------------------------------------------------------------------
// Finding QEMU and the guest kit

export interface QemuInstall {
  /** qemu-system-x86_64 */
  binary: string;
  /** Directory for -L: seabios, ipxe and QEMU's option ROMs. */
  firmwareDir: string;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function firmwareFor(binary: string): string {
  return process.env.VMMR_QEMU_FIRMWARE || resolve(dirname(binary), '..', 'share', 'qemu');
}

/**
 * The QEMU to test with: `$VMMR_QEMU` (a qemu-system-x86_64; firmware in
 * `$VMMR_QEMU_FIRMWARE` or `<bin>/../share/qemu`), else the cache that `.ci/qemu.sh`
 * fills (qemu-10.2.2, or the newest other qemu-<version> there). Throws a
 * GuestKitMissingError that says what to run.
 */
export function findQemu(): QemuInstall {
  const fromEnv = process.env.VMMR_QEMU;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new GuestKitMissingError(`VMMR_QEMU=${fromEnv} is not an executable`);
    return { binary: fromEnv, firmwareDir: firmwareFor(fromEnv) };
  }
  const cache = cacheDir();
  const candidates = [`qemu-${QEMU_VERSION}`];
  if (existsSync(cache)) {
    const others = readdirSync(cache)
      .filter((d) => /^qemu-\d+(\.\d+)*$/.test(d) && d !== candidates[0])
      .sort((a, b) => compareVersions(b.slice(5), a.slice(5)));
    candidates.push(...others);
  }
  for (const dir of candidates) {
    const binary = join(cache, dir, 'bin', 'qemu-system-x86_64');
    if (isExecutable(binary) && existsSync(join(cache, dir, '.vmmr-complete'))) {
      return { binary, firmwareDir: firmwareFor(binary) };
    }
  }
  throw new GuestKitMissingError(
    `no QEMU >= 10.1 at ${join(cache, candidates[0] ?? '', 'bin', 'qemu-system-x86_64')}: ` +
      'run `bash .ci/qemu.sh` (builds QEMU 10.2 into the cache, ~10 minutes on 2 cores) or set VMMR_QEMU',
  );
}

export interface KitModule {
  /** Absolute path of the uncompressed .ko. */
  file: string;
  /** Direct dependencies (module names, underscores). */
  depends: string[];
}

export interface GuestKit {
  dir: string;
  /** The bzImage (vmlinuz). */
  kernel: string;
  /** Static busybox for the initramfs. */
  busybox: string;
  kernelVersion: string;
  kernelPackage: string;
  modules: Record<string, KitModule>;
  /** Requested modules that this kernel has built in (nothing to load). */
  builtin: string[];
}

interface KitJson {
  kernelVersion: string;
  kernelPackage: string;
  builtin?: string[];
  modules: Record<string, { file: string; depends: string[] }>;
}

/** The kit `.ci/guest.sh` unpacks: `$VMMR_GUEST_KIT`, else `<cache>/guest`. */
export function findGuestKit(): GuestKit {
  const dir = process.env.VMMR_GUEST_KIT || join(cacheDir(), 'guest');
  const manifest = join(dir, 'kit.json');
  const kernel = join(dir, 'vmlinuz');
  const busybox = join(dir, 'busybox');
  if (!existsSync(manifest) || !existsSync(kernel) || !existsSync(busybox)) {
    throw new GuestKitMissingError(
      `no guest kit at ${dir} (kit.json, vmlinuz, busybox): run \`bash .ci/guest.sh\` or set VMMR_GUEST_KIT`,
    );
  }
  const json = JSON.parse(readFileSync(manifest, 'utf8')) as KitJson;
  const modules: Record<string, KitModule> = {};
  for (const [name, m] of Object.entries(json.modules)) {
    modules[name] = { file: join(dir, m.file), depends: m.depends };
  }
  return {
    dir,
    kernel,
    busybox,
    kernelVersion: json.kernelVersion,
    kernelPackage: json.kernelPackage,
    modules,
    builtin: json.builtin ?? [],
  };
}

// ---------------------------------------------------------------------------
// The initramfs

/** One entry of a newc ("070701") cpio archive. */
type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function cpioRecord(
  ino: number,
  mode: number,
  nlink: number,
  name: string,
  data: Buffer,
  rdev: [number, number] = [0, 0],
): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const fields = [ino, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const header = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''), 'ascii');
  return Buffer.concat([
    header,
    nameBytes,
    Buffer.alloc(pad4(header.length + nameBytes.length)),
    data,
    Buffer.alloc(pad4(data.length)),
  ]);
}

/** A newc cpio archive (what the kernel unpacks as an initramfs), uid/gid 0, mtime 0. */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '');
    switch (e.kind) {
      case 'dir':
        parts.push(cpioRecord(ino++, 0o040000 | (e.mode ?? 0o755), 2, path, Buffer.alloc(0)));
        break;
      case 'file':
        parts.push(cpioRecord(ino++, 0o100000 | (e.mode ?? 0o644), 1, path, e.data));
        break;
      case 'symlink':
        parts.push(cpioRecord(ino++, 0o120777, 1, path, Buffer.from(e.target, 'utf8')));
        break;
      case 'chardev':
        parts.push(
          cpioRecord(ino++, 0o020000 | (e.mode ?? 0o600), 1, path, Buffer.alloc(0), [e.major, e.minor]),
        );
        break;
    }
  }
  parts.push(cpioRecord(0, 0, 1, 'TRAILER!!!', Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** `names` and everything they depend on, each after its dependencies. */
export function moduleLoadOrder(kit: GuestKit, names: string[]): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (raw: string, from: string[]): void => {
    const name = raw.replace(/-/g, '_');
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting')
      throw new Error(`module dependency cycle: ${[...from, name].join(' -> ')}`);
    if (kit.builtin.includes(name)) {
      state.set(name, 'done');
      return;
    }
    const m = kit.modules[name];
    if (!m) {
      throw new Error(
        `module ${name} is not in the guest kit at ${kit.dir}: add it with ` +
          `VMMR_GUEST_MODULES="${name}" bash .ci/guest.sh`,
      );
    }
    state.set(name, 'visiting');
    for (const d of m.depends) visit(d, [...from, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const n of names) visit(n, []);
  return order;
}

export interface InitramfsOptions {
  /** Shell script body run by busybox sh after the modules are loaded. */
  init: string;
  /** Modules to insmod (their dependencies come along, loaded first). */
  modules: string[];
  /** Where to write initramfs.cpio.gz. */
  outDir: string;
  /** Output file name (default initramfs.cpio.gz). */
  name?: string;
  /** Default: findGuestKit(). */
  kit?: GuestKit;
  /** Extra files, by absolute path in the guest (parent directories are made). */
  files?: Record<string, string | Buffer>;
}

export interface Initramfs {
  path: string;
  /** The modules /init loads, in that order. */
  modules: string[];
}

function initScript(moduleOrder: string[]): string {
  const insmods = moduleOrder
    .map(
      (m) =>
        `if insmod /lib/modules/${m}.ko; then echo "vmmr-init: insmod ${m}"; ` +
        `else echo "vmmr-init: insmod ${m} FAILED"; fi`,
    )
    .join('\n');
  return `#!/bin/busybox sh
# /init of a vmmr test initramfs (test/support/guest.ts)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mount -t tmpfs tmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo "vmmr-init: started at $(cut -d' ' -f1 /proc/uptime)s"
${insmods}
echo "vmmr-init: ready at $(cut -d' ' -f1 /proc/uptime)s"
sh /vmmr/script.sh
rc=$?
echo "vmmr-init: script exit $rc"
sync
poweroff -f
`;
}

/**
 * Writes `<outDir>/initramfs.cpio.gz`: busybox (applet links made at boot), the modules
 * and their dependencies under /lib/modules, and an /init that mounts proc, sysfs,
 * devtmpfs (tmpfs if that fails) and tmpfs on /tmp and /run, insmods the modules in
 * dependency order, runs `init` with busybox sh, prints `vmmr-init: script exit <rc>`
 * and powers off (`poweroff -f`).
 */
export function buildInitramfs(opts: InitramfsOptions): Initramfs {
  const kit = opts.kit ?? findGuestKit();
  const order = moduleLoadOrder(kit, opts.modules);
  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const addDir = (path: string): void => {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (!dirs.has(p)) {
        dirs.add(p);
        entries.push({ kind: 'dir', path: p });
      }
    }
  };
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'run', 'etc', 'lib/modules', 'vmmr'])
    addDir(d);
  entries.push({ kind: 'chardev', path: 'dev/console', major: 5, minor: 1 });
  entries.push({ kind: 'chardev', path: 'dev/null', major: 1, minor: 3, mode: 0o666 });
  entries.push({ kind: 'file', path: 'bin/busybox', data: readFileSync(kit.busybox), mode: 0o755 });
  entries.push({ kind: 'symlink', path: 'bin/sh', target: 'busybox' });
  for (const m of order) {
    const mod = kit.modules[m];
    if (mod) entries.push({ kind: 'file', path: `lib/modules/${m}.ko`, data: readFileSync(mod.file) });
  }
  for (const [path, content] of Object.entries(opts.files ?? {})) {
    const rel = path.replace(/^\/+/, '');
    addDir(dirname(rel) === '.' ? '' : dirname(rel));
    entries.push({ kind: 'file', path: rel, data: Buffer.from(content), mode: 0o755 });
  }
  entries.push({ kind: 'file', path: 'vmmr/script.sh', data: Buffer.from(opts.init), mode: 0o755 });
  entries.push({ kind: 'file', path: 'init', data: Buffer.from(initScript(order)), mode: 0o755 });

  mkdirSync(opts.outDir, { recursive: true });
  const path = join(opts.outDir, opts.name ?? 'initramfs.cpio.gz');
  writeFileSync(path, gzipSync(cpioNewc(entries)));
  return { path, modules: order };
}

// ---------------------------------------------------------------------------
// Booting

export interface BootOptions {
  /** findQemu()'s answer, or a qemu-system-x86_64 path (firmware then from <bin>/../share/qemu). */
  qemu: QemuInstall | string;
  kernel: string;
  initrd: string;
  /** Appended to "console=ttyS0 panic=-1". */
  append?: string;
  /** Devices, netdevs, drives… (QEMU runs with -nodefaults: nothing else is there). */
  extraArgs?: string[];
  memoryMiB?: number;
  /**
   * Guest RAM in a shared memfd (`-object memory-backend-memfd,share=on`), so that a
   * vfio-user server is handed an fd for each DMA_MAP rather than reaching RAM by
   * DMA_READ/DMA_WRITE messages.
   */
  memfd?: boolean;
  /** QEMU is killed when this runs out (the run then reports timedOut). */
  timeoutMs: number;
}

export interface GuestResult {
  /**
   * QEMU's exit code: 0 for a guest poweroff, for a panic (-no-reboot) and also for the
   * SIGTERM of kill() (QEMU exits cleanly on it); see killed and kernelPanic.
   */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** kill() ended it (called by the caller, the boot timeout or killAllGuests). */
  killed: boolean;
  /** The boot timeout ran out (and killed it). */
  timedOut: boolean;
  /** The serial console (QEMU's stdout), \r removed. */
  log: string;
  /** QEMU's own stderr (warnings). */
  stderr: string;
  /** The init script's exit status, from /init's "script exit" line; null if never printed. */
  scriptExit: number | null;
  kernelPanic: boolean;
  /** ms from spawn to exit. */
  elapsedMs: number;
}

export interface Guest {
  readonly process: ChildProcess;
  /** The full command line (for error messages). */
  readonly args: string[];
  /** Complete console lines so far. */
  lines(): string[];
  /**
   * Resolves with the match of the first complete console line matching `re`, searching
   * from the line after the previous waitFor's match (expect-style; `fromStart` searches
   * all lines). Rejects on timeout or when QEMU exits first, with the log's tail; a
   * waitFor time-out leaves QEMU running (kill() or the boot timeout end it).
   */
  waitFor(re: RegExp, timeoutMs: number, opts?: { fromStart?: boolean }): Promise<RegExpExecArray>;
  /** Writes to the serial console (note: Ctrl-A is QEMU's monitor escape). */
  send(text: string): void;
  /** Resolves when QEMU has exited. */
  readonly result: Promise<GuestResult>;
  /** SIGTERM, then SIGKILL after 2 s; resolves with the result. Safe to call twice. */
  kill(): Promise<GuestResult>;
}

/** Every QEMU bootGuest started that still runs, with its kill(). */
const live = new Map<ChildProcess, () => Promise<GuestResult>>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of live.keys()) p.kill('SIGKILL');
  });
}

/** Kills every QEMU bootGuest started that still runs (for afterAll/afterEach). */
export async function killAllGuests(): Promise<void> {
  await Promise.all([...live.values()].map((kill) => kill()));
}

/** The QEMU command line bootGuest runs. */
export function qemuArgs(opts: Omit<BootOptions, 'timeoutMs'>): { binary: string; args: string[] } {
  const qemu =
    typeof opts.qemu === 'string' ? { binary: opts.qemu, firmwareDir: firmwareFor(opts.qemu) } : opts.qemu;
  const append = ['console=ttyS0', 'panic=-1', opts.append ?? ''].filter(Boolean).join(' ');
  const memoryMiB = opts.memoryMiB ?? 512;
  const memfd = opts.memfd ? ['-object', `memory-backend-memfd,id=vmmr-ram,size=${memoryMiB}M,share=on`] : [];
  return {
    binary: qemu.binary,
    args: [
      '-machine',
      opts.memfd ? 'q35,memory-backend=vmmr-ram' : 'q35',
      ...memfd,
      '-accel',
      'tcg',
      '-m',
      String(memoryMiB),
      // No default CD-ROM (SeaBIOS's AHCI probe of the empty drive costs 30 s under TCG),
      // VGA, NIC, floppy or parallel port: only what extraArgs asks for.
      '-nodefaults',
      '-nographic',
      '-serial',
      'mon:stdio',
      '-no-reboot',
      // QEMU >= 10: it dies with the thread that spawned it, even on a crash of the test.
      '-run-with',
      'exit-with-parent=on',
      '-L',
      qemu.firmwareDir,
      '-kernel',
      opts.kernel,
      '-initrd',
      opts.initrd,
      '-append',
      append,
      ...(opts.extraArgs ?? []),
    ],
  };
}

/**
 * Starts QEMU (q35, TCG, -nodefaults, serial on stdio, -no-reboot) on the kernel and initramfs and
 * collects the serial console. QEMU is killed when `timeoutMs` runs out, by kill(), by
 * killAllGuests(), when this process exits, and (exit-with-parent) when the thread that
 * spawned it dies.
 */
export function bootGuest(opts: BootOptions): Guest {
  const { binary, args } = qemuArgs(opts);
  const started = Date.now();
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  installExitHook();

  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  let exited = false;
  let timedOut = false;
  let killed = false;
  let cursor = 0;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of [...listeners]) l();
  };

  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const text = partial + chunk.replace(/\r/g, '');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    if (parts.length > 0) {
      lines.push(...parts);
      notify();
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  // QEMU may exit before reading what send() wrote.
  child.stdin.on('error', () => {});

  const timer = setTimeout(() => {
    timedOut = true;
    void kill();
  }, opts.timeoutMs);

  const result = new Promise<GuestResult>((res) => {
    const done = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
      if (exited) return;
      exited = true;
      clearTimeout(timer);
      live.delete(child);
      if (partial) {
        lines.push(partial);
        partial = '';
      }
      if (spawnError) stderr += `spawn ${binary}: ${spawnError.message}\n`;
      const log = lines.join('\n');
      const exitLine = lines.map((l) => SCRIPT_EXIT.exec(l)).find((m) => m !== null);
      notify();
      res({
        code,
        signal,
        killed,
        timedOut,
        log,
        stderr,
        scriptExit: exitLine ? Number(exitLine[1]) : null,
        kernelPanic: /Kernel panic - not syncing/.test(log),
        elapsedMs: Date.now() - started,
      });
    };
    child.on('error', (err) => done(null, null, err));
    child.on('close', (code, signal) => done(code, signal));
  });

  const tail = (): string => {
    const t = lines.slice(-40).join('\n');
    return `\n--- last console lines ---\n${t}${partial ? `\n${partial}` : ''}\n--- qemu stderr ---\n${stderr}`;
  };

  function kill(): Promise<GuestResult> {
    if (!exited && child.exitCode === null && child.signalCode === null) {
      killed = true;
      child.kill('SIGTERM');
      const hard = setTimeout(() => child.kill('SIGKILL'), 2000);
      void result.then(() => clearTimeout(hard));
    }
    return result;
  }

  function waitFor(
    re: RegExp,
    timeoutMs: number,
    wopts: { fromStart?: boolean } = {},
  ): Promise<RegExpExecArray> {
    // A global or sticky regexp would carry lastIndex from line to line.
    const pattern = re.global || re.sticky ? new RegExp(re.source, re.flags.replace(/[gy]/g, '')) : re;
    return new Promise((res, rej) => {
      let from = wopts.fromStart ? 0 : cursor;
      const check = (): boolean => {
        for (; from < lines.length; from++) {
          const m = pattern.exec(lines[from] ?? '');
          if (m) {
            cursor = from + 1;
            finish();
            res(m);
            return true;
          }
        }
        if (exited) {
          finish();
          rej(new Error(`QEMU exited before a console line matched ${re}${tail()}`));
          return true;
        }
        return false;
      };
      const t = setTimeout(() => {
        finish();
        rej(new Error(`no console line matched ${re} within ${timeoutMs} ms${tail()}`));
      }, timeoutMs);
      const listener = (): void => {
        check();
      };
      function finish(): void {
        clearTimeout(t);
        listeners.delete(listener);
      }
      if (!check()) listeners.add(listener);
    });
  }

  live.set(child, kill);
  return {
    process: child,
    args: [binary, ...args],
    lines: () => [...lines],
    waitFor,
    send: (text: string) => {
      if (!exited) child.stdin.write(text);
    },
    result,
    kill,
  };
}
