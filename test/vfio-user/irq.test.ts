/**
 * Interrupts through the client's eventfds (VFIO_USER_DEVICE_SET_IRQS with SCM_RIGHTS), read back
 * as eventfd counters: MSI-X vectors, INTx with its automask/unmask protocol, ERR/REQ, loopback
 * triggers, and the refusals of vfio-pci's rules (drivers/vfio/pci/vfio_pci_intrs.c).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CMD, ERROR, REPLY, TestClient, VFIO, le, leBytes, type Reply } from '../support/vfio-user-client.js';
import {
  E,
  closeFds,
  counter,
  eventfds,
  exported,
  openFds,
  type Exported,
} from '../support/vfio-user-fixture.js';

let fx: Exported | undefined;
let owned: number[] = [];
afterEach(() => {
  fx?.cleanup();
  fx = undefined;
  closeFds(owned);
  owned = [];
});

const TRIGGER_EVENTFD = VFIO.ACTION_TRIGGER | VFIO.DATA_EVENTFD;
const MSIX_CAP = 0x7c;
/** BAR2 layout (docs/device-model.md): MSI-X table at 0x2000 (16 bytes per vector), PBA at 0x3000. */
const TABLE = 0x2000;
const PBA = 0x3000;

function ok(r: Reply): void {
  expect({ flags: r.flags, error: r.error }).toEqual({ flags: REPLY, error: 0 });
}

function refused(r: Reply, errno: number): void {
  expect({ flags: r.flags, error: r.error }).toEqual({ flags: REPLY | ERROR, error: errno });
}

function efds(n: number): number[] {
  const fds = eventfds(n);
  owned.push(...fds);
  return fds;
}

/** A guest that enabled I/O decode (and, with msix, MSI-X with queue 0 on vector 1, config on 0). */
async function guest(msix: boolean): Promise<TestClient> {
  fx = exported();
  const c = await fx.ready();
  await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
  if (msix) {
    await c.regionWrite(VFIO.REGION_CONFIG, MSIX_CAP + 2, leBytes(0x8000, 2));
    await c.regionWrite(0, 20, leBytes(0, 2));
    await c.regionWrite(0, 14, leBytes(0, 2));
    await c.regionWrite(0, 22, leBytes(1, 2));
  }
  return c;
}

const vectorCtrl = async (c: TestClient, v: number): Promise<number> =>
  le(await c.regionRead(2, TABLE + v * 16 + 12, 4));

describe('MSI-X', () => {
  it('armed vectors are unmasked in the function table and deliver through their eventfds', async () => {
    const c = await guest(true);
    for (let v = 0; v < 4; v++) expect(await vectorCtrl(c, v)).toBe(1);
    const fds = efds(4);
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 4, TRIGGER_EVENTFD, { fds }));
    for (let v = 0; v < 4; v++) expect(await vectorCtrl(c, v)).toBe(0);
    fx!.vf.device.raiseQueueInterrupt(0);
    fx!.vf.device.raiseQueueInterrupt(0);
    expect(fds.map(counter)).toEqual([0, 2, 0, 0]);
    fx!.vf.device.raiseConfigChange();
    expect(fds.map(counter)).toEqual([1, 0, 0, 0]);
    expect(fx!.server.status().session).toMatchObject({ irqFds: 4, interruptsDelivered: 3 });
  });

  it('a disarmed vector is masked: the interrupt waits in the PBA and goes out when the vector is armed again', async () => {
    const c = await guest(true);
    const fds = efds(4);
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 4, TRIGGER_EVENTFD, { fds }));
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 1, 1, TRIGGER_EVENTFD));
    expect(await vectorCtrl(c, 1)).toBe(1);
    fx!.vf.device.raiseQueueInterrupt(0);
    expect(fds.map(counter)).toEqual([0, 0, 0, 0]);
    expect(le(await c.regionRead(2, PBA, 4))).toBe(0b10);
    const [again] = efds(1);
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 1, 1, TRIGGER_EVENTFD, { fds: [again!] }));
    expect(counter(again!)).toBe(1);
    expect(le(await c.regionRead(2, PBA, 4))).toBe(0);
  });

  it("QEMU's sequence: 1, then 2, then 3 vectors as a set (disable in between, NORESIZE); disabling closes the eventfds", async () => {
    const c = await guest(true);
    const before = openFds();
    for (const n of [1, 2, 3]) {
      if (n > 1)
        refused(await c.setIrqs(VFIO.IRQ_MSIX, n - 1, 1, TRIGGER_EVENTFD, { fds: efds(1) }), E.EINVAL);
      ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 0, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE));
      ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, n, TRIGGER_EVENTFD, { fds: efds(n) }));
    }
    expect(fx!.server.status().session?.irqFds).toBe(3);
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 0, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE));
    expect(fx!.server.status().session?.irqFds).toBe(0);
    // Only the test's own eventfds (1 + 2 + 3 + 2 refused) remain open.
    expect(openFds() - before).toBe(8);
    for (let v = 0; v < 4; v++) expect(await vectorCtrl(c, v)).toBe(1);
  });

  it('DEVICE_RESET resets the table; the vectors the client armed are unmasked again', async () => {
    const c = await guest(true);
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 2, TRIGGER_EVENTFD, { fds: efds(2) }));
    ok(await c.ok(CMD.DEVICE_RESET));
    await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(1, 2));
    expect([await vectorCtrl(c, 0), await vectorCtrl(c, 1), await vectorCtrl(c, 2)]).toEqual([0, 0, 1]);
  });

  it('loopback: TRIGGER with DATA_NONE or DATA_BOOL signals the armed eventfds', async () => {
    const c = await guest(true);
    const fds = efds(4);
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 4, TRIGGER_EVENTFD, { fds }));
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 1, 2, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE));
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 4, VFIO.ACTION_TRIGGER | VFIO.DATA_BOOL, { bools: [1, 0, 0, 1] }));
    expect(fds.map(counter)).toEqual([1, 1, 1, 1]);
  });

  it('refusals: beyond the table, fds not matching count, MASK/UNMASK, MSI (none), bad flags', async () => {
    const c = await guest(true);
    refused(await c.setIrqs(VFIO.IRQ_MSIX, 3, 2, TRIGGER_EVENTFD, { fds: efds(2) }), E.EINVAL);
    refused(await c.setIrqs(VFIO.IRQ_MSIX, 0, 2, TRIGGER_EVENTFD, { fds: efds(1) }), E.EINVAL);
    refused(await c.setIrqs(VFIO.IRQ_MSIX, 0, 1, VFIO.ACTION_MASK | VFIO.DATA_NONE), E.ENOTTY);
    refused(await c.setIrqs(VFIO.IRQ_MSIX, 0, 1, VFIO.ACTION_UNMASK | VFIO.DATA_NONE), E.ENOTTY);
    refused(await c.setIrqs(VFIO.IRQ_MSI, 0, 1, TRIGGER_EVENTFD, { fds: efds(1) }), E.EINVAL);
    refused(
      await c.setIrqs(VFIO.IRQ_MSIX, 0, 1, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE | VFIO.DATA_BOOL),
      E.EINVAL,
    );
    refused(
      await c.setIrqs(VFIO.IRQ_MSIX, 0, 1, VFIO.ACTION_TRIGGER | VFIO.ACTION_MASK | VFIO.DATA_NONE),
      E.EINVAL,
    );
    refused(await c.setIrqs(VFIO.IRQ_MSIX, 0, 1, 0x40 | VFIO.ACTION_TRIGGER | VFIO.DATA_NONE), E.EINVAL);
    refused(await c.setIrqs(5, 0, 1, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE), E.EINVAL);
    refused(await c.setIrqs(VFIO.IRQ_MSIX, 0, 2, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE), E.EINVAL);
    refused(
      await c.setIrqs(VFIO.IRQ_MSIX, 0, 2, VFIO.ACTION_TRIGGER | VFIO.DATA_BOOL, { bools: [1] }),
      E.EINVAL,
    );
    expect(fx!.server.status().session?.irqFds).toBe(0);
  });

  it('the refused eventfds are closed: no descriptor leaks', async () => {
    const c = await guest(true);
    const fds = efds(3);
    const before = openFds();
    refused(await c.setIrqs(VFIO.IRQ_MSIX, 0, 2, TRIGGER_EVENTFD, { fds }), E.EINVAL);
    refused(await c.setIrqs(VFIO.IRQ_MSIX, 3, 3, TRIGGER_EVENTFD, { fds }), E.EINVAL);
    expect(openFds()).toBe(before);
  });
});

describe('MSI-X of the PF as it is (function view)', () => {
  it("the PF's table on its BAR0 is programmed the same way; a config change goes to vector 0's eventfd", async () => {
    fx = exported({ view: 'pf' });
    const c = await fx.ready();
    await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(0x2, 2));
    await c.regionWrite(VFIO.REGION_CONFIG, MSIX_CAP + 2, leBytes(0x8000, 2));
    // virtio 1.2 §4.1.4.3 common cfg msix_config (2 bytes at 16) = vector 0.
    await c.regionWrite(0, 16, leBytes(0, 2));
    const fds = efds(2);
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 2, TRIGGER_EVENTFD, { fds }));
    expect(le(await c.regionRead(0, TABLE + 12, 4))).toBe(0);
    fx.pf.device.raiseConfigChange();
    expect(fds.map(counter)).toEqual([1, 0]);
  });
});

describe('INTx (the guest view emulated pin)', () => {
  it('an asserted line signals once and automasks; UNMASK signals again while it stays asserted', async () => {
    const c = await guest(false);
    const [fd] = efds(1);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, TRIGGER_EVENTFD, { fds: [fd!] }));
    const vf = fx!.vf;
    vf.device.raiseQueueInterrupt(0);
    expect(counter(fd!)).toBe(1);
    expect(le(await c.regionRead(VFIO.REGION_CONFIG, 6, 2)) & 0x8).toBe(0x8);
    vf.device.raiseQueueInterrupt(0);
    expect(counter(fd!)).toBe(0);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.ACTION_UNMASK | VFIO.DATA_NONE));
    expect(counter(fd!)).toBe(1);
    expect(le(await c.regionRead(0, 19, 1))).toBe(1);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.ACTION_UNMASK | VFIO.DATA_NONE));
    expect(counter(fd!)).toBe(0);
    vf.device.raiseQueueInterrupt(0);
    expect(counter(fd!)).toBe(1);
  });

  it('MASK holds the line back until UNMASK; DATA_BOOL false does nothing', async () => {
    const c = await guest(false);
    const [fd] = efds(1);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, TRIGGER_EVENTFD, { fds: [fd!] }));
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.ACTION_MASK | VFIO.DATA_BOOL, { bools: [1] }));
    fx!.vf.device.raiseQueueInterrupt(0);
    expect(counter(fd!)).toBe(0);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.ACTION_UNMASK | VFIO.DATA_BOOL, { bools: [0] }));
    expect(counter(fd!)).toBe(0);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.ACTION_UNMASK | VFIO.DATA_BOOL, { bools: [1] }));
    expect(counter(fd!)).toBe(1);
  });

  it('a line already asserted when INTx is armed signals at once; Interrupt Disable keeps the pin low', async () => {
    const c = await guest(false);
    fx!.vf.device.raiseQueueInterrupt(0);
    const [fd] = efds(1);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, TRIGGER_EVENTFD, { fds: [fd!] }));
    expect(counter(fd!)).toBe(1);
    await c.regionRead(0, 19, 1);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.ACTION_UNMASK | VFIO.DATA_NONE));
    await c.regionWrite(VFIO.REGION_CONFIG, 4, leBytes(0x401, 2));
    fx!.vf.device.raiseQueueInterrupt(0);
    expect(counter(fd!)).toBe(0);
  });

  it('modes are exclusive (vfio-pci): MSI-X cannot be enabled while INTx is, and count 0 disables INTx', async () => {
    const c = await guest(false);
    const [fd] = efds(1);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, TRIGGER_EVENTFD, { fds: [fd!] }));
    refused(await c.setIrqs(VFIO.IRQ_MSIX, 0, 1, TRIGGER_EVENTFD, { fds: efds(1) }), E.EINVAL);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 0, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE));
    expect(fx!.server.status().session?.irqFds).toBe(0);
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 1, TRIGGER_EVENTFD, { fds: efds(1) }));
    refused(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.ACTION_UNMASK | VFIO.DATA_NONE), E.EINVAL);
  });

  it('refusals: an UNMASK irqfd, start/count other than 0/1, loopback without a trigger does nothing', async () => {
    const c = await guest(false);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, TRIGGER_EVENTFD));
    refused(
      await c.setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.ACTION_UNMASK | VFIO.DATA_EVENTFD, { fds: efds(1) }),
      E.ENOTTY,
    );
    refused(await c.setIrqs(VFIO.IRQ_INTX, 1, 1, VFIO.ACTION_MASK | VFIO.DATA_NONE), E.EINVAL);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE));
  });

  it('the PF as it is: its own pin (Status.Interrupt) through the INTx eventfd', async () => {
    fx = exported({ view: 'pf' });
    const c = await fx.ready();
    const [fd] = efds(1);
    ok(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, TRIGGER_EVENTFD, { fds: [fd!] }));
    fx.pf.device.raiseQueueInterrupt(0);
    expect(counter(fd!)).toBe(1);
  });

  it('the VF as it is has no INTx: SET_IRQS on it is refused', async () => {
    fx = exported({ view: 'function' });
    const c = await fx.ready();
    refused(await c.setIrqs(VFIO.IRQ_INTX, 0, 1, TRIGGER_EVENTFD, { fds: efds(1) }), E.EINVAL);
  });
});

describe('ERR and REQ', () => {
  it('take one trigger eventfd each; loopback signals it; count 0 with DATA_NONE removes it', async () => {
    const c = await guest(false);
    for (const index of [VFIO.IRQ_ERR, VFIO.IRQ_REQ]) {
      const [fd] = efds(1);
      ok(await c.setIrqs(index, 0, 1, TRIGGER_EVENTFD, { fds: [fd!] }));
      ok(await c.setIrqs(index, 0, 1, VFIO.ACTION_TRIGGER | VFIO.DATA_BOOL, { bools: [1] }));
      ok(await c.setIrqs(index, 0, 1, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE));
      expect(counter(fd!)).toBe(2);
      refused(await c.setIrqs(index, 0, 1, VFIO.ACTION_MASK | VFIO.DATA_NONE), E.ENOTTY);
      ok(await c.setIrqs(index, 0, 0, VFIO.ACTION_TRIGGER | VFIO.DATA_NONE));
    }
    expect(fx!.server.status().session?.irqFds).toBe(0);
  });
});

describe('disconnection', () => {
  it('closes every eventfd of the client and masks the vectors it had armed; the device state stays', async () => {
    const before = openFds();
    const c = await guest(true);
    ok(await c.setIrqs(VFIO.IRQ_MSIX, 0, 4, TRIGGER_EVENTFD, { fds: efds(4) }));
    ok(await c.setIrqs(VFIO.IRQ_ERR, 0, 1, TRIGGER_EVENTFD, { fds: efds(1) }));
    await c.regionWrite(0, 18, leBytes(1, 1));
    await c.closeAndWait();
    await new Promise((r) => setTimeout(r, 20));
    expect(fx!.server.connected).toBe(false);
    // What is left: the server's listening socket and the test's own 5 eventfds.
    expect(openFds() - before).toBe(1 + 5);
    expect(fx!.vf.device.status).toBe(1);
    const next = await fx!.ready();
    for (let v = 0; v < 4; v++) expect(await vectorCtrl(next, v)).toBe(1);
  });
});
