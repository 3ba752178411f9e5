/**
 * What a simulated driver needs from the function it drives, at the data path level: its DMA
 * memory, a way to program a queue (legacy QUEUE_PFN, or queue_desc/driver/device and
 * queue_enable) and a way to notify it. The register-level DriverSim provides it for real
 * functions; `standaloneTransport` provides it over a StandaloneContext and a device back-end.
 */
import type { DeviceBackend } from '../devices/context.js';
import type { StandaloneContext } from '../devices/standalone.js';
import type { DmaSpace } from '../dma/space.js';
import type { RingAddresses, RingFeatures, RingFormat } from '../virtqueue/index.js';

export interface DriverTransport {
  readonly dma: DmaSpace;
  readonly format: RingFormat;
  readonly features: RingFeatures;
  setupQueue(index: number, size: number, addresses: RingAddresses): void;
  kick(index: number): void;
}

export function standaloneTransport(
  ctx: StandaloneContext,
  device: DeviceBackend,
  format: RingFormat,
  features: RingFeatures,
): DriverTransport {
  return {
    dma: ctx.dma,
    format,
    features,
    setupQueue(index, size, addresses) {
      ctx.setQueue({ index, size, format, addresses, features });
    },
    kick(index) {
      device.notify(index);
    },
  };
}
