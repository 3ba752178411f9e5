/**
 * What the device side does, as buttons: POST .../interrupt ({queue} or {config: true}) and
 * PUT .../device-config ({offset, data}: bytes written as the device, then a config-change
 * interrupt). The outcome (or the refusal as the API words it) is shown beside them.
 */
import type { FunctionDescription } from '../../src/views/shapes.js';
import { api, describeError } from './api.js';
import { h } from './dom.js';

interface Outcome {
  isr: string;
  configGeneration: number;
  events: Array<{ type: string }>;
}

function run(output: HTMLOutputElement, method: string, path: string, body: unknown, done: () => void): void {
  output.textContent = '';
  output.classList.remove('error');
  api<Outcome>(method, path, body).then(
    (o) => {
      output.textContent = `ISR ${o.isr}, config generation ${o.configGeneration}, events: ${o.events.map((e) => e.type).join(', ') || 'none'}`;
      done();
    },
    (e: unknown) => {
      output.classList.add('error');
      output.textContent = describeError(e);
    },
  );
}

export function deviceActions(d: FunctionDescription, done: () => void): HTMLElement {
  const base = `/api/v1/functions/${d.bdf}`;
  const output = h('output', { id: 'device-outcome', 'aria-live': 'polite' });
  const queue = h(
    'select',
    { id: 'irq-queue' },
    ...d.virtio.queues.map((q) => h('option', { value: q.index }, `${q.index} ${q.name}`)),
  );
  const offset = h('input', { id: 'devcfg-offset', value: '0x0', size: 6, required: true });
  const data = h('input', {
    id: 'devcfg-data',
    placeholder: 'hex bytes, e.g. 0100',
    size: 16,
    required: true,
    pattern: '([0-9a-fA-F]{2})+',
  });
  const cfgForm = h(
    'form',
    { class: 'inline' },
    h('label', { for: 'devcfg-offset' }, 'device config offset'),
    offset,
    h('label', { for: 'devcfg-data' }, 'bytes'),
    data,
    h('button', { type: 'submit' }, 'Write as the device'),
  );
  cfgForm.addEventListener('submit', (e) => {
    e.preventDefault();
    run(output, 'PUT', `${base}/device-config`, { offset: offset.value, data: data.value }, done);
  });
  return h(
    'section',
    { 'aria-labelledby': 'device-title' },
    h('h3', { id: 'device-title' }, 'Device side'),
    h(
      'div',
      { class: 'inline' },
      h('label', { for: 'irq-queue' }, 'queue'),
      queue,
      h(
        'button',
        {
          type: 'button',
          id: 'irq-queue-button',
          onclick: () => run(output, 'POST', `${base}/interrupt`, { queue: Number(queue.value) }, done),
        },
        'Used-buffer interrupt',
      ),
      h(
        'button',
        {
          type: 'button',
          id: 'irq-config-button',
          onclick: () => run(output, 'POST', `${base}/interrupt`, { config: true }, done),
        },
        'Config-change interrupt',
      ),
    ),
    cfgForm,
    output,
  );
}
