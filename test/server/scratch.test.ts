import { it } from 'vitest';
import { request } from 'undici';
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server/main.js';
import { DEFAULT_TOPOLOGY } from '../../src/topology.js';

it('scratch perf', async () => {
  const server = await startServer(loadConfig({ PORT: '0' }), DEFAULT_TOPOLOGY, { handleSignals: false, logger: false });
  const url = server.url;
  await request(`${url}/api/v1/pfs/0000:01:00.0/sriov`, { method: 'PUT', body: JSON.stringify({ numVfs: 16 }), headers: { 'content-type': 'application/json' } }).then((r) => r.body.text());
  const ops = [];
  for (let i = 0; i < 4096; i++) ops.push(i % 2 ? { bdf: '0000:01:00.1', space: 'bar2', op: 'read', offset: 0x100c, width: 2 } : { bdf: '0000:01:00.1', space: 'bar2', op: 'write', offset: 0x100e, width: 2, value: '0x0001' });
  const body = JSON.stringify({ ops });
  for (let round = 0; round < 3; round++) {
    const N = 100;
    const t = performance.now();
    for (let k = 0; k < N; k++) {
      const r = await request(`${url}/api/v1/access`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      await r.body.text();
    }
    const ms = performance.now() - t;
    console.log(`ops/s ${(N * 4096 / (ms / 1000)).toFixed(0)}  per batch ${(ms / N).toFixed(2)} ms`);
  }
  await server.close();
});
