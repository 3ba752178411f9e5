/**
 * The body of POST /api/v1/access read straight from the request bytes, for the shape harnesses
 * send: one JSON object with bdf, space, ops and onError whose ops are flat objects of string
 * and integer values. Reading it costs a few nanoseconds per byte, where decoding the text and
 * JSON.parse cost several times more (and build dictionary objects the decoder then reads back).
 *
 * The scan gives exactly the values JSON.parse would give, or nothing: for anything outside
 * that shape it returns undefined and the route parses the text with JSON.parse as before, so
 * errors (invalid JSON, envelope or operation problems) come from the same code as without it.
 * Outside the shape: escapes, control or non-ASCII bytes in strings, keys other than the known
 * ones, a key given twice, nested values, true/false/null, numbers with a sign, fraction or
 * exponent, with a leading zero or above 15 digits, an onError other than "stop" or "continue",
 * anything after the object. What it returns satisfies the envelope schema by construction
 * (known keys only, bdf and space strings, ops an array, onError one of its literals), which is
 * why the route's envelope check takes a ScannedBatch as is.
 */

/** One operation as JSON.parse would give it (a field JSON.parse would not have is undefined). */
export class ScannedOperation {
  bdf: string | number | undefined = undefined;
  space: string | number | undefined = undefined;
  op: string | number | undefined = undefined;
  offset: string | number | undefined = undefined;
  width: string | number | undefined = undefined;
  length: string | number | undefined = undefined;
  value: string | number | undefined = undefined;
  data: string | number | undefined = undefined;
}

export class ScannedBatch {
  bdf: string | undefined = undefined;
  space: string | undefined = undefined;
  onError: 'stop' | 'continue' | undefined = undefined;
  ops: ScannedOperation[] = [];
}

// Byte values.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const ZERO = 0x30;
const NINE = 0x39;

/** Thrown (and caught below) when the body leaves the shape: the route then uses JSON.parse. */
const OUTSIDE = new Error('outside the scanned shape');

/** The most digits of a number taken here: 15 digits are always a safe integer. */
const MAX_DIGITS = 15;

// Operation keys (bit masks, to refuse a key given twice).
const K_BDF = 1;
const K_SPACE = 2;
const K_OP = 4;
const K_OFFSET = 8;
const K_WIDTH = 16;
const K_LENGTH = 32;
const K_VALUE = 64;
const K_DATA = 128;
// Envelope keys.
const E_BDF = 1;
const E_SPACE = 2;
const E_OPS = 4;
const E_ONERROR = 8;

/** The bytes of an ASCII word, to compare keys without making strings. */
function bytes(word: string): number[] {
  return Array.from(word, (c) => c.charCodeAt(0));
}

const W_BDF = bytes('bdf');
const W_SPACE = bytes('space');
const W_OP = bytes('op');
const W_OPS = bytes('ops');
const W_OFFSET = bytes('offset');
const W_WIDTH = bytes('width');
const W_LENGTH = bytes('length');
const W_VALUE = bytes('value');
const W_DATA = bytes('data');
const W_ONERROR = bytes('onError');
const W_READ = bytes('read');
const W_WRITE = bytes('write');
const W_STOP = bytes('stop');
const W_CONTINUE = bytes('continue');

class Scanner {
  pos = 0;
  /** Start and end of the last string read (its bytes, without the quotes). */
  start = 0;
  end = 0;

  constructor(readonly buf: Uint8Array) {}

  /** Skips JSON whitespace and returns the next byte (-1 at the end). */
  next(): number {
    const buf = this.buf;
    let p = this.pos;
    while (p < buf.length) {
      const c = buf[p]!;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      p++;
    }
    this.pos = p;
    return p < buf.length ? buf[p]! : -1;
  }

  expect(byte: number): void {
    if (this.next() !== byte) throw OUTSIDE;
    this.pos++;
  }

  /** Reads a string of printable ASCII without escapes; sets start/end. */
  scanString(): void {
    const buf = this.buf;
    let p = this.pos;
    if (buf[p] !== QUOTE) throw OUTSIDE;
    const start = ++p;
    for (;;) {
      if (p >= buf.length) throw OUTSIDE;
      const c = buf[p]!;
      if (c === QUOTE) break;
      if (c < 0x20 || c > 0x7e || c === BACKSLASH) throw OUTSIDE;
      p++;
    }
    this.start = start;
    this.end = p;
    this.pos = p + 1;
  }

  /** Whether the last string read is `word`. */
  is(word: readonly number[]): boolean {
    const n = word.length;
    if (this.end - this.start !== n) return false;
    const buf = this.buf;
    for (let i = 0; i < n; i++) if (buf[this.start + i] !== word[i]) return false;
    return true;
  }

  text(): string {
    const { buf, start, end } = this;
    let s = '';
    for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]!);
    return s;
  }

  /** A non-negative integer of at most 15 digits, no leading zero. */
  scanNumber(): number {
    const buf = this.buf;
    let p = this.pos;
    const first = p;
    let value = 0;
    while (p < buf.length) {
      const c = buf[p]!;
      if (c < ZERO || c > NINE) break;
      value = value * 10 + (c - ZERO);
      p++;
    }
    const digits = p - first;
    if (digits === 0 || digits > MAX_DIGITS || (digits > 1 && buf[first] === ZERO)) throw OUTSIDE;
    this.pos = p;
    return value;
  }

  /** A string or a number value; strings that are "read" or "write" come back as those constants. */
  scanValue(): string | number {
    const c = this.next();
    if (c === QUOTE) {
      this.scanString();
      if (this.is(W_READ)) return 'read';
      if (this.is(W_WRITE)) return 'write';
      return this.text();
    }
    if (c >= ZERO && c <= NINE) return this.scanNumber();
    throw OUTSIDE;
  }

  /** The string after a key and its colon. */
  scanStringValue(): string {
    if (this.next() !== QUOTE) throw OUTSIDE;
    this.scanString();
    return this.text();
  }

  /** Reads `"key":` and returns the key's bit among the operation keys. */
  operationKey(): number {
    if (this.next() !== QUOTE) throw OUTSIDE;
    this.scanString();
    let key = 0;
    switch (this.end - this.start) {
      case 2:
        if (this.is(W_OP)) key = K_OP;
        break;
      case 3:
        if (this.is(W_BDF)) key = K_BDF;
        break;
      case 4:
        if (this.is(W_DATA)) key = K_DATA;
        break;
      case 5:
        if (this.is(W_WIDTH)) key = K_WIDTH;
        else if (this.is(W_VALUE)) key = K_VALUE;
        else if (this.is(W_SPACE)) key = K_SPACE;
        break;
      case 6:
        if (this.is(W_OFFSET)) key = K_OFFSET;
        else if (this.is(W_LENGTH)) key = K_LENGTH;
        break;
    }
    if (key === 0) throw OUTSIDE;
    this.expect(COLON);
    return key;
  }

  operation(): ScannedOperation {
    this.expect(OPEN_BRACE);
    const op = new ScannedOperation();
    if (this.next() === CLOSE_BRACE) {
      this.pos++;
      return op;
    }
    let seen = 0;
    for (;;) {
      const key = this.operationKey();
      if (seen & key) throw OUTSIDE;
      seen |= key;
      const value = this.scanValue();
      switch (key) {
        case K_OP:
          op.op = value;
          break;
        case K_OFFSET:
          op.offset = value;
          break;
        case K_WIDTH:
          op.width = value;
          break;
        case K_VALUE:
          op.value = value;
          break;
        case K_BDF:
          op.bdf = value;
          break;
        case K_SPACE:
          op.space = value;
          break;
        case K_LENGTH:
          op.length = value;
          break;
        default:
          op.data = value;
      }
      const c = this.next();
      this.pos++;
      if (c === CLOSE_BRACE) return op;
      if (c !== COMMA) throw OUTSIDE;
    }
  }

  operations(): ScannedOperation[] {
    this.expect(OPEN_BRACKET);
    const ops: ScannedOperation[] = [];
    if (this.next() === CLOSE_BRACKET) {
      this.pos++;
      return ops;
    }
    for (;;) {
      ops.push(this.operation());
      const c = this.next();
      this.pos++;
      if (c === CLOSE_BRACKET) return ops;
      if (c !== COMMA) throw OUTSIDE;
    }
  }

  batch(): ScannedBatch {
    const batch = new ScannedBatch();
    this.expect(OPEN_BRACE);
    let seen = 0;
    if (this.next() !== CLOSE_BRACE) {
      for (;;) {
        if (this.next() !== QUOTE) throw OUTSIDE;
        this.scanString();
        let key = 0;
        if (this.is(W_OPS)) key = E_OPS;
        else if (this.is(W_BDF)) key = E_BDF;
        else if (this.is(W_SPACE)) key = E_SPACE;
        else if (this.is(W_ONERROR)) key = E_ONERROR;
        if (key === 0 || seen & key) throw OUTSIDE;
        seen |= key;
        this.expect(COLON);
        if (key === E_OPS) {
          batch.ops = this.operations();
        } else if (key === E_BDF) {
          batch.bdf = this.scanStringValue();
        } else if (key === E_SPACE) {
          batch.space = this.scanStringValue();
        } else {
          if (this.next() !== QUOTE) throw OUTSIDE;
          this.scanString();
          if (this.is(W_STOP)) batch.onError = 'stop';
          else if (this.is(W_CONTINUE)) batch.onError = 'continue';
          else throw OUTSIDE;
        }
        const c = this.next();
        this.pos++;
        if (c === CLOSE_BRACE) break;
        if (c !== COMMA) throw OUTSIDE;
      }
    } else {
      this.pos++;
    }
    // ops is required by the envelope; nothing but whitespace may follow the object.
    if (!(seen & E_OPS) || this.next() !== -1) throw OUTSIDE;
    return batch;
  }
}

/** The batch in `body`, or undefined when the body is outside the scanned shape. */
export function scanBatch(body: Uint8Array): ScannedBatch | undefined {
  try {
    return new Scanner(body).batch();
  } catch (e) {
    if (e === OUTSIDE) return undefined;
    throw e;
  }
}
