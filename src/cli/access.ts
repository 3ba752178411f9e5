/**
 * Runs setpci-style register specs (see regspec.ts) against one space of one
 * function through the REST API, in order: reads print their value in hex
 * (`0010`), one per line; writes print nothing. With --json, one document
 * lists every access.
 */
import type { ApiClient } from './client.js';
import { functionPath, parseApiValue } from './client.js';
import type { CliIo } from './context.js';
import { jsonLine, parseLspciDump } from './format.js';
import { formatValue, jsonValue, resolveOffset, type RegSpec } from './regspec.js';

/** A space reached through the API: `path` is where /{offset}?width=W lives. */
export interface RemoteSpace {
  /** Name for --json output: "config", "bar2", "io", "guest-config". */
  name: string;
  /** e.g. /api/v1/functions/0000:01:00.0/config */
  path: string;
  /** Full dump of the space in lspci format, for capability names (config spaces only). */
  dumpPath?: string;
}

export interface AccessRecord {
  spec: string;
  op: 'read' | 'write';
  offset: string;
  width: number;
  value: string;
}

function offsetText(offset: number): string {
  return `0x${offset.toString(16)}`;
}

export async function readRegister(
  client: ApiClient,
  space: RemoteSpace,
  offset: number,
  width: number,
): Promise<bigint> {
  const res = await client.get<{ value?: unknown }>(`${space.path}/${offsetText(offset)}`, { width });
  return parseApiValue(res.value);
}

export async function writeRegister(
  client: ApiClient,
  space: RemoteSpace,
  offset: number,
  width: number,
  value: bigint,
): Promise<void> {
  await client.put(`${space.path}/${offsetText(offset)}`, { width, value: `0x${value.toString(16)}` });
}

export function configSpace(bdf: string, guest = false): RemoteSpace {
  return guest
    ? {
        name: 'guest-config',
        path: functionPath(bdf, 'guest', 'config'),
        dumpPath: functionPath(bdf, 'guest', 'config'),
      }
    : { name: 'config', path: functionPath(bdf, 'config'), dumpPath: functionPath(bdf, 'config') };
}

/** Executes specs in order; stops at the first refusal (after printing what was done). */
export async function runSpecs(
  client: ApiClient,
  io: CliIo,
  bdf: string,
  space: RemoteSpace,
  specs: readonly RegSpec[],
  json: boolean,
): Promise<void> {
  let image: Promise<Uint8Array> | undefined;
  const loadImage = (): Promise<Uint8Array> => {
    if (!space.dumpPath) throw new Error(`capability names need a config space, not ${space.name}`);
    image ??= client.getText(space.dumpPath, { format: 'lspci' }).then((text) => parseLspciDump(text).bytes);
    return image;
  };
  const records: AccessRecord[] = [];
  const flush = (): void => {
    if (json) io.stdout(jsonLine({ bdf, space: space.name, accesses: records }));
  };
  try {
    for (const spec of specs) {
      const offset = await resolveOffset(spec, loadImage, bdf);
      const w = spec.width;
      if (!spec.writes) {
        const value = await readRegister(client, space, offset, w);
        if (json)
          records.push({
            spec: spec.text,
            op: 'read',
            offset: offsetText(offset),
            width: w,
            value: jsonValue(value, w),
          });
        else io.stdout(`${formatValue(value, w)}\n`);
        continue;
      }
      for (const [i, write] of spec.writes.entries()) {
        const at = offset + i * w;
        let value = write.value;
        if (write.mask !== undefined) {
          const old = await readRegister(client, space, at, w);
          value = (old & ~write.mask) | (write.value & write.mask);
        }
        await writeRegister(client, space, at, w, value);
        records.push({
          spec: spec.text,
          op: 'write',
          offset: offsetText(at),
          width: w,
          value: jsonValue(value, w),
        });
      }
    }
  } finally {
    flush();
  }
}
