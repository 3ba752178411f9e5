/**
 * Traditional virtio-balloon back-end (virtio 1.2 §5.5, Traditional Memory Balloon Device):
 * inflateq 0, deflateq 1, statsq 2 (VIRTIO_BALLOON_F_STATS_VQ).
 *
 * Inflate / deflate chains carry le32 page frame numbers (4096-byte pages, PFN_SHIFT 12); the
 * device records which pages the driver gave up (at most BALLOON_PAGE_LIST_ENTRIES are
 * remembered, the rest counted) and returns each chain with used length 0. The host sets the
 * target (`num_pages`, a configuration change, §5.5.6); the driver reports `actual`.
 *
 * Stats (§5.5.6.3): the driver keeps one buffer of struct virtio_balloon_stat { le16 tag; le64
 * val; } entries in statsq; the device reads it, keeps the chain, and returns it when it wants
 * fresh figures (`requestStats`), upon which the driver refills and posts it again.
 */
import { datapath, deviceConfigs, features } from '../spec/index.js';
import type { DescriptorChain } from '../virtqueue/index.js';
import { hasFeature, type DeviceBackend, type DeviceContext } from './context.js';
import { HOLD, serveQueue, signalUsed } from './serve.js';

const C = deviceConfigs.balloon.constants;
const CFG = deviceConfigs.balloon.registers;
const INFLATE = 0;
const DEFLATE = 1;
const STATS = 2;
const PFN_BYTES = 4;

/** Stat tags by number (VIRTIO_BALLOON_S_*). */
const STAT_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(
    (
      [
        'S_SWAP_IN',
        'S_SWAP_OUT',
        'S_MAJFLT',
        'S_MINFLT',
        'S_MEMFREE',
        'S_MEMTOT',
        'S_AVAIL',
        'S_CACHES',
        'S_HTLB_PGALLOC',
        'S_HTLB_PGFAIL',
      ] as const
    ).map((n) => [C[n].value, n.slice(2).toLowerCase()]),
  ),
);

export class BalloonDevice implements DeviceBackend {
  readonly type = 'balloon' as const;
  private pages: Set<number> | undefined;
  private statsChain: DescriptorChain | undefined;
  /** Pages inflated beyond what is remembered. */
  unrecorded = 0;
  inflated = 0;
  deflated = 0;
  stats: Record<string, number> = {};

  constructor(private readonly ctx: DeviceContext) {}

  notify(queue: number): void {
    if (queue === INFLATE || queue === DEFLATE) serveQueue(this.ctx, queue, (c) => this.takePages(c, queue));
    else if (
      queue === STATS &&
      hasFeature(this.ctx.features, features.byType.balloon.constants.STATS_VQ.value)
    ) {
      serveQueue(this.ctx, STATS, (c) => this.statsBuffer(c));
    }
  }

  reset(): void {
    this.statsChain = undefined;
  }

  private takePages(chain: DescriptorChain, queue: number): number {
    const count = Math.floor(chain.readable / PFN_BYTES);
    const pages = (this.pages ??= new Set());
    const limit = datapath.constants.BALLOON_PAGE_LIST_ENTRIES.value;
    for (let k = 0; k < count; k++) {
      const pfn = chain.readUint(k * PFN_BYTES, 4);
      if (queue === INFLATE) {
        this.inflated++;
        if (pages.has(pfn)) continue;
        if (pages.size < limit) pages.add(pfn);
        else this.unrecorded++;
      } else {
        this.deflated++;
        pages.delete(pfn);
      }
    }
    if (this.ctx.listening)
      this.ctx.emit({ type: 'balloon', queue: queue === INFLATE ? 'inflate' : 'deflate', pages: count });
    return 0;
  }

  private statsBuffer(chain: DescriptorChain): number {
    const size = C.STAT_SIZE.value;
    const stats: Record<string, number> = {};
    for (let at = 0; at + size <= chain.readable; at += size) {
      const tag = chain.readUint(at, 2);
      const lo = chain.readUint(at + 2, 4);
      const hi = chain.readUint(at + 6, 4);
      stats[STAT_NAMES[tag] ?? `tag${tag}`] = hi * 2 ** 32 + lo;
    }
    this.stats = stats;
    if (this.ctx.listening) this.ctx.emit({ type: 'balloon-stats', stats });
    this.statsChain = chain;
    return HOLD;
  }

  /** Returns the held stats buffer so the driver refills it; false when none is held. */
  requestStats(): boolean {
    const chain = this.statsChain;
    const queue = this.ctx.queue(STATS);
    if (!chain || !queue) return false;
    this.statsChain = undefined;
    queue.push(chain, 0);
    signalUsed(this.ctx, queue);
    return true;
  }

  /** The host's target size in pages (`num_pages`), then a configuration change. */
  setTarget(pages: number): void {
    this.ctx.setConfig(CFG.NUM_PAGES.offset, [
      pages & 0xff,
      (pages >>> 8) & 0xff,
      (pages >>> 16) & 0xff,
      (pages >>> 24) & 0xff,
    ]);
    this.ctx.configChanged();
  }

  get target(): number {
    return this.ctx.readConfig(CFG.NUM_PAGES.offset, 4);
  }

  /** What the driver says it has given up (`actual`). */
  get actual(): number {
    return this.ctx.readConfig(CFG.ACTUAL.offset, 4);
  }

  /** Page frame numbers currently in the balloon (as remembered), ascending. */
  pageList(): number[] {
    return [...(this.pages ?? [])].sort((a, b) => a - b);
  }
}
