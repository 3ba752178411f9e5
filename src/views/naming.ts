/** lspci-style names of vmmr functions, as pci.ids spells them (used by dumps and the CLI). */
import { deviceTypes, isVirtioTypeName, type VirtioTypeName } from '../spec/index.js';

/** The name pci.ids gives vendor 0x1AF4, as lspci prints it. */
export const VIRTIO_VENDOR_NAME = 'Red Hat, Inc.';

/** lspci's names of the (class, subclass) pairs virtio devices use (pci.ids "C" section). */
const CLASS_NAMES: Readonly<Record<number, string>> = {
  0x0000: 'Non-VGA unclassified device',
  0x0100: 'SCSI storage controller',
  0x0200: 'Ethernet controller',
  0x0500: 'RAM memory',
  0x0780: 'Communication controller',
};

const BASE_CLASS_NAMES: Readonly<Record<number, string>> = {
  0x00: 'Unclassified device',
  0x01: 'Mass storage controller',
  0x02: 'Network controller',
  0x05: 'Memory controller',
  0x07: 'Communication controller',
};

/** "Ethernet controller" for class code 0x020000; lspci's "Unclassified device [00ff]" form otherwise. */
export function className(classCode: number): string {
  const cls = classCode >> 8;
  const known = CLASS_NAMES[cls];
  if (known) return known;
  const base = BASE_CLASS_NAMES[cls >> 8] ?? 'Class';
  return `${base} [${cls.toString(16).padStart(4, '0')}]`;
}

/** "network device" from the device-types title "virtio network device". */
function deviceNoun(type: VirtioTypeName): string {
  return (deviceTypes.types[type].title ?? `virtio ${type} device`).replace(/^virtio\s+/i, '');
}

export type FunctionView = 'pf' | 'vf' | 'guest';

/**
 * The lspci-like description of a function:
 * - PF (modern device): "Ethernet controller: Red Hat, Inc. Virtio 1.0 network device";
 * - MMR VF: "Ethernet controller: Red Hat, Inc. Virtio network device (transitional MMR VF)";
 * - the translator's guest view of a VF: "Ethernet controller: Red Hat, Inc. Virtio network device".
 */
export function lspciName(type: string, view: FunctionView): string {
  if (!isVirtioTypeName(type)) return `Unknown device: ${VIRTIO_VENDOR_NAME} virtio ${type} device`;
  const info = deviceTypes.types[type];
  const noun = deviceNoun(type);
  const name =
    view === 'pf'
      ? `Virtio 1.0 ${noun}`
      : view === 'vf'
        ? `Virtio ${noun} (transitional MMR VF)`
        : `Virtio ${noun}`;
  return `${className(info.classCode)}: ${VIRTIO_VENDOR_NAME} ${name}`;
}
