/**
 * A real QEMU as the qtest oracle (bench/lib/qemu.ts starts it as libqtest does), wrapped in the
 * test client. A missing QEMU is an error, not a skip: this is an oracle (Debian: `apt-get
 * install -y qemu-system-x86`).
 */
import { startQemuQtest as startQemu } from '../../../bench/lib/qemu.js';
import { QtestClient } from './client.js';

export interface QemuQtest {
  client: QtestClient;
  accel: 'qtest' | 'tcg';
  version: string;
  stop(): Promise<void>;
}

export async function startQemuQtest(devices: readonly string[]): Promise<QemuQtest> {
  const qemu = await startQemu(devices);
  return {
    client: QtestClient.wrap(qemu.socket),
    accel: qemu.accel,
    version: qemu.version,
    stop: () => qemu.stop(),
  };
}
