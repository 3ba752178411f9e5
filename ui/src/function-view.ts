/**
 * One function: identity, the virtio state (status bits, feature bits by name, queues), the
 * capabilities decoded like `lspci -vvv`, the legacy block and the modern common configuration
 * as register tables, the MMR view beside the translator's guest view, the access trace and the
 * device-side actions. Redrawn whenever an event of the function arrives (main.ts).
 */
import statusTable from '../../spec-tables/virtio-status.json';
import type { FunctionDescription, FunctionRegisters, RegisterValue } from '../../src/views/shapes.js';
import { api, describeError } from './api.js';
import { fill, h, table, type Child } from './dom.js';
import { deviceActions } from './device-actions.js';
import { TrafficView } from './traffic.js';

interface TraceEntry {
  seq: number;
  op: string;
  port: number;
  width: number;
  value: string;
  bar: number;
  offset: number;
  register: string;
  outcome: string;
}
interface TraceAnswer {
  enabled: boolean;
  depth: number;
  recorded: number;
  entries: TraceEntry[];
}

/** The device status bits of virtio 1.2 §2.1, from the spec table, lowest first. */
const STATUS_BITS = Object.entries(statusTable.constants)
  .map(([name, c]) => ({ name, value: c.value }))
  .sort((a, b) => a.value - b.value);

const hex = (n: number, digits: number): string => `0x${n.toString(16).padStart(digits, '0')}`;

function keyValues(caption: string, pairs: Array<[string, Child]>): HTMLTableElement {
  return h(
    'table',
    { class: 'kv' },
    h('caption', {}, caption),
    h('tbody', {}, ...pairs.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v)))),
  );
}

function registerTable(caption: string, regs: RegisterValue[], id: string): HTMLTableElement {
  return table(
    caption,
    ['offset', 'width', 'register', 'value'],
    regs.map((r) => [
      hex(r.offset, 2),
      r.size,
      r.name,
      h('code', { 'data-register': r.name }, r.value ?? '(write-only)'),
    ]),
    { id, class: 'registers' },
  );
}

function statusSection(d: FunctionDescription): HTMLElement {
  const status = parseInt(d.virtio.status, 16);
  return h(
    'section',
    { 'aria-labelledby': 'status-title' },
    h('h3', { id: 'status-title' }, `Device status ${d.virtio.status}`),
    h(
      'ul',
      { class: 'bits', id: 'status-bits' },
      ...STATUS_BITS.map((b) => {
        const set = (status & b.value) !== 0;
        return h(
          'li',
          { class: set ? 'set' : 'clear', 'data-bit': b.name, 'data-set': String(set) },
          `${b.name}${set ? '+' : '-'}`,
        );
      }),
    ),
  );
}

function featureSection(r: FunctionRegisters): HTMLElement {
  const list = (id: string, bits: FunctionRegisters['deviceFeatures']) =>
    bits.length === 0
      ? h('p', { id }, 'none')
      : h(
          'ul',
          { class: 'features', id },
          ...bits.map((b) => h('li', { title: `bit ${b.bit}` }, `${b.name} (${b.bit})`)),
        );
  return h(
    'section',
    { 'aria-labelledby': 'features-title' },
    h('h3', { id: 'features-title' }, 'Feature bits'),
    h('h4', {}, 'Offered by the device'),
    list('device-features', r.deviceFeatures),
    h('h4', {}, 'Accepted by the driver'),
    list('driver-features', r.driverFeatures),
  );
}

function queueTable(d: FunctionDescription): HTMLTableElement {
  return table(
    'Queues',
    ['index', 'name', 'size', 'max', 'enabled', 'vector', 'desc', 'driver', 'device'],
    d.virtio.queues.map((q) => [
      q.index,
      q.name,
      q.size,
      q.maxSize,
      q.enabled ? 'yes' : 'no',
      q.vector,
      q.desc,
      q.driver,
      q.device,
    ]),
    { id: 'queues' },
  );
}

function capabilitySection(r: FunctionRegisters): HTMLElement {
  return h(
    'section',
    { 'aria-labelledby': 'caps-title' },
    h('h3', { id: 'caps-title' }, 'Capabilities (as lspci -vvv)'),
    ...r.capabilities.map((c) => {
      const at =
        c.kind === 'extended'
          ? `[${c.offset.toString(16)} v${c.version ?? 0}]`
          : `[${c.offset.toString(16)}]`;
      return h(
        'details',
        { class: 'capability' },
        h('summary', {}, `Capabilities: ${at} ${c.summary === '' ? c.name : c.summary}`),
        c.lines.length > 0 ? h('pre', {}, c.lines.join('\n')) : null,
        c.registers.length > 0 ? registerTable(`${c.name}: registers`, c.registers, `cap-${c.offset}`) : null,
      );
    }),
  );
}

function identitySection(d: FunctionDescription): HTMLElement {
  const pairs: Array<[string, Child]> = [
    ['address', d.bdf],
    ['kind', d.kind === 'vf' ? `VF ${d.vfIndex ?? ''} of ${d.pf ?? ''}` : 'PF'],
    ['type', d.type],
    ['vendor:device (logical)', `${d.vendorId}:${d.deviceId}`],
    ['vendor:device (config space)', `${d.configVendorId}:${d.configDeviceId}`],
    ['revision', d.revision],
    ['class', d.classCode],
    ['subsystem', `${d.subsystemVendorId}:${d.subsystemId}`],
    ['Command', d.command],
    ['Status', d.configStatus],
  ];
  if (d.identity.mac) pairs.push(['MAC', d.identity.mac]);
  if (d.identity.serial) pairs.push(['serial', d.identity.serial]);
  for (const b of d.bars)
    pairs.push([
      `BAR${b.index}`,
      `${b.address} (${b.is64 ? '64-bit' : '32-bit'}, ${b.size} bytes${b.decoding ? '' : ', not decoding'})`,
    ]);
  if (d.sriov)
    pairs.push([
      'SR-IOV',
      `NumVFs ${d.sriov.numVfs}/${d.sriov.totalVfs}, VF Enable ${d.sriov.vfEnabled ? 1 : 0}`,
    ]);
  return keyValues('Identity', pairs);
}

export class FunctionView {
  private bdf = '';
  private generation = 0;
  /** Built once per opened function, so its inputs and last outcome survive the redraws. */
  /** Redrawn on each refresh. */
  private readonly live = h('div');
  /** Built once per opened function and never moved, so their inputs survive the redraws. */
  private readonly actionsSlot = h('div');
  private traffic: TrafficView | undefined;

  constructor(private readonly root: HTMLElement) {}

  get current(): string {
    return this.bdf;
  }

  async open(bdf: string): Promise<void> {
    this.bdf = bdf;
    this.traffic = new TrafficView(bdf);
    fill(this.actionsSlot);
    fill(this.root, this.live, this.actionsSlot, this.traffic.root);
    await this.refresh();
    this.root.focus();
  }

  async refresh(): Promise<void> {
    const bdf = this.bdf;
    if (bdf === '') return;
    const generation = ++this.generation;
    try {
      const [d, r] = await Promise.all([
        api<FunctionDescription>('GET', `/api/v1/functions/${bdf}`),
        api<FunctionRegisters>('GET', `/api/v1/functions/${bdf}/registers`),
      ]);
      const trace =
        d.kind === 'vf' && d.guest?.trace.enabled
          ? await api<TraceAnswer>('GET', `/api/v1/functions/${bdf}/trace`)
          : undefined;
      if (generation === this.generation) this.draw(d, r, trace);
    } catch (e) {
      if (generation === this.generation)
        fill(this.live, h('h2', {}, bdf), h('p', { class: 'error', role: 'alert' }, describeError(e)));
    }
  }

  private draw(d: FunctionDescription, r: FunctionRegisters, trace: TraceAnswer | undefined): void {
    const title = `${d.bdf} — ${d.type} ${d.kind === 'vf' ? 'VF' : 'PF'}`;
    if (this.actionsSlot.childElementCount === 0)
      fill(
        this.actionsSlot,
        deviceActions(d, () => this.refresh()),
      );
    fill(
      this.live,
      h('h2', { id: 'function-title' }, title),
      h('div', { class: 'columns' }, identitySection(d), statusSection(d)),
      featureSection(r),
      queueTable(d),
      h(
        'div',
        { class: 'columns' },
        r.legacy
          ? registerTable(
              'Legacy block (MMR: BAR2 + locator offset; guest: I/O BAR0)',
              r.legacy,
              'legacy-registers',
            )
          : null,
        registerTable('Modern common configuration', r.commonCfg, 'common-registers'),
      ),
      capabilitySection(r),
      d.kind === 'vf' ? this.views(d) : null,
      d.kind === 'vf' ? this.traceSection(d, trace) : null,
    );
    void this.traffic?.update(d);
  }

  /** The MMR VF as the host sees it beside the classic transitional device the guest sees. */
  private views(d: FunctionDescription): HTMLElement {
    const mmr = keyValues('MMR view (host, vfio-pci)', [
      ['config vendor:device', `${d.configVendorId}:${d.configDeviceId}`],
      ['memory BAR', d.bars.map((b) => `BAR${b.index} ${b.address}`).join(', ')],
      [
        'legacy block',
        d.mmrLocator
          ? `BAR${d.mmrLocator.bar} + ${hex(d.mmrLocator.offset, 4)}, ${d.mmrLocator.length} bytes`
          : '-',
      ],
      ['legacy config offset', d.virtio.legacyConfigOffset ?? '-'],
    ]);
    const g = d.guest;
    const guest = g
      ? keyValues('Guest view (translator)', [
          ['vendor:device', `${g.vendorId}:${g.deviceId}`],
          ['I/O BAR0', `${g.ioLength} ports`],
          ['Command.IO', g.ioEnabled ? 'on' : 'off'],
          ['Command.Memory', g.memoryEnabled ? 'on' : 'off'],
          ['INTx', g.intxAsserted ? 'asserted' : 'deasserted'],
        ])
      : h(
          'div',
          {},
          h('p', {}, 'The guest view is not open.'),
          h(
            'button',
            { type: 'button', onclick: () => this.act('GET', `/api/v1/functions/${d.bdf}/guest/config`) },
            'Open the guest view',
          ),
        );
    return h('section', { 'aria-label': 'MMR and guest views', class: 'columns views' }, mmr, guest);
  }

  private traceSection(d: FunctionDescription, trace: TraceAnswer | undefined): HTMLElement {
    const enabled = d.guest?.trace.enabled === true;
    const toggle = h(
      'button',
      {
        type: 'button',
        onclick: () => this.act('PUT', `/api/v1/functions/${d.bdf}/trace`, { enabled: !enabled }),
      },
      enabled ? 'Stop tracing' : 'Trace guest I/O accesses',
    );
    const rows = (trace?.entries ?? [])
      .slice(-64)
      .map((e) => [
        e.seq,
        e.op,
        hex(e.port, 2),
        e.width,
        e.value,
        `BAR${e.bar} + ${hex(e.offset, 4)}`,
        e.register,
        e.outcome,
      ]);
    return h(
      'section',
      { 'aria-labelledby': 'trace-title' },
      h('h3', { id: 'trace-title' }, 'Access trace (guest I/O to MMIO)'),
      toggle,
      enabled
        ? table(
            'Translated accesses, newest last',
            ['seq', 'op', 'port', 'width', 'value', 'MMIO', 'register', 'outcome'],
            rows,
            { id: 'trace' },
          )
        : null,
    );
  }

  private act(method: string, path: string, body?: unknown): void {
    api(method, path, body).then(
      () => this.refresh(),
      (e: unknown) => this.live.prepend(h('p', { class: 'error', role: 'alert' }, describeError(e))),
    );
  }
}
