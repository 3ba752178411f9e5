/**
 * `vmmr attach BDF SOCKET [--view guest|function]`: export a function over vfio-user on a Unix
 * socket (absolute, or a name inside the service's VMMR_SOCKET_DIR) and print the socket path a
 * VMM's vfio-user-pci device connects to. `vmmr detach BDF` stops the export (a connected client
 * sees the socket close). `vmmr attach` without arguments lists the exports.
 */
import type { Command } from 'commander';
import type { VfioUserExport } from '../views/shapes.js';
import { API_PREFIX, addClientOptions, functionPath, withClient, type ClientOptions } from './client.js';
import type { CliIo } from './context.js';
import { UsageError } from './errors.js';
import { bdfArgument, jsonLine } from './format.js';

export interface AttachOptions extends ClientOptions {
  view?: string;
}

const VIEWS = ['guest', 'function'] as const;

function viewOption(text: string | undefined): (typeof VIEWS)[number] {
  if (text === undefined) return 'guest';
  const view = VIEWS.find((v) => v === text);
  if (!view) throw new UsageError(`--view ${JSON.stringify(text)}: expected guest or function`);
  return view;
}

/** One line per export: address, view, socket, and the client's state. */
export function formatExports(items: readonly VfioUserExport[]): string {
  return items
    .map((e) => {
      const client = e.client
        ? `client connected (${e.client.commands} commands, ${e.client.dmaMaps} DMA maps, ${e.client.refusals} refusals)`
        : 'no client';
      return `${e.bdf}  ${e.view.padEnd(8)}  ${e.socket}  ${client}\n`;
    })
    .join('');
}

export function registerAttachCommand(program: Command, io: CliIo): void {
  addClientOptions(
    program
      .command('attach')
      .description('export a function over vfio-user on a Unix socket (no arguments: list the exports)')
      .argument('[bdf]', 'function address [dddd:]bb:dd.f')
      .argument('[socket]', 'socket path: absolute, or a name inside the service VMMR_SOCKET_DIR')
      .option('--view <view>', "guest (the translator's transitional device, default) or function"),
  ).action(async (bdfText: string | undefined, socket: string | undefined, opts: AttachOptions) => {
    if (bdfText === undefined) {
      await withClient(opts, io, async (client) => {
        const { items } = await client.get<{ items: VfioUserExport[] }>(`${API_PREFIX}/vfio-user`);
        io.stdout(opts.json ? jsonLine({ items }) : formatExports(items));
      });
      return;
    }
    const bdf = bdfArgument(bdfText);
    if (socket === undefined) throw new UsageError('attach needs a socket path after the address');
    const view = viewOption(opts.view);
    await withClient(opts, io, async (client) => {
      const info = await client.post<VfioUserExport>(functionPath(bdf, 'vfio-user'), { socket, view });
      io.stdout(opts.json ? jsonLine(info) : `${info.socket}\n`);
    });
  });

  addClientOptions(
    program
      .command('detach')
      .description('stop the vfio-user export of a function (its client sees the socket close)')
      .argument('<bdf>', 'function address [dddd:]bb:dd.f'),
  ).action(async (bdfText: string, opts: ClientOptions) => {
    const bdf = bdfArgument(bdfText);
    await withClient(opts, io, (client) => client.delete(functionPath(bdf, 'vfio-user')));
  });
}
