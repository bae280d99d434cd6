// The Storage conformance suite: every backend must pass it (see the contracts in
// src/storage/storage.ts). Not a test file itself; test/storage.test.ts runs it per backend.
// `make` returns a fresh backend on which create() has NOT been called yet; the suite closes it.
// `knownBugs` maps a test title to a bug description: such tests still run, but as node:test
// "todo" tests, so a documented backend bug is visible without failing the run. Remove the entry
// once the bug is fixed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { BulwarkError, type ErrorCode } from '../src/errors.js';
import { OBJECT_KINDS, type Handle, type ObjectInfo, type ObjectKind, type Storage } from '../src/storage/storage.js';

export interface ConformanceOptions {
  knownBugs?: Readonly<Record<string, string>>;
}

const CONFIG: Handle = { kind: 'config', name: 'config' };

export function randomName(): string {
  return randomBytes(32).toString('hex');
}

export function handle(kind: Exclude<ObjectKind, 'config'>, name = randomName()): Handle {
  return { kind, name };
}

/** Asserts that `p` rejects with a BulwarkError carrying `code`. */
export async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof BulwarkError, `expected BulwarkError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return true;
  });
}

export async function listAll(s: Storage, kind: ObjectKind): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of s.list(kind)) out.push(o);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function storageConformance(name: string, make: () => Promise<Storage>, opts: ConformanceOptions = {}): void {
  const test = (title: string, fn: (s: Storage) => Promise<void>): void => {
    const bug = opts.knownBugs?.[title];
    const body = async (): Promise<void> => {
      const s = await make();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    };
    if (bug === undefined) it(title, body);
    else it(title, { todo: bug }, body);
  };
  const fresh = async (s: Storage): Promise<Storage> => {
    await s.create();
    return s;
  };

  describe(`storage conformance: ${name}`, () => {
    test('create on a fresh location succeeds and leaves every kind empty', async (s) => {
      await s.create();
      for (const kind of OBJECT_KINDS) assert.deepEqual(await listAll(s, kind), [], kind);
      await rejectsWith(s.stat(CONFIG), 'OBJECT_NOT_FOUND');
    });

    test('create after a config exists fails with REPO_EXISTS and keeps the config', async (s) => {
      await fresh(s);
      const cfg = Buffer.from('{"version":1}');
      await s.write(CONFIG, cfg);
      await rejectsWith(s.create(), 'REPO_EXISTS');
      assert.deepEqual(await s.read(CONFIG), cfg);
      assert.deepEqual(await listAll(s, 'config'), [{ name: 'config', size: cfg.length }]);
    });

    test('write then read whole and ranged', async (s) => {
      await fresh(s);
      const h = handle('data');
      const data = randomBytes(1000);
      await s.write(h, data);
      assert.deepEqual(await s.read(h), data);
      assert.deepEqual(await s.read(h, 0), data);
      assert.deepEqual(await s.read(h, 0, 10), data.subarray(0, 10));
      assert.deepEqual(await s.read(h, 500, 100), data.subarray(500, 600));
      assert.deepEqual(await s.read(h, 990), data.subarray(990));
      assert.deepEqual(await s.read(h, 999, 1), data.subarray(999));
      assert.deepEqual(await s.read(h, 0, 1000), data);
      assert.deepEqual(await s.read(h, 1000, 0), Buffer.alloc(0));
      assert.deepEqual(await s.read(h, 1000), Buffer.alloc(0));
      assert.deepEqual(await s.read(h, 123, 0), Buffer.alloc(0));
    });

    test('readInto, where offered: ranges into a caller buffer, exact bytes, SHORT_READ and OBJECT_NOT_FOUND', async (s) => {
      if (s.readInto === undefined) return;
      await fresh(s);
      const h = handle('data');
      const data = randomBytes(9 * 1024 * 1024 + 3);
      await s.write(h, data);
      const into = Buffer.alloc(data.length + 100, 0xee);
      await s.readInto(h, 0, data.length, into);
      assert.ok(into.subarray(0, data.length).equals(data), 'whole object');
      assert.equal(into[data.length], 0xee, 'nothing written past the length');
      const off = 5 * 1024 * 1024 + 11;
      const part = Buffer.alloc(2 * 1024 * 1024);
      await s.readInto(h, off, part.length, part);
      assert.ok(part.equals(data.subarray(off, off + part.length)), 'ranged');
      await s.readInto(h, data.length - 1, 1, part);
      assert.equal(part[0], data[data.length - 1]);
      await rejectsWith(s.readInto(h, data.length - 5, 10, part), 'SHORT_READ');
      await rejectsWith(s.readInto(h, data.length + 1, 1, part), 'SHORT_READ');
      await rejectsWith(s.readInto(handle('data'), 0, 10, part), 'OBJECT_NOT_FOUND');
    });

    test('reading beyond the end is SHORT_READ', async (s) => {
      await fresh(s);
      const h = handle('index');
      await s.write(h, randomBytes(100));
      await rejectsWith(s.read(h, 95, 10), 'SHORT_READ');
      await rejectsWith(s.read(h, 0, 101), 'SHORT_READ');
      await rejectsWith(s.read(h, 100, 1), 'SHORT_READ');
      await rejectsWith(s.read(h, 101), 'SHORT_READ');
      await rejectsWith(s.read(h, 5000, 3), 'SHORT_READ');
    });

    test('a zero-length read starting past the end is SHORT_READ', async (s) => {
      await fresh(s);
      const h = handle('data');
      await s.write(h, randomBytes(100));
      await rejectsWith(s.read(h, 101, 0), 'SHORT_READ');
    });

    test('a negative offset is rejected, never answered with other bytes', async (s) => {
      await fresh(s);
      const h = handle('data');
      await s.write(h, Buffer.from('0123456789'));
      await assert.rejects(s.read(h, -5, 3), BulwarkError);
      await assert.rejects(s.read(h, -1), BulwarkError);
    });

    test('stat reports the size, including zero-length objects', async (s) => {
      await fresh(s);
      const a = handle('snapshots');
      const b = handle('keys');
      await s.write(a, randomBytes(4321));
      await s.write(b, new Uint8Array(0));
      assert.deepEqual(await s.stat(a), { name: a.name, size: 4321 });
      assert.deepEqual(await s.stat(b), { name: b.name, size: 0 });
      assert.deepEqual(await s.read(b), Buffer.alloc(0));
      assert.deepEqual(await s.read(b, 0, 0), Buffer.alloc(0));
      await rejectsWith(s.read(b, 0, 1), 'SHORT_READ');
    });

    test('read, stat and delete of a missing object are OBJECT_NOT_FOUND', async (s) => {
      await fresh(s);
      for (const kind of OBJECT_KINDS) {
        const h = kind === 'config' ? CONFIG : handle(kind);
        await rejectsWith(s.read(h), 'OBJECT_NOT_FOUND');
        await rejectsWith(s.read(h, 10, 5), 'OBJECT_NOT_FOUND');
        await rejectsWith(s.stat(h), 'OBJECT_NOT_FOUND');
        await rejectsWith(s.delete(h), 'OBJECT_NOT_FOUND');
      }
      // Same name, other kind: kinds are separate namespaces.
      const h = handle('data');
      await s.write(h, Buffer.from('x'));
      await rejectsWith(s.read({ kind: 'index', name: h.name }), 'OBJECT_NOT_FOUND');
    });

    test('write-once: a second write of the same name is OBJECT_EXISTS and keeps the original', async (s) => {
      await fresh(s);
      const h = handle('data');
      const first = randomBytes(300);
      await s.write(h, first);
      await rejectsWith(s.write(h, randomBytes(300)), 'OBJECT_EXISTS');
      await rejectsWith(s.write(h, randomBytes(10)), 'OBJECT_EXISTS');
      await rejectsWith(s.write(h, first), 'OBJECT_EXISTS');
      assert.deepEqual(await s.read(h), first);
      assert.deepEqual(await listAll(s, 'data'), [{ name: h.name, size: 300 }]);
      await s.write(CONFIG, Buffer.from('a'));
      await rejectsWith(s.write(CONFIG, Buffer.from('b')), 'OBJECT_EXISTS');
      assert.deepEqual(await s.read(CONFIG), Buffer.from('a'));
    });

    test('list returns exactly the objects of each kind (1,100 data objects across prefixes, past a 1,000-key page)', async (s) => {
      await fresh(s);
      const expected = new Map<ObjectKind, ObjectInfo[]>(OBJECT_KINDS.map((k) => [k, []]));
      const writes: Array<[Handle, Buffer]> = [];
      for (let i = 0; i < 1100; i++) {
        // Every two-hex-char prefix is used at least twice; sizes vary (including empty).
        const name = (i % 256).toString(16).padStart(2, '0') + randomName().slice(2);
        writes.push([{ kind: 'data', name }, randomBytes(i % 37)]);
      }
      for (const kind of ['keys', 'index', 'snapshots', 'locks'] as const) {
        for (let i = 0; i < 7; i++) writes.push([handle(kind), randomBytes(1 + i)]);
      }
      writes.push([CONFIG, Buffer.from('config')]);
      await mapLimit(writes, 32, ([h, d]) => s.write(h, d));
      for (const [h, d] of writes) expected.get(h.kind)?.push({ name: h.name, size: d.length });
      for (const kind of OBJECT_KINDS) {
        const want = (expected.get(kind) ?? []).sort((a, b) => (a.name < b.name ? -1 : 1));
        const got = await listAll(s, kind);
        assert.equal(got.length, want.length, `${kind}: count`);
        assert.deepEqual(got, want, kind);
      }
    });

    test('delete removes the object from read, stat and list, and only that object', async (s) => {
      await fresh(s);
      const keep = handle('locks');
      const gone = handle('locks');
      const other = { kind: 'snapshots' as const, name: gone.name };
      await s.write(keep, Buffer.from('keep'));
      await s.write(gone, Buffer.from('gone'));
      await s.write(other, Buffer.from('other'));
      await s.delete(gone);
      await rejectsWith(s.read(gone), 'OBJECT_NOT_FOUND');
      await rejectsWith(s.stat(gone), 'OBJECT_NOT_FOUND');
      await rejectsWith(s.delete(gone), 'OBJECT_NOT_FOUND');
      assert.deepEqual(await listAll(s, 'locks'), [{ name: keep.name, size: 4 }]);
      assert.deepEqual(await s.read(other), Buffer.from('other'));
      await s.write(CONFIG, Buffer.from('c'));
      await s.delete(CONFIG);
      assert.deepEqual(await listAll(s, 'config'), []);
    });

    test('parallel writes of distinct names all succeed', async (s) => {
      await fresh(s);
      const items = Array.from({ length: 64 }, (_, i) => [handle(i % 2 === 0 ? 'data' : 'index'), randomBytes(1000 + i)] as const);
      await Promise.all(items.map(([h, d]) => s.write(h, d)));
      for (const [h, d] of items) assert.ok((await s.read(h)).equals(d), h.name);
      assert.equal((await listAll(s, 'data')).length + (await listAll(s, 'index')).length, 64);
    });

    test('parallel writes of the same name: exactly one wins, the rest are OBJECT_EXISTS', async (s) => {
      await fresh(s);
      const h = handle('data');
      const contents = Array.from({ length: 16 }, (_, i) => randomBytes(5000 + i * 1000));
      const results = await Promise.allSettled(contents.map((d) => s.write(h, d)));
      const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(winners.length, 1, `winners: ${winners.join(',')}`);
      for (const r of results) {
        if (r.status === 'rejected') {
          assert.ok(r.reason instanceof BulwarkError, String(r.reason));
          assert.equal(r.reason.code, 'OBJECT_EXISTS', r.reason.message);
        }
      }
      const won = contents[winners[0] ?? -1];
      assert.ok(won !== undefined);
      assert.ok((await s.read(h)).equals(won), 'stored content is the winning write');
      assert.deepEqual(await listAll(s, 'data'), [{ name: h.name, size: won.length }]);
    });

    test('large object (20 MiB) round trip', async (s) => {
      await fresh(s);
      const h = handle('data');
      const data = randomBytes(20 * 1024 * 1024);
      await s.write(h, data);
      assert.equal((await s.stat(h)).size, data.length);
      assert.ok((await s.read(h)).equals(data), 'whole read');
      const off = 20 * 1024 * 1024 - 3 * 1024 * 1024 - 7;
      assert.ok((await s.read(h, off, 3 * 1024 * 1024)).equals(data.subarray(off, off + 3 * 1024 * 1024)), 'ranged read');
    });

    test('adopt publishes a file from tempDir (small and 20 MiB), consumes it, and is write-once', async (s) => {
      await fresh(s);
      if (s.adopt === undefined || s.tempDir === undefined) {
        assert.equal(s.adopt, undefined, 'adopt without tempDir');
        return;
      }
      const adopt = s.adopt.bind(s);
      const dir = s.tempDir();
      for (const size of [1000, 20 * 1024 * 1024 + 17]) {
        const data = randomBytes(size);
        const file = path.join(dir, `adopt-${randomName().slice(0, 12)}`);
        await fsp.writeFile(file, data);
        const h = handle('data');
        await adopt(h, file);
        await assert.rejects(fsp.stat(file), 'the file is consumed');
        assert.equal((await s.stat(h)).size, size);
        assert.ok((await s.read(h)).equals(data), `content of ${size}`);
        // Adopting onto an existing name fails and keeps the stored object.
        const other = path.join(dir, `adopt-${randomName().slice(0, 12)}`);
        await fsp.writeFile(other, randomBytes(size));
        await rejectsWith(adopt(h, other), 'OBJECT_EXISTS');
        assert.ok((await s.read(h)).equals(data), `kept content of ${size}`);
        await fsp.rm(other, { force: true });
      }
      assert.equal((await listAll(s, 'data')).length, 2);
    });

    test('binary exactness: every byte value, views and no aliasing', async (s) => {
      await fresh(s);
      const all = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
      const h1 = handle('data');
      await s.write(h1, all);
      assert.ok((await s.read(h1)).equals(all));
      // A view into a larger buffer stores only the view's bytes.
      const backing = randomBytes(100);
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 10, 20);
      const h2 = handle('keys');
      await s.write(h2, view);
      assert.deepEqual(await s.read(h2), Buffer.from(backing.subarray(10, 30)));
      // Mutating the written buffer or a returned buffer does not change the stored object.
      const src = Buffer.from([0, 0xff, 0x0d, 0x0a, 0xc3, 0x28, 0x00]);
      const copy = Buffer.from(src);
      const h3 = handle('index');
      await s.write(h3, src);
      src.fill(0x55);
      const got = await s.read(h3);
      assert.deepEqual(got, copy);
      got.fill(0xaa);
      assert.deepEqual(await s.read(h3), copy);
    });
  });
}
