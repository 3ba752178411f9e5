import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Runs `main` when the module at `moduleUrl` is the script node was started with. */
export function runIfScript(
  moduleUrl: string,
  name: string,
  main: (argv: readonly string[]) => Promise<void>,
): void {
  if (!process.argv[1] || fileURLToPath(moduleUrl) !== resolve(process.argv[1])) return;
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
