// RESP2 wire format: an incremental reply parser, and a command encoder that packs many commands
// into few large buffers (pipelined restores send millions of small commands).
import { BulwarkError } from '../../errors.js';

/** An error reply (-ERR ...), kept as a value so pipelined callers can decide per command. */
export class RespError {
  constructor(readonly message: string) {}
  /** The first word: ERR, BUSYKEY, WRONGPASS, NOAUTH, MOVED... */
  get prefix(): string {
    const sp = this.message.indexOf(' ');
    return sp < 0 ? this.message : this.message.slice(0, sp);
  }
}

export type RespValue = string | number | Buffer | null | RespError | RespValue[];
export type RespArg = string | Buffer | number;

// Thrown inside the parser when the buffer ends mid-reply; carries the absolute end needed.
class Incomplete {
  constructor(readonly needEnd: number) {}
}
export const INCOMPLETE = Symbol('incomplete');

/** Incremental RESP2 reply parser. Chunks are joined only once enough bytes for a reply arrived. */
export class RespParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  private need = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
  }

  /** Bytes received but not yet parsed, for a caller taking the socket over. */
  rest(): Buffer {
    return Buffer.concat([this.buf.subarray(this.pos), ...this.chunks]);
  }

  next(): RespValue | typeof INCOMPLETE {
    if (this.buf.length - this.pos + this.chunkBytes < this.need) return INCOMPLETE;
    if (this.chunks.length > 0) {
      this.buf = this.pos === this.buf.length && this.chunks.length === 1 ? this.chunks[0]! : this.rest();
      this.pos = 0;
      this.chunks = [];
      this.chunkBytes = 0;
    }
    if (this.pos >= this.buf.length) return INCOMPLETE;
    try {
      const [v, end] = this.parse(this.pos);
      this.pos = end;
      this.need = 0;
      return v;
    } catch (e) {
      if (!(e instanceof Incomplete)) throw e;
      this.need = e.needEnd - this.pos;
      return INCOMPLETE;
    }
  }

  private line(at: number): [string, number] {
    const cr = this.buf.indexOf(13, at);
    if (cr < 0 || cr + 1 >= this.buf.length) throw new Incomplete(Math.max(this.buf.length + 1, cr + 2));
    return [this.buf.toString('latin1', at, cr), cr + 2];
  }

  private parse(at: number): [RespValue, number] {
    if (at >= this.buf.length) throw new Incomplete(at + 1);
    const t = this.buf[at];
    const [text, next] = this.line(at + 1);
    switch (t) {
      case 0x2b: // '+'
        return [Buffer.from(text, 'latin1').toString('utf8'), next];
      case 0x2d: // '-'
        return [new RespError(Buffer.from(text, 'latin1').toString('utf8')), next];
      case 0x3a: // ':'
        return [Number(text), next];
      case 0x24: {
        // '$' bulk string
        const len = Number(text);
        if (len < 0) return [null, next];
        const end = next + len + 2;
        if (end > this.buf.length) throw new Incomplete(end);
        return [Buffer.from(this.buf.subarray(next, next + len)), end];
      }
      case 0x2a: {
        // '*' array
        const n = Number(text);
        if (n < 0) return [null, next];
        const out: RespValue[] = [];
        let p = next;
        for (let i = 0; i < n; i++) {
          const [v, e] = this.parse(p);
          out.push(v);
          p = e;
        }
        return [out, p];
      }
      default:
        throw new BulwarkError('DB_CONNECT', `unexpected byte 0x${(t ?? 0).toString(16)} in a Redis reply`, {
          hint: 'is this port a Redis server?',
        });
    }
  }
}

/** Encodes commands into large buffers; big binary arguments are passed through uncopied. */
export class Outbox {
  private parts: Buffer[] = [];
  private buf = Buffer.allocUnsafe(64 * 1024);
  private len = 0;
  bytes = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    this.cut();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }

  private cut(): void {
    if (this.len === 0) return;
    this.parts.push(this.buf.subarray(0, this.len));
    // The rest of the block stays usable: the part taken is a view that is never written again.
    this.buf = this.buf.length - this.len >= 4096 ? this.buf.subarray(this.len) : Buffer.allocUnsafe(64 * 1024);
    this.len = 0;
  }

  private ascii(s: string): void {
    this.room(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
  }

  add(args: readonly RespArg[]): void {
    let total = 0;
    this.ascii(`*${args.length}\r\n`);
    for (const a of args) {
      if (Buffer.isBuffer(a)) {
        this.ascii(`$${a.length}\r\n`);
        if (a.length > 16 * 1024) {
          this.cut();
          this.parts.push(a);
        } else {
          this.room(a.length);
          a.copy(this.buf, this.len);
          this.len += a.length;
        }
        total += a.length;
      } else {
        const s = String(a);
        const n = Buffer.byteLength(s);
        this.ascii(`$${n}\r\n`);
        this.room(n);
        this.len += this.buf.write(s, this.len);
        total += n;
      }
      this.ascii('\r\n');
    }
    this.bytes += total + 16 * (args.length + 1);
  }

  take(): Buffer[] {
    this.cut();
    const out = this.parts;
    this.parts = [];
    this.bytes = 0;
    return out;
  }
}

export function encodeCommand(args: readonly RespArg[]): Buffer {
  const o = new Outbox();
  o.add(args);
  return Buffer.concat(o.take());
}
