import { commonCfg } from '../spec/index.js';
import type { VirtioDevice } from './device.js';
import { RegisterBlock, type Handler, type WideHandler } from './registers.js';

/**
 * Modern common configuration (virtio 1.2 §4.1.4.3, struct virtio_pci_common_cfg and
 * struct virtio_pci_modern_common_cfg in <linux/virtio_pci.h>; admin_queue_index at 60 and
 * admin_queue_num at 62 from virtio 1.3 §4.1.4.3). Same device state as the
 * legacy block. Queue fields address the queue selected by queue_select; for a queue that does
 * not exist they read 0 (queue_size 0 tells the driver so) and ignore writes.
 */
type CommonRegister = keyof typeof commonCfg.registers;
type WideRegister = 'QUEUE_DESC' | 'QUEUE_DRIVER' | 'QUEUE_DEVICE';

const handlers: Record<Exclude<CommonRegister, WideRegister>, Handler<VirtioDevice>> = {
  DEVICE_FEATURE_SELECT: { read: (d) => d.deviceFeatureSelect, write: (d, v) => (d.deviceFeatureSelect = v) },
  DEVICE_FEATURE: { read: (d) => d.deviceFeatures(d.deviceFeatureSelect) },
  DRIVER_FEATURE_SELECT: { read: (d) => d.driverFeatureSelect, write: (d, v) => (d.driverFeatureSelect = v) },
  DRIVER_FEATURE: {
    read: (d) => d.driverFeatures(d.driverFeatureSelect),
    write: (d, v) => d.setDriverFeatures(d.driverFeatureSelect, v),
  },
  MSIX_CONFIG: { read: (d) => d.configVector, write: (d, v) => d.setConfigVector(v) },
  NUM_QUEUES: { read: (d) => d.numQueues },
  DEVICE_STATUS: { read: (d) => d.status, write: (d, v) => d.writeStatus(v, 'modern') },
  CONFIG_GENERATION: { read: (d) => d.generation },
  QUEUE_SELECT: { read: (d) => d.queueSelect, write: (d, v) => d.selectQueue(v) },
  QUEUE_SIZE: { read: (d) => d.queueSize(), write: (d, v) => void d.setQueueSize(v) },
  QUEUE_MSIX_VECTOR: { read: (d) => d.queueVector(), write: (d, v) => d.setQueueVector(v) },
  QUEUE_ENABLE: { read: (d) => d.queueEnabled(), write: (d, v) => d.enableQueue(v) },
  QUEUE_NOTIFY_OFF: { read: (d) => d.queueNotifyOff() },
  QUEUE_NOTIFY_DATA: { read: () => 0 },
  QUEUE_RESET: { read: () => 0, write: () => undefined },
  ADMIN_QUEUE_INDEX: { read: (d) => d.adminQueueIndex },
  ADMIN_QUEUE_NUM: { read: (d) => d.model.adminQueues },
};

const wideHandlers: Record<WideRegister, WideHandler<VirtioDevice>> = {
  QUEUE_DESC: {
    read: (d, h) => d.queueAddress('desc', h),
    write: (d, h, v) => d.setQueueAddress('desc', h, v),
  },
  QUEUE_DRIVER: {
    read: (d, h) => d.queueAddress('driver', h),
    write: (d, h, v) => d.setQueueAddress('driver', h, v),
  },
  QUEUE_DEVICE: {
    read: (d, h) => d.queueAddress('device', h),
    write: (d, h, v) => d.setQueueAddress('device', h, v),
  },
};

export const commonCfgBlock = new RegisterBlock(
  'common cfg',
  commonCfg.size ?? 0,
  commonCfg.registers,
  handlers,
  wideHandlers,
);
