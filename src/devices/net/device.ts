/**
 * virtio-net back-end (virtio 1.2 §5.1, Network Device).
 *
 * Queues (§5.1.2): receiveqN = 2N, transmitqN = 2N + 1 for N < max_virtqueue_pairs (1 without
 * VIRTIO_NET_F_MQ), then the controlq with VIRTIO_NET_F_CTRL_VQ.
 *
 * Transmit (§5.1.6.2): each chain's readable bytes are the header (10 or 12 bytes, see
 * header.ts) followed by one frame. The frame, header stripped, goes to the capture ring (with
 * the header's checksum and GSO fields beside it) and to the switch the function is on. A chain
 * shorter than the header is a broken request (as QEMU: DEVICE_NEEDS_RESET).
 *
 * Receive (§5.1.6.3, §5.1.6.4): a frame from the switch or injected by the host passes the
 * receive filter, then fills one chain (or, with VIRTIO_NET_F_MRG_RXBUF, as many as it needs,
 * num_buffers saying how many; every buffer but the last filled completely). vmmr decision: a
 * frame that finds no receive buffer waits, in order, in a queue of NET_RX_PENDING_FRAMES frames
 * per function and is delivered when the driver adds buffers; beyond that it is dropped and
 * counted. A frame too large for a buffer without MRG_RXBUF is dropped and counted (the buffer
 * stays with the driver). Header fields of an injected frame are passed as given; for a frame
 * from the switch, a partial checksum is completed when the receiver did not negotiate
 * VIRTIO_NET_F_GUEST_CSUM (§5.1.6.4.1: flags must then be 0), and a GSO frame the receiver cannot
 * take is dropped.
 *
 * Control queue (§5.1.6.5): class, command, data; ack OK or ERR. Commands whose feature was not
 * negotiated, or whose data has the wrong length, get ERR.
 *
 * Link down (vmmr decision, as QEMU's link_down): transmitted frames are still taken and captured
 * but not switched; received frames are dropped and counted.
 */
import {
  datapath,
  deviceConfigs,
  ethernet,
  features,
  virtioNetCtrl,
  virtioNetHdr,
} from '../../spec/index.js';
import { VirtqueueError, type DescriptorChain } from '../../virtqueue/index.js';
import { hasFeature, type DeviceBackend, type DeviceContext, type NetDropReason } from '../context.js';
import { reportBroken, serveQueue, signalUsed } from '../serve.js';
import { CaptureRing } from './capture.js';
import { RxFilter, type FilterState } from './filter.js';
import {
  completeChecksum,
  decodeHeader,
  EMPTY_HEADER,
  encodeHeader,
  netHeaderSize,
  type NetHeader,
} from './header.js';
import { macKey, macString, type DeliveryResult, type NetSwitch, type SwitchPort } from './switch.js';
import { isVirtqueueError } from '../../virtqueue/index.js';

const NETF = features.byType.net.constants;
const CFG = deviceConfigs.net.registers;
const S = deviceConfigs.net.constants;
const K = virtioNetCtrl.constants;
const HF = virtioNetHdr.constants;
const E = ethernet.constants;
const D = datapath.constants;

export interface NetOptions {
  /** Port name on a switch (the function's BDF). */
  name: string;
  captureFrames?: number;
  captureBytes?: number;
  rxPendingFrames?: number;
  /** Microseconds since the epoch (capture timestamps). */
  clock?: () => number;
}

export interface NetStats {
  txFrames: number;
  txBytes: number;
  /** Transmitted while the link was down (captured, not switched). */
  txDropped: number;
  rxFrames: number;
  rxBytes: number;
  rxDropped: Record<NetDropReason, number>;
}

export interface NetState {
  mac: string;
  linkUp: boolean;
  announce: boolean;
  headerSize: number;
  activePairs: number;
  guestOffloads: number;
  filter: FilterState;
  pendingRx: number;
  capture: { frames: number; total: number };
  stats: NetStats;
  switch: string | null;
}

interface PendingFrame {
  frame: Uint8Array;
  header: NetHeader;
}

function defaultClock(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

function zeroDrops(): Record<NetDropReason, number> {
  return { filtered: 0, 'no-buffers': 0, 'too-big': 0, gso: 0, 'link-down': 0, runt: 0 };
}

function le16(data: Uint8Array, at: number): number {
  return data[at]! | (data[at + 1]! << 8);
}

function le32(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0;
}

export class NetDevice implements DeviceBackend, SwitchPort {
  readonly type = 'net' as const;
  readonly portName: string;
  private captureRing: CaptureRing | undefined;
  private filterState: RxFilter | undefined;
  private pending: PendingFrame[] | undefined;
  private attached: NetSwitch | undefined;
  private activePairs = 1;
  private guestOffloads = 0;
  private readonly clock: () => number;
  readonly stats: NetStats = {
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: zeroDrops(),
  };

  constructor(
    private readonly ctx: DeviceContext,
    private readonly options: NetOptions,
  ) {
    this.portName = options.name;
    this.clock = options.clock ?? defaultClock;
  }

  // ---- features and queue layout ---------------------------------------------------------

  private has(bit: number): boolean {
    return hasFeature(this.ctx.features, bit);
  }

  get headerSize(): number {
    return netHeaderSize(this.ctx.features, this.ctx.legacy);
  }

  /** max_virtqueue_pairs with VIRTIO_NET_F_MQ, else 1 (§5.1.5). */
  get maxPairs(): number {
    return this.has(NETF.MQ.value) ? Math.max(1, this.ctx.readConfig(CFG.MAX_VIRTQUEUE_PAIRS.offset, 2)) : 1;
  }

  /** The control queue's index, or -1 without VIRTIO_NET_F_CTRL_VQ. */
  get controlQueue(): number {
    return this.has(NETF.CTRL_VQ.value) ? 2 * this.maxPairs : -1;
  }

  get mac(): Uint8Array {
    const m = new Uint8Array(E.ALEN.value);
    for (let i = 0; i < m.length; i++) m[i] = this.ctx.readConfig(CFG.MAC.offset + i, 1);
    return m;
  }

  get linkUp(): boolean {
    return (this.ctx.readConfig(CFG.STATUS.offset, 2) & S.S_LINK_UP.value) !== 0;
  }

  get capture(): CaptureRing {
    return (this.captureRing ??= new CaptureRing(
      this.options.captureFrames ?? D.NET_CAPTURE_FRAMES.value,
      this.options.captureBytes ?? D.NET_CAPTURE_BYTES.value,
    ));
  }

  private get filter(): RxFilter {
    return (this.filterState ??= new RxFilter());
  }

  notify(queue: number): void {
    if (queue === this.controlQueue) serveQueue(this.ctx, queue, (c) => this.control(c));
    else if (queue < 2 * this.maxPairs) {
      if (queue % 2 === 1) {
        // One timestamp per notification: its frames are taken from the ring together.
        const time = this.clock();
        serveQueue(this.ctx, queue, (c) => this.transmit(c, queue, time));
      } else this.flushPending();
    }
  }

  reset(): void {
    this.filterState?.reset();
    this.pending = undefined;
    this.activePairs = 1;
    this.guestOffloads = 0;
  }

  // ---- transmit --------------------------------------------------------------------------

  private transmit(chain: DescriptorChain, queue: number, time: number): number {
    const hs = this.headerSize;
    if (chain.readable < hs) {
      throw new VirtqueueError(
        queue,
        chain.head,
        'request',
        `transmit chain holds ${chain.readable} device-readable bytes, less than the ${hs}-byte virtio-net header`,
      );
    }
    const length = chain.readable - hs;
    const capture = this.capture;
    // Header and frame in one copy, straight into the capture ring.
    const at = capture.reserve(hs, length, time, queue);
    const kept = capture.lastKept;
    const arena = capture.buffer;
    chain.copyTo(0, arena, at, hs + kept);
    const header = decodeHeader(arena, at);
    capture.setHeader(header);
    this.stats.txFrames++;
    this.stats.txBytes += length;
    if (this.ctx.listening) this.ctx.emit({ type: 'net-tx', queue, length, seq: capture.total - 1 });
    if (!this.linkUp) this.stats.txDropped++;
    else if (this.attached) {
      const frame =
        kept === length ? arena.subarray(at + hs, at + hs + length) : chain.gather(hs, length).slice();
      this.attached.forward(this, frame, header);
    }
    return 0;
  }

  // ---- receive ---------------------------------------------------------------------------

  private drop(reason: NetDropReason, length: number): 'dropped' {
    this.stats.rxDropped[reason]++;
    if (this.ctx.listening) this.ctx.emit({ type: 'net-rx-drop', length, reason });
    return 'dropped';
  }

  /** A frame from the switch: offloads the receiver did not negotiate are resolved here. */
  receive(frame: Uint8Array, header: NetHeader | undefined): DeliveryResult {
    let h = header ?? EMPTY_HEADER;
    let data = frame;
    if (h.gsoType !== HF.GSO_NONE.value && !this.takesGso(h.gsoType)) return this.drop('gso', frame.length);
    if (!this.has(NETF.GUEST_CSUM.value) && h.flags !== 0) {
      if (h.flags & HF.F_NEEDS_CSUM.value) {
        data = frame.slice();
        completeChecksum(data, h.csumStart, h.csumOffset);
      }
      h = { ...h, flags: 0 };
    }
    return this.deliver(data, h);
  }

  private takesGso(gsoType: number): boolean {
    const base = gsoType & ~HF.GSO_ECN.value;
    if ((gsoType & HF.GSO_ECN.value) !== 0 && !this.has(NETF.GUEST_ECN.value)) return false;
    if (base === HF.GSO_TCPV4.value) return this.has(NETF.GUEST_TSO4.value);
    if (base === HF.GSO_TCPV6.value) return this.has(NETF.GUEST_TSO6.value);
    if (base === HF.GSO_UDP.value) return this.has(NETF.GUEST_UFO.value);
    if (base === HF.GSO_UDP_L4.value)
      return this.has(NETF.GUEST_USO4.value) || this.has(NETF.GUEST_USO6.value);
    return false;
  }

  /** A frame injected by the host: header fields are passed to the driver as given. */
  inject(frame: Uint8Array, header: NetHeader | undefined = undefined): DeliveryResult {
    return this.deliver(frame, header ?? EMPTY_HEADER);
  }

  private deliver(frame: Uint8Array, header: NetHeader): DeliveryResult {
    if (frame.length < E.HLEN.value) return this.drop('runt', frame.length);
    if (!this.linkUp) return this.drop('link-down', frame.length);
    if (
      this.filterState &&
      !this.filterState.accepts(frame, macKey(this.mac, 0), this.has(NETF.CTRL_VLAN.value))
    ) {
      return this.drop('filtered', frame.length);
    }
    if (this.pending && this.pending.length > 0) {
      const r = this.enqueue(frame, header);
      this.flushPending();
      return r;
    }
    const placed = this.place(frame, header);
    if (placed === 'no-buffers') return this.enqueue(frame, header);
    if (placed !== 'delivered') return this.drop(placed, frame.length);
    return 'delivered';
  }

  private enqueue(frame: Uint8Array, header: NetHeader): DeliveryResult {
    const limit = this.options.rxPendingFrames ?? D.NET_RX_PENDING_FRAMES.value;
    const pending = (this.pending ??= []);
    if (pending.length >= limit) return this.drop('no-buffers', frame.length);
    pending.push({ frame: frame.slice(), header: { ...header } });
    return 'queued';
  }

  private flushPending(): void {
    const pending = this.pending;
    while (pending && pending.length > 0) {
      const { frame, header } = pending[0]!;
      const placed = this.place(frame, header);
      if (placed === 'no-buffers') return;
      pending.shift();
      if (placed !== 'delivered') this.drop(placed, frame.length);
    }
  }

  /** The receive queue a frame goes to: receiveq0, or by flow among the active pairs (§5.1.6.5.6). */
  private receiveQueueFor(frame: Uint8Array): number {
    if (this.activePairs <= 1) return 0;
    let h = 0;
    for (let i = 0; i < 2 * E.ALEN.value; i++) h = (h * 31 + frame[i]!) >>> 0;
    return 2 * (h % this.activePairs);
  }

  private place(frame: Uint8Array, header: NetHeader): 'delivered' | 'no-buffers' | 'too-big' {
    const index = this.receiveQueueFor(frame);
    const queue = this.ctx.queue(index);
    if (!queue || queue.broken) return 'no-buffers';
    const hs = this.headerSize;
    const total = hs + frame.length;
    const mergeable = this.has(NETF.MRG_RXBUF.value);
    const chains: DescriptorChain[] = [];
    try {
      let room = 0;
      while (room < total) {
        const chain = queue.pop();
        if (!chain) {
          queue.unpop(chains);
          return 'no-buffers';
        }
        if (chains.length === 0 && chain.writable < hs) {
          throw new VirtqueueError(
            index,
            chain.head,
            'request',
            `receive chain of ${chain.writable} device-writable bytes cannot hold the ${hs}-byte virtio-net header`,
          );
        }
        chains.push(chain);
        room += chain.writable;
        if (!mergeable && room < total) {
          queue.unpop(chains);
          return 'too-big';
        }
      }
      const lengths: number[] = [];
      let at = 0;
      chains.forEach((chain, k) => {
        let offset = 0;
        if (k === 0) {
          const bytes = encodeHeader(header, hs, chains.length);
          chain.scatter(0, bytes, 0, hs);
          offset = hs;
        }
        const n = Math.min(chain.writable - offset, frame.length - at);
        chain.scatter(offset, frame, at, n);
        at += n;
        lengths.push(offset + n);
      });
      queue.pushAll(chains, lengths);
    } catch (e) {
      if (!isVirtqueueError(e)) throw e;
      reportBroken(this.ctx, queue, e);
      return 'no-buffers';
    }
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.length;
    if (this.ctx.listening)
      this.ctx.emit({ type: 'net-rx', queue: index, length: frame.length, buffers: chains.length });
    signalUsed(this.ctx, queue);
    return 'delivered';
  }

  // ---- control queue (§5.1.6.5) ----------------------------------------------------------

  private control(chain: DescriptorChain): number {
    if (chain.readable < K.HDR_SIZE.value || chain.writable < K.ACK_SIZE.value) {
      throw new VirtqueueError(
        chain.queue,
        chain.head,
        'request',
        `control command needs ${K.HDR_SIZE.value} device-readable bytes (class, command) and a device-writable ack byte; ` +
          `the chain has ${chain.readable} and ${chain.writable}`,
      );
    }
    const cls = chain.readUint(0, 1);
    const cmd = chain.readUint(1, 1);
    const data = chain.gather(K.HDR_SIZE.value).slice();
    const ack = this.command(cls, cmd, data) ? K.OK.value : K.ERR.value;
    chain.writeUint(0, 1, ack);
    if (this.ctx.listening) this.ctx.emit({ type: 'net-ctrl', class: cls, command: cmd, ack });
    return K.ACK_SIZE.value;
  }

  private command(cls: number, cmd: number, data: Uint8Array): boolean {
    switch (cls) {
      case K.CLASS_RX.value:
        return this.rxModeCommand(cmd, data);
      case K.CLASS_MAC.value:
        return this.macCommand(cmd, data);
      case K.CLASS_VLAN.value: {
        if (!this.has(NETF.CTRL_VLAN.value) || data.length !== 2) return false;
        const vid = le16(data, 0);
        if (vid >= K.VLAN_ID_LIMIT.value) return false;
        if (cmd === K.VLAN_ADD.value) this.filter.vlans.add(vid);
        else if (cmd === K.VLAN_DEL.value) this.filter.vlans.delete(vid);
        else return false;
        return true;
      }
      case K.CLASS_ANNOUNCE.value: {
        if (cmd !== K.ANNOUNCE_ACK.value || !this.has(NETF.GUEST_ANNOUNCE.value) || data.length !== 0)
          return false;
        this.setStatusBit(S.S_ANNOUNCE.value, false);
        return true;
      }
      case K.CLASS_MQ.value: {
        if (cmd !== K.MQ_VQ_PAIRS_SET.value || !this.has(NETF.MQ.value) || data.length !== 2) return false;
        const pairs = le16(data, 0);
        if (pairs < K.MQ_VQ_PAIRS_MIN.value || pairs > this.maxPairs) return false;
        this.activePairs = pairs;
        return true;
      }
      case K.CLASS_GUEST_OFFLOADS.value: {
        if (
          cmd !== K.GUEST_OFFLOADS_SET.value ||
          !this.has(NETF.CTRL_GUEST_OFFLOADS.value) ||
          data.length !== 8
        )
          return false;
        this.guestOffloads = le32(data, 0) + le32(data, 4) * 2 ** 32;
        return true;
      }
      default:
        return false;
    }
  }

  /** VIRTIO_NET_CTRL_RX (§5.1.6.5.1): one on/off byte per mode. */
  private rxModeCommand(cmd: number, data: Uint8Array): boolean {
    const basic = cmd === K.RX_PROMISC.value || cmd === K.RX_ALLMULTI.value;
    const extra = cmd >= K.RX_ALLUNI.value && cmd <= K.RX_NOBCAST.value;
    if (!((basic && this.has(NETF.CTRL_RX.value)) || (extra && this.has(NETF.CTRL_RX_EXTRA.value))))
      return false;
    if (data.length !== 1 || data[0]! > 1) return false;
    const on = data[0] === 1;
    const m = this.filter.modes;
    if (cmd === K.RX_PROMISC.value) m.promisc = on;
    else if (cmd === K.RX_ALLMULTI.value) m.allmulti = on;
    else if (cmd === K.RX_ALLUNI.value) m.alluni = on;
    else if (cmd === K.RX_NOMULTI.value) m.nomulti = on;
    else if (cmd === K.RX_NOUNI.value) m.nouni = on;
    else m.nobcast = on;
    return true;
  }

  /** VIRTIO_NET_CTRL_MAC (§5.1.6.5.2): MAC_ADDR_SET, or MAC_TABLE_SET with two counted tables. */
  private macCommand(cmd: number, data: Uint8Array): boolean {
    const alen = E.ALEN.value;
    if (cmd === K.MAC_ADDR_SET.value) {
      if (!this.has(NETF.CTRL_MAC_ADDR.value) || data.length !== alen) return false;
      this.ctx.setConfig(CFG.MAC.offset, data);
      return true;
    }
    if (cmd !== K.MAC_TABLE_SET.value || !this.has(NETF.CTRL_RX.value)) return false;
    const tables: number[][] = [];
    let at = 0;
    for (let t = 0; t < 2; t++) {
      if (at + 4 > data.length) return false;
      const n = le32(data, at);
      at += 4;
      if (n > (data.length - at) / alen) return false;
      const macs: number[] = [];
      for (let i = 0; i < n; i++) macs.push(macKey(data, at + alen * i));
      at += alen * n;
      tables.push(macs);
    }
    if (at !== data.length) return false;
    this.filter.setTable('unicast', tables[0]!);
    this.filter.setTable('multicast', tables[1]!);
    return true;
  }

  // ---- device side -----------------------------------------------------------------------

  private setStatusBit(bit: number, on: boolean): boolean {
    const status = this.ctx.readConfig(CFG.STATUS.offset, 2);
    const next = on ? status | bit : status & ~bit;
    if (next === status) return false;
    this.ctx.setConfig(CFG.STATUS.offset, [next & 0xff, next >>> 8]);
    return true;
  }

  /** Link up or down (config `status`, VIRTIO_NET_S_LINK_UP); a change raises a config change. */
  setLink(up: boolean): void {
    if (this.setStatusBit(S.S_LINK_UP.value, up)) this.ctx.configChanged();
  }

  /** A new MAC from the device side (config `mac`); raises a config change. */
  setMac(mac: ArrayLike<number>): void {
    if (mac.length !== E.ALEN.value)
      throw new RangeError(`a MAC address has ${E.ALEN.value} bytes, got ${mac.length}`);
    this.ctx.setConfig(CFG.MAC.offset, mac);
    this.ctx.configChanged();
  }

  /** Asks the driver to announce itself (VIRTIO_NET_S_ANNOUNCE); false without GUEST_ANNOUNCE. */
  announce(): boolean {
    if (!this.has(NETF.GUEST_ANNOUNCE.value)) return false;
    if (this.setStatusBit(S.S_ANNOUNCE.value, true)) this.ctx.configChanged();
    return true;
  }

  attach(sw: NetSwitch | undefined): void {
    this.attached?.detach(this);
    this.attached = sw;
    sw?.attach(this);
  }

  state(): NetState {
    return {
      mac: macString(macKey(this.mac, 0)),
      linkUp: this.linkUp,
      announce: (this.ctx.readConfig(CFG.STATUS.offset, 2) & S.S_ANNOUNCE.value) !== 0,
      headerSize: this.headerSize,
      activePairs: this.activePairs,
      guestOffloads: this.guestOffloads,
      filter: this.filterState?.state() ?? new RxFilter().state(),
      pendingRx: this.pending?.length ?? 0,
      capture: { frames: this.captureRing?.size ?? 0, total: this.captureRing?.total ?? 0 },
      stats: { ...this.stats, rxDropped: { ...this.stats.rxDropped } },
      switch: this.attached?.name ?? null,
    };
  }
}
