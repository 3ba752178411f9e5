/**
 * The OpenAPI 3.1 document, generated from the route schemas (@fastify/swagger), served at
 * /openapi.json, and the interactive documentation at /docs (@fastify/swagger-ui, whose assets
 * are served from the package: it works offline).
 */
import { packageVersion } from './version.js';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { VmmrApp } from './app.js';
import { Problem } from './schemas.js';

export const TAGS = [
  { name: 'service', description: 'Health, readiness, metrics' },
  { name: 'pfs', description: 'Physical functions and SR-IOV control' },
  { name: 'functions', description: 'PFs and VFs: descriptions, config space, BARs' },
  { name: 'guest', description: "The translator's guest view of a VF: config space and legacy I/O BAR0" },
  { name: 'access', description: 'Batches of accesses executed as one unit' },
  { name: 'device', description: 'The device side: interrupts and device configuration changes' },
  { name: 'events', description: 'Server-Sent Events' },
  { name: 'state', description: 'Snapshot, restore, reset' },
  {
    name: 'vfio-user',
    description: 'Functions exported to a VMM over vfio-user (Unix sockets in VMMR_SOCKET_DIR)',
  },
];

const DESCRIPTION = `Emulated virtio transitional MMR PCIe devices: SR-IOV PFs whose VFs carry the legacy virtio
register block in a memory BAR, and the legacy I/O-to-MMIO translator.

Conventions: register values travel as hex strings zero-padded to the access width ("0x1af4");
inputs take a hex string, a decimal string or a JSON number (above 2^53 - 1: hex string only).
Offsets in paths accept "0x.." or decimal. Byte blocks are plain hex in address order. Errors are
application/problem+json documents with a stable \`code\`. Every access keeps its width: nothing
is split or merged, except block accesses, which are cut into naturally aligned pieces as vfio-pci does.`;

/** The operationId of every operation, by "method path" as the document names them. */
export const OPERATION_IDS: Readonly<Record<string, string>> = {
  'get /healthz': 'getHealth',
  'get /readyz': 'getReadiness',
  'get /metrics': 'getMetrics',
  'get /api/v1/pfs': 'listPfs',
  'post /api/v1/pfs': 'createPf',
  'get /api/v1/pfs/{bdf}': 'getPf',
  'delete /api/v1/pfs/{bdf}': 'deletePf',
  'get /api/v1/pfs/{bdf}/sriov': 'getSriov',
  'put /api/v1/pfs/{bdf}/sriov': 'setNumVfs',
  'get /api/v1/functions': 'listFunctions',
  'get /api/v1/functions/{bdf}': 'getFunction',
  'get /api/v1/functions/{bdf}/config': 'dumpConfig',
  'get /api/v1/functions/{bdf}/config/{offset}': 'readConfig',
  'put /api/v1/functions/{bdf}/config/{offset}': 'writeConfig',
  'get /api/v1/functions/{bdf}/bars/{n}/{offset}': 'readBar',
  'put /api/v1/functions/{bdf}/bars/{n}/{offset}': 'writeBar',
  'get /api/v1/functions/{bdf}/guest/config': 'dumpGuestConfig',
  'get /api/v1/functions/{bdf}/guest/config/{offset}': 'readGuestConfig',
  'put /api/v1/functions/{bdf}/guest/config/{offset}': 'writeGuestConfig',
  'get /api/v1/functions/{bdf}/guest/io/{port}': 'readGuestIo',
  'put /api/v1/functions/{bdf}/guest/io/{port}': 'writeGuestIo',
  'post /api/v1/access': 'runBatch',
  'post /api/v1/functions/{bdf}/interrupt': 'raiseInterrupt',
  'put /api/v1/functions/{bdf}/device-config': 'writeDeviceConfig',
  'get /api/v1/events': 'streamEvents',
  'get /api/v1/functions/{bdf}/trace': 'getTrace',
  'put /api/v1/functions/{bdf}/trace': 'setTrace',
  'get /api/v1/state': 'getState',
  'put /api/v1/state': 'restoreState',
  'post /api/v1/state/save': 'saveState',
  'post /api/v1/reset': 'resetMachine',
  'get /api/v1/functions/{bdf}/registers': 'getRegisters',
  'put /api/v1/functions/{bdf}/guest': 'setGuestOptions',
  'get /api/v1/functions/{bdf}/guest/backend': 'getGuestBackend',
  'put /api/v1/functions/{bdf}/guest/backend': 'setGuestBackend',
  'post /api/v1/pfs/{bdf}/admin': 'issueAdminCommands',
  'get /api/v1/functions/{bdf}/dma/{addr}': 'readDma',
  'put /api/v1/functions/{bdf}/dma/{addr}': 'writeDma',
  'get /api/v1/functions/{bdf}/queues': 'listQueues',
  'post /api/v1/functions/{bdf}/queues/{n}/drain': 'drainQueue',
  'get /api/v1/functions/{bdf}/net': 'getNet',
  'get /api/v1/functions/{bdf}/net/capture.pcap': 'getNetCapture',
  'post /api/v1/functions/{bdf}/net/rx': 'injectNetFrame',
  'put /api/v1/functions/{bdf}/net/switch': 'setNetSwitch',
  'get /api/v1/functions/{bdf}/block': 'getBlock',
  'post /api/v1/functions/{bdf}/block/errors': 'injectBlockErrors',
  'delete /api/v1/functions/{bdf}/block/errors': 'clearBlockErrors',
  'get /api/v1/functions/{bdf}/console': 'getConsole',
  'post /api/v1/functions/{bdf}/console/rx': 'injectConsoleInput',
  'get /api/v1/functions/{bdf}/balloon': 'getBalloon',
  'put /api/v1/functions/{bdf}/balloon': 'setBalloon',
  'get /api/v1/vfio-user': 'listVfioUserExports',
  'get /api/v1/functions/{bdf}/vfio-user': 'getVfioUserExport',
  'post /api/v1/functions/{bdf}/vfio-user': 'startVfioUserExport',
  'delete /api/v1/functions/{bdf}/vfio-user': 'stopVfioUserExport',
};

const PROBLEM_REF = { $ref: '#/components/schemas/Problem' };
const PROBLEM_TYPE = 'application/problem+json';
/** What a success answer is, where the route schema gives no description. */
const SUCCESS = { 200: 'the answer', 201: 'created', 204: 'done, no content' } as Record<string, string>;

interface Response {
  description?: string;
  content?: Record<string, { schema?: unknown }>;
}
interface Operation {
  operationId?: string;
  security?: unknown;
  responses?: Record<string, Response>;
}
interface Document {
  paths?: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown> };
}

/**
 * The generated document, finished: every operation gets its operationId, problem documents
 * become one shared schema referenced by every error response, every /api operation declares
 * the 401 a token may cause, and no response keeps the generator's "Default Response".
 */
function finishDocument(doc: Document): Document {
  for (const [path, operations] of Object.entries(doc.paths ?? {}))
    for (const [method, op] of Object.entries(operations)) {
      const id = OPERATION_IDS[`${method} ${path}`];
      if (id === undefined) throw new Error(`no operationId for ${method} ${path} (src/server/openapi.ts)`);
      op.operationId = id;
      const responses = (op.responses ??= {});
      if (path.startsWith('/api/'))
        responses['401'] = { description: 'problem document', content: { [PROBLEM_TYPE]: { schema: {} } } };
      for (const [status, response] of Object.entries(responses)) {
        const problem = response.content?.[PROBLEM_TYPE];
        if (problem) {
          problem.schema = PROBLEM_REF;
          response.description =
            status === '401' ? 'no or wrong bearer token (VMMR_TOKEN)' : 'problem document';
        }
        if (response.description === 'Default Response')
          response.description = SUCCESS[status] ?? 'the answer';
      }
    }
  doc.components = { ...doc.components, schemas: { ...doc.components?.schemas, Problem } };
  return doc;
}

export async function registerOpenApi(app: VmmrApp, options: { auth: boolean }): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'vmmr', version: packageVersion(), description: DESCRIPTION },
      tags: TAGS,
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: options.auth
              ? 'This server requires the VMMR_TOKEN it was started with on every /api route'
              : 'Required on /api routes when the server is started with VMMR_TOKEN (this one is not)',
          },
        },
      },
    },
    transformObject: (generated) =>
      'openapiObject' in generated
        ? (finishDocument(generated.openapiObject as Document) as typeof generated.openapiObject)
        : generated.swaggerObject,
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    theme: { title: 'vmmr' },
    uiConfig: { validatorUrl: null, deepLinking: true },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
