/**
 * The administration virtqueue of an owner device (virtio 1.3 §2.13 "Administration
 * Virtqueues"): each chain is one command — the device-readable part from opcode through
 * command_specific_data, the device-writable part from status through command_specific_result.
 * Commands run in queue order; the used length is what the device wrote (status and the result,
 * truncated to the writable buffers).
 */
import type { DeviceContext } from '../context.js';
import { serveQueue } from '../serve.js';
import type { AdminCommandEngine, AdminOutcome } from './engine.js';
import { encodeReply } from './wire.js';

export class AdminQueue {
  /** Commands completed, and the last outcome (for views and tests). */
  commands = 0;
  last: AdminOutcome | undefined;

  constructor(
    private readonly ctx: DeviceContext,
    /** Index of the administration virtqueue (admin_queue_index). */
    readonly index: number,
    private readonly engine: AdminCommandEngine,
    private readonly onOutcome: (outcome: AdminOutcome) => void = () => undefined,
  ) {}

  notify(queue: number): void {
    if (queue !== this.index) return;
    serveQueue(this.ctx, queue, (chain) => {
      const outcome = this.engine.execute(chain.gather(0, chain.readable).slice(), chain.writable);
      const reply = encodeReply(outcome).subarray(0, chain.writable);
      chain.scatter(0, reply, 0, reply.length);
      this.commands++;
      this.last = outcome;
      this.onOutcome(outcome);
      return reply.length;
    });
  }

  reset(): void {
    this.engine.reset();
  }
}
