// LimitStorage: at most N operations in flight against the inner Storage, and upload/download
// bandwidth limits (token buckets in bytes per second). Limits come from the environment
// (limitsFromEnv): BULWARK_LIMIT_UPLOAD and BULWARK_LIMIT_DOWNLOAD in KiB/s, as restic's
// --limit-upload/--limit-download, and BULWARK_S3_CONNECTIONS for the concurrency.
//
// The buckets charge a whole object at once and let the balance go negative: a 16 MiB pack at
// 1 MiB/s passes at once, and the next transfer waits until the debt is repaid. The average rate
// over any stretch longer than one object is the limit; the peak is not smoothed below that.
import * as fsp from 'node:fs/promises';
import { BulwarkError } from '../errors.js';
import type { Handle, ObjectInfo, ObjectKind, Storage } from './storage.js';

export interface Limits {
  /** Maximum operations in flight (Infinity: none). */
  concurrency: number;
  /** Bytes per second (undefined: unlimited). */
  uploadBps: number | undefined;
  downloadBps: number | undefined;
}

function kibEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    throw new BulwarkError('USAGE', `${name}=${JSON.stringify(v)} is not a positive number of KiB/s`, { hint: `unset ${name} or give e.g. ${name}=1024 (1 MiB/s)` });
  }
  return n * 1024;
}

export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env, defaultConcurrency = 5): Limits {
  const c = env['BULWARK_S3_CONNECTIONS'];
  let concurrency = defaultConcurrency;
  if (c !== undefined && c !== '') {
    concurrency = Number(c);
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new BulwarkError('USAGE', `BULWARK_S3_CONNECTIONS=${JSON.stringify(c)} is not a whole number ≥ 1`, { hint: 'unset it or give e.g. 5' });
    }
  }
  return { concurrency, uploadBps: kibEnv(env, 'BULWARK_LIMIT_UPLOAD'), downloadBps: kibEnv(env, 'BULWARK_LIMIT_DOWNLOAD') };
}

/** A counting semaphore with FIFO waiters. */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  constructor(readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiters.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next !== undefined) next();
      else this.active--;
    }
  }

  get inFlight(): number {
    return this.active;
  }
}

/** Token bucket in bytes: `take(n)` waits until the balance is positive, then charges n. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly rate: number,
    readonly burst: number = Math.max(rate, 64 * 1024),
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
  }

  take(n: number): Promise<void> {
    const turn = this.queue.then(async () => {
      this.refill();
      if (this.tokens <= 0) {
        await new Promise((r) => setTimeout(r, Math.ceil((-this.tokens / this.rate) * 1000) + 1));
        this.refill();
      }
      this.tokens -= n;
    });
    this.queue = turn.catch(() => undefined);
    return turn;
  }
}

export class LimitStorage implements Storage {
  readonly location: string;
  readonly readSize?: number;
  readonly tempDir?: () => string;
  readonly adopt?: (h: Handle, file: string) => Promise<void>;
  readonly readInto?: (h: Handle, offset: number, length: number, into: Uint8Array) => Promise<void>;
  private readonly sem: Semaphore;
  private readonly up: TokenBucket | undefined;
  private readonly down: TokenBucket | undefined;

  constructor(
    private readonly inner: Storage,
    limits: Limits,
  ) {
    this.location = inner.location;
    if (inner.readSize !== undefined) this.readSize = inner.readSize;
    this.sem = new Semaphore(limits.concurrency);
    this.up = limits.uploadBps === undefined ? undefined : new TokenBucket(limits.uploadBps);
    this.down = limits.downloadBps === undefined ? undefined : new TokenBucket(limits.downloadBps);
    if (inner.tempDir !== undefined) {
      const td = inner.tempDir.bind(inner);
      this.tempDir = () => td();
    }
    if (inner.readInto !== undefined) {
      const ri = inner.readInto.bind(inner);
      this.readInto = (h, offset, length, into) =>
        this.sem.run(async () => {
          await ri(h, offset, length, into);
          if (this.down !== undefined) await this.down.take(length);
        });
    }
    if (inner.adopt !== undefined) {
      const ad = inner.adopt.bind(inner);
      this.adopt = (h, file) =>
        this.sem.run(async () => {
          if (this.up !== undefined) await this.up.take((await fsp.stat(file)).size);
          await ad(h, file);
        });
    }
  }

  create(): Promise<void> {
    return this.sem.run(() => this.inner.create());
  }

  async *list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    // One slot per step of the inner listing, never across a yield: a caller that reads objects
    // while listing must not deadlock against its own listing.
    const it = this.inner.list(kind)[Symbol.asyncIterator]();
    for (;;) {
      const r = await this.sem.run(() => it.next());
      if (r.done === true) return;
      yield r.value;
    }
  }

  stat(h: Handle): Promise<ObjectInfo> {
    return this.sem.run(() => this.inner.stat(h));
  }

  read(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    return this.sem.run(async () => {
      const b = await this.inner.read(h, offset, length);
      if (this.down !== undefined) await this.down.take(b.length);
      return b;
    });
  }

  write(h: Handle, data: Uint8Array): Promise<void> {
    return this.sem.run(async () => {
      if (this.up !== undefined) await this.up.take(data.length);
      await this.inner.write(h, data);
    });
  }

  delete(h: Handle): Promise<void> {
    return this.sem.run(() => this.inner.delete(h));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
