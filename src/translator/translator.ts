import type { MmrVf } from '../mmr/vf.js';
import type { ConfigChange, ConfigTemplate } from '../pci/config-space.js';
import type { FunctionTemplate } from '../virtio/pci-function.js';
import {
  buildGuestTemplate,
  GuestView,
  hideModernCapabilities,
  type HiddenCapabilities,
} from './guest-view.js';

/**
 * The I/O-to-MMIO translator of a machine: owns the guest view of every VF a guest has looked
 * at (opened on first use), and the guest config templates they share — one per VF template
 * and VF BAR size, since the VF BAR size follows the PF's System Page Size. A view opens with
 * the `legacyOnly` option its VF's topology entry gives (`legacyOnlyAtStart`).
 */
export class Translator {
  private readonly views = new Map<MmrVf, GuestView>();
  private readonly templates = new Map<FunctionTemplate, Map<number, ConfigTemplate>>();
  /** Hears every view that opens, once it is open (the machine's firmware places its BARs). */
  opened: ((view: GuestView) => void) | undefined;

  private readonly hidden = new Map<FunctionTemplate, HiddenCapabilities>();

  constructor(private readonly legacyOnlyAtStart: (vf: MmrVf) => boolean = () => false) {}

  private hiddenFor(vf: MmrVf): HiddenCapabilities {
    let hidden = this.hidden.get(vf.template);
    if (!hidden) {
      hidden = hideModernCapabilities(vf.template.config);
      this.hidden.set(vf.template, hidden);
    }
    return hidden;
  }

  private templateFor(vf: MmrVf): ConfigTemplate {
    let bySize = this.templates.get(vf.template);
    if (!bySize) {
      bySize = new Map();
      this.templates.set(vf.template, bySize);
    }
    const size = vf.barSize();
    let template = bySize.get(size);
    if (!template) {
      template = buildGuestTemplate(vf);
      bySize.set(size, template);
    }
    return template;
  }

  /** The guest view of a live VF, opened on first use. */
  view(vf: MmrVf): GuestView {
    let view = this.views.get(vf);
    if (!view) {
      view = new GuestView(vf, this.templateFor(vf), this.hiddenFor(vf), this.legacyOnlyAtStart(vf));
      vf.observer = view;
      this.views.set(vf, view);
      this.opened?.(view);
    }
    return view;
  }

  existing(vf: MmrVf): GuestView | undefined {
    return this.views.get(vf);
  }

  /** The views open now. */
  openViews(): IterableIterator<GuestView> {
    return this.views.values();
  }

  /** VFs went away (VF Enable cleared, PF reset or removed): their views close, asserted pins drop. */
  release(vfs: Iterable<MmrVf>): void {
    for (const vf of vfs) {
      const view = this.views.get(vf);
      if (!view) continue;
      view.release();
      vf.observer = undefined;
      this.views.delete(vf);
    }
  }

  /** The `legacyOnly` option of a VF's view when it differs from the topology's, for a snapshot. */
  legacyOnlyOf(vf: MmrVf): boolean | undefined {
    const view = this.views.get(vf);
    return view && view.legacyOnly !== this.legacyOnlyAtStart(vf) ? view.legacyOnly : undefined;
  }

  /** The guest config changes of a VF's view, when it has any. */
  stateOf(vf: MmrVf): ConfigChange[] | undefined {
    const view = this.views.get(vf);
    return view && view.config.overlaySize > 0 ? view.config.changes() : undefined;
  }

  restore(vf: MmrVf, changes: readonly ConfigChange[], legacyOnly?: boolean): void {
    const view = this.view(vf);
    if (legacyOnly !== undefined) view.legacyOnly = legacyOnly;
    view.config.restoreChanges(changes);
    view.updateIntx();
  }
}
