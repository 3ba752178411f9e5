/** The last `capacity` bytes of a stream (console output), allocated on first use. */
export class ByteRing {
  private buffer: Uint8Array | undefined;
  private end = 0;
  private length = 0;
  /** Bytes written since the ring was made. */
  total = 0;

  constructor(readonly capacity: number) {}

  append(bytes: Uint8Array): void {
    this.total += bytes.length;
    if (this.capacity === 0) return;
    const buf = (this.buffer ??= new Uint8Array(this.capacity));
    const src = bytes.length > this.capacity ? bytes.subarray(bytes.length - this.capacity) : bytes;
    const first = Math.min(src.length, this.capacity - this.end);
    buf.set(src.subarray(0, first), this.end);
    buf.set(src.subarray(first), 0);
    this.end = (this.end + src.length) % this.capacity;
    this.length = Math.min(this.capacity, this.length + src.length);
  }

  /** The kept bytes, oldest first. */
  contents(): Buffer {
    if (!this.buffer) return Buffer.alloc(0);
    const start = (this.end - this.length + this.capacity) % this.capacity;
    if (start + this.length <= this.capacity)
      return Buffer.from(this.buffer.subarray(start, start + this.length));
    return Buffer.concat([this.buffer.subarray(start), this.buffer.subarray(0, this.end)]);
  }

  clear(): void {
    this.buffer = undefined;
    this.end = 0;
    this.length = 0;
  }
}
