/**
 * Ring layouts and event arithmetic against <linux/virtio_ring.h>, compiled with gcc: for many
 * queue sizes, vring_size() and the offsets vring_init() gives the avail and used rings,
 * vring_used_event() / vring_avail_event(), and vring_need_event() over a grid of indices.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  availBytes,
  legacyLayout,
  legacyRingBytes,
  needEvent,
  usedBytes,
} from '../../src/virtqueue/index.js';

const SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 32768];
const EVENT_SAMPLES = [0, 1, 2, 3, 100, 0x7fff, 0x8000, 0x8001, 0xfffe, 0xffff];

const PROGRAM = `
#include <stdio.h>
#include <stdint.h>
#include <linux/virtio_ring.h>
int main(void) {
  unsigned sizes[] = { ${SIZES.join(', ')} };
  unsigned ev[] = { ${EVENT_SAMPLES.join(', ')} };
  for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    struct vring vr;
    unsigned n = sizes[k];
    unsigned long base = 0x100000;
    vring_init(&vr, n, (void *)base, 4096);
    printf("layout %u %u %lu %lu %lu %lu\\n", n, vring_size(n, 4096),
      (unsigned long)vr.avail - base, (unsigned long)vr.used - base,
      (unsigned long)&vring_used_event(&vr) - base, (unsigned long)&vring_avail_event(&vr) - base);
  }
  for (unsigned a = 0; a < 10; a++) for (unsigned b = 0; b < 10; b++) for (unsigned c = 0; c < 10; c++)
    printf("event %u %u %u %d\\n", ev[a], ev[b], ev[c], vring_need_event(ev[a], ev[b], ev[c]));
  return 0;
}
`;

let lines: string[][];

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'vmmr-ring-'));
  try {
    writeFileSync(join(dir, 'ring.c'), PROGRAM);
    execFileSync('gcc', [
      '-std=gnu11',
      '-Wall',
      '-Werror',
      '-Wno-int-to-pointer-cast',
      '-o',
      join(dir, 'ring'),
      join(dir, 'ring.c'),
    ]);
    lines = execFileSync(join(dir, 'ring'), { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => l.split(' '));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('split ring layout agrees with <linux/virtio_ring.h>', () => {
  it('vring_size and the vring_init offsets for every size', () => {
    const layouts = lines.filter((l) => l[0] === 'layout');
    expect(layouts).toHaveLength(SIZES.length);
    for (const [, n, size, avail, used, usedEvent, availEvent] of layouts) {
      const q = Number(n);
      const at = legacyLayout(0x100, q);
      const base = 0x100 * 4096;
      expect(legacyRingBytes(q), `vring_size(${q})`).toBe(Number(size));
      expect(at.desc).toBe(base);
      expect(at.driver - base, `avail of ${q}`).toBe(Number(avail));
      expect(at.device - base, `used of ${q}`).toBe(Number(used));
      expect(at.driver + availBytes(q) - 2 - base, `used_event of ${q}`).toBe(Number(usedEvent));
      expect(at.device + usedBytes(q) - 2 - base, `avail_event of ${q}`).toBe(Number(availEvent));
    }
  });

  it('vring_need_event over a grid of 16-bit indices', () => {
    const events = lines.filter((l) => l[0] === 'event');
    expect(events).toHaveLength(1000);
    for (const [, e, n, o, want] of events) {
      expect(needEvent(Number(e), Number(n), Number(o)), `need_event(${e}, ${n}, ${o})`).toBe(want === '1');
    }
  });
});
