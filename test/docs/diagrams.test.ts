/**
 * The BAR layout diagram lives twice — above the decoder (src/virtio/memory-bar.ts) and in
 * docs/device-model.md — and must say the same thing, and what the spec tables say.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { barLayout, legacyBlockLength, VIRTIO_TYPE_NAMES } from '../../src/spec/index.js';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

/** The lines from "0x0000 +---" to the closing "+---" line, with comment prefixes removed. */
function diagram(text: string, prefix: RegExp): string[] {
  const lines = text.split('\n').map((l) => l.replace(prefix, ''));
  const start = lines.findIndex((l) => l.startsWith('0x0000 +---'));
  const end = lines.findIndex((l, i) => i > start && /^0x[0-9a-f]{4} \+---/.test(l));
  expect(start, 'diagram start').toBeGreaterThanOrEqual(0);
  return lines.slice(start, end + 1).map((l) => l.trimEnd());
}

describe('the memory BAR diagram', () => {
  const code = diagram(read('src/virtio/memory-bar.ts'), /^ \* {3}/);
  const docs = diagram(read('docs/device-model.md'), /^/);

  it('is the same in the code and in docs/device-model.md', () => {
    expect(docs).toEqual(code);
  });

  it('places each region where spec-tables/bar-layout.json does', () => {
    const L = barLayout.registers;
    for (const [offset, what] of [
      [L.ISR.offset, 'ISR'],
      [L.DEVICE_CFG.offset, 'device cfg'],
      [L.NOTIFY.offset, 'notify'],
      [L.LEGACY.offset, 'legacy block'],
      [L.MSIX_TABLE.offset, 'MSI-X table'],
      [L.MSIX_PBA.offset, 'MSI-X PBA'],
    ] as const) {
      const label = `0x${offset.toString(16).padStart(4, '0')} | ${what}`;
      expect(
        code.some((l) => l.startsWith(label)),
        label,
      ).toBe(true);
    }
    expect(code.at(-1)).toMatch(new RegExp(`^0x${barLayout.constants.BAR_SIZE.value.toString(16)} \\+`));
  });

  it('gives the legacy block lengths the device types have', () => {
    const lengths = VIRTIO_TYPE_NAMES.map(legacyBlockLength);
    const range = `${Math.min(...lengths)}..${Math.max(...lengths)} B`;
    expect(code.find((l) => l.includes('legacy block'))).toContain(range);
  });
});
