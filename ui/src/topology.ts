/**
 * The topology like `vmmr ls`: each PF followed by its enabled VFs, as a tree whose rows are
 * drawn only where the list is scrolled to (60,000 VFs cost the rows on screen), and per PF its
 * SR-IOV state with a NumVFs control (PUT /api/v1/pfs/{bdf}/sriov: the sysfs rules, refusals as
 * the API words them). Keyboard: arrows, Page Up/Down, Home/End move; Enter opens.
 */
import type { PfList, PfSummary, SriovState } from '../../src/views/shapes.js';
import { api, describeError } from './api.js';
import { fill, h } from './dom.js';

const ROW_HEIGHT = 24;
const OVERSCAN = 8;

interface Row {
  bdf: string;
  level: 1 | 2;
  text: string;
  /** position among its siblings, 1-based, and their count (aria-posinset / aria-setsize) */
  pos: number;
  size: number;
}

/** VF n's address: the PF's routing ID + First VF Offset + n × VF Stride (PCIe SR-IOV §2.1.3). */
export function vfAddress(pf: PfSummary, n: number): string {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(pf.bdf);
  if (!m) return '?';
  const rid = (parseInt(m[2]!, 16) << 8) | (parseInt(m[3]!, 16) << 3) | parseInt(m[4]!, 16);
  const vf = (rid + pf.firstVfOffset + n * pf.vfStride) & 0xffff;
  const bus = (vf >> 8).toString(16).padStart(2, '0');
  const dev = ((vf >> 3) & 0x1f).toString(16).padStart(2, '0');
  return `${m[1]}:${bus}:${dev}.${vf & 7}`;
}

export const liveVfs = (pf: PfSummary): number => (pf.vfEnabled ? pf.numVfs : 0);

export function sriovText(pf: PfSummary): string {
  const parts = [`${liveVfs(pf)}/${pf.totalVfs} VFs`];
  if (pf.vfEnabled || pf.numVfs > 0) parts.push(`NumVFs ${pf.numVfs}`, `VF Enable ${pf.vfEnabled ? 1 : 0}`);
  if (pf.vfEnabled) parts.push(`VF MSE ${pf.vfMemoryEnabled ? 1 : 0}`);
  return `[SR-IOV: ${parts.join(', ')}]`;
}

export class TopologyView {
  private pfs: PfSummary[] = [];
  private count = 0;
  private active = 0;
  private selected = '';
  private readonly spacer = h('div', { class: 'spacer' });
  private drawn = new Map<number, HTMLElement>();

  constructor(
    private readonly tree: HTMLElement,
    private readonly controls: HTMLElement,
    private readonly onOpen: (bdf: string) => void,
  ) {
    tree.setAttribute('role', 'tree');
    tree.setAttribute('tabindex', '0');
    tree.setAttribute('aria-label', 'Functions: PFs and their VFs');
    tree.append(this.spacer);
    tree.addEventListener('scroll', () => this.draw());
    tree.addEventListener('keydown', (e) => this.key(e));
    tree.addEventListener('click', (e) => {
      const row = (e.target as HTMLElement).closest<HTMLElement>('[data-index]');
      if (row) this.activate(Number(row.dataset['index']), true);
    });
  }

  get rowCount(): number {
    return this.count;
  }

  async refresh(): Promise<void> {
    performance.mark('vmmr:topology:start');
    const list = await api<PfList>('GET', '/api/v1/pfs');
    this.pfs = list.items;
    this.count = this.pfs.reduce((n, pf) => n + 1 + liveVfs(pf), 0);
    this.active = Math.min(this.active, Math.max(0, this.count - 1));
    this.spacer.style.height = `${this.count * ROW_HEIGHT}px`;
    for (const el of this.drawn.values()) el.remove();
    this.drawn.clear();
    this.draw();
    this.drawControls();
    performance.mark('vmmr:topology:rendered');
  }

  /** Marks the row of `bdf` as the open function (when it is in the tree). */
  select(bdf: string): void {
    this.selected = bdf;
    for (const el of this.drawn.values()) el.setAttribute('aria-selected', String(el.dataset['bdf'] === bdf));
  }

  private rowAt(index: number): Row {
    let start = 0;
    for (const pf of this.pfs) {
      const n = liveVfs(pf);
      if (index === start) {
        return { bdf: pf.bdf, level: 1, text: `${pf.bdf}  ${pf.type} PF  ${sriovText(pf)}`, pos: 1, size: 1 };
      }
      if (index <= start + n) {
        const k = index - start - 1;
        const bdf = vfAddress(pf, k);
        const branch = k === n - 1 ? '\\-' : '+-';
        return {
          bdf,
          level: 2,
          text: `${branch}${bdf}  1af4:${pf.vfDeviceId.slice(2)}  virtfn${k}  ${pf.type} VF`,
          pos: k + 1,
          size: n,
        };
      }
      start += 1 + n;
    }
    return { bdf: '', level: 1, text: '', pos: 1, size: 1 };
  }

  private draw(): void {
    const first = Math.max(0, Math.floor(this.tree.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const visible = Math.ceil(this.tree.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN;
    const last = Math.min(this.count - 1, first + visible);
    for (const [index, el] of this.drawn) {
      if (index < first || index > last) {
        el.remove();
        this.drawn.delete(index);
      }
    }
    for (let i = first; i <= last; i++) if (!this.drawn.has(i)) this.drawRow(i);
  }

  private drawRow(index: number): void {
    const row = this.rowAt(index);
    const el = h(
      'div',
      {
        role: 'treeitem',
        id: `topology-row-${index}`,
        class: `row level-${row.level}${index === this.active ? ' active' : ''}`,
        'aria-level': row.level,
        'aria-posinset': row.pos,
        'aria-setsize': row.size,
        'aria-selected': String(row.bdf === this.selected),
        'data-index': index,
        'data-bdf': row.bdf,
      },
      row.text,
    );
    el.style.transform = `translateY(${index * ROW_HEIGHT}px)`;
    this.drawn.set(index, el);
    this.tree.append(el);
  }

  private activate(index: number, open: boolean): void {
    if (this.count === 0) return;
    this.active = Math.max(0, Math.min(this.count - 1, index));
    const top = this.active * ROW_HEIGHT;
    if (top < this.tree.scrollTop) this.tree.scrollTop = top;
    else if (top + ROW_HEIGHT > this.tree.scrollTop + this.tree.clientHeight)
      this.tree.scrollTop = top + ROW_HEIGHT - this.tree.clientHeight;
    this.draw();
    for (const [i, el] of this.drawn) el.classList.toggle('active', i === this.active);
    this.tree.setAttribute('aria-activedescendant', `topology-row-${this.active}`);
    if (open) this.onOpen(this.rowAt(this.active).bdf);
  }

  private key(e: KeyboardEvent): void {
    const page = Math.max(1, Math.floor(this.tree.clientHeight / ROW_HEIGHT) - 1);
    const moves: Record<string, number> = {
      ArrowDown: this.active + 1,
      ArrowUp: this.active - 1,
      PageDown: this.active + page,
      PageUp: this.active - page,
      Home: 0,
      End: this.count - 1,
    };
    const to = moves[e.key];
    if (to !== undefined) this.activate(to, false);
    else if (e.key === 'Enter' || e.key === ' ') this.activate(this.active, true);
    else return;
    e.preventDefault();
  }

  private drawControls(): void {
    fill(this.controls, ...this.pfs.map((pf) => this.pfControl(pf)));
  }

  private pfControl(pf: PfSummary): HTMLElement {
    const id = `numvfs-${pf.bdf.replace(/[:.]/g, '-')}`;
    const input = h('input', {
      id,
      type: 'number',
      min: 0,
      max: pf.totalVfs,
      value: pf.numVfs,
      required: true,
    });
    const output = h('output', { for: id, class: 'error', role: 'alert' });
    const form = h(
      'form',
      { class: 'numvfs', 'data-pf': pf.bdf },
      h('label', { for: id }, `NumVFs of ${pf.bdf}`),
      input,
      h('button', { type: 'submit' }, 'Set'),
      output,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      output.textContent = '';
      api<SriovState>('PUT', `/api/v1/pfs/${pf.bdf}/sriov?limit=1`, { numVfs: Number(input.value) }).then(
        () => this.refresh(),
        (err: unknown) => (output.textContent = describeError(err)),
      );
    });
    return h(
      'section',
      { class: 'pf', 'aria-label': `PF ${pf.bdf}` },
      h('h3', {}, `${pf.bdf} ${pf.type}`),
      h('p', { class: 'sriov' }, sriovText(pf)),
      form,
    );
  }
}
