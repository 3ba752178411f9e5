/**
 * VMMR_STATE_FILE: the machine state survives restarts. At startup the file is restored (a
 * missing file is a fresh start from the topology; any other problem stops startup with a
 * StateFileError naming the file); on graceful shutdown, and on POST /api/v1/state/save, the
 * current state is written atomically (src/machine/state-file.ts).
 */
import { Type } from 'typebox';
import { VmmrError } from '../base/errors.js';
import { restoreStateFile, saveStateFile, StateFileError } from '../machine/state-file.js';
import type { AppContext, RouteModule, VmmrApp } from './app.js';
import { problems } from './schemas.js';

/** Restores the state file into the emulator and saves it again when the app closes. */
export function restoreAtStartup(app: VmmrApp, ctx: AppContext): void {
  const file = ctx.config.stateFile;
  if (file === undefined) return;
  const outcome = restoreStateFile(file, ctx.emulator);
  // Written once now: a file that cannot be written fails at startup, not at shutdown.
  const bytes = saveStateFile(file, ctx.emulator.machine.snapshot());
  app.log.info(
    {
      stateFile: file,
      restored: outcome.restored,
      functions: outcome.functions,
      bytes,
      staleTemporaryFiles: outcome.staleTemporaryFiles,
    },
    outcome.restored
      ? `state restored from ${file}`
      : `no state in ${file} yet: fresh start from the topology`,
  );
  app.addHook('onClose', async () => {
    const saved = saveStateFile(file, ctx.emulator.machine.snapshot());
    app.log.info({ stateFile: file, bytes: saved }, `state saved to ${file}`);
  });
}

/** POST /api/v1/state/save. */
export const stateFileRoutes: RouteModule = (app, ctx) => {
  app.post(
    '/api/v1/state/save',
    {
      schema: {
        tags: ['state'],
        summary: 'Save the machine state to the state file now',
        description:
          'Writes the snapshot GET /api/v1/state returns to VMMR_STATE_FILE atomically (temporary file, fsync, ' +
          'rename): a crash at any moment leaves the previous file or the new one. The state is also saved on ' +
          'graceful shutdown and restored at startup. 409 VMMR_ERR_NOT_CONFIGURED when the server runs without ' +
          'VMMR_STATE_FILE.',
        response: {
          200: Type.Object({
            file: Type.String({ description: 'the state file' }),
            bytes: Type.Integer({ description: 'its size' }),
          }),
          ...problems(409, 500),
        },
      },
    },
    async (request) => {
      const file = ctx.config.stateFile;
      if (file === undefined) {
        throw new VmmrError(
          'VMMR_ERR_NOT_CONFIGURED',
          'this server keeps no state file: start it with VMMR_STATE_FILE=<path>',
        );
      }
      try {
        return { file, bytes: saveStateFile(file, ctx.emulator.machine.snapshot()) };
      } catch (e) {
        if (!(e instanceof StateFileError)) throw e;
        request.log.error({ err: e }, e.message);
        throw new VmmrError('VMMR_ERR_INTERNAL', e.message);
      }
    },
  );
};
