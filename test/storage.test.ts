// Runs the Storage conformance suite against every backend (and against the test wrappers with no
// faults programmed, which must be transparent), then local-only crash-safety tests and the parsing
// of repository locations by openStorage().
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BulwarkError } from '../src/errors.js';
import { LocalStorage } from '../src/storage/local.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { forgetMemoryStorage, openStorage } from '../src/storage/open.js';
import { parseS3Url } from '../src/storage/s3.js';
import { CorruptingStorage } from '../src/storage/testkit/corrupting.js';
import { FaultyStorage } from '../src/storage/testkit/faulty.js';
import { bucketUrl, cephUnavailable, startCeph, stopCeph } from './ceph.js';
import { handle, listAll, randomName, rejectsWith, storageConformance } from './storage-conformance.js';

const tempDirs: string[] = [];
after(async () => {
  for (const d of tempDirs) await fsp.rm(d, { recursive: true, force: true });
});

/** A LocalStorage on a not-yet-existing directory inside a fresh temp dir. */
function tempLocal(): LocalStorage {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-storage-'));
  tempDirs.push(dir);
  return new LocalStorage(path.join(dir, 'repo'));
}

storageConformance('memory', async () => new MemoryStorage());
storageConformance('local', async () => tempLocal());
storageConformance('faulty(memory) without faults', async () => new FaultyStorage(new MemoryStorage()));
storageConformance('corrupting(memory) without rules', async () => new CorruptingStorage(new MemoryStorage()));

// The same suite on a real S3 (Ceph RGW on loopback, test/ceph.ts), through the retry and limit
// wrappers that openStorage chains in front of every S3 backend.
const cephMissing = cephUnavailable();
if (cephMissing === undefined) {
  const ceph = await startCeph();
  after(() => stopCeph());
  storageConformance('s3 (Ceph RGW, with the resilience wrappers)', async () => openStorage(bucketUrl(ceph)));
  describe('s3 behind its wrappers', () => {
    it('offers ranged reads into caller buffers and asks for 8 MiB reads (restore)', () => {
      const s = openStorage(bucketUrl(ceph));
      assert.equal(typeof s.readInto, 'function');
      assert.equal(s.readSize, 8 * 1024 * 1024);
      assert.equal(openStorage(path.join(os.tmpdir(), 'x')).readSize, undefined);
    });
  });
} else {
  describe('storage conformance: s3', () => {
    it('runs against a local Ceph RGW', { skip: cephMissing }, () => undefined);
  });
}

describe('local storage crash safety', () => {
  it('a write that fails after its bytes were written leaves no visible object', async () => {
    const s = tempLocal();
    await s.create();
    const h = handle('data');
    // Replace the object's prefix directory by a regular file: the temp file is fully written and
    // synced, then publishing it (link into data/<prefix>/) fails with ENOTDIR.
    const prefixDir = path.join(s.location, 'data', h.name.slice(0, 2));
    await fsp.rmdir(prefixDir);
    await fsp.writeFile(prefixDir, 'not a directory');
    await rejectsWith(s.write(h, Buffer.alloc(100_000, 1)), 'STORAGE_IO');
    await fsp.rm(prefixDir);
    await fsp.mkdir(prefixDir);
    await rejectsWith(s.stat(h), 'OBJECT_NOT_FOUND');
    assert.deepEqual(await listAll(s, 'data'), []);
    assert.deepEqual(await fsp.readdir(path.join(s.location, 'tmp')), [], 'temp file removed');
    await s.write(h, Buffer.from('retry works'));
    assert.deepEqual(await s.read(h), Buffer.from('retry works'));
  });

  it('a write that cannot create its temp file leaves no visible object', async () => {
    const s = tempLocal();
    await s.create();
    const tmp = path.join(s.location, 'tmp');
    await fsp.rmdir(tmp);
    await fsp.writeFile(tmp, 'not a directory');
    const h = handle('snapshots');
    await rejectsWith(s.write(h, Buffer.from('x')), 'STORAGE_IO');
    await rejectsWith(s.stat(h), 'OBJECT_NOT_FOUND');
    assert.deepEqual(await listAll(s, 'snapshots'), []);
  });

  it('a crash mid-write (partial temp file left behind) leaves no visible object', async () => {
    const local = tempLocal();
    await local.create();
    const tmpDir = path.join(local.location, 'tmp');
    const s = new FaultyStorage(local).crashAfterBytes(1000, {
      // What a real crash leaves: a partial temp file (named like local.ts names them).
      onCrash: (h, written) => fsp.writeFile(path.join(tmpDir, `${h.kind}-${h.name.slice(0, 16)}-0123456789ab`), written),
    });
    const ok = handle('data');
    const torn = handle('data');
    await s.write(ok, Buffer.alloc(600, 7));
    await rejectsWith(s.write(torn, Buffer.alloc(600, 9)), 'STORAGE_IO');
    assert.equal((await fsp.stat(path.join(tmpDir, `data-${torn.name.slice(0, 16)}-0123456789ab`))).size, 400);
    // "Restart": a new backend on the same directory sees only the completed object.
    const after = new LocalStorage(local.location);
    assert.deepEqual(await listAll(after, 'data'), [{ name: ok.name, size: 600 }]);
    await rejectsWith(after.read(torn), 'OBJECT_NOT_FOUND');
    await after.write(torn, Buffer.alloc(600, 9));
    assert.deepEqual(await after.read(torn), Buffer.alloc(600, 9));
  });

  it('list ignores stray files in tmp/ and names that are not object ids', async () => {
    const s = tempLocal();
    await s.create();
    const real = handle('keys');
    const realData = handle('data');
    await s.write(real, Buffer.from('key'));
    await s.write(realData, Buffer.from('data'));
    const root = s.location;
    for (const kind of ['keys', 'data', 'index', 'snapshots', 'locks']) {
      await fsp.writeFile(path.join(root, 'tmp', `${kind}-${randomName().slice(0, 16)}-aabbccddeeff`), 'partial');
    }
    await fsp.writeFile(path.join(root, 'tmp', randomName()), 'hex-named stray');
    await fsp.writeFile(path.join(root, 'keys', 'README.txt'), 'junk');
    await fsp.writeFile(path.join(root, 'keys', `${randomName()}.tmp`), 'junk');
    await fsp.writeFile(path.join(root, 'data', realData.name.slice(0, 2), 'XYZ'), 'junk');
    await fsp.writeFile(path.join(root, 'data', randomName()), 'object-like file outside a prefix dir');
    assert.deepEqual(await listAll(s, 'keys'), [{ name: real.name, size: 3 }]);
    assert.deepEqual(await listAll(s, 'data'), [{ name: realData.name, size: 4 }]);
    for (const kind of ['index', 'snapshots', 'locks'] as const) assert.deepEqual(await listAll(s, kind), [], kind);
  });
});

describe('local storage listing', () => {
  it('an unreadable data directory fails the listing with STORAGE_IO naming it; stopping early leaves no stray error', async () => {
    const s = tempLocal();
    await s.create();
    const objs = [];
    for (let i = 0; i < 40; i++) {
      const h = handle('data');
      await s.write(h, Buffer.alloc(i + 1));
      objs.push({ name: h.name, size: i + 1 });
    }
    objs.sort((a, b) => (a.name < b.name ? -1 : 1));
    // Every object is listed, from directories read ahead of the one being yielded.
    assert.deepEqual(await listAll(s, 'data'), objs);
    // A prefix that is a file, not a directory: reading it fails (ENOTDIR, also as root).
    const bad = path.join(s.location, 'data', 'ff');
    await fsp.rm(bad, { recursive: true, force: true });
    await fsp.writeFile(bad, 'not a directory');
    await assert.rejects(
      (async () => {
        for await (const _ of s.list('data')) void _;
      })(),
      (err: unknown) => err instanceof BulwarkError && err.code === 'STORAGE_IO' && err.message.includes(bad),
    );
    // A caller that stops at the first object: the failing directory, already read ahead, must
    // not surface later as an unhandled rejection (which fails this test file).
    for await (const _ of s.list('data')) break;
    await new Promise((r) => setTimeout(r, 50));
  });
});

describe('openStorage', () => {
  it('plain paths and local: give a LocalStorage at that path', () => {
    const dir = path.join(os.tmpdir(), 'bulwark-open-test');
    for (const [url, want] of [
      [dir, dir],
      [`local:${dir}`, dir],
      ['relative/repo', path.resolve('relative/repo')],
      ['./a:b', path.resolve('./a:b')],
      ['C:\\backups', path.resolve('C:\\backups')],
    ] as const) {
      const s = openStorage(url);
      assert.ok(s instanceof LocalStorage, url);
      assert.equal(s.location, want, url);
    }
  });

  it('memory: names one instance per name within the process', async () => {
    forgetMemoryStorage();
    const a = openStorage('memory:alpha');
    assert.ok(a instanceof MemoryStorage);
    assert.equal(openStorage('memory:alpha'), a);
    assert.notEqual(openStorage('memory:beta'), a);
    assert.equal(openStorage('memory:'), openStorage('memory:'));
    assert.notEqual(openStorage('memory:'), a);
    const h = handle('data');
    await a.write(h, Buffer.from('shared'));
    assert.deepEqual(await openStorage('memory:alpha').read(h), Buffer.from('shared'));
    forgetMemoryStorage('alpha');
    await rejectsWith(openStorage('memory:alpha').read(h), 'OBJECT_NOT_FOUND');
  });

  it('s3: locations parse into endpoint, bucket and prefix', () => {
    for (const [rest, want] of [
      ['https://s3.example.com:9000/bucket/a/b', { endpoint: 'https://s3.example.com:9000', bucket: 'bucket', prefix: 'a/b' }],
      ['http://127.0.0.1:7480/bkt', { endpoint: 'http://127.0.0.1:7480', bucket: 'bkt', prefix: '' }],
      ['http://127.0.0.1:7480/bkt/', { endpoint: 'http://127.0.0.1:7480', bucket: 'bkt', prefix: '' }],
      ['bucket/prefix', { endpoint: undefined, bucket: 'bucket', prefix: 'prefix' }],
      ['//bucket/deep/prefix/', { endpoint: undefined, bucket: 'bucket', prefix: 'deep/prefix' }],
      ['my.bucket', { endpoint: undefined, bucket: 'my.bucket', prefix: '' }],
    ] as const) {
      assert.deepEqual(parseS3Url(rest), want, rest);
    }
    const s = openStorage('s3:https://s3.example.com/bucket/repo');
    assert.equal(s.location, 's3:https://s3.example.com/bucket/repo');
    assert.equal(typeof s.adopt, 'function');
    assert.equal(typeof s.tempDir, 'function');
  });

  it('s3: credentials in the location are refused without echoing them', () => {
    for (const url of ['s3:https://AKIAXYZ:hunter2secret@s3.example.com/bucket', 's3:http://user:hunter2secret@127.0.0.1:9000/b/p', 's3:AKIAXYZ:hunter2secret@bucket/p']) {
      assert.throws(
        () => openStorage(url),
        (err: unknown) => {
          assert.ok(err instanceof BulwarkError);
          assert.equal(err.code, 'USAGE');
          assert.match(err.message, /credentials/);
          assert.ok(!JSON.stringify(err.toJSON()).includes('hunter2secret'), err.message);
          assert.ok(!err.message.includes('AKIAXYZ'), err.message);
          return true;
        },
        url,
      );
    }
  });

  it('s3: a location without a bucket, or with an invalid one, is a USAGE error', () => {
    for (const url of ['s3:', 's3:https://host:9000/', 's3:https://host/b', 's3://']) {
      assert.throws(() => openStorage(url), (err: unknown) => err instanceof BulwarkError && err.code === 'USAGE', url);
    }
  });

  it('unknown schemes and empty locations are USAGE errors naming the location', () => {
    for (const url of ['foo:/x', 'sftp://host/repo', 'rest:http://x', 'local:']) {
      assert.throws(
        () => openStorage(url),
        (err: unknown) => {
          assert.ok(err instanceof BulwarkError);
          assert.equal(err.code, 'USAGE');
          assert.ok(err.message.includes(url), err.message);
          return true;
        },
        url,
      );
    }
    assert.throws(() => openStorage(''), (err: unknown) => err instanceof BulwarkError && err.code === 'USAGE');
  });
});
