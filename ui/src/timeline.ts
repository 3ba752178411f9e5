/**
 * The live event timeline: one GET /api/v1/events stream, newest first, filtered by function
 * and type in the page, with pause (events keep arriving and wait) and clear. Events are drawn
 * once per animation frame in a batch, so a burst costs one layout; the last MAX_KEPT events are
 * kept for refiltering, the newest MAX_ROWS matching ones are on the page.
 */
import { EVENT_TYPES } from '../../src/base/events.js';
import { fill, h } from './dom.js';
import { openEvents, type EventStream, type StreamEvent } from './sse.js';

const MAX_KEPT = 5000;
const MAX_ROWS = 200;
const RETRY_MS = 2000;

export interface TimelineEvent {
  seq: number;
  type: string;
  bdf: string;
  [field: string]: unknown;
}

function describe(e: TimelineEvent): string {
  if (e.type === 'status') {
    const hex = (v: unknown) => `0x${Number(v).toString(16).padStart(2, '0')}`;
    return `${hex(e['from'])} -> ${hex(e['to'])}`;
  }
  return Object.entries(e)
    .filter(([k]) => k !== 'seq' && k !== 'type' && k !== 'bdf')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

export class Timeline {
  private kept: TimelineEvent[] = [];
  private pending: TimelineEvent[] = [];
  private paused = false;
  private frame = 0;
  private stream: EventStream | undefined;
  private retry: number | undefined;
  /** Events received from the stream, and drawn into the list (bench and tests read both). */
  received = 0;
  shown = 0;
  private readonly list = h('ol', {
    id: 'timeline-list',
    'aria-label': 'Events, newest first',
    reversed: true,
  });
  private readonly state = h('p', { id: 'timeline-state', role: 'status' }, 'connecting');
  private readonly bdf = h('input', { id: 'timeline-bdf', placeholder: 'all functions', size: 14 });
  private readonly types = new Map(
    EVENT_TYPES.map((t) => [t, h('input', { type: 'checkbox', checked: true, value: t, id: `type-${t}` })]),
  );
  private readonly pause = h(
    'button',
    { type: 'button', id: 'timeline-pause', 'aria-pressed': 'false' },
    'Pause',
  );

  constructor(
    root: HTMLElement,
    private readonly onEvent: (e: TimelineEvent) => void,
  ) {
    const clear = h('button', { type: 'button', id: 'timeline-clear' }, 'Clear');
    this.pause.addEventListener('click', () => this.setPaused(!this.paused));
    clear.addEventListener('click', () => this.clear());
    this.bdf.addEventListener('input', () => this.redraw());
    for (const box of this.types.values()) box.addEventListener('change', () => this.redraw());
    fill(
      root,
      h(
        'div',
        { class: 'inline' },
        h('label', { for: 'timeline-bdf' }, 'function'),
        this.bdf,
        this.pause,
        clear,
      ),
      h(
        'fieldset',
        { class: 'types' },
        h('legend', {}, 'types'),
        ...[...this.types].map(([t, box]) => h('label', {}, box, t)),
      ),
      this.state,
      this.list,
    );
  }

  connect(): void {
    this.stream?.close();
    window.clearTimeout(this.retry);
    this.state.textContent = 'connecting';
    this.stream = openEvents(
      '',
      (e) => this.message(e),
      (reason) => this.ended(reason),
    );
    this.state.textContent = 'live';
  }

  private ended(reason: string): void {
    this.state.textContent = `stream ended: ${reason}; reconnecting`;
    this.retry = window.setTimeout(() => this.connect(), RETRY_MS);
  }

  private message(m: StreamEvent): void {
    if (m.event === 'dropped' || m.event === 'end') {
      this.state.textContent = `${m.event}: ${m.data}`;
      return;
    }
    const e = JSON.parse(m.data) as TimelineEvent;
    this.received++;
    this.pending.push(e);
    this.onEvent(e);
    if (this.paused) this.state.textContent = `paused, ${this.pending.length} waiting`;
    else if (this.frame === 0) this.frame = requestAnimationFrame(() => this.flush());
  }

  private matches(e: TimelineEvent): boolean {
    const bdf = this.bdf.value.trim();
    return (
      (bdf === '' || e.bdf.endsWith(bdf)) &&
      this.types.get(e.type as (typeof EVENT_TYPES)[number])?.checked !== false
    );
  }

  private row(e: TimelineEvent): HTMLLIElement {
    return h(
      'li',
      { 'data-type': e.type, 'data-bdf': e.bdf },
      h('span', { class: 'seq' }, `#${e.seq}`),
      ` ${e.type} ${e.bdf} `,
      describe(e),
    );
  }

  private flush(): void {
    this.frame = 0;
    const batch = this.pending;
    this.pending = [];
    this.kept.push(...batch);
    if (this.kept.length > MAX_KEPT) this.kept.splice(0, this.kept.length - MAX_KEPT);
    const rows = batch
      .filter((e) => this.matches(e))
      .slice(-MAX_ROWS)
      .reverse()
      .map((e) => this.row(e));
    this.list.prepend(...rows);
    while (this.list.childElementCount > MAX_ROWS) this.list.lastElementChild?.remove();
    this.shown += batch.length;
    this.list.dataset['shown'] = String(this.shown);
  }

  private redraw(): void {
    const rows = this.kept
      .filter((e) => this.matches(e))
      .slice(-MAX_ROWS)
      .reverse()
      .map((e) => this.row(e));
    fill(this.list, ...rows);
  }

  private setPaused(paused: boolean): void {
    this.paused = paused;
    this.pause.textContent = paused ? 'Resume' : 'Pause';
    this.pause.setAttribute('aria-pressed', String(paused));
    if (!paused) {
      this.state.textContent = 'live';
      this.flush();
    }
  }

  clear(): void {
    this.kept = [];
    this.pending = [];
    fill(this.list);
  }
}
