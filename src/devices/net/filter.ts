/**
 * The receive filter a net driver programs through the control queue (virtio 1.2 §5.1.6.5.1
 * Packet Receive Filtering, §5.1.6.5.2 Setting MAC Address Filtering, §5.1.6.5.3 VLAN
 * Filtering) and the decision it makes for each incoming frame.
 *
 * vmmr decision, as QEMU: the filter starts promiscuous, so a driver without VIRTIO_NET_F_CTRL_RX
 * (which cannot change it) receives every frame the switch hands it; Linux turns promiscuous
 * mode off through the control queue as soon as it can.
 */
import { ethernet, virtioNetCtrl } from '../../spec/index.js';
import { macKey, macString } from './switch.js';

const E = ethernet.constants;
const BROADCAST = 2 ** 48 - 1;

export interface RxModes {
  promisc: boolean;
  allmulti: boolean;
  alluni: boolean;
  nomulti: boolean;
  nouni: boolean;
  nobcast: boolean;
}

export interface FilterState extends RxModes {
  unicast: string[];
  multicast: string[];
  /** The unicast / multicast table was longer than MAC_TABLE_MAX_ENTRIES: that class is accepted whole. */
  unicastOverflow: boolean;
  multicastOverflow: boolean;
  vlans: number[];
}

/** The receive modes after a device reset: promiscuous, as QEMU hw/net/virtio-net.c virtio_net_reset leaves them. */
function defaultModes(): RxModes {
  return { promisc: true, allmulti: false, alluni: false, nomulti: false, nouni: false, nobcast: false };
}

export class RxFilter {
  modes: RxModes = defaultModes();
  unicast = new Set<number>();
  multicast = new Set<number>();
  unicastOverflow = false;
  multicastOverflow = false;
  vlans = new Set<number>();

  reset(): void {
    this.modes = defaultModes();
    this.unicast.clear();
    this.multicast.clear();
    this.unicastOverflow = false;
    this.multicastOverflow = false;
    this.vlans.clear();
  }

  /** Sets one table (MAC_TABLE_SET); more than the limit turns on acceptance of the whole class. */
  setTable(kind: 'unicast' | 'multicast', macs: number[]): void {
    const limit = virtioNetCtrl.constants.MAC_TABLE_MAX_ENTRIES.value;
    const set = kind === 'unicast' ? this.unicast : this.multicast;
    set.clear();
    const overflow = macs.length > limit;
    if (!overflow) for (const m of macs) set.add(m);
    if (kind === 'unicast') this.unicastOverflow = overflow;
    else this.multicastOverflow = overflow;
  }

  /**
   * Whether a frame to this function passes (QEMU hw/net/virtio-net.c receive_filter has the same
   * order): promiscuous first, then the VLAN table (with CTRL_VLAN), then by destination class.
   */
  accepts(frame: Uint8Array, ownMac: number, vlanFiltering: boolean): boolean {
    if (this.modes.promisc) return true;
    if (vlanFiltering && frame.length >= E.VLAN_TCI_OFFSET.value + 2) {
      const type = (frame[E.TYPE_OFFSET.value]! << 8) | frame[E.TYPE_OFFSET.value + 1]!;
      if (type === E.P_8021Q.value) {
        const vid =
          ((frame[E.VLAN_TCI_OFFSET.value]! << 8) | frame[E.VLAN_TCI_OFFSET.value + 1]!) &
          E.VLAN_ID_MASK.value;
        if (!this.vlans.has(vid)) return false;
      }
    }
    const dst = macKey(frame, 0);
    if (dst === BROADCAST) return !this.modes.nobcast;
    if (frame[0]! & E.GROUP_BIT.value) {
      if (this.modes.nomulti) return false;
      return this.modes.allmulti || this.multicastOverflow || this.multicast.has(dst);
    }
    if (this.modes.nouni) return false;
    return this.modes.alluni || this.unicastOverflow || dst === ownMac || this.unicast.has(dst);
  }

  state(): FilterState {
    return {
      ...this.modes,
      unicast: [...this.unicast].map(macString),
      multicast: [...this.multicast].map(macString),
      unicastOverflow: this.unicastOverflow,
      multicastOverflow: this.multicastOverflow,
      vlans: [...this.vlans].sort((a, b) => a - b),
    };
  }
}
