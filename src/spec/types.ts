/**
 * Types of the spec tables in `spec-tables/*.json` (schema: `spec-tables/schema/table.schema.json`).
 *
 * Every register of every table has the same shape ({@link Register}) and every constant the same
 * shape ({@link Constant}), so generic code can iterate; the key names of each table stay typed.
 */

/** ro read-only, rw read-write, wo write-only, rc read-to-clear. */
export type Access = 'ro' | 'rw' | 'wo' | 'rc';

/**
 * Where a Linux UAPI header defines the same value (checked by test/spec/linux-headers.test.ts).
 * - `macro`: object-like macro; compared with a register offset, a constant value or a table size (+ delta).
 * - `expr`: C integer expression over header definitions (function-like macros applied to samples).
 * - `shiftOf`: the shift of the bit field that a function-like extractor macro reads.
 * - `struct` + `field`: offsetof == register offset (+ delta) and sizeof(field) == size (or register size).
 * - `sizeof`: size of a C type; compared with a register size, constant value or table size.
 */
export type LinuxRef =
  | { readonly macro: string; readonly delta?: number }
  | { readonly expr: string; readonly delta?: number }
  | { readonly shiftOf: string }
  | {
      readonly struct: string;
      readonly field: string;
      readonly delta?: number;
      readonly size?: number;
      readonly checkSize?: boolean;
    }
  | { readonly sizeof: string };

export type LinuxRefs = LinuxRef | readonly LinuxRef[];

export interface Register {
  /** Byte offset inside the structure. */
  readonly offset: number;
  /** Width in bytes. */
  readonly size: number;
  readonly access: Access;
  /** Reset value (little-endian number of `size` bytes). */
  readonly reset?: number;
  /** Reset value on an SR-IOV VF when it differs from `reset`. */
  readonly vfReset?: number;
  /** Reset value as bytes (fields wider than a number: MAC, 9p tag); remaining bytes are 0. */
  readonly resetBytes?: readonly number[];
  /** Bits software can change (rw registers). Absent on an rw register: every bit is writable. */
  readonly writeMask?: number;
  /** `writeMask` of an SR-IOV VF when it differs. */
  readonly vfWriteMask?: number;
  /** Write-1-to-clear bits. */
  readonly rw1cMask?: number;
  /** Writable bits that trigger an action and always read back 0 (e.g. Initiate FLR). */
  readonly selfClearMask?: number;
  /** Overlaps another register on purpose. */
  readonly alias?: boolean;
  /** Device config: writable only by a legacy driver (no VIRTIO_F_VERSION_1 negotiated). */
  readonly legacyOnly?: boolean;
  /** `false`: defined by the source structure but beyond the exposed `size` of the table. */
  readonly exposed?: boolean;
  /** Structure variant inside a multi-structure table (registers of different groups may overlap). */
  readonly group?: string;
  readonly description?: string;
  readonly source: string;
  readonly linux?: LinuxRefs;
}

export interface Constant {
  readonly value: number;
  /** Same value as another constant on purpose. */
  readonly alias?: boolean;
  /** The name tools show for this value (lspci's wording where lspci names it). */
  readonly title?: string;
  readonly description?: string;
  readonly source: string;
  readonly linux?: LinuxRefs;
}

export interface Table<R extends string = string, C extends string = string> {
  /** File name without `.json`. */
  readonly id: string;
  readonly title: string;
  readonly source: string;
  readonly description?: string;
  /** Size in bytes of the structure (register tables: the length the device exposes). */
  readonly size?: number;
  readonly linux?: LinuxRefs;
  readonly registers: Readonly<Record<R, Register>>;
  readonly constants: Readonly<Record<C, Constant>>;
}

/** Any table, for generic code (register and constant names are plain strings). */
export type AnyTable = Table<string, string>;

export type RegisterName<T extends AnyTable> = keyof T['registers'] & string;
export type ConstantName<T extends AnyTable> = keyof T['constants'] & string;

/** One register with its name, for iteration. */
export interface NamedRegister extends Register {
  readonly name: string;
}

export type DeviceTypeField =
  'typeId' | 'transitionalId' | 'modernId' | 'mmrId' | 'classCode' | 'msixVectors';

export interface DeviceTypeInfo {
  readonly title?: string;
  /** virtio device id (VIRTIO_ID_*), also the transitional Subsystem Device ID. */
  readonly typeId: number;
  /** PCI Device ID of the transitional device (what the translator shows a guest). */
  readonly transitionalId: number;
  /** PCI Device ID of the modern device (the PF): 0x1040 + typeId. */
  readonly modernId: number;
  /** PCI Device ID of an MMR VF (the PF's SR-IOV VF Device ID). */
  readonly mmrId: number;
  /** 24-bit class code: base << 16 | sub-class << 8 | prog-if. */
  readonly classCode: number;
  /** Virtqueue names in queue-index order. */
  readonly queues: readonly string[];
  /** MSI-X table size (queues + 1). */
  readonly msixVectors: number;
  readonly description?: string;
  readonly source: string;
  readonly linux?: Readonly<Partial<Record<DeviceTypeField, LinuxRefs>>>;
}

export interface DeviceTypesTable<C extends string = string, T extends string = string> {
  readonly id: string;
  readonly title: string;
  readonly source: string;
  readonly description?: string;
  readonly constants: Readonly<Record<C, Constant>>;
  readonly types: Readonly<Record<T, DeviceTypeInfo>>;
}
