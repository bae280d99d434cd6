// A single-producer, single-consumer byte ring in shared memory, for handing a stream from one
// thread to another without messages. The producer (a pump thread blocked in read() on a pipe)
// and the consumer (a chunk worker) each keep their own position; the shared header holds how many
// bytes are in the ring and how the stream ended. Either side blocks with Atomics.wait when the
// ring is full or empty, so a pipe's producer keeps writing while the consumer is busy cutting,
// hashing and sealing, instead of stalling on the pipe's 64 KiB buffer.
//
// Every change to the header bumps SEQ and notifies on it, and both sides wait on SEQ with the value
// they read before looking at the state: a change that lands between the look and the wait makes
// the wait return at once, so no wakeup is lost.
const AVAIL = 0; // bytes in the ring
const STATE = 1; // 0 open, 1 ended, 2 failed
const CLOSED = 2; // set by the consumer when it stops reading (the producer then stops)
const ERRLEN = 3; // length of the producer's error (JSON) in the error area
const SEQ = 4; // bumped on every change
const OPENED = 5; // set by the producer once its source is open (1) or could not be opened (2)
const HEAD_BYTES = 32;
const ERROR_AREA = 1024;
const HEADER = HEAD_BYTES + ERROR_AREA;
const WAIT_MS = 1000;

export interface RingError {
  code: string;
  message: string;
}

export function createRing(size: number): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER + size);
}

/** 0 until the producer has opened its source, then 1 (open) or 2 (failed to open). */
export function ringOpened(sab: SharedArrayBuffer): number {
  return Atomics.load(new Int32Array(sab, 0, HEAD_BYTES / 4), OPENED);
}

abstract class RingSide {
  protected readonly head: Int32Array;
  protected readonly data: Buffer;
  protected readonly size: number;
  protected pos = 0;
  constructor(readonly sab: SharedArrayBuffer) {
    this.head = new Int32Array(sab, 0, HEAD_BYTES / 4);
    this.size = sab.byteLength - HEADER;
    this.data = Buffer.from(sab, HEADER, this.size);
  }

  protected changed(): void {
    Atomics.add(this.head, SEQ, 1);
    Atomics.notify(this.head, SEQ);
  }
}

export class RingWriter extends RingSide {
  /** True once the consumer has stopped reading. */
  get closed(): boolean {
    return Atomics.load(this.head, CLOSED) !== 0;
  }

  /** Records whether the producer's source could be opened (see ringOpened). */
  opened(ok: boolean): void {
    Atomics.store(this.head, OPENED, ok ? 1 : 2);
    this.changed();
  }

  /**
   * Lets `fill` write straight into the ring: it gets the free span at the write position and
   * returns how many bytes it put there (0 means end of stream). Blocks while the ring is full.
   * Returns false at end of stream or when the consumer has gone.
   */
  produce(fill: (buf: Buffer, off: number, len: number) => number): boolean {
    for (;;) {
      const seq = Atomics.load(this.head, SEQ);
      if (this.closed) return false;
      if (Atomics.load(this.head, AVAIL) < this.size) break;
      Atomics.wait(this.head, SEQ, seq, WAIT_MS);
    }
    const avail = Atomics.load(this.head, AVAIL);
    const len = Math.min(this.size - avail, this.size - this.pos);
    const n = fill(this.data, this.pos, len);
    if (n === 0) return false;
    this.pos = (this.pos + n) % this.size;
    Atomics.add(this.head, AVAIL, n);
    this.changed();
    return true;
  }

  end(): void {
    Atomics.store(this.head, STATE, 1);
    this.changed();
  }

  fail(err: RingError): void {
    // The error area holds UTF-8 JSON; shorten the message until it fits.
    let message = err.message;
    let text = Buffer.from(JSON.stringify({ code: err.code, message }));
    while (text.length > ERROR_AREA && message.length > 0) {
      message = message.slice(0, Math.floor(message.length / 2));
      text = Buffer.from(JSON.stringify({ code: err.code, message }));
    }
    if (text.length <= ERROR_AREA) {
      new Uint8Array(this.sab, HEAD_BYTES, ERROR_AREA).set(text);
      Atomics.store(this.head, ERRLEN, text.length);
    }
    Atomics.store(this.head, STATE, 2);
    this.changed();
  }
}

export class RingReader extends RingSide {
  /**
   * Copies up to `len` bytes into `dst` at `off`, blocking until some are there. Returns 0 at end
   * of stream; throws the producer's error if it failed.
   */
  read(dst: Uint8Array, off: number, len: number): number {
    for (;;) {
      const seq = Atomics.load(this.head, SEQ);
      const avail = Atomics.load(this.head, AVAIL);
      if (avail > 0) {
        const n = Math.min(avail, len, this.size - this.pos);
        dst.set(this.data.subarray(this.pos, this.pos + n), off);
        this.pos = (this.pos + n) % this.size;
        Atomics.sub(this.head, AVAIL, n);
        this.changed();
        return n;
      }
      const state = Atomics.load(this.head, STATE);
      if (state === 1) {
        // Bytes added before the end was recorded are visible now: read them first.
        if (Atomics.load(this.head, AVAIL) === 0) return 0;
        continue;
      }
      if (state === 2) {
        const e = this.error();
        throw Object.assign(new Error(e.message), { code: e.code });
      }
      Atomics.wait(this.head, SEQ, seq, WAIT_MS);
    }
  }

  private error(): RingError {
    try {
      const n = Atomics.load(this.head, ERRLEN);
      const v = JSON.parse(Buffer.from(this.sab, HEAD_BYTES, n).toString('utf8')) as RingError;
      return { code: String(v.code), message: String(v.message) };
    } catch {
      return { code: 'EIO', message: 'reading the stream failed' };
    }
  }

  /** Tells the producer to stop (the consumer failed or finished early). */
  close(): void {
    Atomics.store(this.head, CLOSED, 1);
    this.changed();
  }
}
