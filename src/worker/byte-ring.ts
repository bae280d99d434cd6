// A single-producer, single-consumer byte ring in shared memory, for handing a stream from one
// thread to another without messages. The producer (a pump thread blocked in read() on a pipe)
// and the consumer (a chunk worker) each keep their own position; the shared header holds how many
// bytes are in the ring and how the stream ended. Either side blocks with Atomics.wait when the
// ring is full or empty, so a pipe's producer keeps writing while the consumer is busy cutting,
// hashing and sealing, instead of stalling on the pipe's 64 KiB buffer.
const AVAIL = 0; // bytes in the ring
const STATE = 1; // 0 open, 1 ended, 2 failed
const CLOSED = 2; // set by the consumer when it stops reading (the producer then stops)
const ERRLEN = 3; // length of the producer's error (JSON) in the error area
const ERROR_AREA = 1024;
const HEADER = 16 + ERROR_AREA;

export interface RingError {
  code: string;
  message: string;
}

export function createRing(size: number): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER + size);
}

abstract class RingSide {
  protected readonly head: Int32Array;
  protected readonly data: Buffer;
  protected readonly size: number;
  protected pos = 0;
  constructor(readonly sab: SharedArrayBuffer) {
    this.head = new Int32Array(sab, 0, HEADER / 4);
    this.size = sab.byteLength - HEADER;
    this.data = Buffer.from(sab, HEADER, this.size);
  }
}

export class RingWriter extends RingSide {
  /** True once the consumer has stopped reading. */
  get closed(): boolean {
    return Atomics.load(this.head, CLOSED) !== 0;
  }

  /**
   * Lets `fill` write straight into the ring: it gets the free span at the write position and
   * returns how many bytes it put there (0 means end of stream). Blocks while the ring is full.
   * Returns false at end of stream or when the consumer has gone.
   */
  produce(fill: (buf: Buffer, off: number, len: number) => number): boolean {
    for (;;) {
      if (this.closed) return false;
      const avail = Atomics.load(this.head, AVAIL);
      if (avail < this.size) break;
      Atomics.wait(this.head, AVAIL, avail, 1000);
    }
    const avail = Atomics.load(this.head, AVAIL);
    const len = Math.min(this.size - avail, this.size - this.pos);
    const n = fill(this.data, this.pos, len);
    if (n === 0) return false;
    this.pos = (this.pos + n) % this.size;
    Atomics.add(this.head, AVAIL, n);
    Atomics.notify(this.head, AVAIL);
    return true;
  }

  end(): void {
    Atomics.store(this.head, STATE, 1);
    Atomics.notify(this.head, AVAIL);
  }

  fail(err: RingError): void {
    const text = Buffer.from(JSON.stringify({ code: err.code, message: err.message.slice(0, 400) }));
    const area = new Uint8Array(this.sab, 16, ERROR_AREA);
    const n = Math.min(text.length, ERROR_AREA);
    area.set(text.subarray(0, n));
    Atomics.store(this.head, ERRLEN, n);
    Atomics.store(this.head, STATE, 2);
    Atomics.notify(this.head, AVAIL);
  }
}

export class RingReader extends RingSide {
  /**
   * Copies up to `len` bytes into `dst` at `off`, blocking until some are there. Returns 0 at end
   * of stream; throws the producer's error if it failed.
   */
  read(dst: Uint8Array, off: number, len: number): number {
    for (;;) {
      const avail = Atomics.load(this.head, AVAIL);
      if (avail > 0) {
        const n = Math.min(avail, len, this.size - this.pos);
        dst.set(this.data.subarray(this.pos, this.pos + n), off);
        this.pos = (this.pos + n) % this.size;
        Atomics.sub(this.head, AVAIL, n);
        Atomics.notify(this.head, AVAIL);
        return n;
      }
      const state = Atomics.load(this.head, STATE);
      if (state === 1 && Atomics.load(this.head, AVAIL) === 0) return 0;
      if (state === 2) {
        const e = this.error();
        throw Object.assign(new Error(e.message), { code: e.code });
      }
      Atomics.wait(this.head, AVAIL, 0, 1000);
    }
  }

  private error(): RingError {
    try {
      const n = Atomics.load(this.head, ERRLEN);
      const v = JSON.parse(Buffer.from(this.sab, 16, n).toString('utf8')) as RingError;
      return { code: String(v.code), message: String(v.message) };
    } catch {
      return { code: 'EIO', message: 'reading the stream failed' };
    }
  }

  /** Tells the producer to stop (the consumer failed or finished early). */
  close(): void {
    Atomics.store(this.head, CLOSED, 1);
    Atomics.notify(this.head, AVAIL);
  }
}
