#!/usr/bin/env node
// The first step of `npm test`: the tests check config space against pciutils (lspci -F reads
// the dumps vmmr writes, setpci -A dump edits them), so without them the suite fails deep in the
// run. Stop at once with one line naming what is missing and how to install it.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const TOOLS = ['lspci', 'setpci'];

function onPath(tool) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir || '.', tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const missing = TOOLS.filter((tool) => !onPath(tool));
if (missing.length > 0) {
  const names = missing.map((tool) => `\`${tool}\``).join(' and ');
  console.error(
    `vmmr: the tests need ${names} from pciutils, not found on PATH: install them with \`sudo apt-get install -y pciutils\` (Debian/Ubuntu)`,
  );
  process.exit(1);
}
