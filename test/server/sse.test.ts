/** GET /api/v1/events: numbering, filters, ends, slow subscribers, keepalive, shutdown. */
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { legacy } from '../../src/spec/index.js';
import { SseReader, api, apiOk, startTestServer } from '../support/http.js';

const PF = '0000:01:00.0';
const BLK = '0000:81:00.0';
const VF1 = '0000:01:00.1';
const VF2 = '0000:01:00.2';
const STATUS = 0x1000 + legacy.registers.STATUS.offset;

/** A batch that writes `count` different status values to a VF: `count` status events. */
function statusWrites(bdf: string, count: number): Record<string, unknown> {
  return {
    ops: Array.from({ length: count }, (_, i) => ({
      bdf,
      space: 'bar2',
      op: 'write',
      offset: STATUS,
      width: 1,
      value: (i % 2) + 1,
    })),
  };
}

async function subscribers(url: string): Promise<number> {
  const res = await fetch(`${url}/metrics`);
  const m = /^vmmr_event_subscribers (\d+)$/m.exec(await res.text());
  return Number(m?.[1]);
}

describe('event streams', () => {
  it('number the events that pass the filter 1, 2, 3… with no gap', async () => {
    const { url } = await startTestServer();
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 2 });
    const statusOnly = await SseReader.open(`${url}/api/v1/events?types=status`);
    const vf2Only = await SseReader.open(`${url}/api/v1/events?bdf=${VF2}`);
    const all = await SseReader.open(`${url}/api/v1/events`);
    expect(await subscribers(url)).toBe(3);
    // Interleave events that pass and events that do not.
    await apiOk(url, 'POST', '/api/v1/access', {
      ops: [
        { bdf: VF1, space: 'bar2', op: 'write', offset: STATUS, width: 1, value: 1 },
        { bdf: VF2, space: 'bar2', op: 'write', offset: 0x1010, width: 2, value: 0 },
        { bdf: VF2, space: 'bar2', op: 'write', offset: STATUS, width: 1, value: 1 },
        { bdf: VF1, space: 'bar2', op: 'write', offset: 0x1010, width: 2, value: 1 },
        { bdf: VF2, space: 'bar2', op: 'write', offset: STATUS, width: 1, value: 3 },
      ],
    });
    await apiOk(url, 'POST', `/api/v1/functions/${PF}/interrupt`, { config: true });
    await statusOnly.waitFor((r) => r.events.length >= 3, 5000, 'three status events');
    await vf2Only.waitFor((r) => r.events.length >= 3, 5000, 'three VF2 events');
    await all.waitFor((r) => r.of('config-change').length >= 1, 5000, 'config-change');

    expect(statusOnly.events.map((e) => [e.id, e.event, e.json.bdf, e.json.to])).toEqual([
      ['1', 'status', VF1, 1],
      ['2', 'status', VF2, 1],
      ['3', 'status', VF2, 3],
    ]);
    expect(vf2Only.events.map((e) => [e.id, e.event])).toEqual([
      ['1', 'notify'],
      ['2', 'status'],
      ['3', 'status'],
    ]);
    expect(all.events.map((e) => e.event)).toEqual([
      'status',
      'notify',
      'status',
      'notify',
      'status',
      'config-change',
      'interrupt',
    ]);
    expect(all.events.map((e) => e.json.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(all.events[1]!.json).toEqual({
      seq: 2,
      type: 'notify',
      bdf: VF2,
      queue: 0,
      via: 'legacy-register',
    });
    for (const r of [statusOnly, vf2Only, all]) await r.close();
    await expect.poll(() => subscribers(url)).toBe(0);
  });

  it('deliver vf-enable and vf-disable of SR-IOV control', async () => {
    const { url } = await startTestServer();
    const r = await SseReader.open(`${url}/api/v1/events?types=vf-enable,vf-disable`);
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 4 });
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 0 });
    await r.waitFor((x) => x.events.length >= 2);
    expect(r.events.map((e) => e.json)).toEqual([
      { seq: 1, type: 'vf-enable', bdf: PF, numVfs: 4, first: VF1, last: '0000:01:00.4' },
      { seq: 2, type: 'vf-disable', bdf: PF, numVfs: 4 },
    ]);
    await r.close();
  });

  it('refuse an unknown type or function before streaming', async () => {
    const { url } = await startTestServer();
    const badType = await api(url, 'GET', '/api/v1/events?types=status,bogus');
    expect(badType.status).toBe(400);
    expect(badType.body).toMatchObject({ code: 'VMMR_ERR_BAD_REQUEST' });
    expect((await api(url, 'GET', `/api/v1/events?bdf=${VF1}`)).body).toMatchObject({
      code: 'VMMR_ERR_VF_DISABLED',
    });
    expect((await api(url, 'GET', '/api/v1/events?bdf=0001:00:00.0')).body).toMatchObject({
      code: 'VMMR_ERR_NO_FUNCTION',
    });
    expect((await api(url, 'GET', '/api/v1/events?bdf=zz')).body).toMatchObject({ code: 'VMMR_ERR_BAD_BDF' });
  });

  it('end with `event: end` when the filtered VF is disabled', async () => {
    const { url } = await startTestServer();
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 2 });
    const r = await SseReader.open(`${url}/api/v1/events?bdf=${VF2}`);
    const other = await SseReader.open(`${url}/api/v1/events?bdf=${BLK}`);
    await apiOk(url, 'POST', '/api/v1/access', statusWrites(VF2, 2));
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 0 });
    await r.waitForEnd();
    expect(r.events.map((e) => e.event)).toEqual(['status', 'status', 'end']);
    const end = r.events[2]!;
    expect(end.id).toBeUndefined();
    expect(end.json).toMatchObject({ reason: 'function-removed', bdf: VF2, lastSeq: 2 });
    expect(String(end.json.detail)).toContain('not enabled');
    expect(other.ended).toBe(false);
    await other.close();
  });

  it('end when the filtered PF is removed, or the state is restored without the function', async () => {
    const { url } = await startTestServer();
    await apiOk(url, 'POST', '/api/v1/pfs', { bdf: 'c0:00.0', type: 'rng', totalVfs: 2 });
    const state = await apiOk(url, 'GET', '/api/v1/state');
    const onPf = await SseReader.open(`${url}/api/v1/events?bdf=0000:c0:00.0`);
    const res = await api(url, 'DELETE', '/api/v1/pfs/0000:c0:00.0');
    expect(res.status).toBe(204);
    await onPf.waitForEnd();
    expect(onPf.of('end')[0]!.json).toMatchObject({ reason: 'function-removed', bdf: '0000:c0:00.0' });

    await apiOk(url, 'PUT', '/api/v1/state', state);
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 1 });
    const onVf = await SseReader.open(`${url}/api/v1/events?bdf=${VF1}`);
    const onKeptPf = await SseReader.open(`${url}/api/v1/events?bdf=${PF}`);
    await apiOk(url, 'PUT', '/api/v1/state', state); // VFs disabled in that state
    await onVf.waitForEnd();
    expect(onVf.of('end')[0]!.json).toMatchObject({ reason: 'function-removed', bdf: VF1 });
    // A function that survives the restore keeps its stream, fed by the new machine.
    await apiOk(url, 'POST', `/api/v1/functions/${PF}/interrupt`, { queue: 0 });
    await onKeptPf.waitFor((r) => r.of('interrupt').length === 1);
    expect(onKeptPf.of('interrupt')[0]!.json).toMatchObject({ seq: 1, bdf: PF });
    await onKeptPf.close();
  });

  it('drop a subscriber whose queue overflows, with a final `event: dropped`', async () => {
    const { url, app } = await startTestServer({ VMMR_SSE_QUEUE: '5' });
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 1 });
    const r = await SseReader.open(`${url}/api/v1/events?types=status`);
    const quiet = await SseReader.open(`${url}/api/v1/events?types=config-change`);
    // One synchronous batch: 8 events before the stream can flush any.
    await apiOk(url, 'POST', '/api/v1/access', statusWrites(VF1, 8));
    await r.waitForEnd();
    expect(r.events.map((e) => e.event)).toEqual(['dropped']);
    // Nothing was written before the overflow: every event after lastSeq 0 is lost.
    expect(r.events[0]!.json).toEqual({ reason: 'slow-subscriber', queueLimit: 5, lastSeq: 0 });
    expect(quiet.ended).toBe(false);
    expect(app.vmmr.sse.size).toBe(1);
    await quiet.close();
  });

  it('drop a subscriber that stops reading (write backpressure), memory stays bounded', async () => {
    const { url, app } = await startTestServer({ VMMR_SSE_QUEUE: '2000' });
    await apiOk(url, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 1 });
    const { port } = new URL(url);
    const socket: Socket = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `GET /api/v1/events?types=status HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`,
    );
    socket.pause(); // never read: the kernel buffers fill, then the server's writes back up
    await expect.poll(() => app.vmmr.sse.size).toBe(1);
    let batches = 0;
    while (app.vmmr.sse.size > 0 && batches < 400) {
      await apiOk(url, 'POST', '/api/v1/access', statusWrites(VF1, 1000));
      batches++;
    }
    expect(app.vmmr.sse.size).toBe(0);
    expect(batches).toBeGreaterThan(1); // dropped because of backpressure, not one oversized batch
    // Reading now: the response ends (chunked terminator) right after the dropped event.
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
    });
    socket.resume();
    await expect.poll(() => text.endsWith('\r\n0\r\n\r\n'), { timeout: 10_000 }).toBe(true);
    socket.destroy();
    expect(text).toMatch(
      /event: dropped\ndata: \{"reason":"slow-subscriber","queueLimit":2000,"lastSeq":\d+\}\n\n\r\n0\r\n\r\n$/,
    );
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    const lastSeq = Number(/"lastSeq":(\d+)/.exec(text)![1]);
    expect(lastSeq).toBe(ids.at(-1));
  });

  it('send keepalive comments', async () => {
    const { url } = await startTestServer({}, { sseKeepaliveMs: 30 });
    const r = await SseReader.open(`${url}/api/v1/events`);
    await r.waitFor((x) => x.comments.filter((c) => c === 'keepalive').length >= 2, 5000, 'keepalives');
    expect(r.comments[0]).toBe('vmmr events');
    expect(r.events).toEqual([]);
    await r.close();
  });

  it('end with `event: end` (shutdown) when the server closes', async () => {
    const { url, app } = await startTestServer();
    const r = await SseReader.open(`${url}/api/v1/events`);
    await app.close();
    await r.waitForEnd();
    expect(r.events.map((e) => [e.event, e.json.reason])).toEqual([['end', 'shutdown']]);
  });
});
