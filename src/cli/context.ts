/**
 * What every command gets besides its arguments: where to print, the
 * environment to read VMMR_URL / VMMR_TOKEN from, and an optional signal that
 * stops long-running commands (`vmmr events`) the way SIGINT does.
 */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Environment for VMMR_URL / VMMR_TOKEN (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Aborting it ends a following command cleanly, like Ctrl-C. */
  signal?: AbortSignal;
}

export const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};
