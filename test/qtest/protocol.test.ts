/**
 * The qtest protocol over both listeners (Unix socket and TCP): the answers as QEMU formats them
 * (system/qtest.c), pipelining, IRQ lines for a guest view's INTx, the token and view lines, and
 * bad input answered with FAIL or a clean close.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rd as read, remember, wr as write } from '../support/functions.js';
import { assignAddresses } from '../../src/platform/assign.js';
import { viewOf as guestView } from '../support/functions.js';
import { qtestProtocol } from '../../src/spec/index.js';
import { TestRam } from '../support/ram.js';
import { QtestClient } from '../support/qtest/client.js';
import {
  emulatorOf,
  enableVfs,
  PROBE_PF,
  PROBE_TOPOLOGY,
  startVmmrQtest,
  type VmmrQtest,
} from '../support/qtest/vmmr.js';

const MAX_LINE = qtestProtocol.constants.MAX_LINE.value;
const MAX_TRANSFER = qtestProtocol.constants.MAX_TRANSFER.value;
/** VF 0 and VF 1 of the PF at 00:03.0 (First VF Offset 8): 00:04.0 and 00:04.1. */
const VF0 = '0000:00:04.0';
const VF1 = '0000:00:04.1';
const cf8 = (rid: number, offset: number): string =>
  `0x${((0x80000000 | (rid << 8) | offset) >>> 0).toString(16)}`;

interface Rig {
  vmmr: VmmrQtest;
  ram: TestRam;
  /** VF 0's guest I/O BAR0 base after assignment (0xc000). */
  io0: number;
  io1: number;
}

async function rig(token?: string): Promise<Rig> {
  const emulator = emulatorOf(PROBE_TOPOLOGY);
  enableVfs(emulator, PROBE_PF, 2);
  const { guest } = assignAddresses(emulator.machine);
  const ram = new TestRam(1 << 24);
  const vmmr = await startVmmrQtest(emulator, { ...(token ? { token } : {}), dma: { spaceFor: () => ram } });
  const ioOf = (bdf: string): number => guest.assigned.find((a) => a.bdf === bdf && a.window === 'io')!.base;
  return { vmmr, ram, io0: ioOf(VF0), io1: ioOf(VF1) };
}

describe.each(['unix', 'tcp'] as const)('over %s', (over) => {
  let r: Rig;
  let q: QtestClient;
  beforeEach(async () => {
    r = await rig();
    q = await r.vmmr.connect(over);
  });
  afterEach(async () => {
    await r.vmmr.stop();
  });

  it('answers in*, read* and endianness as QEMU formats them', async () => {
    expect(
      await q.pipeline(['endianness', `outl 0xcf8 ${cf8(0x20, 0)}`, 'inl 0xcfc', 'inw 0xcfc', 'inb 0xcfc']),
    ).toEqual([
      'OK little',
      'OK',
      'OK 0x10001af4',
      'OK 0x1af4',
      // "OK 0x%04x" whatever the width.
      'OK 0x00f4',
    ]);
    expect(
      await q.pipeline([
        'writeb 0x1000 0x5a',
        'readb 0x1000',
        'writeq 0x1008 0xfedcba9876543210',
        'readq 0x1008',
        'readl 0x100c',
      ]),
    ).toEqual(['OK', 'OK 0x000000000000005a', 'OK', 'OK 0xfedcba9876543210', 'OK 0x00000000fedcba98']);
    expect(r.ram.readU32(0x1008)).toBe(0x76543210);
  });

  it('reaches the guest view through 0xCF8/0xCFC and its I/O BAR0 once Command.IO is set', async () => {
    const status = `0x${(r.io0 + 18).toString(16)}`;
    expect(
      await q.pipeline([
        `inb ${status}`,
        `outl 0xcf8 ${cf8(0x20, 0x04)}`,
        'outw 0xcfc 0x1',
        `outb ${status} 0x1`,
        `inb ${status}`,
      ]),
    ).toEqual(['OK 0x00ff', 'OK', 'OK', 'OK', 'OK 0x0001']);
    const vf = remember(r.vmmr.emulator.machine).findVf(VF0);
    expect(read(vf, 'io', 18, 1)).toBe(1);
  });

  it('serves read, write, memset, b64read and b64write on DMA memory as system/qtest.c does', async () => {
    expect(
      await q.pipeline([
        'write 0x2000 4 0x11223344',
        'read 0x2000 4',
        'write 0x2000 4 0xab',
        'read 0x2000 4',
        'memset 0x2004 3 0x7f',
        'read 0x2000 8',
        'b64read 0x2000 4',
        'b64write 0x3000 3 AQID',
        'read 0x3000 3',
        'b64write 0x3000 2 AQID',
        'read 0x3000 3',
        'memset 0x3000 0 0x1',
        'b64read 0x3000 0',
        'write 0x3000 1 0x',
        'b64write 0x3000 1 QQ',
      ]),
    ).toEqual([
      'OK',
      'OK 0x11223344',
      'OK',
      // Shorter DATA is zero-filled.
      'OK 0xab000000',
      'OK',
      'OK 0xab0000007f7f7f00',
      'OK qwAAAA==',
      'OK',
      'OK 0x010203',
      // Longer B64_DATA is truncated to SIZE.
      'OK',
      'OK 0x010203',
      'OK',
      'OK ',
      'ERR invalid argument size',
      'ERR invalid argument size',
    ]);
  });

  it('keeps a virtual clock that moves only when told (vmmr has no timers)', async () => {
    expect(
      await q.pipeline([
        'clock_step 100',
        'clock_step 0x10',
        'clock_step',
        'clock_step 0',
        'clock_set 50',
        'clock_set 1000',
        'clock_set 1000',
      ]),
    ).toEqual([
      'OK 100',
      'OK 116',
      'FAIL cannot advance clock to the next deadline because there is no pending deadline',
      'FAIL could not advance time',
      'FAIL 116',
      'OK 1000',
      'OK 1000',
    ]);
  });

  it('answers pipelined commands in order, the same as one at a time', async () => {
    const lines: string[] = [`outl 0xcf8 ${cf8(0x20, 0x04)}`, 'outw 0xcfc 0x1'];
    const expected: string[] = ['OK', 'OK'];
    const port = (off: number): string => `0x${(r.io0 + off).toString(16)}`;
    for (let i = 0; i < 500; i++) {
      const queue = i % 4;
      const ram = `0x${(0x4000 + i * 4).toString(16)}`;
      lines.push(`outw ${port(14)} 0x${queue.toString(16)}`, `inw ${port(12)}`, `inw ${port(14)}`);
      // A net VF has queues 0..2 (rx, tx, ctrl) of the topology's 256 entries; queue 3 reads 0.
      expected.push(
        'OK',
        queue < 3 ? 'OK 0x0100' : 'OK 0x0000',
        `OK 0x${queue.toString(16).padStart(4, '0')}`,
      );
      lines.push(`writel ${ram} 0x${i.toString(16)}`, `readl ${ram}`);
      expected.push('OK', `OK 0x${i.toString(16).padStart(16, '0')}`);
    }
    expect(await q.pipeline(lines)).toEqual(expected);
    const second = await r.vmmr.connect(over);
    const oneByOne: string[] = [];
    for (const line of lines) oneByOne.push(await second.command(line));
    expect(oneByOne).toEqual(expected);
  });

  it('sends IRQ raise/lower for a guest view’s INTx on its Interrupt Line, before the answer that caused it', async () => {
    const machine = remember(r.vmmr.emulator.machine);
    const vf = machine.findVf(VF0);
    const line = read(vf, 'guest-config', 0x3c, 1) as number;
    // Slot 4, pin A: PIRQ[(1 - 1 + 4) & 3] = PIRQ A = IRQ 10 (SeaBIOS q35 routing).
    expect(line).toBe(10);
    expect(
      await q.pipeline(['irq_intercept_in ioapic', `outl 0xcf8 ${cf8(0x20, 0x04)}`, 'outw 0xcfc 0x1']),
    ).toEqual(['OK', 'OK', 'OK']);
    vf.device.raiseQueueInterrupt(0);
    const isr = await q.command(`inb 0x${(r.io0 + 19).toString(16)}`);
    expect(isr).toBe('OK 0x0001');
    expect(q.irqs.map((i) => i.line)).toEqual([`IRQ raise ${line}`, `IRQ lower ${line}`]);
    // The lower came with the ISR read (read-to-clear), before its answer.
    expect(q.irqs[1]!.afterAnswers).toBe(3);
  });
});

describe('IRQ lines', () => {
  let r: Rig;
  afterEach(async () => {
    await r.vmmr.stop();
  });

  it('a shared line stays high while any function on it asserts (wired-OR, level-triggered)', async () => {
    r = await rig();
    const q = await r.vmmr.connect();
    const machine = remember(r.vmmr.emulator.machine);
    const [vf0, vf1] = [machine.findVf(VF0), machine.findVf(VF1)];
    for (const vf of [vf0, vf1]) {
      write(vf, 'guest-config', 0x3c, 1, 5);
      write(vf, 'guest-config', 0x04, 2, 1);
    }
    await q.command('irq_intercept_out ioapic');
    vf0.device.raiseQueueInterrupt(0);
    vf1.device.raiseQueueInterrupt(0);
    await q.command(`inb 0x${(r.io0 + 19).toString(16)}`);
    expect(q.irqs.map((i) => i.line)).toEqual(['IRQ raise 5']);
    await q.command(`inb 0x${(r.io1 + 19).toString(16)}`);
    expect(q.irqs.map((i) => i.line)).toEqual(['IRQ raise 5', 'IRQ lower 5']);
  });

  it('Command.Interrupt Disable masks the pin; a machine reset lowers raised lines', async () => {
    r = await rig();
    const q = await r.vmmr.connect();
    const vf = remember(r.vmmr.emulator.machine).findVf(VF0);
    await q.command('irq_intercept_in /machine/ioapic');
    await q.pipeline([`outl 0xcf8 ${cf8(0x20, 0x04)}`, 'outw 0xcfc 0x401']);
    vf.device.raiseQueueInterrupt(0);
    await q.command('endianness');
    expect(q.irqs).toEqual([]);
    await q.command('outw 0xcfc 0x1');
    expect(q.irqs.map((i) => i.line)).toEqual(['IRQ raise 10']);
    r.vmmr.emulator.reset();
    await q.command('endianness');
    expect(q.irqs.map((i) => i.line)).toEqual(['IRQ raise 10', 'IRQ lower 10']);
  });

  it('a host-view session sees the PF’s own INTx, a guest-view session does not', async () => {
    r = await rig();
    const host = await r.vmmr.connect();
    const guest = await r.vmmr.connect('tcp');
    expect(await host.pipeline(['view host', 'irq_intercept_in ioapic'])).toEqual(['OK', 'OK']);
    await guest.command('irq_intercept_in ioapic');
    const pf = r.vmmr.emulator.machine.findPf(PROBE_PF);
    const line = read(pf, 'config', 0x3c, 1) as number;
    pf.device.raiseQueueInterrupt(0);
    await host.command('endianness');
    await guest.command('endianness');
    expect(host.irqs.map((i) => i.line)).toEqual([`IRQ raise ${line}`]);
    expect(guest.irqs).toEqual([]);
  });

  it('answers interception requests as QEMU does', async () => {
    r = await rig();
    const q = await r.vmmr.connect();
    expect(
      await q.pipeline([
        'irq_intercept_in foo',
        'irq_intercept_in ioapic named',
        'irq_intercept_out ioapic named',
        'irq_intercept_in ioapic',
        'irq_intercept_out ioapic',
        'set_irq_in ioapic unnamed-gpio-in 0 1',
      ]),
    ).toEqual([
      'FAIL Unknown device',
      'FAIL Interception of named in-GPIOs not yet supported',
      'FAIL No intercepts installed',
      'OK',
      'OK',
      'FAIL set_irq_in is not served: vmmr has no input pins to drive (interrupts come from its devices)',
    ]);
  });
});

describe('the first lines: token and view', () => {
  let r: Rig;
  afterEach(async () => {
    await r.vmmr.stop();
  });

  it('with a token, the first line must be it; a wrong one is answered FAIL and the connection closed', async () => {
    r = await rig('s3cret-token');
    const bad = await r.vmmr.connect();
    expect(await bad.command('inl 0xcfc')).toBe(
      'FAIL authentication required: the first line must be the service token (VMMR_TOKEN)',
    );
    await bad.whenClosed();
    const good = await r.vmmr.connect('tcp');
    expect(
      await good.pipeline(['s3cret-token', 'view host', `outl 0xcf8 ${cf8(0x18, 0)}`, 'inl 0xcfc']),
    ).toEqual(['OK', 'OK', 'OK', 'OK 0x10411af4']);
  });

  it('view host shows the PFs and the raw MMR VFs; view guest (the default) the translated VFs', async () => {
    r = await rig();
    const host = await r.vmmr.connect();
    const guest = await r.vmmr.connect();
    const probe = [`outl 0xcf8 ${cf8(0x18, 0)}`, 'inl 0xcfc', `outl 0xcf8 ${cf8(0x20, 0)}`, 'inl 0xcfc'];
    expect(await host.pipeline(['view host', ...probe])).toEqual([
      'OK',
      'OK',
      'OK 0x10411af4',
      'OK',
      'OK 0xffffffff',
    ]);
    expect(await guest.pipeline(probe)).toEqual(['OK', 'OK 0xffffffff', 'OK', 'OK 0x10001af4']);
    expect(await guest.pipeline(['view host', 'view', 'view other'])).toEqual([
      'FAIL view: the view is chosen by the first line of a session (after the token)',
      'FAIL view: the view is chosen by the first line of a session (after the token)',
      'FAIL view: the view is chosen by the first line of a session (after the token)',
    ]);
    const third = await r.vmmr.connect();
    expect(await third.command('view other')).toBe('FAIL view takes one of guest, host');
  });
});

describe('bad input: FAIL or a clean close, never a crash', () => {
  let r: Rig;
  let q: QtestClient;
  beforeEach(async () => {
    r = await rig();
    q = await r.vmmr.connect();
  });
  afterEach(async () => {
    await r.vmmr.stop();
  });

  it('unknown commands, bad numbers, missing and extra arguments, values that do not fit', async () => {
    expect(
      await q.pipeline([
        'frobnicate 1 2',
        '',
        'outb 0xzz 1',
        'outb 0x80',
        'outb 0x80 1 2',
        'outb 0x80 0x100',
        'outw 0x10000 0',
        'inb -1',
        'readl 0x1ffffffffffffffff',
        'writel 0x1000 0x100000000',
        'read 0x1000 0',
        `read 0x1000 ${MAX_TRANSFER + 1}`,
        'write 0x1000 2 0x123',
        'write 0x1000 1 0x1234',
        'write 0x1000 2 zz34',
        'b64write 0x1000 4 AQID',
        'b64write 0x1000 2 A*ID',
        'memset 0x1000 1 0x100',
        'endianness now',
        'clock_set',
        'inl 08',
      ]),
    ).toEqual([
      "FAIL Unknown command 'frobnicate'",
      "FAIL Unknown command ''",
      'FAIL outb: ADDR "0xzz" is not an unsigned number (0x hex, 0 octal or decimal, at most 64 bits)',
      'FAIL outb takes ADDR VALUE: VALUE is missing',
      'FAIL outb takes ADDR VALUE: unexpected "2"',
      'FAIL outb: VALUE 0x100 does not fit in 1 byte',
      'FAIL outw: ADDR 0x10000 is beyond port 0xffff',
      'FAIL inb: ADDR "-1" is not an unsigned number (0x hex, 0 octal or decimal, at most 64 bits)',
      'FAIL readl: ADDR "0x1ffffffffffffffff" is not an unsigned number (0x hex, 0 octal or decimal, at most 64 bits)',
      'FAIL writel: VALUE 0x100000000 does not fit in 4 bytes',
      'FAIL read: SIZE must not be 0',
      `FAIL read: SIZE ${MAX_TRANSFER + 1} is above the limit of ${MAX_TRANSFER} bytes per command`,
      'FAIL write: DATA has an odd number of hex digits (3): give whole bytes',
      'FAIL write: DATA holds 2 bytes, more than SIZE 1',
      'FAIL write: DATA must be 0x followed by hex digits',
      'FAIL b64write: B64_DATA holds 3 bytes, fewer than SIZE 4',
      'FAIL b64write: B64_DATA is not base64 (A-Z a-z 0-9 + /, = padding)',
      'FAIL memset: VALUE 0x100 does not fit in 1 byte',
      'FAIL endianness takes no arguments: unexpected "now"',
      'FAIL clock_set takes NS: NS is missing',
      'FAIL inl: ADDR "08" is not an unsigned number (0x hex, 0 octal or decimal, at most 64 bits)',
    ]);
    expect(await q.command('endianness')).toBe('OK little');
  });

  it('a refusal of the core is FAIL with its code, naming the access', async () => {
    await q.pipeline([`outl 0xcf8 ${cf8(0x20, 0x04)}`, 'outw 0xcfc 0x1']);
    expect(await q.command(`inl 0x${(r.io0 + 0x12).toString(16)}`)).toBe(
      'FAIL VMMR_ERR_UNALIGNED: 0000:00:04.0 io offset 0x12 width 4: offset 0x12 is not aligned to width 4',
    );
    expect(await q.command(`inw 0x${(r.io0 + 18).toString(16)}`)).toMatch(
      /^FAIL VMMR_ERR_WIDTH_MISMATCH: 0000:00:04\.0 io offset 0x12 width 2: .*STATUS/,
    );
    expect(await q.command('inl 0xcfe')).toMatch(/^FAIL VMMR_ERR_OUT_OF_RANGE: port 0xcfe width 4 straddles/);
  });

  it('the translator’s trace records the session’s accesses like any other', async () => {
    const vf = remember(r.vmmr.emulator.machine).findVf(VF0);
    guestView(vf).enableTrace(16);
    await q.pipeline([
      `outl 0xcf8 ${cf8(0x20, 0x04)}`,
      'outw 0xcfc 0x1',
      `outb 0x${(r.io0 + 18).toString(16)} 0x1`,
      `inl 0x${r.io0.toString(16)}`,
    ]);
    const entries = guestView(vf).trace!.list();
    expect(entries.map((e) => [e.op, e.port, e.width, e.register, e.outcome])).toEqual([
      ['write', 18, 1, 'STATUS', 'ok'],
      ['read', 0, 4, 'HOST_FEATURES', 'ok'],
    ]);
  });

  it('an overlong line is discarded up to its newline and answered FAIL; the session goes on', async () => {
    const long = `write 0x1000 4 0x${'0'.repeat(MAX_LINE)}`;
    q.raw(`${long.slice(0, 100000)}`);
    q.raw(`${long.slice(100000)}\nendianness\n`);
    expect(await q.nextAnswers(2)).toEqual([
      `FAIL line longer than ${MAX_LINE} bytes: discarded`,
      'OK little',
    ]);
    q.raw(`${'x'.repeat(MAX_LINE + 10)}\r\nendianness\r\n`);
    expect(await q.nextAnswers(2)).toEqual([
      `FAIL line longer than ${MAX_LINE} bytes: discarded`,
      'OK little',
    ]);
  });

  it('binary garbage is an unknown command', async () => {
    q.raw(Buffer.from([0x00, 0xff, 0x80, 0x0a]));
    expect(await q.nextAnswers(1)).toEqual(["FAIL Unknown command '\u0000\u00ff\u0080'"]);
  });

  it('a client that never reads is disconnected once its unread answers pass the output limit', async () => {
    q.socket.pause();
    const big = `b64read 0x0 ${MAX_TRANSFER}\n`.repeat(24);
    q.raw(big);
    for (let i = 0; i < 100 && r.vmmr.server.sessions > 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.vmmr.server.sessions).toBe(0);
    q.socket.resume();
    await q.whenClosed();
    // The service goes on serving others.
    const other = await r.vmmr.connect();
    expect(await other.command('endianness')).toBe('OK little');
  });
});

describe('session limit', () => {
  it(`past ${qtestProtocol.constants.MAX_SESSIONS.value} open sessions a new connection is answered FAIL and closed`, async () => {
    const r = await rig();
    try {
      const max = qtestProtocol.constants.MAX_SESSIONS.value;
      const open = await Promise.all(Array.from({ length: max }, () => r.vmmr.connect()));
      expect(await open[max - 1]!.command('endianness')).toBe('OK little');
      const extra = await r.vmmr.connect('tcp');
      expect(await extra.nextAnswers(1)).toEqual([`FAIL too many qtest sessions: ${max} are open`]);
      await extra.whenClosed();
      await open[0]!.close();
      for (let i = 0; i < 100 && r.vmmr.server.sessions >= max; i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      const next = await r.vmmr.connect();
      expect(await next.command('endianness')).toBe('OK little');
    } finally {
      await r.vmmr.stop();
    }
  });
});
