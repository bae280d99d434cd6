// RetryStorage: retries failed operations that a retry can fix, with exponential backoff and full
// jitter (sleep a uniform random time in [0, min(cap, base·2^attempt))), and fails at once on the
// rest. What is retryable is decided where the error is made: BulwarkError.retryable (the S3
// backend marks 5xx, SlowDown, timeouts, connection resets and refusals; never 403, NoSuchBucket,
// 404 or OBJECT_EXISTS).
//
// A retried write may have reached the store before its response was lost. If the retry then
// meets OBJECT_EXISTS, the stored object is read back: identical bytes mean our earlier attempt
// won, and the write succeeds (the same for adopt, against the file). Likewise a retried delete
// that meets OBJECT_NOT_FOUND after an attempt whose outcome is unknown succeeds. list() restarts
// after a failure and skips the names it has already yielded.
//
// It also keeps the per-operation counters of stats.ts (calls, attempts, retries, failures, bytes).
import * as fsp from 'node:fs/promises';
import { BulwarkError, isBulwarkError } from '../errors.js';
import { opCounters, type StatOp } from './stats.js';
import type { Handle, ObjectInfo, ObjectKind, Storage } from './storage.js';

export interface RetryPolicy {
  /** Attempts in all (1 = no retry). */
  attempts: number;
  baseMs: number;
  capMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseMs: 200, capMs: 15_000 };

export function retryPolicyFromEnv(env: NodeJS.ProcessEnv = process.env): RetryPolicy {
  const v = env['BULWARK_RETRIES'];
  if (v === undefined || v === '') return DEFAULT_RETRY;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new BulwarkError('USAGE', `BULWARK_RETRIES=${JSON.stringify(v)} is not a whole number ≥ 0`, { hint: 'unset it or give the number of retries' });
  }
  return { ...DEFAULT_RETRY, attempts: n + 1 };
}

/** Full-jitter backoff before retry number `retry` (1-based). */
export function backoffMs(p: RetryPolicy, retry: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(p.capMs, p.baseMs * 2 ** (retry - 1)));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function retryable(err: unknown): boolean {
  return err instanceof BulwarkError && err.retryable;
}

/**
 * Runs `fn` until it succeeds, fails with an error that is not retryable, or runs out of attempts.
 * `mapErr` turns raw errors into BulwarkErrors (classified) first. Counts attempts and retries
 * under `op`.
 */
export async function retryCall<T>(fn: () => Promise<T>, p: RetryPolicy, mapErr: (err: unknown) => unknown, op: StatOp): Promise<T> {
  const c = opCounters(op);
  for (let attempt = 1; ; attempt++) {
    c.attempts++;
    try {
      return await fn();
    } catch (raw) {
      const err = mapErr(raw);
      if (!retryable(err) || attempt >= p.attempts) throw err;
      c.retries++;
      await sleep(backoffMs(p, attempt));
    }
  }
}

export class RetryStorage implements Storage {
  readonly location: string;
  readonly readSize?: number;
  readonly tempDir?: () => string;
  readonly adopt?: (h: Handle, file: string) => Promise<void>;
  readonly readInto?: (h: Handle, offset: number, length: number, into: Uint8Array) => Promise<void>;

  constructor(
    private readonly inner: Storage,
    readonly policy: RetryPolicy = DEFAULT_RETRY,
    private readonly random: () => number = Math.random,
  ) {
    this.location = inner.location;
    if (inner.readSize !== undefined) this.readSize = inner.readSize;
    if (inner.tempDir !== undefined) {
      const td = inner.tempDir.bind(inner);
      this.tempDir = () => td();
    }
    if (inner.adopt !== undefined) {
      const ad = inner.adopt.bind(inner);
      this.adopt = (h, file) => this.adoptWithRetry(ad, h, file);
    }
    if (inner.readInto !== undefined) {
      const ri = inner.readInto.bind(inner);
      // A failed attempt may have filled part of `into`; the next attempt overwrites all of it.
      this.readInto = async (h, offset, length, into) => {
        await this.run('read', () => ri(h, offset, length, into));
        opCounters('read').bytes += length;
      };
    }
  }

  /**
   * `settle`, when given, may decide that a failed attempt actually succeeded (resolves true), for
   * operations without a result.
   */
  private async run<T>(op: StatOp, fn: (attempt: number) => Promise<T>, settle?: (err: unknown, attempt: number) => Promise<boolean>): Promise<T> {
    const c = opCounters(op);
    c.calls++;
    for (let attempt = 1; ; attempt++) {
      c.attempts++;
      try {
        return await fn(attempt);
      } catch (err) {
        if (settle !== undefined && (await settle(err, attempt).catch(() => false))) return undefined as T;
        if (!retryable(err) || attempt >= this.policy.attempts) {
          c.failures++;
          throw err;
        }
        c.retries++;
        await sleep(backoffMs(this.policy, attempt, this.random));
      }
    }
  }

  create(): Promise<void> {
    return this.run('create', () => this.inner.create());
  }

  async *list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    const c = opCounters('list');
    c.calls++;
    const seen = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      c.attempts++;
      const fresh: ObjectInfo[] = [];
      try {
        for await (const o of this.inner.list(kind)) {
          if (seen.has(o.name)) continue;
          seen.add(o.name);
          fresh.push(o);
          if (fresh.length >= 256) yield* fresh.splice(0);
        }
        yield* fresh;
        return;
      } catch (err) {
        // Names gathered before the failure are good: hand them out, then restart the listing.
        yield* fresh;
        if (!retryable(err) || attempt >= this.policy.attempts) {
          c.failures++;
          throw err;
        }
        c.retries++;
        await sleep(backoffMs(this.policy, attempt, this.random));
      }
    }
  }

  stat(h: Handle): Promise<ObjectInfo> {
    return this.run('stat', () => this.inner.stat(h));
  }

  async read(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    const b = await this.run('read', () => this.inner.read(h, offset, length));
    opCounters('read').bytes += b.length;
    return b;
  }

  async write(h: Handle, data: Uint8Array): Promise<void> {
    await this.run(
      'write',
      () => this.inner.write(h, data),
      async (err, attempt) => {
        if (attempt === 1 || !isBulwarkError(err, 'OBJECT_EXISTS')) return false;
        // An earlier attempt may have stored the object before failing: same bytes → it did.
        const stored = await this.inner.read(h);
        return stored.equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      },
    );
    opCounters('write').bytes += data.length;
  }

  private async adoptWithRetry(inner: (h: Handle, file: string) => Promise<void>, h: Handle, file: string): Promise<void> {
    let size = 0;
    await this.run(
      'adopt',
      async () => {
        size = (await fsp.stat(file)).size;
        await inner(h, file);
      },
      async (err, attempt) => {
        if (attempt === 1 || !isBulwarkError(err, 'OBJECT_EXISTS')) return false;
        const [stored, mine] = await Promise.all([this.inner.read(h), fsp.readFile(file)]);
        if (!stored.equals(mine)) return false;
        await fsp.rm(file, { force: true });
        return true;
      },
    );
    opCounters('adopt').bytes += size;
  }

  async delete(h: Handle): Promise<void> {
    let unknownOutcome = false;
    await this.run(
      'delete',
      () => this.inner.delete(h),
      async (err) => {
        if (unknownOutcome && isBulwarkError(err, 'OBJECT_NOT_FOUND')) return true;
        if (retryable(err)) unknownOutcome = true;
        return false;
      },
    );
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
