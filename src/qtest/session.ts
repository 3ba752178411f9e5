/**
 * One qtest session: QEMU's qtest line protocol (QEMU system/qtest.c documents the commands and
 * formats the answers; tests/qtest/libqtest.c is what a client sends and parses) served over one
 * view of the machine (src/platform). A line in, exactly one answer out, in order; `IRQ raise N`
 * / `IRQ lower N` lines come in between while interrupts are intercepted.
 *
 * A session may begin with the token (when the service has VMMR_TOKEN) and then an optional
 * `view host` / `view guest` line (default guest); each is answered `OK`. docs/qtest.md lists every
 * command and what vmmr answers where QEMU would abort (QEMU g_asserts on malformed input; vmmr
 * answers FAIL with the reason instead).
 */
import { timingSafeEqual } from 'node:crypto';
import type { AccessValue } from '../access/index.js';
import { isVmmrError } from '../base/errors.js';
import type { VmmrEvent } from '../base/events.js';
import { PlatformBus, type DmaProvider, type MemoryWidth, type PortWidth } from '../platform/bus.js';
import { VIEWS, type ViewName } from '../platform/decode.js';
import { interruptLineOf, IntxLines, type LineChange } from '../platform/intx.js';
import type { PlatformMap } from '../machine/platform-map.js';
import type { Emulator, TopologyChange } from '../machine/emulator.js';
import { qtestProtocol } from '../spec/index.js';

const Q = qtestProtocol.constants;
export const MAX_LINE = Q.MAX_LINE.value;
export const MAX_TRANSFER = Q.MAX_TRANSFER.value;

export interface QtestSessionOptions {
  emulator: Emulator;
  /** VMMR_TOKEN: when set, the first line must be this token. */
  token?: string;
  map?: PlatformMap;
  dma?: DmaProvider;
  /** Answers and IRQ lines, in order (each ends with a newline). */
  output(text: string): void;
}

/** A malformed command: answered `FAIL <message>`. */
class CommandError extends Error {}

function fail(message: string): never {
  throw new CommandError(message);
}

const TWO_53 = 2 ** 53;
const U64_MAX = (1n << 64n) - 1n;

/**
 * An unsigned integer as strtoul() with base 0 reads it (QEMU qemu_strtoul/qemu_strtou64): "0x"
 * hexadecimal, a leading 0 octal, decimal otherwise; nothing else on the word. Numbers below
 * 2^53 come back as numbers, larger ones (up to 2^64 - 1) as bigints.
 */
export function parseUint(word: string): number | bigint | undefined {
  let digits: string;
  let radix: number;
  if (word.length > 2 && word[0] === '0' && (word[1] === 'x' || word[1] === 'X')) {
    digits = word.slice(2);
    radix = 16;
    if (!/^[0-9a-fA-F]+$/.test(digits)) return undefined;
  } else if (word.length > 1 && word[0] === '0') {
    digits = word.slice(1);
    radix = 8;
    if (!/^[0-7]+$/.test(digits)) return undefined;
  } else {
    digits = word;
    radix = 10;
    if (!/^[0-9]+$/.test(digits)) return undefined;
  }
  const n = Number.parseInt(digits, radix);
  if (n < TWO_53) return n;
  const big = radix === 16 ? BigInt(`0x${digits}`) : radix === 8 ? BigInt(`0o${digits}`) : BigInt(digits);
  return big <= U64_MAX ? big : undefined;
}

function argument(
  words: readonly string[],
  index: number,
  command: string,
  name: string,
  usage: string,
): number | bigint {
  const word = words[index];
  if (word === undefined) fail(`${command} takes ${usage}: ${name} is missing`);
  const n = parseUint(word);
  if (n === undefined) {
    fail(
      `${command}: ${name} ${JSON.stringify(word.length > 40 ? `${word.slice(0, 40)}...` : word)} is not an unsigned number (0x hex, 0 octal or decimal, at most 64 bits)`,
    );
  }
  return n;
}

function noMoreWords(words: readonly string[], count: number, command: string, usage: string): void {
  if (words.length > count) fail(`${command} takes ${usage}: unexpected ${JSON.stringify(words[count])}`);
}

const MAX_BY_WIDTH = [0, 0xff, 0xffff, 0, 0xffffffff];

/** A value checked against a width: QEMU truncates silently, vmmr refuses what does not fit. */
function fitting(value: number | bigint, width: number, command: string): AccessValue {
  // Numbers are below 2^53: they fit 8 bytes, and the narrower widths are a comparison.
  if (typeof value === 'number' && (width === 8 || value <= MAX_BY_WIDTH[width]!)) return value;
  if (typeof value === 'bigint' && width === 8) return value;
  return fail(
    `${command}: VALUE 0x${value.toString(16)} does not fit in ${width} byte${width === 1 ? '' : 's'}`,
  );
}

function asAddress(value: number | bigint): number {
  return typeof value === 'bigint' ? Number(value) : value;
}

function transferSize(value: number | bigint, command: string, allowZero: boolean): number {
  if (typeof value === 'bigint' || value > MAX_TRANSFER)
    fail(`${command}: SIZE ${value} is above the limit of ${MAX_TRANSFER} bytes per command`);
  if (value === 0 && !allowZero) fail(`${command}: SIZE must not be 0`);
  return value;
}

const HEX4 = (v: number): string => `OK 0x${v.toString(16).padStart(4, '0')}\n`;
const HEX16 = (v: AccessValue): string => `OK 0x${v.toString(16).padStart(16, '0')}\n`;

const PORT_WIDTHS: Readonly<Record<string, PortWidth>> = { b: 1, w: 2, l: 4 };
const MEMORY_WIDTHS: Readonly<Record<string, MemoryWidth>> = { b: 1, w: 2, l: 4, q: 8 };

/** The QOM paths of the interrupt controller whose input pins carry the INTx lines. */
const INTERRUPT_CONTROLLER = new Set(['ioapic', '/machine/ioapic']);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

type Phase = 'token' | 'view' | 'running';

export class QtestSession {
  private phase: Phase;
  private bus: PlatformBus;
  private clockNs = 0n;
  private intercepting = false;
  private unsubscribe: (() => void) | undefined;
  private readonly commands: ReadonlyMap<string, (words: readonly string[]) => string>;

  constructor(private readonly options: QtestSessionOptions) {
    this.phase = options.token === undefined ? 'view' : 'token';
    this.bus = this.busFor('guest');
    this.commands = new Map<string, (words: readonly string[]) => string>([
      ['outb', (w) => this.portOut(w)],
      ['outw', (w) => this.portOut(w)],
      ['outl', (w) => this.portOut(w)],
      ['inb', (w) => this.portIn(w)],
      ['inw', (w) => this.portIn(w)],
      ['inl', (w) => this.portIn(w)],
      ['writeb', (w) => this.writeValue(w)],
      ['writew', (w) => this.writeValue(w)],
      ['writel', (w) => this.writeValue(w)],
      ['writeq', (w) => this.writeValue(w)],
      ['readb', (w) => this.readValue(w)],
      ['readw', (w) => this.readValue(w)],
      ['readl', (w) => this.readValue(w)],
      ['readq', (w) => this.readValue(w)],
      ['read', (w) => this.readHex(w)],
      ['write', (w) => this.writeHex(w)],
      ['memset', (w) => this.memset(w)],
      ['b64read', (w) => this.b64read(w)],
      ['b64write', (w) => this.b64write(w)],
      ['endianness', (w) => this.endianness(w)],
      ['clock_step', (w) => this.clockStep(w)],
      ['clock_set', (w) => this.clockSet(w)],
      ['irq_intercept_in', (w) => this.intercept(w, false)],
      ['irq_intercept_out', (w) => this.intercept(w, true)],
      [
        'set_irq_in',
        () =>
          'FAIL set_irq_in is not served: vmmr has no input pins to drive (interrupts come from its devices)\n',
      ],
    ]);
  }

  /** The view this session shows. */
  get view(): ViewName {
    return this.bus.view;
  }

  private busFor(view: ViewName): PlatformBus {
    const { emulator, map, dma } = this.options;
    return new PlatformBus({
      view,
      machine: () => emulator.machine,
      ...(map ? { map } : {}),
      ...(dma ? { dma } : {}),
    });
  }

  /**
   * Handles one line (without its newline). Returns false when the session must end (a wrong
   * token): the answer has been written and the transport closes the connection.
   */
  handleLine(raw: string): boolean {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (this.phase === 'token') {
      if (!this.tokenMatches(line)) {
        this.options.output(
          'FAIL authentication required: the first line must be the service token (VMMR_TOKEN)\n',
        );
        return false;
      }
      this.phase = 'view';
      this.options.output('OK\n');
      return true;
    }
    const words = line.split(' ').filter((w) => w !== '');
    this.options.output(this.answer(words));
    return true;
  }

  private tokenMatches(line: string): boolean {
    const expected = Buffer.from(this.options.token ?? '');
    const given = Buffer.from(line);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private answer(words: readonly string[]): string {
    const command = words[0] ?? '';
    const first = this.phase === 'view';
    this.phase = 'running';
    if (command === 'view') return this.chooseView(words, first);
    const run = this.commands.get(command);
    if (!run) return `FAIL Unknown command '${command}'\n`;
    try {
      return run(words);
    } catch (e) {
      if (e instanceof CommandError) return `FAIL ${e.message}\n`;
      if (isVmmrError(e)) return `FAIL ${e.code}: ${e.message.replace(/[\r\n]+/g, ' ')}\n`;
      throw e;
    }
  }

  private chooseView(words: readonly string[], first: boolean): string {
    if (!first) return 'FAIL view: the view is chosen by the first line of a session (after the token)\n';
    const view = words[1] as ViewName;
    if (words.length !== 2 || !VIEWS.includes(view)) return `FAIL view takes one of ${VIEWS.join(', ')}\n`;
    this.bus = this.busFor(view);
    return 'OK\n';
  }

  // ---- port I/O ----

  private portOut(words: readonly string[]): string {
    const command = words[0]!;
    const usage = 'ADDR VALUE';
    const port = argument(words, 1, command, 'ADDR', usage);
    const value = argument(words, 2, command, 'VALUE', usage);
    noMoreWords(words, 3, command, usage);
    const width = PORT_WIDTHS[command[3]!]!;
    if (typeof port !== 'number' || port > 0xffff)
      fail(`${command}: ADDR 0x${port.toString(16)} is beyond port 0xffff`);
    this.bus.portWrite(port, width, Number(fitting(value, width, command)));
    return 'OK\n';
  }

  private portIn(words: readonly string[]): string {
    const command = words[0]!;
    const port = argument(words, 1, command, 'ADDR', 'ADDR');
    noMoreWords(words, 2, command, 'ADDR');
    if (typeof port !== 'number' || port > 0xffff)
      fail(`${command}: ADDR 0x${port.toString(16)} is beyond port 0xffff`);
    // QEMU answers every in* with "OK 0x%04x" (at least four digits, whatever the width).
    return HEX4(this.bus.portRead(port, PORT_WIDTHS[command[2]!]!));
  }

  // ---- memory ----

  private writeValue(words: readonly string[]): string {
    const command = words[0]!;
    const usage = 'ADDR VALUE';
    const address = argument(words, 1, command, 'ADDR', usage);
    const value = argument(words, 2, command, 'VALUE', usage);
    noMoreWords(words, 3, command, usage);
    const width = MEMORY_WIDTHS[command[5]!]!;
    this.bus.memoryWrite(asAddress(address), width, fitting(value, width, command));
    return 'OK\n';
  }

  private readValue(words: readonly string[]): string {
    const command = words[0]!;
    const address = argument(words, 1, command, 'ADDR', 'ADDR');
    noMoreWords(words, 2, command, 'ADDR');
    // QEMU answers every read* with "OK 0x%016" PRIx64.
    return HEX16(this.bus.memoryRead(asAddress(address), MEMORY_WIDTHS[command[4]!]!));
  }

  private readHex(words: readonly string[]): string {
    const usage = 'ADDR SIZE';
    const address = argument(words, 1, 'read', 'ADDR', usage);
    const size = transferSize(argument(words, 2, 'read', 'SIZE', usage), 'read', false);
    noMoreWords(words, 3, 'read', usage);
    return `OK 0x${Buffer.from(this.bus.readBytes(asAddress(address), size)).toString('hex')}\n`;
  }

  private writeHex(words: readonly string[]): string {
    const usage = 'ADDR SIZE DATA';
    const address = argument(words, 1, 'write', 'ADDR', usage);
    const size = transferSize(argument(words, 2, 'write', 'SIZE', usage), 'write', true);
    const data = words[3] ?? '';
    noMoreWords(words, 4, 'write', usage);
    // QEMU's own answer for DATA shorter than "0x" plus one digit.
    if (data.length < 3) return 'ERR invalid argument size\n';
    const digits = data.slice(2);
    if (!/^0[xX]/.test(data) || !/^[0-9a-fA-F]+$/.test(digits))
      fail(`write: DATA must be 0x followed by hex digits`);
    if (digits.length % 2 !== 0)
      fail(`write: DATA has an odd number of hex digits (${digits.length}): give whole bytes`);
    if (digits.length / 2 > size)
      fail(`write: DATA holds ${digits.length / 2} bytes, more than SIZE ${size}`);
    // Shorter DATA is zero-filled at the end (system/qtest.c).
    const bytes = new Uint8Array(size);
    bytes.set(Buffer.from(digits, 'hex'));
    this.bus.writeBytes(asAddress(address), bytes);
    return 'OK\n';
  }

  private memset(words: readonly string[]): string {
    const usage = 'ADDR SIZE VALUE';
    const address = argument(words, 1, 'memset', 'ADDR', usage);
    const size = transferSize(argument(words, 2, 'memset', 'SIZE', usage), 'memset', true);
    const value = argument(words, 3, 'memset', 'VALUE', usage);
    noMoreWords(words, 4, 'memset', usage);
    const pattern = Number(fitting(value, 1, 'memset'));
    if (size > 0) this.bus.writeBytes(asAddress(address), new Uint8Array(size).fill(pattern));
    return 'OK\n';
  }

  private b64read(words: readonly string[]): string {
    const usage = 'ADDR SIZE';
    const address = argument(words, 1, 'b64read', 'ADDR', usage);
    const size = transferSize(argument(words, 2, 'b64read', 'SIZE', usage), 'b64read', true);
    noMoreWords(words, 3, 'b64read', usage);
    const bytes = size === 0 ? new Uint8Array(0) : this.bus.readBytes(asAddress(address), size);
    return `OK ${Buffer.from(bytes).toString('base64')}\n`;
  }

  private b64write(words: readonly string[]): string {
    const usage = 'ADDR SIZE B64_DATA';
    const address = argument(words, 1, 'b64write', 'ADDR', usage);
    const size = transferSize(argument(words, 2, 'b64write', 'SIZE', usage), 'b64write', true);
    const data = words[3] ?? '';
    noMoreWords(words, 4, 'b64write', usage);
    if (data.length < 3) return 'ERR invalid argument size\n';
    if (!BASE64.test(data)) fail('b64write: B64_DATA is not base64 (A-Z a-z 0-9 + /, = padding)');
    const decoded = Buffer.from(data, 'base64');
    // Longer data is truncated to SIZE (system/qtest.c); shorter data would leave bytes undefined.
    if (decoded.length < size)
      fail(`b64write: B64_DATA holds ${decoded.length} bytes, fewer than SIZE ${size}`);
    if (size > 0) this.bus.writeBytes(asAddress(address), new Uint8Array(decoded.subarray(0, size)));
    return 'OK\n';
  }

  private endianness(words: readonly string[]): string {
    noMoreWords(words, 1, 'endianness', 'no arguments');
    return 'OK little\n';
  }

  // ---- virtual clock (vmmr has no timers: the clock moves only when told) ----

  private clockStep(words: readonly string[]): string {
    noMoreWords(words, 2, 'clock_step', '[NS]');
    if (words[1] === undefined)
      return 'FAIL cannot advance clock to the next deadline because there is no pending deadline\n';
    const ns = argument(words, 1, 'clock_step', 'NS', '[NS]');
    const next = this.clockNs + BigInt(ns);
    if (next <= this.clockNs || next > 2n ** 63n - 1n) return 'FAIL could not advance time\n';
    this.clockNs = next;
    return `OK ${next}\n`;
  }

  private clockSet(words: readonly string[]): string {
    const ns = BigInt(argument(words, 1, 'clock_set', 'NS', 'NS'));
    noMoreWords(words, 2, 'clock_set', 'NS');
    if (ns > 2n ** 63n - 1n) fail('clock_set: NS is beyond a signed 64-bit clock');
    if (ns > this.clockNs) this.clockNs = ns;
    return `${this.clockNs === ns ? 'OK' : 'FAIL'} ${this.clockNs}\n`;
  }

  // ---- interrupts ----

  private intercept(words: readonly string[], outbound: boolean): string {
    const command = words[0]!;
    const path = words[1];
    if (path === undefined) fail(`${command} takes QOM-PATH [NAME]`);
    noMoreWords(words, 3, command, 'QOM-PATH [NAME]');
    // QEMU's answers (system/qtest.c), for vmmr's one interrupt controller, whose pins are
    // unnamed: in and out reach the same lines.
    if (!INTERRUPT_CONTROLLER.has(path)) return 'FAIL Unknown device\n';
    if (words[2] !== undefined) {
      return outbound
        ? 'FAIL No intercepts installed\n'
        : 'FAIL Interception of named in-GPIOs not yet supported\n';
    }
    if (this.intercepting) return 'OK\n';
    this.intercepting = true;
    const view = this.view;
    const { emulator } = this.options;
    const lines = new IntxLines(view, (bdf) => interruptLineOf(emulator.machine, view, bdf));
    this.unsubscribe = emulator.subscribe({
      event: (event: VmmrEvent) => this.report(lines.onEvent(event)),
      topology: (change: TopologyChange) => {
        if (change.kind === 'reset' || change.kind === 'restore')
          for (const c of lines.clear()) this.report(c);
      },
    });
    return 'OK\n';
  }

  private report(change: LineChange | undefined): void {
    if (change) this.options.output(`IRQ ${change.level ? 'raise' : 'lower'} ${change.line}\n`);
  }

  /** Ends the session: no more IRQ lines. */
  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}
