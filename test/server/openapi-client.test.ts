/**
 * A client generated from /openapi.json by openapi-typescript type-checks a call: the operation's
 * path parameters, query and answer have the types the document gives them, the problem code is
 * the enum of error codes, and a wrong call is a compile error.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, testApp } from '../support/server.js';

const dir = mkdtempSync(join(tmpdir(), 'vmmr-openapi-client-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  const app = await testApp();
  const doc = (await call(app, 'GET', '/openapi.json')).json() as Record<string, unknown>;
  writeFileSync(join(dir, 'api.ts'), astToString(await openapiTS(doc as never)));
}, 60_000);

/** A typed call of readConfig, then `extra` lines; the compiler's messages. */
function typeCheck(extra: string): string[] {
  const file = join(dir, `call-${Math.random().toString(36).slice(2)}.ts`);
  writeFileSync(
    file,
    `import type { components, operations, paths } from './api.js';
type ReadConfig = paths['/api/v1/functions/{bdf}/config/{offset}']['get'];
type Answer = ReadConfig['responses'][200]['content']['application/json'];
type Problem = components['schemas']['Problem'];
declare function request(method: string, url: string): Promise<unknown>;
async function readConfig(p: ReadConfig['parameters']): Promise<Answer> {
  return (await request('GET', \`/api/v1/functions/\${p.path.bdf}/config/\${p.path.offset}?width=\${p.query?.width ?? 4}\`)) as Answer;
}
export async function probe(): Promise<string> {
  const answer = await readConfig({ path: { bdf: '0000:01:00.1', offset: '0x100' }, query: { width: 4 } });
  if (!('width' in answer)) throw new Error('a block answer to a single access');
  const width: number = answer.width;
  const code: Problem['code'] = 'VMMR_ERR_UNALIGNED';
  const id: operations['readConfig'] extends ReadConfig ? true : false = true;
  return \`\${answer.value} \${width} \${code} \${id}\`;
}
${extra}
`,
  );
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: [],
  });
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('a client generated from the OpenAPI document', () => {
  it('type-checks a call of readConfig', () => {
    expect(typeCheck('')).toEqual([]);
  });

  it('refuses an error code the document does not list', () => {
    const errors = typeCheck(`export const bad: components['schemas']['Problem']['code'] = 'VMMR_ERR_NOPE';`);
    expect(errors.join('\n')).toContain('VMMR_ERR_NOPE');
  });

  it('refuses a call without the path parameters', () => {
    const errors = typeCheck(
      `export const missing = readConfig({ path: { offset: '0x100' }, query: { width: 4 } });`,
    );
    expect(errors.join('\n')).toContain("'bdf'");
  });
});
