/**
 * docs/qtest.md's example, run as written: every `>` line is sent, every `<` line is the answer
 * expected, against the embedded default topology with two VFs enabled (as the doc sets it up).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Emulator } from '../../src/machine/emulator.js';
import { DEFAULT_TOPOLOGY } from '../../src/machine/topology.js';
import { ROOT } from '../support/build.js';
import { enableVfs, startVmmrQtest, type VmmrQtest } from '../support/qtest/vmmr.js';

const DOC = readFileSync(join(ROOT, 'docs', 'qtest.md'), 'utf8');
const BLOCK = /```qtest\n([\s\S]*?)```/.exec(DOC)?.[1] ?? '';
const sent = BLOCK.split('\n')
  .filter((l) => l.startsWith('> '))
  .map((l) => l.slice(2));
const expected = BLOCK.split('\n')
  .filter((l) => l.startsWith('< '))
  .map((l) => l.slice(2));

let vmmr: VmmrQtest;

beforeAll(async () => {
  const emulator = new Emulator(DEFAULT_TOPOLOGY);
  enableVfs(emulator, '0000:01:00.0', 2);
  vmmr = await startVmmrQtest(emulator);
});

afterAll(async () => {
  await vmmr.stop();
});

it('docs/qtest.md has an example session', () => {
  expect(sent.length).toBeGreaterThan(10);
  expect(expected).toHaveLength(sent.length);
});

it('answers the example as the doc says, one command at a time and pipelined', async () => {
  const q = await vmmr.connect();
  const one: string[] = [];
  for (const line of sent) one.push(await q.command(line));
  expect(one).toEqual(expected);
  const again = await vmmr.connect('tcp');
  expect(await again.pipeline(sent)).toEqual(expected);
});
