/**
 * Text the client commands share: lspci-style names of functions, PCI
 * addresses given on the command line, and reading back `lspci -xxxx` dumps.
 */
import { pciHeader } from '../spec/index.js';
import { normalizeBdf } from '../pci/bdf.js';
import { UsageError } from './errors.js';

export {
  VIRTIO_VENDOR_NAME,
  className,
  lspciName as describeFunction,
  type FunctionView,
} from '../views/naming.js';
import { lspciName, type FunctionView } from '../views/naming.js';

/** Short lspci-like name without the class: "Virtio 1.0 network device". */
export function shortName(type: string, view: FunctionView): string {
  return lspciName(type, view).replace(/^.*?: Red Hat, Inc\. /, '');
}

/** A PCI address from the command line, in the long form; a bad one is a usage error (exit 2). */
export function bdfArgument(text: string, what = 'BDF'): string {
  try {
    return normalizeBdf(text);
  } catch (err) {
    throw new UsageError(`${what}: ${(err as Error).message}`);
  }
}

/** A decimal (or 0x-hex) count such as NumVFs; a bad one is a usage error. */
export function countArgument(text: string, what: string, max = 0xffff): number {
  const t = text.trim();
  const value = /^0x[0-9a-f]+$/i.test(t) ? parseInt(t, 16) : /^[0-9]+$/.test(t) ? parseInt(t, 10) : NaN;
  if (!Number.isSafeInteger(value) || value > max) {
    throw new UsageError(`${what} ${JSON.stringify(text)} is not an integer 0..${max}`);
  }
  return value;
}

export interface ParsedDump {
  bdf: string;
  description: string;
  bytes: Uint8Array;
}

const CONFIG_SIZE = pciHeader.constants.CFG_SPACE_EXP_SIZE.value;

/**
 * Reads back the first function of an `lspci -xxxx` dump ("dddd:bb:dd.f description" then
 * "off: xx xx ..." lines). Bytes not in the dump read 0xff.
 */
export function parseLspciDump(text: string): ParsedDump {
  const lines = text.split('\n');
  const head = lines.findIndex((l) => l.trim() !== '');
  const title = lines[head] ?? '';
  const m = /^(\S+)\s?(.*)$/.exec(title.trim());
  if (head < 0 || !m) throw new Error('the server answered an empty config dump');
  const bytes = new Uint8Array(CONFIG_SIZE).fill(0xff);
  for (const line of lines.slice(head + 1)) {
    if (line.trim() === '') break;
    const row = /^([0-9a-f]+):((?:\s[0-9a-f]{2})+)\s*$/i.exec(line);
    if (!row) throw new Error(`the server answered a malformed config dump line ${JSON.stringify(line)}`);
    const offset = parseInt(row[1]!, 16);
    row[2]!
      .trim()
      .split(/\s+/)
      .forEach((b, i) => {
        if (offset + i < CONFIG_SIZE) bytes[offset + i] = parseInt(b, 16);
      });
  }
  return { bdf: m[1]!, description: m[2] ?? '', bytes };
}

/** Bytes as one hex string ("8680..."), for --json output. */
export function hexString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Writes a JSON document on one line. */
export function jsonLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}
