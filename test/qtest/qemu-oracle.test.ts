/**
 * The oracle: one qtest script, written for QEMU's transitional virtio-net-pci, run unchanged
 * against a real QEMU and against a vmmr guest view; the answers must be the same line for line,
 * except for the differences docs/qtest.md lists ("Against QEMU"), each of which must show up.
 *
 * QEMU: Debian's qemu-system-x86 (or $VMMR_QEMU), q35, `-device virtio-net-pci,disable-modern=on`
 * at 00:04.0 with MAC 52:54:00:12:34:56. vmmr: a net PF at 00:03.0 whose VF 0 sits at 00:04.0
 * with the same MAC (test/qtest/support/vmmr.ts PROBE_TOPOLOGY).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { legacyNetProbe, type ProbeResult, type ProbeStep } from '../support/qtest/legacy-net-probe.js';
import { startQemuQtest } from '../support/qtest/qemu.js';
import {
  emulatorOf,
  enableVfs,
  PROBE_MAC,
  PROBE_PF,
  PROBE_TOPOLOGY,
  startVmmrQtest,
} from '../support/qtest/vmmr.js';

/** The documented differences (docs/qtest.md), by step label. */
const DIFFERENCES: Readonly<Record<string, string>> = {
  'scan 00:00.0 vendor':
    "QEMU's q35 host bridge (8086:29c0) answers at 00:00.0; a vmmr session shows only its view's functions",
  'scan 00:00.0 device (address)': 'the script reads the host bridge’s Device ID, which vmmr does not have',
  'scan 00:00.0 device': 'the script reads the host bridge’s Device ID, which vmmr does not have',
  'BAR0 size probe':
    "the legacy block's length: QEMU 32 bytes (24-byte header + mac, status), vmmr 64 (24 + the 12-byte device config with MTU)",
  HOST_FEATURES:
    'the features offered differ (QEMU offers offloads and bit 30; vmmr MTU, CTRL_VQ and the ring features)',
  'queue 2 QUEUE_NUM':
    "QEMU's control queue has 64 entries; vmmr gives every queue the topology's queueSize (256)",
};

let qemu: ProbeResult;
let vmmr: ProbeResult;
let qemuVersion = '';

beforeAll(async () => {
  const q = await startQemuQtest([`virtio-net-pci,disable-modern=on,romfile=,addr=04.0,mac=${PROBE_MAC}`]);
  qemuVersion = `${q.version} (accel ${q.accel})`;
  try {
    qemu = await legacyNetProbe(q.client);
  } finally {
    await q.stop();
  }
  const emulator = emulatorOf(PROBE_TOPOLOGY);
  enableVfs(emulator, PROBE_PF, 1);
  const v = await startVmmrQtest(emulator);
  try {
    vmmr = await legacyNetProbe(await v.connect());
  } finally {
    await v.stop();
  }
}, 60_000);

afterAll(() => {
  console.log(`qemu oracle: ${qemuVersion}, ${qemu?.steps.length ?? 0} steps`);
});

function byLabel(steps: readonly ProbeStep[]): Map<string, ProbeStep> {
  return new Map(steps.map((s) => [s.label, s]));
}

describe('the legacy virtio-net probe, QEMU against a vmmr guest view', () => {
  it('finds the device at the same address and programs the same I/O base', () => {
    expect(vmmr.devfn).toBe(qemu.devfn);
    expect(vmmr.devfn).toBe(0x20);
    expect(vmmr.ioBase).toBe(qemu.ioBase);
  });

  it('gets the same answers line for line, except the documented differences — each of which shows', () => {
    const theirs = byLabel(qemu.steps);
    const ours = byLabel(vmmr.steps);
    const differing: string[] = [];
    for (const step of qemu.steps) {
      const mine = ours.get(step.label);
      if (mine?.command === step.command && mine.answer === step.answer) continue;
      differing.push(step.label);
      expect(
        DIFFERENCES[step.label],
        `${step.label}: QEMU ${step.command} => ${step.answer}, vmmr ${mine?.command} => ${mine?.answer}`,
      ).toBeDefined();
    }
    for (const step of vmmr.steps) {
      expect(theirs.has(step.label), `vmmr ran ${step.label}, QEMU did not`).toBe(true);
    }
    expect(differing.sort()).toEqual(Object.keys(DIFFERENCES).sort());
  });

  it('differs in the documented way', () => {
    const theirs = byLabel(qemu.steps);
    const ours = byLabel(vmmr.steps);
    expect(theirs.get('scan 00:00.0 vendor')!.answer).toBe('OK 0x8086');
    expect(ours.get('scan 00:00.0 vendor')!.answer).toBe('OK 0xffff');
    expect(theirs.get('BAR0 size probe')!.answer).toBe('OK 0xffffffe1');
    expect(ours.get('BAR0 size probe')!.answer).toBe('OK 0xffffffc1');
    expect(theirs.get('queue 2 QUEUE_NUM')!.answer).toBe('OK 0x0040');
    expect(ours.get('queue 2 QUEUE_NUM')!.answer).toBe('OK 0x0100');
    // Both offer what the script negotiates: VIRTIO_NET_F_MAC (5) and VIRTIO_NET_F_STATUS (16).
    for (const steps of [theirs, ours]) {
      const features = Number(steps.get('HOST_FEATURES')!.answer.slice(3));
      expect(features & ((1 << 5) | (1 << 16))).toBe((1 << 5) | (1 << 16));
    }
  });

  it('reads the same MAC and link status from device config', () => {
    const mac = (steps: readonly ProbeStep[]): string =>
      steps
        .filter((s) => s.label.startsWith('MAC['))
        .map((s) => Number(s.answer.slice(3)).toString(16).padStart(2, '0'))
        .join(':');
    expect(mac(qemu.steps)).toBe(PROBE_MAC);
    expect(mac(vmmr.steps)).toBe(PROBE_MAC);
  });
});
