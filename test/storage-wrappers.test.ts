// The resilience wrappers on their own (no S3 needed): RetryStorage and LimitStorage over a
// fault-injecting in-memory store, the full-jitter backoff, the token bucket and the counters.
// test/s3.test.ts proves them again against a real S3 behind test/fault-proxy.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { BulwarkError } from '../src/errors.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { resilient } from '../src/storage/open.js';
import { backoffMs, DEFAULT_RETRY, RetryStorage, retryPolicyFromEnv, type RetryPolicy } from '../src/storage/retry.js';
import { resetStorageStats, storageStats } from '../src/storage/stats.js';
import type { Handle, ObjectInfo, ObjectKind, Storage } from '../src/storage/storage.js';
import { FaultyStorage } from '../src/storage/testkit/faulty.js';
import { LimitStorage, limitsFromEnv, TokenBucket } from '../src/storage/throttle.js';
import { handle, listAll, rejectsWith, storageConformance } from './storage-conformance.js';

const FAST: RetryPolicy = { attempts: 5, baseMs: 1, capMs: 5 };

storageConformance('retry(limit(memory)) chained as for S3', async () => resilient(new MemoryStorage(), {}));

/** A store whose writes land but whose first `n` write replies are lost (a retryable failure). */
class LostReplyStorage extends MemoryStorage {
  constructor(private n: number) {
    super();
  }
  override async write(h: Handle, data: Uint8Array): Promise<void> {
    await super.write(h, data);
    if (this.n-- > 0) throw new BulwarkError('STORAGE_IO', 'socket hang up (reply lost)', { retryable: true });
  }
  override async delete(h: Handle): Promise<void> {
    await super.delete(h);
    if (this.n-- > 0) throw new BulwarkError('STORAGE_IO', 'socket hang up (reply lost)', { retryable: true });
  }
}

/** A store whose listing fails once after yielding some names. */
class FlakyListStorage extends MemoryStorage {
  failed = false;
  override async *list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    let i = 0;
    for await (const o of super.list(kind)) {
      if (!this.failed && i++ === 3) {
        this.failed = true;
        throw new BulwarkError('STORAGE_IO', 'ECONNRESET while listing', { retryable: true });
      }
      yield o;
    }
  }
}

describe('RetryStorage', () => {
  it('retries retryable failures and counts calls, attempts and retries', async () => {
    resetStorageStats();
    const faulty = new FaultyStorage(new MemoryStorage()).failNth('write', 1).failNth('write', 2).failNth('read', 1);
    const s = new RetryStorage(faulty, FAST);
    const h = handle('data');
    await s.write(h, Buffer.from('abc'));
    assert.deepEqual(await s.read(h), Buffer.from('abc'));
    const st = storageStats().ops;
    assert.deepEqual(st.write, { calls: 1, attempts: 3, retries: 2, failures: 0, bytes: 3 });
    assert.deepEqual(st.read, { calls: 1, attempts: 2, retries: 1, failures: 0, bytes: 3 });
  });

  it('fails at once on errors a retry cannot fix', async () => {
    resetStorageStats();
    const faulty = new FaultyStorage(new MemoryStorage()).failNth('stat', 1, { code: 'STORAGE_AUTH', retryable: false });
    const s = new RetryStorage(faulty, FAST);
    await rejectsWith(s.stat(handle('keys')), 'STORAGE_AUTH');
    await rejectsWith(s.read(handle('keys')), 'OBJECT_NOT_FOUND');
    const h = handle('index');
    await s.write(h, Buffer.from('x'));
    await rejectsWith(s.write(h, Buffer.from('y')), 'OBJECT_EXISTS');
    const st = storageStats().ops;
    assert.deepEqual([st.stat.attempts, st.stat.failures], [1, 1]);
    assert.deepEqual([st.read.attempts, st.read.failures], [1, 1]);
    assert.deepEqual([st.write.attempts, st.write.retries, st.write.failures], [2, 0, 1]);
  });

  it('gives up after the last attempt with the last error', async () => {
    const faulty = new FaultyStorage(new MemoryStorage()).failWhen('read', () => true);
    const s = new RetryStorage(faulty, FAST);
    await rejectsWith(s.read(handle('data')), 'STORAGE_IO');
    assert.equal(faulty.count('read'), FAST.attempts);
  });

  it('a write whose reply was lost succeeds when the retry finds the same bytes stored', async () => {
    const inner = new LostReplyStorage(1);
    const s = new RetryStorage(inner, FAST);
    const h = handle('data');
    await s.write(h, Buffer.from('payload'));
    assert.deepEqual(await s.read(h), Buffer.from('payload'));
    // Different bytes under the name are still OBJECT_EXISTS, even after a lost reply.
    const other = new LostReplyStorage(0);
    await other.write(h, Buffer.from('someone else'));
    const s2 = new RetryStorage(new FaultyStorage(other).failNth('write', 1), FAST);
    await rejectsWith(s2.write(h, Buffer.from('payload')), 'OBJECT_EXISTS');
  });

  it('a delete whose reply was lost succeeds', async () => {
    const inner = new LostReplyStorage(0);
    const h = handle('locks');
    await inner.write(h, Buffer.from('lock'));
    const s = new RetryStorage(new LostReplyStorageDelete(inner), FAST);
    await s.delete(h);
    await rejectsWith(s.stat(h), 'OBJECT_NOT_FOUND');
    await rejectsWith(s.delete(h), 'OBJECT_NOT_FOUND');
  });

  it('a listing that fails midway restarts without duplicates or losses', async () => {
    const inner = new FlakyListStorage();
    const names = Array.from({ length: 10 }, () => handle('snapshots'));
    for (const h of names) await inner.write(h, Buffer.from('s'));
    const s = new RetryStorage(inner, FAST);
    const got = await listAll(s, 'snapshots');
    assert.ok(inner.failed);
    assert.deepEqual(got.map((o) => o.name), names.map((h) => h.name).sort());
  });

  it('backoff is full jitter: uniform below min(cap, base·2^(n-1))', () => {
    const p: RetryPolicy = { attempts: 10, baseMs: 100, capMs: 1000 };
    assert.equal(backoffMs(p, 1, () => 0.999999), 99);
    assert.equal(backoffMs(p, 3, () => 0.5), 200);
    assert.equal(backoffMs(p, 8, () => 0.999999), 999);
    assert.equal(backoffMs(p, 8, () => 0), 0);
  });
});

/** Deletes land, but the first reply is lost. */
class LostReplyStorageDelete implements Storage {
  private lost = false;
  readonly location: string;
  constructor(private readonly inner: Storage) {
    this.location = inner.location;
  }
  create(): Promise<void> {
    return this.inner.create();
  }
  list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    return this.inner.list(kind);
  }
  stat(h: Handle): Promise<ObjectInfo> {
    return this.inner.stat(h);
  }
  read(h: Handle, o?: number, l?: number): Promise<Buffer> {
    return this.inner.read(h, o, l);
  }
  write(h: Handle, d: Uint8Array): Promise<void> {
    return this.inner.write(h, d);
  }
  async delete(h: Handle): Promise<void> {
    await this.inner.delete(h);
    if (!this.lost) {
      this.lost = true;
      throw new BulwarkError('STORAGE_IO', 'ECONNRESET', { retryable: true });
    }
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('LimitStorage', () => {
  it('keeps at most N operations in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const inner = new MemoryStorage();
    const slow: Storage = Object.assign(Object.create(inner) as MemoryStorage, {
      async write(h: Handle, d: Uint8Array): Promise<void> {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, 10));
        await inner.write(h, d);
        inFlight--;
      },
    });
    const s = new LimitStorage(slow, { concurrency: 3, uploadBps: undefined, downloadBps: undefined });
    await Promise.all(Array.from({ length: 20 }, () => s.write(handle('data'), randomBytes(10))));
    assert.equal(peak, 3);
    assert.equal((await listAll(s, 'data')).length, 20);
  });

  it('a listing does not hold a slot while the caller works between items', async () => {
    const s = new LimitStorage(new MemoryStorage(), { concurrency: 1, uploadBps: undefined, downloadBps: undefined });
    for (let i = 0; i < 3; i++) await s.write(handle('keys'), Buffer.from('k'));
    let n = 0;
    for await (const o of s.list('keys')) {
      await s.read({ kind: 'keys', name: o.name }); // would deadlock if the listing held the only slot
      n++;
    }
    assert.equal(n, 3);
  });

  it('upload and download limits hold the average rate (token bucket)', async () => {
    const rate = 512 * 1024;
    const s = new LimitStorage(new MemoryStorage(), { concurrency: 8, uploadBps: rate, downloadBps: rate });
    const hs = Array.from({ length: 5 }, () => handle('data'));
    let t0 = performance.now();
    await Promise.all(hs.map((h) => s.write(h, randomBytes(256 * 1024))));
    const up = (performance.now() - t0) / 1000;
    // 1.25 MiB at 0.5 MiB/s with a 0.5 MiB burst and the last object charged on credit: ≥ 1 s.
    assert.ok(up >= 0.95 && up < 3, `upload took ${up.toFixed(2)} s`);
    t0 = performance.now();
    for (const h of hs) await s.read(h);
    const down = (performance.now() - t0) / 1000;
    assert.ok(down >= 0.95 && down < 3, `download took ${down.toFixed(2)} s`);
  });

  it('the token bucket refills at its rate and caps at its burst', async () => {
    let now = 0;
    const b = new TokenBucket(1000, 1000, () => now);
    await b.take(1000);
    let done = false;
    const p = b.take(10).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 20));
    now = 5000;
    await p;
    assert.ok(done);
  });
});

describe('settings from the environment', () => {
  it('limits: KiB/s as restic, connections, and refusals of nonsense', () => {
    assert.deepEqual(limitsFromEnv({}), { concurrency: 5, uploadBps: undefined, downloadBps: undefined });
    assert.deepEqual(limitsFromEnv({ BULWARK_LIMIT_UPLOAD: '1024', BULWARK_LIMIT_DOWNLOAD: '0.5', BULWARK_S3_CONNECTIONS: '12' }), {
      concurrency: 12,
      uploadBps: 1024 * 1024,
      downloadBps: 512,
    });
    for (const env of [{ BULWARK_LIMIT_UPLOAD: 'fast' }, { BULWARK_LIMIT_DOWNLOAD: '-1' }, { BULWARK_S3_CONNECTIONS: '0' }]) {
      assert.throws(() => limitsFromEnv(env), (err: unknown) => err instanceof BulwarkError && err.code === 'USAGE', JSON.stringify(env));
    }
  });

  it('retries: BULWARK_RETRIES is the number of retries after the first attempt', () => {
    assert.deepEqual(retryPolicyFromEnv({}), DEFAULT_RETRY);
    assert.equal(retryPolicyFromEnv({ BULWARK_RETRIES: '0' }).attempts, 1);
    assert.equal(retryPolicyFromEnv({ BULWARK_RETRIES: '3' }).attempts, 4);
    assert.throws(() => retryPolicyFromEnv({ BULWARK_RETRIES: 'many' }), BulwarkError);
  });
});
