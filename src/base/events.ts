/**
 * Events the core emits, in process. Transports (SSE) subscribe; with no subscriber an emit
 * costs one length check.
 */
export type InterruptEvent =
  | { type: 'interrupt'; bdf: string; mode: 'intx'; level: boolean; view?: 'guest' }
  | { type: 'interrupt'; bdf: string; mode: 'msix'; vector: number; address: string; data: number }
  | { type: 'interrupt'; bdf: string; mode: 'msix-pending'; vector: number };

/** Why a received frame was not delivered to the driver. */
export type NetDropReason = 'filtered' | 'no-buffers' | 'too-big' | 'gso' | 'link-down' | 'runt';

/** A broken queue as an event carries it (src/virtqueue VirtqueueErrorInfo). */
export interface QueueErrorRecord {
  queue: number;
  descriptor: number | null;
  table: 'ring' | 'indirect';
  rule: string;
  detail: string;
  message: string;
}

/** What device back-ends report as they run (docs/data-path.md "Wiring"); the stream adds the bdf. */
export type DeviceEvent =
  | { type: 'net-tx'; queue: number; length: number; seq: number }
  | { type: 'net-rx'; queue: number; length: number; buffers: number }
  | { type: 'net-rx-drop'; length: number; reason: NetDropReason }
  | { type: 'net-ctrl'; class: number; command: number; ack: number }
  | { type: 'console-tx'; length: number }
  | { type: 'block-request'; request: number; sector: number; length: number; status: number }
  | { type: 'balloon'; queue: 'inflate' | 'deflate'; pages: number }
  | { type: 'balloon-stats'; stats: Record<string, number> }
  | { type: 'queue-error'; error: QueueErrorRecord };

export type VmmrEvent =
  | (DeviceEvent & { bdf: string })
  | { type: 'notify'; bdf: string; queue: number; via: 'legacy-register' | 'notify-region' }
  | InterruptEvent
  | { type: 'status'; bdf: string; from: number; to: number }
  | { type: 'reset'; bdf: string; reason: ResetReason }
  | { type: 'vf-enable'; bdf: string; numVfs: number; first?: string; last?: string }
  | { type: 'vf-disable'; bdf: string; numVfs: number }
  | { type: 'config-change'; bdf: string; generation: number };

export type VmmrEventType = VmmrEvent['type'];
export type ResetReason = 'status' | 'queue-pfn' | 'flr' | 'vf-enable' | 'restore';

export const EVENT_TYPES: readonly VmmrEventType[] = [
  'notify',
  'interrupt',
  'status',
  'reset',
  'vf-enable',
  'vf-disable',
  'config-change',
  'net-tx',
  'net-rx',
  'net-rx-drop',
  'net-ctrl',
  'console-tx',
  'block-request',
  'balloon',
  'balloon-stats',
  'queue-error',
];

export type EventListener = (event: VmmrEvent) => void;

export class EventBus {
  private listeners: EventListener[] = [];
  /**
   * Config-space writes made through the access layer on this machine (src/access counts them):
   * address decoders (src/platform) cache which BAR claims which address until it changes.
   */
  configWrites = 0;

  get active(): boolean {
    return this.listeners.length > 0;
  }

  get subscriberCount(): number {
    return this.listeners.length;
  }

  subscribe(listener: EventListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  emit(event: VmmrEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}
