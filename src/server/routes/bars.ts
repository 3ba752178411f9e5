/** A function's memory BARs: single accesses of 1, 2, 4 or 8 bytes and block accesses. */
import { Type } from 'typebox';
import { VmmrError } from '../../base/errors.js';
import type { Space } from '../../access/index.js';
import type { RouteModule } from '../app.js';
import { BdfParam, OffsetParam } from '../schemas.js';
import { registerSpaceRoutes } from './space.js';

const BAR_SPACES: readonly Space[] = ['bar0', 'bar1', 'bar2', 'bar3', 'bar4', 'bar5'];

export const barRoutes: RouteModule = (app, ctx) => {
  registerSpaceRoutes(app, ctx, {
    url: '/api/v1/functions/:bdf/bars/:n/:offset',
    offsetParam: 'offset',
    params: Type.Object({
      bdf: BdfParam,
      n: Type.String({ description: 'BAR number 0..5 (a PF uses BAR 0, an MMR VF BAR 2)' }),
      offset: OffsetParam,
    }),
    tags: ['functions'],
    what: 'a memory BAR',
    widths: '1, 2, 4 or 8',
    description:
      'Offsets are relative to the BAR. An 8-byte access is delivered whole, never split. A VF decodes its BAR only ' +
      'while its PF has VF Enable and VF MSE set; a PF only with Command.Memory set (409 VMMR_ERR_DECODE_DISABLED). ' +
      'The legacy block of an MMR VF sits where its MMR locator says (BAR 2 + 0x1000).',
    spaceOf: (params) => {
      const n = params.n ?? '';
      const space = /^[0-5]$/.test(n) ? BAR_SPACES[Number(n)] : undefined;
      if (!space) throw new VmmrError('VMMR_ERR_BAD_SPACE', `BAR "${n}" does not exist: use 0..5`);
      return space;
    },
    targetOf: (c, bdf) => c.emulator.machine.find(bdf),
  });
};
