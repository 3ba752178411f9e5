/**
 * A qtest client as libqtest is one (QEMU tests/qtest/libqtest.c qtest_rsp): it sends a line and
 * reads lines until the answer, keeping the asynchronous `IRQ raise N` / `IRQ lower N` lines it
 * meets on the way (with the number of answers seen before each, to check their position).
 */
import { connect, type Socket } from 'node:net';

export interface IrqLine {
  line: string;
  /** Answers received before this IRQ line. */
  afterAnswers: number;
}

export class QtestClient {
  readonly irqs: IrqLine[] = [];
  private buffer = '';
  private answers = 0;
  private readonly waiting: Array<(answer: string) => void> = [];
  private closedWith: Error | undefined;
  private readonly closeWaiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => this.onData(text));
    socket.on('error', (err) => {
      this.closedWith = err;
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters.splice(0)) w();
      const err = this.closedWith ?? new Error('qtest connection closed');
      for (const w of this.waiting.splice(0)) w(`<closed: ${err.message}>`);
    });
  }

  static connect(target: string | { host: string; port: number }): Promise<QtestClient> {
    return new Promise((resolve, reject) => {
      const socket = typeof target === 'string' ? connect(target) : connect(target.port, target.host);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        if (typeof target !== 'string') socket.setNoDelay(true);
        resolve(new QtestClient(socket));
      });
    });
  }

  /** Wraps an accepted connection (QEMU connects to the test, as with libqtest). */
  static wrap(socket: Socket): QtestClient {
    return new QtestClient(socket);
  }

  private onData(text: string): void {
    this.buffer += text;
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (line.startsWith('IRQ ')) {
        this.irqs.push({ line, afterAnswers: this.answers });
        continue;
      }
      this.answers++;
      this.waiting.shift()?.(line);
    }
  }

  /** Sends one command and resolves with its answer line. */
  command(line: string): Promise<string> {
    return this.pipeline([line]).then((a) => a[0]!);
  }

  /** Sends lines in one write and resolves with their answers, in order. */
  pipeline(lines: readonly string[]): Promise<string[]> {
    const answers = lines.map(() => new Promise<string>((resolve) => this.waiting.push(resolve)));
    this.socket.write(lines.map((l) => `${l}\n`).join(''));
    return Promise.all(answers);
  }

  /** Writes raw bytes (for malformed input). */
  raw(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next `n` answers to whatever was written with raw(). */
  nextAnswers(n: number): Promise<string[]> {
    return Promise.all(
      Array.from({ length: n }, () => new Promise<string>((resolve) => this.waiting.push(resolve))),
    );
  }

  whenClosed(): Promise<void> {
    return this.closed ? Promise.resolve() : new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  close(): Promise<void> {
    this.socket.end();
    return this.whenClosed();
  }

  /** An answer's value ("OK 0x0012" -> 0x12). */
  static value(answer: string): number {
    const m = /^OK (0x[0-9a-f]+)$/.exec(answer);
    if (!m) throw new Error(`not a value answer: ${answer}`);
    return Number(m[1]);
  }
}
