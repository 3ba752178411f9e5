import { describe, expect, it } from 'vitest';
import { ConfigError, isValidHost, loadConfig } from '../../src/server/config.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies defaults for an empty environment', () => {
    expect(loadConfig({})).toEqual({ host: '127.0.0.1', port: 8080, logLevel: 'info' });
  });

  it('reads every variable', () => {
    expect(
      loadConfig({ HOST: '0.0.0.0', PORT: '0', LOG_LEVEL: 'debug', VMMR_TOPOLOGY: '/etc/vmmr.json' }),
    ).toEqual({ host: '0.0.0.0', port: 0, logLevel: 'debug', topologyPath: '/etc/vmmr.json' });
  });

  it('ignores unrelated variables', () => {
    expect(loadConfig({ PATH: '/bin', NODE_ENV: 'production' }).port).toBe(8080);
  });

  it.each(['0', '1', '80', '8080', '65535', '00080'])('accepts PORT=%s', (port) => {
    expect(loadConfig({ PORT: port }).port).toBe(Number(port));
  });

  it.each(['abc', '80.5', '70000', '-1', '', ' 80', '1e3', '0x50', '65536', '123456'])(
    'rejects PORT=%j with a one-line error',
    (port) => {
      const err = configError(() => loadConfig({ PORT: port }));
      expect(err.message).toBe(
        `PORT=${JSON.stringify(port)} is not a valid port: expected an integer 0..65535`,
      );
      expect(err.message).not.toContain('\n');
      expect(err.setting).toBe('PORT');
    },
  );

  it('matches the documented example message exactly', () => {
    expect(() => loadConfig({ PORT: '70000' })).toThrow(
      'PORT="70000" is not a valid port: expected an integer 0..65535',
    );
  });

  it.each([
    '127.0.0.1',
    '0.0.0.0',
    '::',
    '::1',
    'fe80::1',
    'localhost',
    'vmmr.example.com',
    'host-1',
    'example.com.',
  ])('accepts HOST=%s', (host) => {
    expect(loadConfig({ HOST: host }).host).toBe(host);
  });

  it('accepts a bracketed IPv6 literal and stores it bare', () => {
    expect(loadConfig({ HOST: '[::1]' }).host).toBe('::1');
  });

  it.each([
    '',
    'not a host',
    'bad_host',
    '-leading.example',
    'trailing-.example',
    '256.1.1.1',
    '1.2.3',
    'a..b',
    'http://localhost',
    'localhost:8080',
    '[localhost]',
    'x'.repeat(64),
    'line\nbreak',
  ])('rejects HOST=%j with a one-line error', (host) => {
    const err = configError(() => loadConfig({ HOST: host }));
    expect(err.message).toMatch(
      /^HOST=".*" is not a valid host: expected an IPv4 or IPv6 address or a hostname$/,
    );
    expect(err.message).not.toContain('\n');
    expect(err.setting).toBe('HOST');
  });

  it.each(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])('accepts LOG_LEVEL=%s', (level) => {
    expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
  });

  it('accepts LOG_LEVEL case-insensitively', () => {
    expect(loadConfig({ LOG_LEVEL: 'DEBUG' }).logLevel).toBe('debug');
  });

  it.each(['verbose', '', '30', 'warning'])('rejects LOG_LEVEL=%j', (level) => {
    const err = configError(() => loadConfig({ LOG_LEVEL: level }));
    expect(err.message).toBe(
      `LOG_LEVEL=${JSON.stringify(level)} is not a valid log level: expected one of fatal, error, warn, info, debug, trace, silent`,
    );
  });

  it('rejects an empty VMMR_TOPOLOGY', () => {
    const err = configError(() => loadConfig({ VMMR_TOPOLOGY: '' }));
    expect(err.message).toMatch(/^VMMR_TOPOLOGY="" is not a valid path: /);
    expect(err.message).not.toContain('\n');
  });

  it('lets overrides win and names the option in errors', () => {
    const env = { HOST: '0.0.0.0', PORT: '1234', LOG_LEVEL: 'warn', VMMR_TOPOLOGY: 'a.json' };
    expect(loadConfig(env, { host: '::1', port: '4321', logLevel: 'trace', topologyPath: 'b.json' })).toEqual(
      { host: '::1', port: 4321, logLevel: 'trace', topologyPath: 'b.json' },
    );
    const err = configError(() => loadConfig(env, { port: 'abc' }));
    expect(err.message).toBe('--port="abc" is not a valid port: expected an integer 0..65535');
    expect(err.setting).toBe('--port');
  });

  it('does not validate variables that an override replaces', () => {
    expect(loadConfig({ PORT: 'junk' }, { port: '9' }).port).toBe(9);
  });

  it('keeps long values from bloating the message', () => {
    const err = configError(() => loadConfig({ PORT: '9'.repeat(500) }));
    expect(err.message.length).toBeLessThan(200);
  });

  it('defaults to process.env', () => {
    const saved = process.env.PORT;
    process.env.PORT = '4242';
    try {
      expect(loadConfig().port).toBe(4242);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });
});

describe('isValidHost', () => {
  it('limits a name to 253 characters', () => {
    const label = 'a'.repeat(63);
    expect(isValidHost([label, label, label, 'a'.repeat(61)].join('.'))).toBe(true);
    expect(isValidHost([label, label, label, 'a'.repeat(62)].join('.'))).toBe(false);
  });
});
