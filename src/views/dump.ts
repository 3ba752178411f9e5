/**
 * Config-space dumps in the `lspci -xxxx` format that `lspci -F FILE` and `setpci -F FILE`
 * read back: a "dddd:bb:dd.f description" line, then 16 bytes per line prefixed by the offset
 * ("00:" .. "f0:", then "100:" .. "ff0:").
 */
const BYTES_PER_LINE = 16;
const NARROW_OFFSET_END = 0x100;

export function formatLspciDump(bdf: string, description: string, bytes: Uint8Array): string {
  const lines = [`${bdf} ${description}`];
  for (let offset = 0; offset < bytes.length; offset += BYTES_PER_LINE) {
    const label = offset.toString(16).padStart(offset < NARROW_OFFSET_END ? 2 : 3, '0');
    const row = Array.from(bytes.subarray(offset, offset + BYTES_PER_LINE), (b) =>
      b.toString(16).padStart(2, '0'),
    );
    lines.push(`${label}: ${row.join(' ')}`);
  }
  return `${lines.join('\n')}\n\n`;
}

/** Plain hex: 16 bytes per line, offsets as 3 hex digits. */
export function formatHexDump(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += BYTES_PER_LINE) {
    const row = Array.from(bytes.subarray(offset, offset + BYTES_PER_LINE), (b) =>
      b.toString(16).padStart(2, '0'),
    );
    lines.push(`${offset.toString(16).padStart(3, '0')}: ${row.join(' ')}`);
  }
  return `${lines.join('\n')}\n`;
}
