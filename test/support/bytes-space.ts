/**
 * A DMA space over plain bytes (a client's own view of a shared memfd, or the SharedArrayBuffer a
 * test client answers DMA messages from), so DriverSim can lay out rings in a vfio-user client's
 * memory. Bus address `base` is bytes[0]; anything outside is a DmaFault.
 */
import { DmaFault, type DmaSpace } from '../../src/dma/space.js';

export class BytesSpace implements DmaSpace {
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    readonly base = 0,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private at(address: number, length: number): number {
    const i = address - this.base;
    if (i < 0 || i + length > this.bytes.length)
      throw new DmaFault(
        'unmapped',
        address,
        length,
        `0x${address.toString(16)}+${length} is outside the bytes`,
      );
    return i;
  }

  read(address: number, into: Uint8Array, at: number, length: number): void {
    const i = this.at(address, length);
    into.set(this.bytes.subarray(i, i + length), at);
  }

  write(address: number, from: Uint8Array, at: number, length: number): void {
    this.bytes.set(from.subarray(at, at + length), this.at(address, length));
  }

  readU16(address: number): number {
    return this.view.getUint16(this.at(address, 2), true);
  }

  readU32(address: number): number {
    return this.view.getUint32(this.at(address, 4), true);
  }

  readU64(address: number): number {
    const i = this.at(address, 8);
    return this.view.getUint32(i, true) + this.view.getUint32(i + 4, true) * 2 ** 32;
  }

  writeU16(address: number, value: number): void {
    this.view.setUint16(this.at(address, 2), value, true);
  }

  writeU32(address: number, value: number): void {
    this.view.setUint32(this.at(address, 4), value, true);
  }

  writeU64(address: number, value: number): void {
    const i = this.at(address, 8);
    this.view.setUint32(i, value % 2 ** 32, true);
    this.view.setUint32(i + 4, Math.floor(value / 2 ** 32), true);
  }
}
