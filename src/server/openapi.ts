/**
 * The OpenAPI 3.1 document, generated from the route schemas (@fastify/swagger), served at
 * /openapi.json, and the interactive documentation at /docs (@fastify/swagger-ui, whose assets
 * are served from the package: it works offline).
 */
import { packageVersion } from './version.js';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { VmmrApp } from './app.js';

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
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { validatorUrl: null, deepLinking: true },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
