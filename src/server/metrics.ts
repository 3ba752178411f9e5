/**
 * Prometheus metrics, one registry per app instance (two apps in one process, as in tests, do
 * not share counters). Access counts on the batch path are tallied locally and added once per
 * batch, so counting costs nothing per operation.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { SPACES } from '../access/index.js';
import type { VmmrEvent } from '../base/events.js';
import type { Emulator } from '../machine/emulator.js';
import { packageVersion } from './version.js';

export type AccessOp = 'read' | 'write';
type AccessLabel = 'space' | 'width' | 'op' | 'outcome';
type RequestLabel = 'method' | 'route' | 'status_code';

export class Metrics {
  readonly registry = new Registry();
  private readonly accesses: Counter<AccessLabel>;
  readonly requestDuration: Histogram<RequestLabel>;
  private readonly events: Counter<'type'>;
  private readonly interrupts: Counter<'mode'>;
  private readonly notifies: Counter<'via'>;
  private readonly droppedStreams: Counter;

  /** `subscribers` counts the open event streams (the metrics' own listener is not one). */
  constructor(emulator: Emulator, subscribers: () => number) {
    const registers = [this.registry];
    this.events = new Counter({
      name: 'vmmr_events_total',
      help: 'Device events by type (what GET /api/v1/events streams), whether or not a stream is open',
      labelNames: ['type'],
      registers,
    });
    this.interrupts = new Counter({
      name: 'vmmr_interrupts_total',
      help: 'Interrupts signalled by mode: intx (INTx asserted), msix (message sent), msix-pending (vector masked)',
      labelNames: ['mode'],
      registers,
    });
    this.notifies = new Counter({
      name: 'vmmr_notifies_total',
      help: 'Queue notifications (driver kicks) by the way they arrived: notify-region or legacy-register',
      labelNames: ['via'],
      registers,
    });
    this.droppedStreams = new Counter({
      name: 'vmmr_event_streams_dropped_total',
      help: 'Event streams dropped because their client fell VMMR_SSE_QUEUE events behind',
      registers,
    });
    new Gauge({
      name: 'vmmr_build_info',
      help: 'Always 1; the labels say which vmmr and which Node.js run',
      labelNames: ['version', 'node'],
      registers,
    }).set({ version: packageVersion(), node: process.versions.node }, 1);
    emulator.subscribe({ event: (event) => this.countEvent(event), topology: () => undefined });
    collectDefaultMetrics({ register: this.registry });
    this.accesses = new Counter({
      name: 'vmmr_accesses_total',
      help: 'Device accesses by space, width ("block" for block accesses), op and outcome ("ok" or the error code)',
      labelNames: ['space', 'width', 'op', 'outcome'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'vmmr_http_request_duration_seconds',
      help: 'HTTP request latency by method, route template and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    new Gauge({
      name: 'vmmr_vfs_enabled',
      help: 'VFs enabled per PF',
      labelNames: ['pf'],
      registers,
      collect() {
        this.reset();
        for (const pf of emulator.machine.pfs) this.set({ pf: pf.bdf }, pf.vfs.length);
      },
    });
    new Gauge({
      name: 'vmmr_pfs',
      help: 'PFs in the machine',
      registers,
      collect() {
        this.set(emulator.machine.pfs.length);
      },
    });
    new Gauge({
      name: 'vmmr_event_subscribers',
      help: 'Open event streams (GET /api/v1/events)',
      registers,
      collect() {
        this.set(subscribers());
      },
    });
  }

  /** Label sets built once per distinct key: a request costs a map lookup, not an object and its hash. */
  private readonly accessLabels = new Map<string, Partial<Record<AccessLabel, string>>>();
  private readonly requestLabels = new Map<string, Partial<Record<RequestLabel, string>>>();

  private countEvent(event: VmmrEvent): void {
    this.events.inc({ type: event.type });
    if (event.type === 'notify') this.notifies.inc({ via: event.via });
    else if (event.type === 'interrupt' && (event.mode !== 'intx' || event.level))
      this.interrupts.inc({ mode: event.mode });
  }

  countDroppedStream(): void {
    this.droppedStreams.inc();
  }

  countAccess(space: string, width: number | 'block', op: AccessOp, outcome: string, n = 1): void {
    const key = `${space} ${width} ${op} ${outcome}`;
    let labels = this.accessLabels.get(key);
    if (!labels) {
      labels = { space, width: String(width), op, outcome };
      this.accessLabels.set(key, labels);
    }
    this.accesses.inc(labels, n);
  }

  /** One answered HTTP request, by method, route template and status. */
  observeRequest(method: string, route: string, statusCode: number, seconds: number): void {
    const key = `${method} ${statusCode} ${route}`;
    let labels = this.requestLabels.get(key);
    if (!labels) {
      labels = { method, route, status_code: String(statusCode) };
      this.requestLabels.set(key, labels);
    }
    this.requestDuration.observe(labels, seconds);
  }

  /** A tally for one batch: add() per operation, flush() once at the end. */
  tally(): AccessTally {
    return new AccessTally(this);
  }
}

const SPACE_LIST: readonly string[] = SPACES;
const SPACE_INDEX = new Map<string, number>(SPACE_LIST.map((space, i) => [space, i]));
const WIDTH_LABELS = ['1', '2', '4', '8', 'block'] as const;
const OPS: readonly AccessOp[] = ['read', 'write'];

function widthSlot(width: number | 'block'): number {
  switch (width) {
    case 1:
      return 0;
    case 2:
      return 1;
    case 4:
      return 2;
    case 8:
      return 3;
    case 'block':
      return 4;
    default:
      return -1;
  }
}

/**
 * Counts of one batch: successful accesses in a flat array indexed by (space, width, op), the
 * rare others (errors, odd widths) in a map. Costs a few array operations per access.
 */
export class AccessTally {
  private readonly ok = new Float64Array(SPACE_LIST.length * WIDTH_LABELS.length * OPS.length);
  private readonly other = new Map<string, number>();

  constructor(private readonly metrics: Metrics) {}

  add(space: string, width: number | 'block', op: AccessOp, outcome: string): void {
    const s = SPACE_INDEX.get(space);
    const w = widthSlot(width);
    if (outcome === 'ok' && s !== undefined && w >= 0) {
      this.ok[(s * WIDTH_LABELS.length + w) * OPS.length + (op === 'read' ? 0 : 1)]! += 1;
      return;
    }
    const key = `${space}\u0000${width}\u0000${op}\u0000${outcome}`;
    this.other.set(key, (this.other.get(key) ?? 0) + 1);
  }

  flush(): void {
    for (let i = 0; i < this.ok.length; i++) {
      const n = this.ok[i]!;
      if (n === 0) continue;
      const o = i % OPS.length;
      const w = Math.floor(i / OPS.length) % WIDTH_LABELS.length;
      const s = Math.floor(i / (OPS.length * WIDTH_LABELS.length));
      const width = WIDTH_LABELS[w]!;
      this.metrics.countAccess(SPACE_LIST[s]!, width === 'block' ? 'block' : Number(width), OPS[o]!, 'ok', n);
    }
    this.ok.fill(0);
    for (const [key, n] of this.other) {
      const [space, width, op, outcome] = key.split('\u0000') as [string, string, AccessOp, string];
      this.metrics.countAccess(space, width === 'block' ? 'block' : Number(width), op, outcome, n);
    }
    this.other.clear();
  }
}
