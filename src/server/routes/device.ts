/** The device side: raise interrupts, change device configuration (as a device would). */
import { Type } from 'typebox';
import { VmmrError } from '../../base/errors.js';
import type { VmmrEvent } from '../../base/events.js';
import type { Machine } from '../../machine/machine.js';
import type { VirtioPciFunction } from '../../virtio/pci-function.js';
import type { RouteModule } from '../app.js';
import { hexToBytes, parseOffset } from '../hex.js';
import { BdfParams, HexData, NumberInput, problems } from '../schemas.js';

const tags = ['device'];

const DeviceOutcome = Type.Object({
  bdf: Type.String(),
  isr: Type.String({ description: 'ISR after the change' }),
  configGeneration: Type.Integer(),
  events: Type.Array(Type.Object({ type: Type.String() }, { additionalProperties: true }), {
    description:
      'the events the change produced (interrupt: intx level, msix with address/data, msix-pending…)',
  }),
});

/** Runs a device-side change and collects the events it emits (they also reach event streams). */
interface Outcome {
  bdf: string;
  isr: string;
  configGeneration: number;
  events: VmmrEvent[];
}

function withEvents(machine: Machine, fn: VirtioPciFunction, change: () => void): Outcome {
  const events: VmmrEvent[] = [];
  const unsubscribe = machine.events.subscribe((e) => events.push(e));
  try {
    change();
  } finally {
    unsubscribe();
  }
  return {
    bdf: fn.bdf,
    isr: `0x${fn.device.isr.toString(16).padStart(2, '0')}`,
    configGeneration: fn.device.generation,
    events,
  };
}

export const deviceRoutes: RouteModule = (app, ctx) => {
  app.post(
    '/api/v1/functions/:bdf/interrupt',
    {
      schema: {
        tags,
        summary: 'Raise an interrupt as the device would',
        description:
          "{queue: n}: the device used buffers of queue n (ISR bit 0, then the queue's MSI-X vector, or INTx when " +
          'MSI-X is off). {config: true}: a configuration change (config generation + 1, ISR bit 1, the config ' +
          'vector). A masked vector becomes pending. The answer lists the events produced.',
        params: BdfParams,
        body: Type.Object(
          {
            queue: Type.Optional(Type.Integer({ minimum: 0, description: 'queue index' })),
            config: Type.Optional(Type.Literal(true, { description: 'a configuration-change interrupt' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: DeviceOutcome, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const { queue, config } = request.body;
      if ((queue === undefined) === (config === undefined)) {
        throw new VmmrError('VMMR_ERR_BAD_REQUEST', 'body: give either {queue: n} or {config: true}');
      }
      const machine = ctx.emulator.machine;
      const fn = machine.find(request.params.bdf);
      if (queue !== undefined && queue >= fn.device.numQueues) {
        throw new VmmrError(
          'VMMR_ERR_BAD_VALUE',
          `${fn.bdf}: queue ${queue} does not exist: this ${fn.template.model.type} device has queues 0..${fn.device.numQueues - 1}`,
          { bdf: fn.bdf },
        );
      }
      return withEvents(machine, fn, () => {
        if (queue !== undefined) fn.device.raiseQueueInterrupt(queue);
        else fn.device.raiseConfigChange();
      });
    },
  );

  app.put(
    '/api/v1/functions/:bdf/device-config',
    {
      schema: {
        tags,
        summary: 'Change device-specific configuration as the device would',
        description:
          'Writes bytes of the device configuration (any field, read-only to the driver or not: link status, ' +
          'capacity, MAC…), then raises a configuration-change interrupt. Offsets are from the start of the ' +
          'device configuration (legacy block +20/+24, modern DEVICE_CFG region).',
        params: BdfParams,
        body: Type.Object(
          { offset: NumberInput('offset inside the device configuration'), data: HexData },
          { additionalProperties: false },
        ),
        response: { 200: DeviceOutcome, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const machine = ctx.emulator.machine;
      const fn = machine.find(request.params.bdf);
      const offset = parseOffset(request.body.offset);
      const bytes = hexToBytes(request.body.data);
      if (!bytes || bytes.length === 0) {
        throw new VmmrError(
          'VMMR_ERR_BAD_VALUE',
          'body.data: expected plain hex, two digits per byte, at least one byte',
        );
      }
      const size = fn.template.model.config.size;
      if (offset + bytes.length > size) {
        throw new VmmrError(
          'VMMR_ERR_OUT_OF_RANGE',
          `${fn.bdf}: device config bytes 0x${offset.toString(16)}..0x${(offset + bytes.length - 1).toString(16)} are beyond its ${size} bytes`,
          { bdf: fn.bdf, offset },
        );
      }
      return withEvents(machine, fn, () => fn.device.setConfigField(offset, bytes));
    },
  );
};
