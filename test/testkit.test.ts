// Tests of the storage test kit: FaultyStorage fails exactly the calls it was told to (and nothing
// else), CorruptingStorage alters exactly the chosen bits or lengths, and the at-rest helpers damage
// the stored bytes of MemoryStorage and LocalStorage objects.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BulwarkError, isBulwarkError } from '../src/errors.js';
import { LocalStorage } from '../src/storage/local.js';
import { MemoryStorage } from '../src/storage/memory.js';
import type { Handle } from '../src/storage/storage.js';
import { corruptLocalObject, corruptMemoryObject, localObjectPath, truncateLocalObject } from '../src/storage/testkit/at-rest.js';
import { CorruptingStorage } from '../src/storage/testkit/corrupting.js';
import { FaultyStorage, seededRandom } from '../src/storage/testkit/faulty.js';
import { handle, listAll, rejectsWith } from './storage-conformance.js';

/** Bit offsets at which `a` and `b` (same length) differ. */
function diffBits(a: Uint8Array, b: Uint8Array): number[] {
  assert.equal(a.length, b.length, 'same length');
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = (a[i] ?? 0) ^ (b[i] ?? 0);
    for (let bit = 0; bit < 8; bit++) if (x & (1 << bit)) out.push(i * 8 + bit);
  }
  return out;
}

async function storeWith(objects: Array<[Handle, Uint8Array]>): Promise<MemoryStorage> {
  const m = new MemoryStorage();
  await m.create();
  for (const [h, d] of objects) await m.write(h, d);
  return m;
}

/** Which of `n` stat calls of `s` fail (as a string of '.' and 'x'). */
async function failurePattern(s: FaultyStorage, h: Handle, n: number): Promise<string> {
  let out = '';
  for (let i = 0; i < n; i++) {
    out += await s.stat(h).then(
      () => '.',
      (err: unknown) => {
        assert.ok(isBulwarkError(err, 'STORAGE_IO'), String(err));
        return 'x';
      },
    );
  }
  return out;
}

describe('FaultyStorage', () => {
  it('fails exactly the Nth call of a method with a retryable STORAGE_IO', async () => {
    const h = handle('data');
    const s = new FaultyStorage(await storeWith([[h, Buffer.from('abc')]])).failNth('read', 3);
    assert.deepEqual(await s.read(h), Buffer.from('abc'));
    assert.deepEqual(await s.read(h, 1), Buffer.from('bc'));
    await assert.rejects(s.read(h), (err: unknown) => {
      assert.ok(err instanceof BulwarkError);
      assert.equal(err.code, 'STORAGE_IO');
      assert.equal(err.retryable, true);
      assert.equal(err.subject, `data/${h.name}`);
      return true;
    });
    assert.deepEqual(await s.read(h), Buffer.from('abc'));
    await s.stat(h);
    await s.stat(h);
    await s.stat(h);
    assert.equal(s.count('read'), 4);
    assert.equal(s.count('stat'), 3);
    assert.equal(s.count('write'), 0);
  });

  it('a failed write uses the configured code and reaches nothing', async () => {
    const inner = await storeWith([]);
    const s = new FaultyStorage(inner).failNth('write', [1, 3], { code: 'DISK_FULL', retryable: false });
    const hs = [handle('data'), handle('data'), handle('data')];
    await assert.rejects(s.write(hs[0]!, Buffer.from('a')), (e: unknown) => isBulwarkError(e, 'DISK_FULL') && !e.retryable);
    await s.write(hs[1]!, Buffer.from('b'));
    await rejectsWith(s.write(hs[2]!, Buffer.from('c')), 'DISK_FULL');
    assert.deepEqual(await listAll(inner, 'data'), [{ name: hs[1]!.name, size: 1 }]);
    assert.equal(s.count('write'), 3);
    assert.equal(s.bytesWritten, 1);
  });

  it('fails calls matching a predicate on kind/name, up to `times`', async () => {
    const d = handle('data');
    const i1 = handle('index');
    const i2 = handle('index');
    const s = new FaultyStorage(await storeWith([[d, Buffer.from('d')], [i1, Buffer.from('1')], [i2, Buffer.from('2')]]));
    s.failWhen('*', (c) => c.kind === 'index');
    await rejectsWith(s.read(i1), 'STORAGE_IO');
    await rejectsWith(s.stat(i2), 'STORAGE_IO');
    await rejectsWith(listAll(s, 'index'), 'STORAGE_IO');
    assert.equal((await listAll(s, 'data')).length, 1);
    assert.deepEqual(await s.read(d), Buffer.from('d'));
    s.clearFaults().failWhen(['read', 'stat'], (c) => c.name === i2.name, { times: 2 });
    await rejectsWith(s.read(i2), 'STORAGE_IO');
    assert.deepEqual(await s.read(i1), Buffer.from('1'));
    await rejectsWith(s.stat(i2), 'STORAGE_IO');
    assert.deepEqual(await s.read(i2), Buffer.from('2'), 'third matching call passes (times: 2)');
    assert.equal(s.count('list'), 2);
  });

  it('fails a seeded fraction of calls, deterministically', async () => {
    const h = handle('data');
    const run = async (seed: number, fraction: number): Promise<string> =>
      failurePattern(new FaultyStorage(await storeWith([[h, Buffer.from('x')]]), { seed }).failFraction('stat', fraction), h, 300);
    const a = await run(42, 0.3);
    assert.equal(await run(42, 0.3), a, 'same seed, same failures');
    assert.notEqual(await run(43, 0.3), a, 'another seed, other failures');
    const failures = [...a].filter((c) => c === 'x').length;
    assert.ok(failures > 45 && failures < 135, `about 30% of 300 fail, got ${failures}`);
    assert.equal(await run(7, 0), '.'.repeat(300));
    assert.equal(await run(7, 1), 'x'.repeat(300));
    // The PRNG itself is a pure function of the seed.
    const r1 = seededRandom(5);
    const r2 = seededRandom(5);
    for (let i = 0; i < 100; i++) assert.equal(r1(), r2());
  });

  it('delays selected calls without failing them', async () => {
    const slow = handle('data');
    const fast = handle('data');
    const s = new FaultyStorage(await storeWith([[slow, Buffer.from('s')], [fast, Buffer.from('f')]]));
    s.delay('read', 80, (c) => c.name === slow.name);
    const order: string[] = [];
    const t0 = Date.now();
    await Promise.all([s.read(slow).then(() => order.push('slow')), s.read(fast).then(() => order.push('fast'))]);
    assert.deepEqual(order, ['fast', 'slow']);
    assert.ok(Date.now() - t0 >= 70, 'the slow read waited');
  });

  it('crashAfterBytes fails the write crossing the budget, and later writes, leaving nothing', async () => {
    const inner = await storeWith([]);
    const seen: Array<[string, number]> = [];
    const s = new FaultyStorage(inner).crashAfterBytes(1000, {
      onCrash: (h, written) => {
        seen.push([h.name, written.length]);
      },
    });
    const [a, b, c, d] = [handle('data'), handle('data'), handle('data'), handle('data')];
    await s.write(a, Buffer.alloc(400));
    await s.write(b, Buffer.alloc(400));
    await assert.rejects(s.write(c, Buffer.alloc(400)), (e: unknown) => isBulwarkError(e, 'STORAGE_IO') && e.retryable);
    await rejectsWith(s.write(d, Buffer.alloc(1)), 'STORAGE_IO');
    assert.deepEqual(seen, [[c.name, 200]]);
    await rejectsWith(inner.stat(c), 'OBJECT_NOT_FOUND');
    await rejectsWith(inner.stat(d), 'OBJECT_NOT_FOUND');
    assert.equal((await listAll(inner, 'data')).length, 2);
    assert.equal(s.bytesWritten, 800);
    s.clearFaults();
    await s.write(c, Buffer.alloc(400));
    assert.equal((await inner.stat(c)).size, 400);
  });
});

describe('CorruptingStorage', () => {
  it('flips exactly the chosen bits, in whole and ranged reads, leaving the store intact', async () => {
    const h = handle('data');
    const other = handle('data');
    const data = randomBytes(256);
    const inner = await storeWith([[h, data], [other, data]]);
    const s = new CorruptingStorage(inner).flipBits({ name: h.name }, [0, 9, 15, 2047, 5000]);
    assert.deepEqual(diffBits(await s.read(h), data), [0, 9, 15, 2047]);
    assert.deepEqual(diffBits(await s.read(h, 1, 10), data.subarray(1, 11)), [1, 7]);
    assert.deepEqual(diffBits(await s.read(h, 2, 100), data.subarray(2, 102)), []);
    assert.ok((await s.read(other)).equals(data), 'unmatched object untouched');
    assert.ok((await inner.read(h)).equals(data), 'stored bytes untouched');
    assert.equal(s.corruptedReads, 2);
  });

  it('flips a seeded set of distinct bits, the same on every read', async () => {
    const h = handle('index');
    const h2 = handle('index');
    const data = randomBytes(300);
    const inner = await storeWith([[h, data], [h2, data]]);
    const s = new CorruptingStorage(inner).flipRandomBits({ kind: 'index' }, { seed: 9, count: 5 });
    const bits = diffBits(await s.read(h), data);
    assert.equal(bits.length, 5);
    assert.deepEqual(bits, s.plannedFlips(h, data.length));
    assert.deepEqual(diffBits(await s.read(h), data), bits, 'stable across reads');
    const again = new CorruptingStorage(inner).flipRandomBits(undefined, { seed: 9, count: 5 });
    assert.deepEqual(diffBits(await again.read(h), data), bits, 'stable across instances');
    const other = new CorruptingStorage(inner).flipRandomBits(undefined, { seed: 10, count: 5 });
    assert.notDeepEqual(diffBits(await other.read(h), data), bits, 'another seed, other bits');
    assert.notDeepEqual(diffBits(await s.read(h2), data), bits, 'another object, other bits');
    const whole = await s.read(h);
    assert.ok((await s.read(h, 37, 200)).equals(whole.subarray(37, 237)), 'ranged read agrees with whole read');
  });

  it('returns short reads for matching objects only', async () => {
    const d = handle('data');
    const k = handle('keys');
    const data = randomBytes(100);
    const s = new CorruptingStorage(await storeWith([[d, data], [k, data]])).shortReads({ kind: 'data' });
    assert.deepEqual(await s.read(d), data.subarray(0, 99));
    assert.deepEqual(await s.read(d, 10, 20), data.subarray(10, 29));
    assert.deepEqual(await s.read(k), data);
    s.clear().shortReads((h) => h.kind === 'keys', 30);
    assert.deepEqual(await s.read(k, 0, 20), Buffer.alloc(0));
    assert.deepEqual(await s.read(k), data.subarray(0, 70));
    assert.deepEqual(await s.read(d), data);
    // The wrapped contract still holds underneath: truly missing bytes are SHORT_READ.
    await rejectsWith(s.read(d, 90, 20), 'SHORT_READ');
  });
});

describe('at-rest corruption helpers', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
  });

  it('corruptMemoryObject XORs one stored byte', async () => {
    const h = handle('snapshots');
    const data = randomBytes(64);
    const m = await storeWith([[h, data]]);
    corruptMemoryObject(m, h, 10, 0x21);
    const got = await m.read(h);
    assert.deepEqual(diffBits(got, data), [80, 85]);
    corruptMemoryObject(m, h, 63);
    assert.deepEqual(diffBits(await m.read(h), data), [80, 85, 504, 505, 506, 507, 508, 509, 510, 511]);
    assert.throws(() => corruptMemoryObject(m, h, 64), BulwarkError);
    assert.throws(() => corruptMemoryObject(m, handle('snapshots'), 0), (e: unknown) => isBulwarkError(e, 'OBJECT_NOT_FOUND'));
  });

  it('corruptLocalObject and truncateLocalObject damage the file and keep it read-only', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-testkit-'));
    dirs.push(dir);
    const s = new LocalStorage(dir);
    await s.create();
    const hd = handle('data');
    const hk = handle('keys');
    const cfg: Handle = { kind: 'config', name: 'config' };
    const data = randomBytes(1000);
    for (const h of [hd, hk, cfg]) await s.write(h, data);
    await corruptLocalObject(s.location, hd, 999, 0x80);
    await corruptLocalObject(s.location, hk, 0);
    await corruptLocalObject(s.location, cfg, 500, 1);
    assert.deepEqual(diffBits(await s.read(hd), data), [7999]);
    assert.deepEqual(diffBits(await s.read(hk), data), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(diffBits(await s.read(cfg), data), [4000]);
    assert.equal((await fsp.stat(localObjectPath(s.location, hd))).mode & 0o777, 0o400);
    await assert.rejects(corruptLocalObject(s.location, hd, 1000), BulwarkError);
    await truncateLocalObject(s.location, hk, 600);
    assert.equal((await s.stat(hk)).size, 600);
    await rejectsWith(s.read(hk, 500, 200), 'SHORT_READ');
    assert.equal((await fsp.stat(localObjectPath(s.location, hk))).mode & 0o777, 0o400);
  });
});
