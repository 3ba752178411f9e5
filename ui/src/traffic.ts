/**
 * The data path of the open function: its queues (GET .../queues: layout, format, requests,
 * errors, the rule a broken chain broke), and by type the net counters with the transmitted
 * frames (GET .../net/capture.pcap read in the page: one tcpdump-like line each, its bytes on
 * click, the file to download) and a receive injection (POST .../net/rx), or the block request
 * counters (GET .../block). One element per opened function, updated in place on each redraw.
 */
import type { BlockStateView, FunctionDescription, NetStateView, QueueList } from '../../src/views/shapes.js';
import { api, authHeaders, describeError, problemOf } from './api.js';
import { fill, h, table, type Child } from './dom.js';
import { hexDump, parsePcap, summarizeFrame, type CapturedFrame } from './frames.js';

/** The newest frames listed (the capture ring holds up to 1,024). */
const LISTED_FRAMES = 256;

/** Counter objects as "name value" rows, nested objects as "outer.inner". */
function counterRows(stats: object, prefix = ''): Child[][] {
  return Object.entries(stats).flatMap(([k, v]) =>
    v !== null && typeof v === 'object'
      ? counterRows(v as object, `${prefix}${k}.`)
      : [[`${prefix}${k}`, h('code', { 'data-counter': `${prefix}${k}` }, String(v))]],
  );
}

function queueTable(q: QueueList): HTMLTableElement {
  return table(
    `Queues (${q.ready ? 'processing: DRIVER_OK and Bus Master' : 'not processing: needs DRIVER_OK and Bus Master'})`,
    ['index', 'name', 'layout', 'format', 'size', 'enabled', 'requests', 'errors', 'broken rule'],
    q.items.map((i) => [
      i.index,
      i.name,
      i.layout,
      i.format,
      i.size,
      i.enabled ? 'yes' : 'no',
      h('code', { 'data-queue-requests': i.index }, i.run?.requests ?? 0),
      i.run?.errors ?? 0,
      i.run?.error ? String((i.run.error as { rule?: unknown }).rule ?? 'error') : '',
    ]),
    { id: 'dp-queues' },
  );
}

export class TrafficView {
  readonly root = h('section', { 'aria-labelledby': 'traffic-title', id: 'traffic' });
  /** Redrawn on each update; the receive form after it stays in place. */
  private readonly live = h('div');
  private captureTotal = -1;
  private frames: CapturedFrame[] = [];
  private pcapUrl = '';
  private readonly open = new Set<number>();
  private readonly rxOutcome = h('output', { id: 'rx-outcome', 'aria-live': 'polite' });
  private readonly rxFrame = h('input', {
    id: 'rx-frame',
    size: 40,
    required: true,
    pattern: '([0-9a-fA-F]{2})+',
    placeholder: 'frame bytes in hex (destination MAC first)',
  });

  /** Built once, so that a redraw never replaces the form being typed in or submitted. */
  private readonly rx: HTMLFormElement;

  constructor(private readonly bdf: string) {
    this.rx = this.rxForm();
    this.rx.hidden = true;
    fill(this.root, this.live, this.rx);
  }

  async update(d: FunctionDescription): Promise<void> {
    try {
      const queues = await api<QueueList>('GET', `/api/v1/functions/${d.bdf}/queues`);
      const parts: Child[] = [h('h3', { id: 'traffic-title' }, 'Data path'), queueTable(queues)];
      if (d.type === 'net') parts.push(...(await this.net()));
      if (d.type === 'block') parts.push(await this.block());
      fill(this.live, ...parts);
      this.rx.hidden = d.type !== 'net';
    } catch (e) {
      fill(
        this.live,
        h('h3', { id: 'traffic-title' }, 'Data path'),
        h('p', { class: 'error' }, describeError(e)),
      );
    }
  }

  private async block(): Promise<HTMLElement> {
    const b = await api<BlockStateView>('GET', `/api/v1/functions/${this.bdf}/block`);
    return table(
      `Block requests (${b.sectors} sectors${b.readOnly ? ', read-only' : ''})`,
      ['counter', 'value'],
      counterRows(b.stats),
      { id: 'block-counters' },
    );
  }

  private async net(): Promise<Child[]> {
    const n = await api<NetStateView>('GET', `/api/v1/functions/${this.bdf}/net`);
    if (n.capture.total !== this.captureTotal) await this.loadCapture(n.capture.total);
    const counters = table(
      `Net counters (MAC ${n.mac}, link ${n.linkUp ? 'up' : 'down'}, header ${n.headerSize} bytes)`,
      ['counter', 'value'],
      counterRows(n.stats),
      { id: 'net-counters' },
    );
    return [counters, this.frameList(n)];
  }

  private async loadCapture(total: number): Promise<void> {
    const res = await fetch(`/api/v1/functions/${this.bdf}/net/capture.pcap`, { headers: authHeaders() });
    if (!res.ok) throw await problemOf(res);
    const file = await res.arrayBuffer();
    this.frames = parsePcap(file);
    if (this.pcapUrl !== '') URL.revokeObjectURL(this.pcapUrl);
    this.pcapUrl = URL.createObjectURL(new Blob([file], { type: 'application/vnd.tcpdump.pcap' }));
    this.captureTotal = total;
  }

  private frameList(n: NetStateView): HTMLElement {
    const first = Math.max(0, this.frames.length - LISTED_FRAMES);
    const sequenceOfFirst = n.capture.total - this.frames.length;
    const items = this.frames.slice(first).map((f, k) => {
      const seq = sequenceOfFirst + first + k;
      const { link, payload } = summarizeFrame(f);
      const expanded = this.open.has(seq);
      const toggle = h(
        'button',
        { type: 'button', class: 'frame', 'aria-expanded': String(expanded), 'data-seq': seq },
        `#${seq} ${link}${payload === '' ? '' : `: ${payload}`}`,
      );
      const li = h('li', {}, toggle, expanded ? h('pre', { class: 'hex' }, hexDump(f.data)) : null);
      toggle.addEventListener('click', () => {
        if (this.open.has(seq)) this.open.delete(seq);
        else this.open.add(seq);
        const now = this.open.has(seq);
        toggle.setAttribute('aria-expanded', String(now));
        li.querySelector('pre')?.remove();
        if (now) li.append(h('pre', { class: 'hex' }, hexDump(f.data)));
      });
      return li;
    });
    return h(
      'div',
      {},
      h(
        'h4',
        {},
        `Transmitted frames: ${n.capture.frames} kept of ${n.capture.total}`,
        ' ',
        this.pcapUrl === ''
          ? null
          : h(
              'a',
              { href: this.pcapUrl, download: `${this.bdf.replace(/:/g, '-')}.pcap`, id: 'pcap-download' },
              'download pcap',
            ),
      ),
      h('ol', { id: 'frames', class: 'frames', 'aria-label': 'Transmitted frames, oldest first' }, ...items),
    );
  }

  private rxForm(): HTMLFormElement {
    const form = h(
      'form',
      { class: 'inline', id: 'rx-form' },
      h('label', { for: 'rx-frame' }, 'Receive a frame'),
      this.rxFrame,
      h('button', { type: 'submit' }, 'Inject (net rx)'),
      this.rxOutcome,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.rxOutcome.textContent = '';
      api<{ result: string }>('POST', `/api/v1/functions/${this.bdf}/net/rx`, {
        frame: this.rxFrame.value,
      }).then(
        (r) => (this.rxOutcome.textContent = r.result),
        (err: unknown) => (this.rxOutcome.textContent = describeError(err)),
      );
    });
    return form;
  }
}
