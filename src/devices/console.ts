/**
 * virtio-console back-end (virtio 1.2 §5.3, Console Device), port 0 only (MULTIPORT is not
 * offered): receiveq0 = 0, transmitq0 = 1 (§5.3.2).
 *
 * Output: every chain on transmitq0 is read whole into a ring of the last CONSOLE_CAPTURE_BYTES
 * bytes (and a `console-tx` event) and returned with used length 0. Input: bytes the host writes
 * wait in order (at most CONSOLE_RX_PENDING_BYTES; the rest is refused and the count returned)
 * and fill receive buffers as the driver posts them. VIRTIO_CONSOLE_F_SIZE: `resize` updates
 * cols/rows and raises a configuration change (§5.3.6.1).
 */
import { datapath, deviceConfigs, features } from '../spec/index.js';
import type { DescriptorChain } from '../virtqueue/index.js';
import { ByteRing } from './byte-ring.js';
import { hasFeature, type DeviceBackend, type DeviceContext } from './context.js';
import { serveQueue } from './serve.js';

const CFG = deviceConfigs.console.registers;
const RX = 0;
const TX = 1;

export class ConsoleDevice implements DeviceBackend {
  readonly type = 'console' as const;
  readonly output: ByteRing;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly pendingLimit: number;

  constructor(
    private readonly ctx: DeviceContext,
    options: { captureBytes?: number; pendingBytes?: number } = {},
  ) {
    this.output = new ByteRing(options.captureBytes ?? datapath.constants.CONSOLE_CAPTURE_BYTES.value);
    this.pendingLimit = options.pendingBytes ?? datapath.constants.CONSOLE_RX_PENDING_BYTES.value;
  }

  notify(queue: number): void {
    if (queue === TX) serveQueue(this.ctx, TX, (c) => this.transmit(c));
    else if (queue === RX) this.flushInput();
  }

  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
  }

  private transmit(chain: DescriptorChain): number {
    const bytes = chain.gather();
    this.output.append(bytes);
    if (this.ctx.listening) this.ctx.emit({ type: 'console-tx', length: bytes.length });
    return 0;
  }

  /** Host input for port 0; returns how many bytes were accepted. */
  input(bytes: Uint8Array): number {
    const room = Math.max(0, this.pendingLimit - this.pendingBytes);
    const taken = Math.min(room, bytes.length);
    if (taken > 0) {
      this.pending.push(Buffer.from(bytes.subarray(0, taken)));
      this.pendingBytes += taken;
      this.flushInput();
    }
    return taken;
  }

  get pendingInput(): number {
    return this.pendingBytes;
  }

  private flushInput(): void {
    if (this.pendingBytes === 0) return;
    serveQueue(
      this.ctx,
      RX,
      (chain) => {
        let written = 0;
        while (written < chain.writable && this.pending.length > 0) {
          const head = this.pending[0]!;
          const n = Math.min(head.length, chain.writable - written);
          chain.scatter(written, head, 0, n);
          written += n;
          this.pendingBytes -= n;
          if (n === head.length) this.pending.shift();
          else this.pending[0] = head.subarray(n);
        }
        return written;
      },
      () => this.pendingBytes > 0,
    );
  }

  /** New console size (VIRTIO_CONSOLE_F_SIZE): cols and rows, then a configuration change. */
  resize(cols: number, rows: number): void {
    this.ctx.setConfig(CFG.COLS.offset, [cols & 0xff, (cols >>> 8) & 0xff]);
    this.ctx.setConfig(CFG.ROWS.offset, [rows & 0xff, (rows >>> 8) & 0xff]);
    if (hasFeature(this.ctx.features, features.byType.console.constants.SIZE.value)) this.ctx.configChanged();
  }
}
