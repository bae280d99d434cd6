// Low-level RDB reading: lengths, the string encodings (int, LZF), and skipping over each value
// type's encoding without decoding it. All reads are synchronous over one buffer and throw
// Incomplete when it ends, so the caller (rdb.ts) can read more input and retry the item.
import { BulwarkError, type ErrorCode } from '../../errors.js';

// Value types stored as one string (ziplist, listpack, intset, zipmap blobs).
const BLOB_TYPES = new Set([9, 10, 11, 12, 13, 16, 17, 20]);

export class Incomplete {
  constructor(readonly needEnd: number) {}
}

/** LZF decompression (Redis lzf_d.c), for keys and aux fields; values are copied compressed. */
export function lzfDecompress(input: Uint8Array, outLen: number): Buffer | undefined {
  const out = Buffer.allocUnsafe(outLen);
  let ip = 0;
  let op = 0;
  while (ip < input.length) {
    const ctrl = input[ip++]!;
    if (ctrl < 32) {
      const n = ctrl + 1;
      if (op + n > outLen || ip + n > input.length) return undefined;
      out.set(input.subarray(ip, ip + n), op);
      ip += n;
      op += n;
    } else {
      let n = ctrl >> 5;
      let ref = op - ((ctrl & 0x1f) << 8) - 1;
      if (n === 7) {
        if (ip >= input.length) return undefined;
        n += input[ip++]!;
      }
      if (ip >= input.length) return undefined;
      ref -= input[ip++]!;
      n += 2;
      if (ref < 0 || op + n > outLen) return undefined;
      for (let k = 0; k < n; k++) out[op++] = out[ref++]!;
    }
  }
  return op === outLen ? out : undefined;
}

/** Synchronous reads over the current buffer; throws Incomplete at its end. */
export class Reader {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  /** File offset of buf[0]. */
  base = 0;

  constructor(private readonly code: ErrorCode) {}

  bad(why: string, at = this.pos): BulwarkError {
    return new BulwarkError(this.code, `malformed RDB at byte offset ${this.base + at}: ${why}`, {
      hint: 'the RDB is damaged or was written by an unsupported Redis version',
    });
  }

  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new Incomplete(this.pos + n);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  take(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** A length; `enc` is set (and the value is the encoding) for the special string encodings. */
  lenOrEnc(anySize = false): { n: number; enc: boolean } {
    const at = this.pos;
    const b = this.u8();
    switch (b >> 6) {
      case 0:
        return { n: b & 0x3f, enc: false };
      case 1:
        return { n: ((b & 0x3f) << 8) | this.u8(), enc: false };
      case 2:
        if (b === 0x80) return { n: this.take(4).readUInt32BE(0), enc: false };
        if (b === 0x81) {
          const v = this.take(8).readBigUInt64BE(0);
          if (v > BigInt(Number.MAX_SAFE_INTEGER) && !anySize) throw this.bad('length too large', at);
          return { n: Number(v), enc: false };
        }
        throw this.bad(`bad length byte 0x${b.toString(16)}`, at);
      default:
        return { n: b & 0x3f, enc: true };
    }
  }

  len(): number {
    const at = this.pos;
    const { n, enc } = this.lenOrEnc();
    if (enc) throw this.bad('encoded string where a length was expected', at);
    return n;
  }

  /** A 64-bit number that is only skipped (stream IDs and counters may be UINT64_MAX). */
  skipLen(): void {
    const at = this.pos;
    if (this.lenOrEnc(true).enc) throw this.bad('encoded string where a number was expected', at);
  }

  /** Reads a string and returns its decoded bytes (decode=true) or nothing. */
  str(decode: true): Buffer;
  str(decode: false): undefined;
  str(decode: boolean): Buffer | undefined {
    const at = this.pos;
    const { n, enc } = this.lenOrEnc();
    if (!enc) {
      const b = this.take(n);
      return decode ? Buffer.from(b) : undefined;
    }
    switch (n) {
      case 0:
        return decode ? Buffer.from(String(this.take(1).readInt8(0))) : (this.take(1), undefined);
      case 1:
        return decode ? Buffer.from(String(this.take(2).readInt16LE(0))) : (this.take(2), undefined);
      case 2:
        return decode ? Buffer.from(String(this.take(4).readInt32LE(0))) : (this.take(4), undefined);
      case 3: {
        const clen = this.len();
        const ulen = this.len();
        const c = this.take(clen);
        if (!decode) return undefined;
        const out = lzfDecompress(c, ulen);
        if (out === undefined) throw this.bad('corrupt LZF string', at);
        return out;
      }
      default:
        throw this.bad(`unknown string encoding ${n}`, at);
    }
  }

  skipStrings(count: number): void {
    for (let i = 0; i < count; i++) this.str(false);
  }

  /** Module data: opcode-tagged values up to the EOF opcode (RDB_MODULE_OPCODE_*). */
  skipModuleValues(): void {
    for (;;) {
      const at = this.pos;
      const op = this.len();
      if (op === 0) return;
      if (op === 1 || op === 2) this.skipLen();
      else if (op === 3) this.take(4);
      else if (op === 4) this.take(8);
      else if (op === 5) this.str(false);
      else throw this.bad(`unknown module opcode ${op}`, at);
    }
  }

  skipStream(type: number): void {
    const nodes = this.len();
    for (let i = 0; i < nodes; i++) {
      const at = this.pos;
      const id = this.str(true);
      if (id.length !== 16) throw this.bad('stream node key is not a 16-byte ID', at);
      this.str(false);
    }
    this.skipLen(); // length
    this.skipLen(); // last id ms
    this.skipLen(); // last id seq
    if (type >= 19) for (let i = 0; i < 5; i++) this.skipLen(); // first id, max deleted id, entries added
    const groups = this.len();
    for (let g = 0; g < groups; g++) {
      this.str(false); // name
      this.skipLen(); // last delivered id ms
      this.skipLen(); // seq
      if (type >= 19) this.skipLen(); // entries read
      const pel = this.len();
      for (let i = 0; i < pel; i++) {
        this.take(16 + 8); // raw ID, delivery time (ms, LE)
        this.skipLen(); // delivery count
      }
      const consumers = this.len();
      for (let c = 0; c < consumers; c++) {
        this.str(false); // name
        this.take(8); // seen time
        if (type >= 21) this.take(8); // active time
        const owned = this.len();
        this.take(16 * owned);
      }
    }
  }

  skipValue(type: number): void {
    if (type === 0 || BLOB_TYPES.has(type)) return void this.str(false);
    switch (type) {
      case 1: // list of strings
      case 2: // set
      case 14: // quicklist of ziplists
        return this.skipStrings(this.len());
      case 3: {
        // zset with string-encoded doubles
        const n = this.len();
        for (let i = 0; i < n; i++) {
          this.str(false);
          const d = this.u8();
          if (d < 253) this.take(d);
        }
        return;
      }
      case 4: // hash
        return this.skipStrings(2 * this.len());
      case 5: {
        // zset with binary doubles
        const n = this.len();
        for (let i = 0; i < n; i++) {
          this.str(false);
          this.take(8);
        }
        return;
      }
      case 7: // module, type id then its own opcode-tagged data
        this.skipLen();
        return this.skipModuleValues();
      case 18: {
        // quicklist 2: container kind + listpack (or plain) node
        const n = this.len();
        for (let i = 0; i < n; i++) {
          this.len();
          this.str(false);
        }
        return;
      }
      case 15:
      case 19:
      case 21:
        return this.skipStream(type);
      default:
        throw this.bad(`unsupported value type ${type}`, this.pos - 1);
    }
  }
}
