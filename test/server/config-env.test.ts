/** The service settings added for the HTTP API: VMMR_TOKEN, limits. */
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_BODY_LIMIT,
  DEFAULT_MAX_BATCH,
  DEFAULT_SSE_QUEUE,
  limitsOf,
  loadConfig,
} from '../../src/server/config.js';
import { NET_PF, call, testApp } from '../support/server.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('HTTP settings', () => {
  it('default when unset', () => {
    const config = loadConfig({});
    expect(config.token).toBeUndefined();
    expect(config.maxVfs).toBeUndefined();
    expect(limitsOf(config)).toMatchObject({
      bodyLimit: DEFAULT_BODY_LIMIT,
      maxBatch: DEFAULT_MAX_BATCH,
      sseQueue: DEFAULT_SSE_QUEUE,
    });
    expect(DEFAULT_BODY_LIMIT).toBe(64 * 1024 * 1024);
    expect(DEFAULT_MAX_BATCH).toBe(65536);
  });

  it('read VMMR_TOKEN, VMMR_BODY_LIMIT, VMMR_MAX_BATCH, VMMR_MAX_VFS, VMMR_SSE_QUEUE', () => {
    const config = loadConfig({
      VMMR_TOKEN: 'abc.DEF-123',
      VMMR_BODY_LIMIT: '16MiB',
      VMMR_MAX_BATCH: '4096',
      VMMR_MAX_VFS: '100',
      VMMR_SSE_QUEUE: '10',
    });
    expect(config).toMatchObject({
      token: 'abc.DEF-123',
      bodyLimit: 16 * 1024 * 1024,
      maxBatch: 4096,
      maxVfs: 100,
      sseQueue: 10,
    });
  });

  it.each([
    ['1024', 1024],
    ['512k', 512 * 1024],
    ['64MiB', 64 * 1024 * 1024],
    ['1 GiB', 1024 ** 3],
  ])('accepts VMMR_BODY_LIMIT=%s', (value, bytes) => {
    expect(loadConfig({ VMMR_BODY_LIMIT: value }).bodyLimit).toBe(bytes);
  });

  it.each(['', '12', '2GiB', '64MB', 'lots', '-1'])('refuses VMMR_BODY_LIMIT=%j in one line', (value) => {
    const err = configError(() => loadConfig({ VMMR_BODY_LIMIT: value }));
    expect(err.setting).toBe('VMMR_BODY_LIMIT');
    expect(err.message).toMatch(/^VMMR_BODY_LIMIT=".*" is not a valid body limit: /);
    expect(err.message).not.toContain('\n');
  });

  it.each([
    ['VMMR_MAX_BATCH', '0', 'is not a valid batch size limit: expected an integer 1..1048576'],
    ['VMMR_MAX_VFS', '-5', 'is not a valid VF limit: expected an integer 0..16777216'],
    ['VMMR_SSE_QUEUE', 'x', 'is not a valid event queue length: expected an integer 1..1048576'],
  ])('refuses %s=%j naming the variable', (variable, value, problem) => {
    const err = configError(() => loadConfig({ [variable]: value }));
    expect(err.message).toBe(`${variable}=${JSON.stringify(value)} ${problem}`);
  });

  it.each(['', 'has space', 'tab\tbed', 'quote"', 'ümlaut'])(
    'refuses VMMR_TOKEN=%j without echoing it',
    (value) => {
      const err = configError(() => loadConfig({ VMMR_TOKEN: value }));
      expect(err.setting).toBe('VMMR_TOKEN');
      expect(err.message).toMatch(/^VMMR_TOKEN="\(hidden\)" is not a valid bearer token/);
      if (value !== '') expect(err.message).not.toContain(value);
      expect(err.message).not.toContain('\n');
    },
  );
});

describe('VMMR_DMA_LIMIT', () => {
  it('reads bytes with an optional unit and refuses anything else, naming the setting', () => {
    expect(loadConfig({}).dmaLimit).toBeUndefined();
    expect(loadConfig({ VMMR_DMA_LIMIT: '4096' }).dmaLimit).toBe(4096);
    expect(loadConfig({ VMMR_DMA_LIMIT: '512MiB' }).dmaLimit).toBe(512 * 2 ** 20);
    expect(loadConfig({ VMMR_DMA_LIMIT: '2GiB' }).dmaLimit).toBe(2 ** 31);
    for (const bad of ['', '-1', '1.5GiB', '1TB', '2048GiB'])
      expect(configError(() => loadConfig({ VMMR_DMA_LIMIT: bad })).message).toContain('VMMR_DMA_LIMIT');
  });

  it('bounds DMA memory over REST: the page beyond the limit is refused with VMMR_ERR_LIMIT', async () => {
    const app = await testApp({ env: { VMMR_DMA_LIMIT: '8KiB' } });
    const url = (a: number) => `/api/v1/functions/${NET_PF}/dma/${a}`;
    expect((await call(app, 'PUT', url(0), { data: '01' })).statusCode).toBe(200);
    expect((await call(app, 'PUT', url(0x1000), { data: '02' })).statusCode).toBe(200);
    const refused = await call(app, 'PUT', url(0x2000), { data: '03' });
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: 'VMMR_ERR_LIMIT' });
    expect(refused.json().detail).toContain('VMMR_DMA_LIMIT = 8192 bytes');
  });
});
