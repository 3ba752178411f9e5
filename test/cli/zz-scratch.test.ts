import { it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { DEFAULT_TOPOLOGY } from '../../src/topology.js';
it('shapes', async () => {
  const app = await buildApp({ config: { ...loadConfig({}), logLevel: 'silent' }, topology: DEFAULT_TOPOLOGY, logger: false });
  const show = async (method: string, url: string, payload?: unknown) => {
    const r = await app.inject({ method: method as 'GET', url, ...(payload ? { payload: payload as object } : {}) });
    console.log(method, url, r.statusCode, r.headers['content-type'], r.body.slice(0, 600));
  };
  await show('GET', '/api/v1/pfs');
  await show('GET', '/api/v1/pfs/01:00.0');
  await show('PUT', '/api/v1/pfs/01:00.0/sriov', { numVfs: 3 });
  await show('GET', '/api/v1/pfs/0000:01:00.0/sriov?limit=2');
  await show('GET', '/api/v1/functions?limit=3');
  await show('GET', '/api/v1/functions/01:00.1');
  await show('GET', '/api/v1/functions/01:00.0/config/0x3?width=2');
  await show('GET', '/api/v1/functions/01:00.0/config/4?width=2');
  await show('PUT', '/api/v1/functions/01:00.0/config/4', { width: 2, value: '0x6' });
  await show('GET', '/api/v1/functions/01:00.1/guest/config?format=lspci');
  await show('GET', '/api/v1/functions/01:00.1/guest/io/0x12?width=1');
  await show('GET', '/api/v1/functions/01:00.1/bars/2/0x1012?width=1');
  await show('GET', '/api/v1/events?types=bogus');
  await show('GET', '/api/v1/nope');
  await app.close();
});
