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
 * exponent, with a leading zero or of more than 15 digits, an onError other than "stop" or
 * "continue", anything but whitespace after the object. What it returns satisfies the envelope
 * schema by construction (known keys only, bdf and space strings, ops an array, onError one of
 * its literals), which is why the route's envelope check takes a ScannedBatch as is.
 *
 * Written for speed: one pass over the bytes, positions passed and returned as integers (-1:
 * outside the shape), keys recognised from their bytes without making strings.
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

// Bytes.
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

/** The most digits of a number taken here: 15 digits are always a safe integer. */
const MAX_DIGITS = 15;

// Keys, as bits (a key given twice leaves the shape).
const K_BDF = 1;
const K_SPACE = 2;
const K_OP = 4;
const K_OFFSET = 8;
const K_WIDTH = 16;
const K_LENGTH = 32;
const K_VALUE = 64;
const K_DATA = 128;
const K_OPS = 256;
const K_ONERROR = 512;

/** Up to 4 ASCII bytes of a word packed in one integer (first byte lowest). */
function pack(word: string, from: number, to: number): number {
  let h = 0;
  for (let i = from; i < Math.min(to, word.length); i++) h |= word.charCodeAt(i) << (8 * (i - from));
  return h;
}

// Keys packed: the first 4 bytes, then the next 3.
const OP = pack('op', 0, 4);
const BDF = pack('bdf', 0, 4);
const OPS = pack('ops', 0, 4);
const DATA = pack('data', 0, 4);
const WIDT = pack('width', 0, 4);
const VALU = pack('value', 0, 4);
const SPAC = pack('space', 0, 4);
const OFFS = pack('offset', 0, 4);
const LENG = pack('length', 0, 4);
const ONER = pack('onError', 0, 4);
const H = pack('width', 4, 8);
const E = pack('value', 4, 8);
const ET = pack('offset', 4, 8);
const TH = pack('length', 4, 8);
const ROR = pack('onError', 4, 8);

const READ = pack('read', 0, 4);
const WRIT = pack('write', 0, 4);

/** Length in letters of each key, by bit. */
const KEY_LENGTH = new Uint8Array(K_ONERROR + 1);
for (const [bit, word] of [
  [K_BDF, 'bdf'],
  [K_SPACE, 'space'],
  [K_OP, 'op'],
  [K_OFFSET, 'offset'],
  [K_WIDTH, 'width'],
  [K_LENGTH, 'length'],
  [K_VALUE, 'value'],
  [K_DATA, 'data'],
  [K_OPS, 'ops'],
  [K_ONERROR, 'onError'],
] as const)
  KEY_LENGTH[bit] = word.length;

/**
 * The key at `p` (after its opening quote), or 0. Keys are 2 to 7 letters: the
 * position of the closing quote gives the length, then the packed bytes are compared.
 */
function keyAt(buf: Uint8Array, p: number): number {
  const b0 = buf[p]!;
  const b1 = buf[p + 1]!;
  const b2 = buf[p + 2]!;
  if (b2 === QUOTE) {
    return (b0 | (b1 << 8)) === OP ? K_OP : 0;
  }
  const b3 = buf[p + 3]!;
  if (b3 === QUOTE) {
    const lo = b0 | (b1 << 8) | (b2 << 16);
    return lo === BDF ? K_BDF : lo === OPS ? K_OPS : 0;
  }
  const lo = b0 | (b1 << 8) | (b2 << 16) | (b3 << 24);
  const b4 = buf[p + 4]!;
  if (b4 === QUOTE) {
    return lo === DATA ? K_DATA : 0;
  }
  const b5 = buf[p + 5]!;
  if (b5 === QUOTE) {
    if (b4 === H) return lo === WIDT ? K_WIDTH : 0;
    if (b4 === E) return lo === VALU ? K_VALUE : lo === SPAC ? K_SPACE : 0;
    return 0;
  }
  const b6 = buf[p + 6]!;
  if (b6 === QUOTE) {
    const hi = b4 | (b5 << 8);
    if (hi === ET) return lo === OFFS ? K_OFFSET : 0;
    return hi === TH && lo === LENG ? K_LENGTH : 0;
  }
  if (buf[p + 7] === QUOTE) {
    return lo === ONER && (b4 | (b5 << 8) | (b6 << 16)) === ROR ? K_ONERROR : 0;
  }
  return 0;
}

/** Whether a byte is JSON whitespace (false for undefined, past the end). */
function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Skips JSON whitespace. */
function skip(buf: Uint8Array, p: number): number {
  while (isSpace(buf[p])) p++;
  return p;
}

/** ASCII bytes as a string (the same string a UTF-8 decode would give). */
function ascii(buf: Buffer, start: number, end: number): string {
  return buf.toString('latin1', start, end);
}

/** The string or number value() read last. */
let scanned: string | number = 0;

/**
 * A string of printable ASCII without escapes, or a non-negative integer, at `p` (no
 * whitespace before it): sets `scanned` and returns the position after it, or -1. "read" and
 * "write" come back as those constants.
 */
function value(buf: Buffer, p: number): number {
  const c = buf[p];
  if (c === QUOTE) {
    const start = p + 1;
    for (p = start; ; p++) {
      const d = buf[p];
      if (d === QUOTE) break;
      if (d === undefined || d < 0x20 || d > 0x7e || d === BACKSLASH) return -1;
    }
    const n = p - start;
    if (n === 4 || n === 5) {
      const head = buf[start]! | (buf[start + 1]! << 8) | (buf[start + 2]! << 16) | (buf[start + 3]! << 24);
      if (n === 4 && head === READ) {
        scanned = 'read';
        return p + 1;
      }
      if (n === 5 && head === WRIT && buf[start + 4] === E) {
        scanned = 'write';
        return p + 1;
      }
    }
    scanned = ascii(buf, start, p);
    return p + 1;
  }
  if (c === undefined || c < ZERO || c > NINE) return -1;
  const first = p;
  let v = c - ZERO;
  for (p++; ; p++) {
    const d = buf[p];
    if (d === undefined || d < ZERO || d > NINE) break;
    v = v * 10 + (d - ZERO);
  }
  const digits = p - first;
  if (digits > MAX_DIGITS || (digits > 1 && c === ZERO)) return -1;
  scanned = v;
  return p;
}

/** Position after the colon of the key() found last. */
let keyEnd = 0;

/** `"key":` at `p` (whitespace skipped): the key's bit (0: not a key), the position after the colon in `keyEnd`. */
function key(buf: Uint8Array, p: number): number {
  if (isSpace(buf[p])) p = skip(buf, p);
  if (buf[p] !== QUOTE) return 0;
  const k = keyAt(buf, p + 1);
  p += 2 + KEY_LENGTH[k]!;
  if (isSpace(buf[p])) p = skip(buf, p);
  if (buf[p] !== COLON) return 0;
  p++;
  keyEnd = isSpace(buf[p]) ? skip(buf, p) : p;
  return k;
}

const OPERATION_KEYS = K_BDF | K_SPACE | K_OP | K_OFFSET | K_WIDTH | K_LENGTH | K_VALUE | K_DATA;

/**
 * One operation object at `p` (after its opening brace), appended to `ops`; the position after
 * it, or -1. The hot loop of the scan: key() and value() written out in place, state in locals.
 */
function operation(buf: Buffer, p: number, ops: ScannedOperation[]): number {
  const op = new ScannedOperation();
  ops.push(op);
  if (isSpace(buf[p])) p = skip(buf, p);
  if (buf[p] === CLOSE_BRACE) return p + 1;
  let seen = 0;
  for (;;) {
    // "key":
    if (isSpace(buf[p])) p = skip(buf, p);
    if (buf[p] !== QUOTE) return -1;
    const k = keyAt(buf, p + 1);
    if ((k & OPERATION_KEYS) === 0 || (seen & k) !== 0) return -1;
    seen |= k;
    p += 2 + KEY_LENGTH[k]!;
    if (isSpace(buf[p])) p = skip(buf, p);
    if (buf[p] !== COLON) return -1;
    p++;
    if (isSpace(buf[p])) p = skip(buf, p);
    // The value: a string or a non-negative integer.
    let v: string | number;
    const c = buf[p];
    if (c === QUOTE) {
      const start = p + 1;
      for (p = start; ; p++) {
        const d = buf[p];
        if (d === QUOTE) break;
        if (d === undefined || d < 0x20 || d > 0x7e || d === BACKSLASH) return -1;
      }
      const n = p - start;
      p++;
      const head =
        n === 4 || n === 5
          ? buf[start]! | (buf[start + 1]! << 8) | (buf[start + 2]! << 16) | (buf[start + 3]! << 24)
          : 0;
      if (n === 4 && head === READ) v = 'read';
      else if (n === 5 && head === WRIT && buf[start + 4] === E) v = 'write';
      else v = ascii(buf, start, p - 1);
    } else {
      if (c === undefined || c < ZERO || c > NINE) return -1;
      const first = p;
      let x = c - ZERO;
      for (p++; ; p++) {
        const d = buf[p];
        if (d === undefined || d < ZERO || d > NINE) break;
        x = x * 10 + (d - ZERO);
      }
      const digits = p - first;
      if (digits > MAX_DIGITS || (digits > 1 && c === ZERO)) return -1;
      v = x;
    }
    switch (k) {
      case K_OP:
        op.op = v;
        break;
      case K_OFFSET:
        op.offset = v;
        break;
      case K_WIDTH:
        op.width = v;
        break;
      case K_VALUE:
        op.value = v;
        break;
      case K_BDF:
        op.bdf = v;
        break;
      case K_SPACE:
        op.space = v;
        break;
      case K_LENGTH:
        op.length = v;
        break;
      default:
        op.data = v;
    }
    // , or }
    let e = buf[p];
    if (isSpace(e)) {
      p = skip(buf, p);
      e = buf[p];
    }
    if (e === CLOSE_BRACE) return p + 1;
    if (e !== COMMA) return -1;
    p++;
  }
}

/** The ops array at `p` (whitespace skipped); position after it or -1. */
function operations(buf: Buffer, p: number, ops: ScannedOperation[]): number {
  p = skip(buf, p);
  if (buf[p] !== OPEN_BRACKET) return -1;
  p = skip(buf, p + 1);
  if (buf[p] === CLOSE_BRACKET) return p + 1;
  for (;;) {
    if (buf[p] !== OPEN_BRACE) return -1;
    p = operation(buf, p + 1, ops);
    if (p < 0) return -1;
    p = skip(buf, p);
    const c = buf[p];
    if (c === CLOSE_BRACKET) return p + 1;
    if (c !== COMMA) return -1;
    p = skip(buf, p + 1);
  }
}

/** A string value at `p` (whitespace already skipped), into `scanned`; position after it or -1. */
function stringValue(buf: Buffer, p: number): number {
  return buf[p] === QUOTE ? value(buf, p) : -1;
}

/** The batch in `body`, or undefined when the body is outside the scanned shape. */
export function scanBatch(body: Buffer): ScannedBatch | undefined {
  const batch = new ScannedBatch();
  let p = skip(body, 0);
  if (body[p] !== OPEN_BRACE) return undefined;
  p = skip(body, p + 1);
  let seen = 0;
  if (body[p] === CLOSE_BRACE) {
    p++;
  } else {
    for (;;) {
      const k = key(body, p);
      if ((k & (K_OPS | K_BDF | K_SPACE | K_ONERROR)) === 0 || (seen & k) !== 0) return undefined;
      seen |= k;
      if (k === K_OPS) {
        p = operations(body, keyEnd, batch.ops);
      } else {
        p = stringValue(body, keyEnd);
        if (p < 0) return undefined;
        const text = scanned as string;
        if (k === K_BDF) batch.bdf = text;
        else if (k === K_SPACE) batch.space = text;
        else if (text === 'stop' || text === 'continue') batch.onError = text;
        else return undefined;
      }
      if (p < 0) return undefined;
      p = skip(body, p);
      const c = body[p];
      p++;
      if (c === CLOSE_BRACE) break;
      if (c !== COMMA) return undefined;
    }
  }
  // ops is required by the envelope; nothing but whitespace may follow the object.
  if ((seen & K_OPS) === 0 || skip(body, p) !== body.length) return undefined;
  return batch;
}
