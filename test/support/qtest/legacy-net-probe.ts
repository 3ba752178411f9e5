/**
 * A qtest script written the way one is written for QEMU's transitional virtio-net-pci
 * (-device virtio-net-pci,disable-modern=on), with libqos' habits (tests/qtest/libqos/pci-pc.c,
 * pci.c qpci_iomap/qpci_device_enable, virtio-pci.c legacy accessors):
 *
 * 1. find the device on bus 0 through 0xCF8/0xCFC by vendor and device ID (the whole byte offset
 *    in CONFIG_ADDRESS, data read at 0xCFC, as qpci_pc_config_read* does);
 * 2. read its identity, size BAR0 (write all-ones, read back), program it from the libqos PIO
 *    allocator (0xC000 up), enable I/O, memory and bus mastering;
 * 3. run the Linux legacy virtio probe on the ports (virtio 1.2 §4.1.4.10 and §4.1.5.1.1 legacy
 *    interface): reset, ACKNOWLEDGE, DRIVER, HOST_FEATURES, GUEST_FEATURES, each queue's
 *    QUEUE_SEL/QUEUE_NUM/QUEUE_PFN, DRIVER_OK, the MAC and status from device config (offset 20
 *    without MSI-X), a kick, the ISR, and a reset at the end.
 *
 * Each step keeps its label, the line sent and the answer, so that runs against QEMU and vmmr
 * can be compared line by line.
 */
import { QtestClient } from './client.js';

export interface ProbeStep {
  label: string;
  command: string;
  answer: string;
}

const VIRTIO_VENDOR = 0x1af4;
const NET_TRANSITIONAL = 0x1000;
/** libqos pci-pc.c qpci_init_pc: pio_alloc_ptr. */
const PIO_ALLOC = 0xc000;
/** Legacy register offsets (<linux/virtio_pci.h>). */
const HOST_FEATURES = 0;
const GUEST_FEATURES = 4;
const QUEUE_PFN = 8;
const QUEUE_NUM = 12;
const QUEUE_SEL = 14;
const QUEUE_NOTIFY = 16;
const STATUS = 18;
const ISR = 19;
const CONFIG = 20;
/** Feature bits the script accepts: VIRTIO_NET_F_MAC (5), VIRTIO_NET_F_STATUS (16). */
const WANTED = (1 << 5) | (1 << 16);

export interface ProbeResult {
  steps: ProbeStep[];
  devfn: number;
  ioBase: number;
}

export async function legacyNetProbe(q: QtestClient): Promise<ProbeResult> {
  const steps: ProbeStep[] = [];
  const run = async (label: string, command: string): Promise<string> => {
    const answer = await q.command(command);
    steps.push({ label, command, answer });
    if (!answer.startsWith('OK')) throw new Error(`${label}: ${command} answered ${answer}`);
    return answer;
  };
  const value = async (label: string, command: string): Promise<number> =>
    QtestClient.value(await run(label, command));
  const cfgAddress = (devfn: number, offset: number): string =>
    `0x${(((1 << 31) | (devfn << 8) | offset) >>> 0).toString(16)}`;
  const cfgRead = async (
    label: string,
    devfn: number,
    offset: number,
    width: 'b' | 'w' | 'l',
  ): Promise<number> => {
    await run(`${label} (address)`, `outl 0xcf8 ${cfgAddress(devfn, offset)}`);
    return value(label, `in${width} 0xcfc`);
  };
  const cfgWrite = async (
    label: string,
    devfn: number,
    offset: number,
    width: 'b' | 'w' | 'l',
    v: number,
  ): Promise<void> => {
    await run(`${label} (address)`, `outl 0xcf8 ${cfgAddress(devfn, offset)}`);
    await run(label, `out${width} 0xcfc 0x${v.toString(16)}`);
  };

  await run('endianness', 'endianness');

  let devfn = -1;
  for (let d = 0; d < 256 && devfn < 0; d++) {
    const slot = `scan 00:${(d >> 3).toString(16).padStart(2, '0')}.${d & 7}`;
    const vendor = await cfgRead(`${slot} vendor`, d, 0x00, 'w');
    if (vendor === 0xffff) continue;
    const device = await cfgRead(`${slot} device`, d, 0x02, 'w');
    if (vendor === VIRTIO_VENDOR && device === NET_TRANSITIONAL) devfn = d;
  }
  if (devfn < 0) throw new Error('no 1af4:1000 on bus 0');

  await cfgRead('revision', devfn, 0x08, 'b');
  await cfgRead('class code', devfn, 0x09, 'b');
  await cfgRead('class', devfn, 0x0a, 'w');
  await cfgRead('header type', devfn, 0x0e, 'b');
  await cfgRead('status', devfn, 0x06, 'w');
  await cfgRead('subsystem vendor', devfn, 0x2c, 'w');
  await cfgRead('subsystem', devfn, 0x2e, 'w');
  await cfgRead('interrupt pin', devfn, 0x3d, 'b');

  // qpci_iomap(dev, 0): size the BAR, take the next aligned PIO address, program it.
  await cfgRead('BAR0', devfn, 0x10, 'l');
  await cfgWrite('BAR0 sizing', devfn, 0x10, 'l', 0xffffffff);
  const probe = await cfgRead('BAR0 size probe', devfn, 0x10, 'l');
  const mask = (probe & ~0x3) >>> 0;
  const size = mask & -mask;
  const ioBase = Math.ceil(PIO_ALLOC / size) * size;
  await cfgWrite('BAR0 program', devfn, 0x10, 'l', ioBase);
  await cfgRead('BAR0 programmed', devfn, 0x10, 'l');

  // qpci_device_enable: I/O, memory and bus master on.
  const cmd = await cfgRead('command', devfn, 0x04, 'w');
  await cfgWrite('command enable', devfn, 0x04, 'w', cmd | 0x7);
  await cfgRead('command enabled', devfn, 0x04, 'w');

  const port = (off: number): string => `0x${(ioBase + off).toString(16)}`;
  await run('reset', `outb ${port(STATUS)} 0x0`);
  await value('status after reset', `inb ${port(STATUS)}`);
  await run('ACKNOWLEDGE', `outb ${port(STATUS)} 0x1`);
  await run('DRIVER', `outb ${port(STATUS)} 0x3`);
  await value('status ACK|DRIVER', `inb ${port(STATUS)}`);
  const host = await value('HOST_FEATURES', `inl ${port(HOST_FEATURES)}`);
  await run('GUEST_FEATURES', `outl ${port(GUEST_FEATURES)} 0x${(host & WANTED).toString(16)}`);
  await value('GUEST_FEATURES read back', `inl ${port(GUEST_FEATURES)}`);
  for (let queue = 0; queue < 4; queue++) {
    await run(`queue ${queue} select`, `outw ${port(QUEUE_SEL)} 0x${queue.toString(16)}`);
    const num = await value(`queue ${queue} QUEUE_NUM`, `inw ${port(QUEUE_NUM)}`);
    if (num === 0) continue;
    await value(`queue ${queue} QUEUE_PFN before`, `inl ${port(QUEUE_PFN)}`);
    await run(`queue ${queue} QUEUE_PFN`, `outl ${port(QUEUE_PFN)} 0x${(0x100 + queue * 0x10).toString(16)}`);
    await value(`queue ${queue} QUEUE_PFN read back`, `inl ${port(QUEUE_PFN)}`);
  }
  await value('QUEUE_SEL read back', `inw ${port(QUEUE_SEL)}`);
  await run('DRIVER_OK', `outb ${port(STATUS)} 0x7`);
  await value('status DRIVER_OK', `inb ${port(STATUS)}`);
  for (let i = 0; i < 6; i++) await value(`MAC[${i}]`, `inb ${port(CONFIG + i)}`);
  await value('net status', `inw ${port(CONFIG + 6)}`);
  await run('kick tx', `outw ${port(QUEUE_NOTIFY)} 0x1`);
  await value('ISR', `inb ${port(ISR)}`);
  await run('reset at the end', `outb ${port(STATUS)} 0x0`);
  await value('status after the final reset', `inb ${port(STATUS)}`);
  await run('queue 0 select after reset', `outw ${port(QUEUE_SEL)} 0x0`);
  await value('queue 0 QUEUE_PFN after reset', `inl ${port(QUEUE_PFN)}`);
  return { steps, devfn, ioBase };
}
