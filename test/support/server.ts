/** Shared set-up of the route tests: apps on the embedded default topology, inject helpers. */
import { afterEach } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { loadConfig } from '../../src/server/config.js';
import { buildApp, type BuildAppOptions, type VmmrApp } from '../../src/server/app.js';
import { DEFAULT_TOPOLOGY, type ResolvedTopology } from '../../src/machine/topology.js';

export const NET_PF = '0000:01:00.0';
export const BLK_PF = '0000:81:00.0';
export const VF1 = '0000:01:00.1';
export const VF2 = '0000:01:00.2';
/** No PF claims this address (domain 1). */
export const NOWHERE = '0001:00:00.0';

const apps: VmmrApp[] = [];

afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

export interface TestAppOptions {
  env?: Record<string, string>;
  topology?: ResolvedTopology;
  routes?: BuildAppOptions['routes'];
  logger?: BuildAppOptions['logger'];
}

/** An app closed after the test. */
export async function testApp(options: TestAppOptions = {}): Promise<VmmrApp> {
  const app = await buildApp({
    config: loadConfig(options.env ?? {}),
    topology: options.topology ?? DEFAULT_TOPOLOGY,
    logger: options.logger ?? false,
    routes: options.routes,
  });
  apps.push(app);
  return app;
}

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

export async function call(
  app: VmmrApp,
  method: Method,
  url: string,
  payload?: unknown,
  headers: Record<string, string> = {},
): Promise<LightMyRequestResponse> {
  return app.inject({
    method,
    url,
    headers,
    ...(payload === undefined ? {} : { payload: payload as string }),
  });
}

/** JSON of a 2xx answer; fails with the problem document otherwise. */
export async function ok<T = Record<string, unknown>>(
  app: VmmrApp,
  method: Method,
  url: string,
  payload?: unknown,
): Promise<T> {
  const res = await call(app, method, url, payload);
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  return res.json() as T;
}

/** Enables n VFs on a PF through PUT …/sriov. */
export async function enableVfs(app: VmmrApp, n: number, pf = NET_PF): Promise<void> {
  await ok(app, 'PUT', `/api/v1/pfs/${pf}/sriov`, { numVfs: n });
}

export interface ProblemJson {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  bdf?: string;
  space?: string;
  offset?: number;
  width?: number;
  register?: string;
  in?: string;
  path?: string;
}

/** Asserts a problem+json answer and returns it. */
export function problem(res: LightMyRequestResponse): ProblemJson {
  const type = String(res.headers['content-type']);
  if (!type.startsWith('application/problem+json')) {
    throw new Error(`expected application/problem+json, got ${type}: ${res.statusCode} ${res.body}`);
  }
  return res.json() as ProblemJson;
}
