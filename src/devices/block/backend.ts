/**
 * Block storage behind a virtio-blk function: a sparse RAM disk, or a file image opened
 * read-write or read-only. Offsets and lengths are bytes; the device checks them against the
 * capacity before it calls. File I/O is synchronous (the device completes each request before
 * it returns the chain) and goes through an injectable file-system interface, so tests can count
 * fsync calls or make them fail.
 */
import * as nodeFs from 'node:fs';
import { SparseRam } from '../../dma/sparse-ram.js';
import type { DmaBudget } from '../../dma/budget.js';
import { deviceConfigs } from '../../spec/index.js';

const SECTOR = deviceConfigs.block.constants.SECTOR_SIZE.value;

export interface BlockBackend {
  /** Capacity in 512-byte sectors. */
  readonly sectors: number;
  readonly readOnly: boolean;
  read(offset: number, into: Uint8Array, at: number, length: number): void;
  write(offset: number, from: Uint8Array, at: number, length: number): void;
  /** Makes written data durable (FLUSH). */
  flush(): void;
  /** The range may be dropped (DISCARD); it reads back as zeros here. */
  discard(offset: number, length: number): void;
  writeZeroes(offset: number, length: number): void;
}

/** A RAM disk: pages allocated on first write (from `budget` when given), zeros elsewhere. */
export class RamDisk implements BlockBackend {
  private readonly ram: SparseRam;
  readonly readOnly = false;

  constructor(
    readonly sectors: number,
    budget?: DmaBudget,
  ) {
    if (!Number.isSafeInteger(sectors) || sectors < 0)
      throw new RangeError(`RAM disk size ${String(sectors)} is not a sector count`);
    this.ram = new SparseRam({ size: sectors * SECTOR, budget });
  }

  /** Bytes of the disk actually allocated. */
  get allocatedBytes(): number {
    return this.ram.allocatedBytes;
  }

  read(offset: number, into: Uint8Array, at: number, length: number): void {
    this.ram.read(offset, into, at, length);
  }

  write(offset: number, from: Uint8Array, at: number, length: number): void {
    this.ram.write(offset, from, at, length);
  }

  flush(): void {
    // RAM is as durable as it gets.
  }

  discard(offset: number, length: number): void {
    this.ram.zero(offset, length);
  }

  writeZeroes(offset: number, length: number): void {
    this.ram.zero(offset, length);
  }
}

/** The file-system calls a file image uses (node:fs by default). */
export interface BlockFs {
  openSync(path: string, flags: string): number;
  fstatSync(fd: number): { size: number };
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
}

export interface FileDiskOptions {
  readOnly?: boolean;
  fs?: BlockFs;
}

/** A file image; capacity = file size / 512 (a partial last sector is not exposed). */
export class FileDisk implements BlockBackend {
  readonly sectors: number;
  readonly readOnly: boolean;
  private readonly fs: BlockFs;
  private fd: number | undefined;
  /** fsync calls made (FLUSH requests reach the disk). */
  fsyncs = 0;

  constructor(
    readonly path: string,
    options: FileDiskOptions = {},
  ) {
    this.fs = options.fs ?? nodeFs;
    this.readOnly = options.readOnly ?? false;
    this.fd = this.fs.openSync(path, this.readOnly ? 'r' : 'r+');
    this.sectors = Math.floor(this.fs.fstatSync(this.fd).size / SECTOR);
  }

  private open(): number {
    if (this.fd === undefined) throw new Error(`block image ${this.path} is closed`);
    return this.fd;
  }

  read(offset: number, into: Uint8Array, at: number, length: number): void {
    const fd = this.open();
    let done = 0;
    while (done < length) {
      const n = this.fs.readSync(fd, into, at + done, length - done, offset + done);
      if (n === 0) {
        into.fill(0, at + done, at + length);
        return;
      }
      done += n;
    }
  }

  write(offset: number, from: Uint8Array, at: number, length: number): void {
    const fd = this.open();
    let done = 0;
    while (done < length) done += this.fs.writeSync(fd, from, at + done, length - done, offset + done);
  }

  flush(): void {
    this.fs.fsyncSync(this.open());
    this.fsyncs++;
  }

  discard(offset: number, length: number): void {
    this.writeZeroes(offset, length);
  }

  writeZeroes(offset: number, length: number): void {
    const chunk = new Uint8Array(Math.min(length, 1 << 20));
    for (let done = 0; done < length; done += chunk.length)
      this.write(offset + done, chunk, 0, Math.min(chunk.length, length - done));
  }

  close(): void {
    if (this.fd !== undefined) this.fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
