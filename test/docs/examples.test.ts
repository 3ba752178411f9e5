/**
 * Every shell example of the README and of docs/ (configuration, HTTP API, CLI) runs as written
 * against a fresh service, and prints what the page says it prints (test/support/doc-examples.ts
 * says how blocks are marked and read). `localhost:8080` in a command is the test's service;
 * `curl` runs with `-sS --fail-with-body`, so a refused request fails its example.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForChildren, ROOT, type Built } from '../support/build.js';
import {
  commandsOf,
  fencedBlocks,
  isStream,
  sameOutput,
  type DocBlock,
  type DocCommand,
} from '../support/doc-examples.js';

const FILES = ['README.md', 'docs/configuration.md', 'docs/http-api.md', 'docs/cli.md'];
const SHELL_LANGS = new Set(['sh', 'bash', 'console', 'shell']);
/** A command still running after this long never ends (a service started by mistake). */
const COMMAND_LIMIT_MS = 60_000;
/** How long a stream may take to show the events its page shows. */
const STREAM_WAIT_MS = 15_000;

function which(tool: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the docs examples need ${tool} on PATH`);
  return r.stdout.trim();
}

let built: Built;
let shims: string;
beforeAll(async () => {
  built = await buildForChildren('doc-examples');
  shims = mkdtempSync(join(tmpdir(), 'vmmr-doc-bin-'));
  const shim = (name: string, body: string) => {
    writeFileSync(join(shims, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(shims, name), 0o755);
  };
  shim('curl', `exec ${which('curl')} -sS --fail-with-body "$@"`);
  shim('vmmr', `exec ${process.execPath} ${built.cli} "$@"`);
}, 120_000);
afterAll(() => {
  built?.remove();
  if (shims) rmSync(shims, { recursive: true, force: true });
});

interface Stream {
  command: DocCommand;
  child: ChildProcess;
  output: string;
  expected: string[];
}

/** One session: a service, the variables its commands exported, the streams they follow. */
class Session {
  private server: ChildProcess | undefined;
  private port = 0;
  private readonly env: Record<string, string> = {};
  private readonly streams: Stream[] = [];
  readonly failures: string[] = [];
  private readonly cwd = mkdtempSync(join(tmpdir(), 'vmmr-doc-'));

  constructor(private readonly file: string) {}

  private shellEnv(): NodeJS.ProcessEnv {
    return {
      PATH: `${shims}:${process.env['PATH'] ?? ''}`,
      HOME: this.cwd,
      VMMR_URL: `http://127.0.0.1:${this.port}`,
      ...this.env,
    };
  }

  private localize(text: string): string {
    return text.replace(/\b(localhost|127\.0\.0\.1):8080\b/g, `127.0.0.1:${this.port}`);
  }

  /** The value of a shell word, as bash expands it with the session's variables. */
  private expand(word: string): string {
    const r = spawnSync('bash', ['-c', `printf %s ${word}`], { env: this.shellEnv(), encoding: 'utf8' });
    return r.stdout;
  }

  async startServer(extra: Record<string, string> = {}): Promise<void> {
    await this.stopServer();
    const env = {
      PATH: process.env['PATH'] ?? '',
      ...this.env,
      ...extra,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
    };
    const server = spawn(process.execPath, [built.cli, 'serve'], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.server = server;
    this.port = await new Promise<number>((resolve, reject) => {
      server.once('exit', (code) => reject(new Error(`vmmr serve exited with ${code}`)));
      createInterface({ input: server.stdout! }).on('line', (line) => {
        const url = /"msg":"vmmr ready on http:\/\/127\.0\.0\.1:(\d+)"/.exec(line);
        if (url) resolve(Number(url[1]));
      });
    });
  }

  private async stopServer(): Promise<void> {
    const server = this.server;
    if (!server || server.exitCode !== null) return;
    await new Promise((resolve) => {
      server.once('exit', resolve);
      server.kill('SIGTERM');
    });
  }

  async run(command: DocCommand): Promise<void> {
    const exported = /^export (\w+)=(.*)$/.exec(command.text);
    if (exported) {
      this.env[exported[1]!] = this.expand(exported[2]!);
      return;
    }
    const start = /^((?:\w+=\S+\s+)*)npm start\s*&?$/.exec(command.text);
    if (start) {
      const extra: Record<string, string> = {};
      for (const a of start[1]!.trim().split(/\s+/).filter(Boolean)) {
        const [name, value] = a.split(/=(.*)/s) as [string, string];
        extra[name] = this.expand(value);
      }
      await this.startServer(extra);
      return;
    }
    if (!this.server) await this.startServer();
    if (isStream(command.text)) return this.follow(command);
    // One stream, as a terminal shows it: stderr in its place among stdout.
    const r = spawnSync('bash', ['-c', `exec 2>&1\n${this.localize(command.text)}`], {
      cwd: this.cwd,
      env: this.shellEnv(),
      encoding: 'utf8',
      timeout: COMMAND_LIMIT_MS,
    });
    const output = r.stdout;
    const where = `${this.file}:${command.line}: ${command.text}`;
    if (r.error) this.failures.push(`${where}\n${r.error.message}`);
    else if (command.expected.length === 0) {
      if (r.status !== 0) this.failures.push(`${where}\nexited ${r.status}: ${output}`);
    } else if (!sameOutput(command.expected, output)) {
      this.failures.push(`${where}\nexpected:\n${command.expected.join('\n')}\nactual:\n${output}`);
    }
  }

  /** The service's count of open event streams. */
  private async subscribers(): Promise<number> {
    const metrics = await (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
    return Number(/^vmmr_event_subscribers (\d+)/m.exec(metrics)?.[1] ?? NaN);
  }

  /** Starts a stream and waits until it is live: the service counts one more subscriber. */
  private async follow(command: DocCommand): Promise<void> {
    const before = await this.subscribers();
    const child = spawn('bash', ['-c', `exec ${this.localize(command.text)}`], {
      cwd: this.cwd,
      env: this.shellEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stream: Stream = { command, child, output: '', expected: command.expected };
    this.streams.push(stream);
    child.stdout!.on('data', (chunk: Buffer) => {
      stream.output += chunk.toString();
    });
    while ((await this.subscribers()) <= before && child.exitCode === null)
      await new Promise((resolve) => setTimeout(resolve, 20));
  }

  /** A `text` block of the session: the output of the last stream that shows none. */
  showsOutput(lines: string[]): void {
    const stream = [...this.streams].reverse().find((s) => s.expected.length === 0);
    if (!stream) throw new Error(`${this.file}: a text block marked as output follows no stream`);
    stream.expected = lines;
  }

  async finish(): Promise<void> {
    for (const stream of this.streams) {
      const want = stream.expected.length;
      const deadline = Date.now() + STREAM_WAIT_MS;
      while (want > 0 && stream.output.split('\n').length < want && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      stream.child.kill('SIGINT');
      const got = stream.output.split('\n').slice(0, want).join('\n');
      if (want > 0 && !sameOutput(stream.expected, got))
        this.failures.push(
          `${this.file}:${stream.command.line}: ${stream.command.text}\nexpected:\n${stream.expected.join('\n')}\nactual:\n${stream.output}`,
        );
    }
    await this.stopServer();
    rmSync(this.cwd, { recursive: true, force: true });
  }
}

function sessions(blocks: DocBlock[]): Map<string, DocBlock[]> {
  const out = new Map<string, DocBlock[]>();
  for (const block of blocks)
    if (block.marker?.kind === 'example')
      out.set(block.marker.session, [...(out.get(block.marker.session) ?? []), block]);
  return out;
}

describe.each(FILES)('%s', (file) => {
  const blocks = fencedBlocks(ROOT, file);

  it('marks every shell block as an example to run, or says why it is not run', () => {
    const unmarked = blocks
      .filter((b) => SHELL_LANGS.has(b.lang) && b.marker === undefined)
      .map((b) => `${file}:${b.line}`);
    expect(unmarked).toEqual([]);
    for (const b of blocks.filter((b) => b.marker?.kind === 'not-run'))
      expect(b.marker?.kind === 'not-run' && b.marker.reason.length > 10, `${file}:${b.line} reason`).toBe(
        true,
      );
  });

  for (const [name, session] of sessions(blocks)) {
    it(`runs the "${name}" example as written`, async () => {
      const run = new Session(file);
      try {
        for (const block of session) {
          if (block.lang === 'text') run.showsOutput(block.body);
          else for (const command of commandsOf(block)) await run.run(command);
        }
      } finally {
        await run.finish();
      }
      expect(run.failures.join('\n\n')).toBe('');
    }, 120_000);
  }
});
