/**
 * virtio-rng back-end (virtio 1.2 §5.4, Entropy Device): requestq 0. Each chain's
 * device-writable buffers are filled from crypto.randomFillSync, at most
 * RNG_MAX_BYTES_PER_REQUEST per chain (§5.4.6.1: the device may fill less than offered); the
 * used length says how many bytes.
 */
import { randomFillSync } from 'node:crypto';
import { datapath } from '../spec/index.js';
import type { DeviceBackend, DeviceContext } from './context.js';
import { serveQueue } from './serve.js';

export class RngDevice implements DeviceBackend {
  readonly type = 'rng' as const;
  /** Random bytes handed out. */
  bytes = 0;

  constructor(private readonly ctx: DeviceContext) {}

  notify(queue: number): void {
    if (queue !== 0) return;
    serveQueue(this.ctx, 0, (chain) => {
      const n = Math.min(chain.writable, datapath.constants.RNG_MAX_BYTES_PER_REQUEST.value);
      chain.writePieces(0, n, (into, at, len) => randomFillSync(into, at, len));
      this.bytes += n;
      return n;
    });
  }

  reset(): void {
    // Nothing is kept between requests.
  }
}
