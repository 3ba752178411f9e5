/**
 * The data path over HTTP (docs/data-path.md "REST"): a function's DMA memory, its queues, and
 * the host side of its back-end (net capture and injection, switch membership, block error
 * injection, console, balloon). A harness in any language lays out rings and buffers with the
 * DMA routes, rings the doorbell with a register write, and reads the outcome here.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { MAX_DMA_LENGTH, dmaRead, dmaWrite } from '../../access/dma.js';
import { VmmrError } from '../../base/errors.js';
import {
  clearBlockErrors,
  consoleInput,
  drainQueue,
  injectBlockErrors,
  injectFrame,
  joinSwitch,
  setBalloonTarget,
} from '../../control/datapath.js';
import { NetDevice } from '../../devices/net/device.js';
import { balloonView, blockView, consoleView, netView, queueList } from '../../views/datapath.js';
import {
  BalloonStateSchema,
  BlockStateSchema,
  ConsoleStateSchema,
  DmaDataSchema,
  DrainResultSchema,
  NetStateSchema,
  QueueListSchema,
  RxResultSchema,
} from '../../views/shapes.js';
import type { RouteModule } from '../app.js';
import { bytesToHex, hexToBytes, parseOffset } from '../hex.js';
import { BdfParam, BdfParams, problems } from '../schemas.js';
import { prefersOctetStream } from './common.js';

const tags = ['data path'];
const DmaParams = Type.Object({
  bdf: BdfParam,
  addr: Type.String({ description: 'DMA (bus) address, hex ("0x100000") or decimal' }),
});
const HexBytes = Type.String({ description: 'bytes as plain hex, two digits per byte' });
const Op = Type.Union([Type.Literal('read'), Type.Literal('write'), Type.Literal('all')]);

function bytesOf(text: string, what: string): Uint8Array {
  const bytes = hexToBytes(text);
  if (!bytes) throw new VmmrError('VMMR_ERR_BAD_VALUE', `${what}: expected plain hex, two digits per byte`);
  return bytes;
}

function addressOf(params: { addr: string }): number {
  return parseOffset(params.addr, 'DMA address', 'VMMR_ERR_BAD_VALUE');
}

function hex64(n: number): string {
  return `0x${n.toString(16).padStart(16, '0')}`;
}

const dmaRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/functions/:bdf/dma/:addr',
    {
      schema: {
        tags,
        summary: "Read a function's DMA memory",
        description: `?length= bytes (1..${MAX_DMA_LENGTH}) at a DMA address, as the device sees them; untouched memory reads 0. JSON {data} or raw bytes with Accept: application/octet-stream.`,
        params: DmaParams,
        querystring: Type.Object(
          { length: Type.Integer({ minimum: 1, maximum: MAX_DMA_LENGTH }) },
          { additionalProperties: false },
        ),
        response: {
          200: {
            description: 'the bytes read',
            content: {
              'application/json': { schema: DmaDataSchema },
              'application/octet-stream': { schema: Type.String({ format: 'binary' }) },
            },
          },
          ...problems(400, 404, 409, 410, 422),
        },
      },
    },
    async (
      request: FastifyRequest<{ Params: { bdf: string; addr: string }; Querystring: { length: number } }>,
      reply: FastifyReply,
    ) => {
      const address = addressOf(request.params);
      const machine = ctx.emulator.machine;
      const data = dmaRead(machine, request.params.bdf, address, request.query.length);
      if (prefersOctetStream(request))
        return reply
          .type('application/octet-stream')
          .send(Buffer.from(data.buffer, data.byteOffset, data.length));
      const bdf = machine.find(request.params.bdf).bdf;
      return reply
        .type('application/json')
        .send({ bdf, address: hex64(address), length: data.length, data: bytesToHex(data) });
    },
  );

  app.put(
    '/api/v1/functions/:bdf/dma/:addr',
    {
      schema: {
        tags,
        summary: "Write a function's DMA memory",
        description: `{data: hex} or an application/octet-stream body (1..${MAX_DMA_LENGTH} bytes). Pages are allocated on first write from VMMR_DMA_LIMIT (409 VMMR_ERR_LIMIT beyond it).`,
        params: DmaParams,
        body: {
          content: {
            'application/json': {
              schema: Type.Object({ data: HexBytes }, { additionalProperties: false }),
            },
            'application/octet-stream': { schema: Type.Unknown({ description: 'the bytes' }) },
          },
        },
        response: {
          200: {
            description: 'what was written',
            content: { 'application/json': { schema: DmaDataSchema } },
          },
          ...problems(400, 404, 409, 410, 413, 422),
        },
      },
    },
    async (request: FastifyRequest<{ Params: { bdf: string; addr: string } }>, reply: FastifyReply) => {
      const address = addressOf(request.params);
      const body = request.body;
      const data = Buffer.isBuffer(body)
        ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
        : bytesOf((body as { data: string }).data, 'body.data');
      const machine = ctx.emulator.machine;
      dmaWrite(machine, request.params.bdf, address, data);
      const bdf = machine.find(request.params.bdf).bdf;
      return reply
        .type('application/json')
        .send({ bdf, address: hex64(address), length: data.length, data: bytesToHex(data) });
    },
  );
};

const queueRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/functions/:bdf/queues',
    {
      schema: {
        tags,
        summary: 'Queues: what the driver programmed and how the device runs them',
        description:
          'Each queue: layout (legacy PFN or modern), format (split/packed), addresses, size, and once the device ' +
          'used it its run state (last avail, used, requests, errors, the rule a broken chain broke).',
        params: BdfParams,
        response: { 200: QueueListSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => queueList(ctx.emulator.machine, request.params.bdf),
  );

  app.post(
    '/api/v1/functions/:bdf/queues/:n/drain',
    {
      schema: {
        tags,
        summary: 'Process a queue now',
        description:
          'Processes queue n as a notification would, and every notification still waiting, before answering ' +
          '(processing otherwise runs right after the notifying access). Nothing happens before DRIVER_OK or ' +
          'without Bus Master: the notification waits.',
        params: Type.Object({ bdf: BdfParam, n: Type.Integer({ minimum: 0, description: 'queue index' }) }),
        response: { 200: DrainResultSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const machine = ctx.emulator.machine;
      const bdf = machine.find(request.params.bdf).bdf;
      return { bdf, ...drainQueue(machine, bdf, request.params.n) };
    },
  );
};

const NetHeaderBody = Type.Object(
  {
    flags: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xff })),
    gsoType: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xff })),
    hdrLen: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffff })),
    gsoSize: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffff })),
    csumStart: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffff })),
    csumOffset: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffff })),
  },
  { additionalProperties: false, description: 'virtio-net header fields passed to the driver as given' },
);

const netRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/functions/:bdf/net',
    {
      schema: {
        tags,
        summary: 'A net function: MAC, link, header size, filter, counters, switch',
        params: BdfParams,
        response: { 200: NetStateSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => netView(ctx.emulator.machine, request.params.bdf),
  );

  app.get(
    '/api/v1/functions/:bdf/net/capture.pcap',
    {
      schema: {
        tags,
        summary: 'Transmitted frames as a pcap file',
        description:
          'The capture ring (the last 1024 frames / 2 MiB) as a classic pcap (linktype Ethernet), virtio-net ' +
          'header stripped; tcpdump -r and tshark -r read it.',
        params: BdfParams,
        response: {
          200: {
            description: 'a pcap file',
            content: { 'application/vnd.tcpdump.pcap': { schema: Type.String({ format: 'binary' }) } },
          },
          ...problems(400, 404, 410),
        },
      },
    },
    async (request, reply) => {
      const device = ctx.emulator.machine.dataPathOf(request.params.bdf).backendAs(NetDevice, 'net');
      return reply.type('application/vnd.tcpdump.pcap').send(device.capture.toPcap() as never);
    },
  );

  app.post(
    '/api/v1/functions/:bdf/net/rx',
    {
      schema: {
        tags,
        summary: 'Inject a received frame',
        description:
          'The frame goes through the receive filter into the next receive buffers (mergeable when negotiated); ' +
          'without buffers it waits (up to 256 frames). Header fields are passed as given.',
        params: BdfParams,
        body: Type.Object(
          { frame: HexBytes, header: Type.Optional(NetHeaderBody) },
          { additionalProperties: false },
        ),
        response: { 200: RxResultSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const machine = ctx.emulator.machine;
      const frame = bytesOf(request.body.frame, 'body.frame');
      const h = request.body.header;
      const header = h && {
        flags: h.flags ?? 0,
        gsoType: h.gsoType ?? 0,
        hdrLen: h.hdrLen ?? 0,
        gsoSize: h.gsoSize ?? 0,
        csumStart: h.csumStart ?? 0,
        csumOffset: h.csumOffset ?? 0,
      };
      const result = injectFrame(machine, request.params.bdf, frame, header);
      return { bdf: machine.find(request.params.bdf).bdf, result };
    },
  );

  app.put(
    '/api/v1/functions/:bdf/net/switch',
    {
      schema: {
        tags,
        summary: 'Put a net function on a switch (or take it off)',
        description:
          '{switch: "name"} joins the learning switch of that name (made on first use); {switch: null} leaves.',
        params: BdfParams,
        body: Type.Object(
          {
            switch: Type.Union([
              Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' }),
              Type.Null(),
            ]),
          },
          { additionalProperties: false },
        ),
        response: { 200: NetStateSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const machine = ctx.emulator.machine;
      joinSwitch(machine, request.params.bdf, request.body.switch);
      return netView(machine, request.params.bdf);
    },
  );
};

const deviceSideRoutes: RouteModule = (app, ctx) => {
  app.get(
    '/api/v1/functions/:bdf/block',
    {
      schema: {
        tags,
        summary: 'A block function: capacity, counters, injected errors',
        params: BdfParams,
        response: { 200: BlockStateSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => blockView(ctx.emulator.machine, request.params.bdf),
  );

  app.post(
    '/api/v1/functions/:bdf/block/errors',
    {
      schema: {
        tags,
        summary: 'Make sectors fail',
        description:
          'Requests touching sectors [first, first + count) fail with VIRTIO_BLK_S_IOERR (op: read, write or all).',
        params: BdfParams,
        body: Type.Object(
          { first: Type.Integer({ minimum: 0 }), count: Type.Integer({ minimum: 1 }), op: Type.Optional(Op) },
          { additionalProperties: false },
        ),
        response: { 200: BlockStateSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const machine = ctx.emulator.machine;
      const { first, count, op } = request.body;
      injectBlockErrors(machine, request.params.bdf, first, count, op ?? 'all');
      return blockView(machine, request.params.bdf);
    },
  );

  app.delete(
    '/api/v1/functions/:bdf/block/errors',
    {
      schema: {
        tags,
        summary: 'Clear injected sector errors',
        params: BdfParams,
        response: { 200: BlockStateSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const machine = ctx.emulator.machine;
      clearBlockErrors(machine, request.params.bdf);
      return blockView(machine, request.params.bdf);
    },
  );

  app.get(
    '/api/v1/functions/:bdf/console',
    {
      schema: {
        tags,
        summary: 'A console function: port 0 output, input waiting',
        params: BdfParams,
        response: { 200: ConsoleStateSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => consoleView(ctx.emulator.machine, request.params.bdf),
  );

  app.post(
    '/api/v1/functions/:bdf/console/rx',
    {
      schema: {
        tags,
        summary: 'Type on the console',
        description:
          'Bytes for port 0; they fill receive buffers as the driver posts them (64 KiB wait at most).',
        params: BdfParams,
        body: Type.Object({ data: HexBytes }, { additionalProperties: false }),
        response: { 200: ConsoleStateSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const machine = ctx.emulator.machine;
      const accepted = consoleInput(machine, request.params.bdf, bytesOf(request.body.data, 'body.data'));
      return { ...consoleView(machine, request.params.bdf), accepted };
    },
  );

  app.get(
    '/api/v1/functions/:bdf/balloon',
    {
      schema: {
        tags,
        summary: 'A balloon function: target, actual, pages, stats',
        params: BdfParams,
        response: { 200: BalloonStateSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => balloonView(ctx.emulator.machine, request.params.bdf),
  );

  app.put(
    '/api/v1/functions/:bdf/balloon',
    {
      schema: {
        tags,
        summary: "Set the balloon's target",
        description: 'Writes num_pages in the device configuration and raises a configuration change.',
        params: BdfParams,
        body: Type.Object(
          { numPages: Type.Integer({ minimum: 0, maximum: 0xffffffff }) },
          { additionalProperties: false },
        ),
        response: { 200: BalloonStateSchema, ...problems(400, 404, 410) },
      },
    },
    async (request) => {
      const machine = ctx.emulator.machine;
      setBalloonTarget(machine, request.params.bdf, request.body.numPages);
      return balloonView(machine, request.params.bdf);
    },
  );
};

export const dataPathRoutes: RouteModule = (app, ctx) => {
  dmaRoutes(app, ctx);
  queueRoutes(app, ctx);
  netRoutes(app, ctx);
  deviceSideRoutes(app, ctx);
};
