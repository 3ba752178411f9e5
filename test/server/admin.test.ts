/**
 * REST access to group administration commands and to the translator backend of a VF
 * (docs/admin-commands.md). Expected numbers are the virtio 1.3 tables (opcodes 0..6, status
 * EINVAL 22, INVALID_MEMBER 5) and the legacy registers' values.
 */
import { describe, expect, it } from 'vitest';
import { call, ok, testApp } from '../support/server.js';

const PF = '0000:50:00.0';
const VF = '0000:50:00.1';

async function adminApp(translator: 'mmr' | 'admin' = 'mmr') {
  const app = await testApp();
  await ok(app, 'POST', '/api/v1/pfs', { bdf: PF, type: 'block', totalVfs: 4, adminQueue: true, translator });
  await ok(app, 'PUT', `/api/v1/pfs/${PF}/sriov`, { numVfs: 2 });
  return app;
}

interface Answer {
  opcodeName: string;
  status: number;
  statusName: string;
  qualifier: number;
  qualifierName: string;
  result: string;
  reason?: string;
}

describe('POST /api/v1/pfs/:bdf/admin', () => {
  it('runs commands in order: negotiation, a legacy read and write, a bad member, the notify address', async () => {
    const app = await adminApp();
    const { answers } = await ok<{ answers: Answer[] }>(app, 'POST', `/api/v1/pfs/${PF}/admin`, {
      commands: [
        { opcode: 'LEGACY_COMMON_CFG_READ', memberId: 1, data: '0c', resultLength: 2 },
        { opcode: 'LIST_QUERY', resultLength: 8 },
        { opcode: 'LIST_USE', data: '7f00000000000000' },
        { opcode: 'LEGACY_COMMON_CFG_READ', memberId: 1, data: '0c', resultLength: 2 },
        { opcode: 'LEGACY_COMMON_CFG_WRITE', memberId: 2, data: '1200000000000000' + '01' },
        { opcode: 3, memberId: 2, data: '12', resultLength: 1 },
        { opcode: 'LEGACY_DEV_CFG_READ', memberId: '0x3', data: '00', resultLength: 8 },
        { opcode: 'LEGACY_NOTIFY_INFO', memberId: 1, resultLength: 64 },
      ],
    });
    expect(answers.map((a) => [a.opcodeName, a.statusName, a.qualifierName])).toEqual([
      ['LEGACY_COMMON_CFG_READ', 'EINVAL', 'INVALID_OPCODE'],
      ['LIST_QUERY', 'OK', 'OK'],
      ['LIST_USE', 'OK', 'OK'],
      ['LEGACY_COMMON_CFG_READ', 'OK', 'OK'],
      ['LEGACY_COMMON_CFG_WRITE', 'OK', 'OK'],
      ['LEGACY_COMMON_CFG_READ', 'OK', 'OK'],
      ['LEGACY_DEV_CFG_READ', 'EINVAL', 'INVALID_MEMBER'],
      ['LEGACY_NOTIFY_INFO', 'OK', 'OK'],
    ]);
    expect(answers[1]!.result).toBe('7f00000000000000');
    expect(answers[3]!.result).toBe('0001'); // QUEUE_NUM 256, little-endian
    expect(answers[5]!.result).toBe('01'); // STATUS of VF 2 is ACKNOWLEDGE now
    expect([answers[6]!.status, answers[6]!.qualifier]).toEqual([22, 5]);
    expect(answers[6]!.reason).toMatch(/member id 3 is not a VF number 1\.\.2/);
    expect(answers[7]!.result.slice(0, 32)).toBe('0202000000000000' + '1010000000000000');
    const status = await ok<{ value: string }>(
      app,
      'GET',
      `/api/v1/functions/0000:50:00.2/bars/2/0x1012?width=1`,
    );
    expect(status.value).toBe('0x01');
  });

  it('a PF without admin commands is 409 VMMR_ERR_TOPOLOGY; bad data is 400', async () => {
    const app = await adminApp();
    const res = await call(app, 'POST', '/api/v1/pfs/0000:01:00.0/admin', { commands: [{ opcode: 0 }] });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'VMMR_ERR_TOPOLOGY' });
    const bad = await call(app, 'POST', `/api/v1/pfs/${PF}/admin`, { commands: [{ opcode: 'NOPE' }] });
    expect(bad.statusCode).toBe(400);
  });
});

describe('the translator backend of a VF over REST', () => {
  it("defaults to the PF's topology setting, switches per VF, and the trace shows the admin command", async () => {
    const app = await adminApp('admin');
    expect(await ok(app, 'GET', `/api/v1/functions/${VF}/guest/backend`)).toEqual({ backend: 'admin' });
    await ok(app, 'PUT', `/api/v1/functions/${VF}/guest/config/4`, { width: 2, value: 1 });
    await ok(app, 'PUT', `/api/v1/functions/${VF}/trace`, { enabled: true });
    const viaAdmin = await ok<{ value: string }>(app, 'GET', `/api/v1/functions/${VF}/guest/io/12?width=2`);
    await ok(app, 'PUT', `/api/v1/functions/${VF}/guest/backend`, { backend: 'mmr' });
    const viaMmr = await ok<{ value: string }>(app, 'GET', `/api/v1/functions/${VF}/guest/io/12?width=2`);
    expect(viaAdmin.value).toBe('0x0100');
    expect(viaMmr.value).toBe('0x0100');
    const trace = await ok<{ entries: Array<Record<string, unknown>> }>(
      app,
      'GET',
      `/api/v1/functions/${VF}/trace`,
    );
    expect(trace.entries).toMatchObject([
      {
        backend: 'admin',
        register: 'QUEUE_NUM',
        admin: { opcode: 'LEGACY_COMMON_CFG_READ', member: 1, offset: 12, status: 'OK', qualifier: 'OK' },
      },
      { backend: 'mmr', register: 'QUEUE_NUM', bar: 2, offset: 0x100c },
    ]);
    expect(trace.entries[0]).not.toHaveProperty('bar');
  });

  it('the admin backend needs admin commands on the PF: 400 VMMR_ERR_BAD_VALUE', async () => {
    const app = await adminApp();
    await ok(app, 'PUT', '/api/v1/pfs/0000:01:00.0/sriov', { numVfs: 1 });
    const res = await call(app, 'PUT', '/api/v1/functions/0000:01:00.1/guest/backend', { backend: 'admin' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'VMMR_ERR_BAD_VALUE' });
    expect(res.json().detail).toMatch(/adminQueue/);
  });
});
