#!/usr/bin/env node
/** Entry point of the `vmmr` binary (dist/src/cli.js). */
import { runCli } from './cli/index.js';

const code = await runCli(process.argv);
if (code !== undefined) process.exit(code);
