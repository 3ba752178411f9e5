/**
 * Fixed-size records of u32 words for many functions, in shared chunks: a function holds a
 * record number instead of its own typed array (which costs about 280 bytes of objects before its
 * first word). Records freed by functions that went away are reused; a chunk holds
 * RECORDS_PER_CHUNK records, so memory grows in steps of one chunk.
 */
const CHUNK_SHIFT = 10;
const RECORDS_PER_CHUNK = 1 << CHUNK_SHIFT;

export const NO_RECORD = -1;

export class RecordPool {
  private readonly chunks: Uint32Array[] = [];
  private readonly free: number[] = [];
  private next = 0;

  /** `words`: the size of one record; `reset`: writes a record's reset values. */
  constructor(
    readonly words: number,
    private readonly reset: (words: Uint32Array, at: number) => void,
  ) {}

  /** A record at its reset values. */
  allocate(): number {
    const record = this.free.pop() ?? this.next++;
    const chunk = record >>> CHUNK_SHIFT;
    if (chunk === this.chunks.length) this.chunks.push(new Uint32Array(RECORDS_PER_CHUNK * this.words));
    this.clear(record);
    return record;
  }

  /** Back to reset values, kept by its owner. */
  clear(record: number): void {
    const chunk = this.chunks[record >>> CHUNK_SHIFT]!;
    const at = (record & (RECORDS_PER_CHUNK - 1)) * this.words;
    chunk.fill(0, at, at + this.words);
    this.reset(chunk, at);
  }

  /** The owner went away: the record may serve another. */
  release(record: number): void {
    this.free.push(record);
  }

  /** The chunk holding `record`; its words start at offsetOf(record). */
  chunkOf(record: number): Uint32Array {
    return this.chunks[record >>> CHUNK_SHIFT]!;
  }

  offsetOf(record: number): number {
    return (record & (RECORDS_PER_CHUNK - 1)) * this.words;
  }

  get(record: number, word: number): number {
    return this.chunkOf(record)[this.offsetOf(record) + word]!;
  }

  set(record: number, word: number, value: number): void {
    this.chunkOf(record)[this.offsetOf(record) + word] = value;
  }
}
