import { legacy } from '../spec/index.js';
import { VmmrError } from '../base/errors.js';
import type { VirtioDevice } from './device.js';
import { featureNamesLo } from './model.js';
import { RegisterBlock, type Handler } from './registers.js';

const QUEUE_SEL_LIMIT = legacy.constants.QUEUE_SEL_LIMIT.value;
/** What QEMU's virtio_ioport_read answers for an offset it has no case for (QUEUE_NOTIFY). */
const NO_REGISTER_VALUE = 0xffff_ffff;

const hex32 = (v: number): string => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

/** Strict: a driver may only accept features the device offers (virtio 1.2 §2.2.1). */
function refuseUnoffered(d: VirtioDevice, value: number): void {
  const unoffered = d.unofferedLegacyFeatures(value);
  if (unoffered === 0) return;
  throw new VmmrError(
    'VMMR_ERR_BAD_VALUE',
    `legacy block register GUEST_FEATURES: ${hex32(value)} accepts features the ${d.model.type} device does not offer` +
      ` (HOST_FEATURES ${hex32(d.deviceFeatures(0))}): ${featureNamesLo(d.model.type, unoffered).join(', ')}`,
    { register: 'GUEST_FEATURES' },
  );
}

/**
 * The legacy virtio PCI register block (virtio 1.2 §4.1.4.10, <linux/virtio_pci.h>
 * VIRTIO_PCI_*): the classic I/O BAR0 header, here carried in the MMR VF's memory BAR.
 *
 *   off width name               access
 *    0    4   HOST_FEATURES      R   device features 31:0
 *    4    4   GUEST_FEATURES     RW  driver features 31:0, masked with HOST_FEATURES (strict: refused)
 *    8    4   QUEUE_PFN          RW  selected queue address >> 12; 0 resets the device (QEMU)
 *   12    2   QUEUE_NUM          R   selected queue size
 *   14    2   QUEUE_SEL          RW  (>= 1024 ignored, QEMU)
 *   16    2   QUEUE_NOTIFY       RW  queue index; reads all-ones (QEMU)
 *   18    1   STATUS             RW  0 resets the device
 *   19    1   ISR                R   read returns and clears
 *   20    2   MSI_CONFIG_VECTOR  RW  only while MSI-X is enabled
 *   22    2   MSI_QUEUE_VECTOR   RW  only while MSI-X is enabled
 *   20|24     device config      any width; starts at 24 with MSI-X enabled, else 20
 */
const handlers: Record<keyof typeof legacy.registers, Handler<VirtioDevice>> = {
  HOST_FEATURES: { read: (d) => d.deviceFeatures(0) },
  GUEST_FEATURES: {
    read: (d) => d.driverFeatures(0),
    write: (d, v, strict) => {
      if (strict) refuseUnoffered(d, v);
      d.setLegacyDriverFeatures(v);
    },
  },
  QUEUE_PFN: { read: (d) => d.queuePfn(), write: (d, v) => d.setQueuePfn(v) },
  QUEUE_NUM: { read: (d) => d.queueSize() },
  QUEUE_SEL: {
    read: (d) => d.queueSelect,
    write: (d, v) => {
      if (v < QUEUE_SEL_LIMIT) d.selectQueue(v);
    },
  },
  QUEUE_NOTIFY: {
    read: () => NO_REGISTER_VALUE,
    write: (d, v) => {
      if (v < d.numQueues) d.notify(v, 'legacy-register');
    },
  },
  STATUS: { read: (d) => d.status, write: (d, v) => d.writeStatus(v, 'legacy') },
  ISR: { read: (d) => d.readIsr() },
  MSI_CONFIG_VECTOR: { read: (d) => d.configVector, write: (d, v) => d.setConfigVector(v) },
  MSI_QUEUE_VECTOR: { read: (d) => d.queueVector(), write: (d, v) => d.setQueueVector(v) },
};

export const LEGACY_CONFIG_OFF_MSIX = legacy.constants.CONFIG_OFF_MSIX.value;
export const LEGACY_CONFIG_OFF_NO_MSIX = legacy.constants.CONFIG_OFF_NO_MSIX.value;

/** The header with MSI-X enabled (24 bytes) and without (20 bytes: offsets 20.. are device config). */
export const legacyHeaderMsix = new RegisterBlock(
  'legacy block',
  LEGACY_CONFIG_OFF_MSIX,
  legacy.registers,
  handlers,
);
export const legacyHeaderNoMsix = new RegisterBlock(
  'legacy block',
  LEGACY_CONFIG_OFF_NO_MSIX,
  legacy.registers,
  handlers,
);
