// Damage at rest: single flipped bytes in data packs, pack trailers, index files, snapshot files and
// tree packs; truncated packs; a storage that returns short reads. Every kind of damage must be
// reported by `check` naming the object at fault, restores must report (never silently write)
// damaged data, and snapshots that do not use the damaged object must still restore exactly.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBackup } from '../src/backup/backup.js';
import { checkRepository } from '../src/check/checker.js';
import { isBulwarkError } from '../src/errors.js';
import { BlobType } from '../src/pack/blob-index.js';
import type { Repository } from '../src/repo/repository.js';
import { restoreSnapshot } from '../src/restore/restorer.js';
import { loadSnapshot, type Snapshot } from '../src/snapshot/snapshot.js';
import { LocalStorage } from '../src/storage/local.js';
import { corruptLocalObject, truncateLocalObject } from '../src/storage/testkit/at-rest.js';
import { CorruptingStorage } from '../src/storage/testkit/corrupting.js';
import { seededRandom } from '../src/storage/testkit/faulty.js';
import {
  assertSameTree,
  checkCli,
  cli,
  describeRun,
  digestTree,
  errorOf,
  fileBlobs,
  initRepo,
  listNames,
  makeTmp,
  makeVariedTree,
  openRepo,
  removeDir,
  treeBlobs,
  type Run,
} from './fault-helpers.js';

interface RestoreJson {
  errors: Array<{ path: string; code: string; message: string }>;
  files: number;
}

let base = '';
let pristine = '';
let srcA = '';
let srcB = '';
let digestA = new Map<string, string>();
let digestB = new Map<string, string>();
let snapA = '';
let snapB = '';
let indexFilesA: string[] = [];
/** A data pack used only by snapshot A, a blob in it, and the file that blob belongs to. */
let dataPack = '';
let dataBlob = { id: '', offset: 0, stored: 0 };
let damagedFile = '';
/** A tree pack used only by snapshot A and a tree blob in it. */
let treePack = '';
let treeBlob = { id: '', offset: 0, stored: 0 };
let packCount = 0;
let copies = 0;

function copyRepo(): string {
  const dst = path.join(base, `repo-${++copies}`);
  fs.cpSync(pristine, dst, { recursive: true });
  return dst;
}

async function restoreCli(repo: string, snap: string, target: string): Promise<{ run: Run; result: RestoreJson | undefined }> {
  const run = await cli(['--json', 'restore', snap, '--target', target], repo);
  let result: RestoreJson | undefined;
  try {
    result = JSON.parse(run.stdout) as RestoreJson;
  } catch {
    result = undefined;
  }
  return { run, result };
}

/** Restores `snap` and asserts it comes back bit-identical to `src`. */
async function assertRestoresExactly(repo: string, snap: string, src: string, digest: Map<string, string>): Promise<void> {
  const target = path.join(base, `restore-${++copies}`);
  const { run } = await restoreCli(repo, snap, target);
  assert.equal(run.code, 0, describeRun(['restore', snap], run));
  assertSameTree(digest, path.join(target, src), `restore of ${snap.slice(0, 8)}`);
  removeDir(target);
}

function blobLocation(repo: Repository, hex: string): { pack: string; type: number; offset: number; stored: number } {
  const e = repo.index.find(Buffer.from(hex, 'hex'));
  assert.ok(e >= 0, `blob ${hex} indexed`);
  const loc = repo.index.location(e);
  return { pack: repo.index.packs.hex(loc.pack), type: repo.index.packs.type(loc.pack), offset: loc.offset, stored: loc.stored };
}

before(async () => {
  base = makeTmp('corrupt');
  srcA = path.join(base, 'srcA');
  srcB = path.join(base, 'srcB');
  makeVariedTree(srcA);
  makeVariedTree(srcB);
  digestA = digestTree(srcA);
  digestB = digestTree(srcB);
  pristine = path.join(base, 'pristine');
  // Small packs: many of them. (The default chunker: smaller chunks with small packs trip a worker bug, see crash.test.ts.)
  const repo = await initRepo(pristine, { packSize: 256 * 1024 });
  snapA = (await runBackup(repo, { paths: [srcA], threads: 2 })).id;
  indexFilesA = (await listNames(repo.storage, 'index')).map((o) => o.name);
  const packsA = new Set((await listNames(repo.storage, 'data')).map((o) => o.name));
  snapB = (await runBackup(repo, { paths: [srcB], threads: 2 })).id;

  const r = await openRepo(pristine);
  await r.loadIndex();
  packCount = r.index.packs.count;
  const sA = await loadSnapshot(r, snapA);
  const sB = await loadSnapshot(r, snapB);
  const blobsA = await fileBlobs(r, sA);
  const blobsB = await fileBlobs(r, sB);
  const packsUsedByB = new Set<string>();
  for (const ids of blobsB.values()) for (const id of ids) packsUsedByB.add(blobLocation(r, id).pack);
  for (const id of await treeBlobs(r, sB)) packsUsedByB.add(blobLocation(r, id).pack);

  // The middle chunk of the biggest random file of A.
  damagedFile = `${srcA}/random/r3.bin`;
  const ids = blobsA.get(damagedFile);
  assert.ok(ids !== undefined && ids.length >= 2, 'r3.bin has several chunks');
  const mid = ids[Math.floor(ids.length / 2)]!;
  const loc = blobLocation(r, mid);
  assert.equal(loc.type, BlobType.data);
  dataPack = loc.pack;
  dataBlob = { id: mid, offset: loc.offset, stored: loc.stored };
  assert.ok(packsA.has(dataPack) && !packsUsedByB.has(dataPack), 'the data pack is used by snapshot A only');
  const usersOfBlob = [...blobsA].filter(([, c]) => c.includes(mid)).map(([p]) => p);
  assert.deepEqual(usersOfBlob, [damagedFile], 'only r3.bin uses the damaged chunk');

  // A tree blob of A in a tree pack.
  const trees = [...(await treeBlobs(r, sA))].map((id) => ({ id, ...blobLocation(r, id) }));
  const t = trees.find((x) => x.type === BlobType.tree && !packsUsedByB.has(x.pack));
  assert.ok(t !== undefined, 'snapshot A has a tree pack of its own');
  treePack = t.pack;
  treeBlob = { id: t.id, offset: t.offset, stored: t.stored };
  assert.ok(packCount >= 10, `many packs (${packCount})`);
});

after(() => {
  if (base !== '') removeDir(base);
});

describe('intact repository', () => {
  it('check --read-data passes and reads every pack', async () => {
    const { run, result } = await checkCli(pristine, '--read-data');
    assert.equal(run.code, 0, describeRun(['check', '--read-data'], run));
    assert.equal(result.ok, true);
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.warnings, []);
    assert.equal(result.snapshots, 2);
    assert.equal(result.packs, packCount);
    assert.equal(result.packsRead, packCount);
  });

  it('--read-data-subset 50% reads about half of the packs', async () => {
    const { run, result } = await checkCli(pristine, '--read-data-subset', '50%');
    assert.equal(run.code, 0, describeRun(['check', '--read-data-subset', '50%'], run));
    assert.ok(Math.abs(result.packsRead - packCount / 2) <= 1, `read ${result.packsRead} of ${packCount} packs`);
    const total = (await listNames(new LocalStorage(pristine), 'data')).reduce((n, o) => n + o.size, 0);
    assert.ok(result.bytesRead > 0 && result.bytesRead < total, `${result.bytesRead} of ${total} bytes read`);
  });

  it('both snapshots restore bit-identically', async () => {
    await assertRestoresExactly(pristine, snapA, srcA, digestA);
    await assertRestoresExactly(pristine, snapB, srcB, digestB);
  });
});

describe('one flipped byte', () => {
  it('(a) in a data blob: check --read-data names the pack; restore reports the damaged file, other data is exact', async () => {
    const repo = copyRepo();
    await corruptLocalObject(repo, { kind: 'data', name: dataPack }, dataBlob.offset + Math.floor(dataBlob.stored / 2));

    const { run, result } = await checkCli(repo, '--read-data');
    assert.equal(run.code, 1, describeRun(['check', '--read-data'], run));
    assert.equal(result.ok, false);
    assert.ok(result.errors.length > 0);
    for (const e of result.errors) {
      assert.equal(e.code, 'PACK_CORRUPT', JSON.stringify(e));
      assert.equal(e.subject, `data/${dataPack}`, JSON.stringify(e));
      assert.ok(e.message.includes(dataPack), e.message);
    }
    assert.ok(result.errors.some((e) => e.message.includes(dataBlob.id)), 'the damaged blob is named');

    // Reading the blob directly fails naming the pack.
    const r = await openRepo(repo);
    await r.loadIndex();
    await assert.rejects(r.readBlob(Buffer.from(dataBlob.id, 'hex')), (err: unknown) => {
      assert.ok(isBulwarkError(err, 'PACK_CORRUPT'), String(err));
      assert.equal(err.subject, `data/${dataPack}`);
      return true;
    });

    // Restoring A: an error naming the pack for the file that needs the blob; every other file exact.
    const target = path.join(base, `restore-${++copies}`);
    const { run: rr, result: rres } = await restoreCli(repo, snapA, target);
    assert.equal(rr.code, 1, describeRun(['restore', snapA], rr));
    assert.ok(rres !== undefined, 'restore printed its JSON result');
    assert.ok(rres.errors.length > 0, 'restore reported the damage');
    for (const e of rres.errors) {
      assert.equal(e.code, 'PACK_CORRUPT', JSON.stringify(e));
      assert.ok(e.message.includes(dataPack), e.message);
      assert.equal(e.path, path.join(target, damagedFile));
    }
    const restored = digestTree(path.join(target, srcA));
    for (const [k, v] of digestA) {
      // The damaged file may be left out or left partial, but it cannot be right.
      if (k === 'random/r3.bin') assert.notEqual(restored.get(k), v, 'the damaged file cannot be right');
      else assert.equal(restored.get(k), v, `${k} restored exactly`);
    }
    removeDir(target);

    // B does not use the pack.
    await assertRestoresExactly(repo, snapB, srcB, digestB);
    removeDir(repo);
  });

  for (const [what, fromEnd] of [
    ['in the sealed trailer', 9],
    ['in the trailer length', 2],
  ] as const) {
    it(`(b) ${what}: check --read-data names the pack; the blobs still restore exactly`, async () => {
      const repo = copyRepo();
      const size = fs.statSync(path.join(repo, 'data', dataPack.slice(0, 2), dataPack)).size;
      await corruptLocalObject(repo, { kind: 'data', name: dataPack }, size - fromEnd);
      const { run, result } = await checkCli(repo, '--read-data');
      assert.equal(run.code, 1, describeRun(['check', '--read-data'], run));
      assert.ok(result.errors.length > 0);
      for (const e of result.errors) {
        assert.equal(e.code, 'PACK_CORRUPT', JSON.stringify(e));
        assert.equal(e.subject, `data/${dataPack}`, JSON.stringify(e));
      }
      assert.ok(result.errors.some((e) => /trailer/.test(e.message)), 'the trailer is named as damaged');
      await assertRestoresExactly(repo, snapA, srcA, digestA);
      removeDir(repo);
    });
  }

  it('(c) in an index file: check reports INDEX_CORRUPT naming it; restore re-indexes the packs from their trailers and is exact', async () => {
    const repo = copyRepo();
    assert.equal(indexFilesA.length, 1, 'backup A wrote one index file');
    const idx = indexFilesA[0]!;
    const size = fs.statSync(path.join(repo, 'index', idx)).size;
    await corruptLocalObject(repo, { kind: 'index', name: idx }, Math.floor(size / 2));
    for (const flags of [[], ['--read-data']]) {
      const { run, result } = await checkCli(repo, ...flags);
      assert.equal(run.code, 1, describeRun(['check', ...flags], run));
      const hit = result.errors.find((e) => e.code === 'INDEX_CORRUPT');
      assert.ok(hit !== undefined, `INDEX_CORRUPT reported: ${JSON.stringify(result.errors.slice(0, 5))}`);
      assert.equal(hit.subject, `index/${idx}`);
      assert.ok(hit.message.includes(idx), hit.message);
    }
    await assertRestoresExactly(repo, snapA, srcA, digestA);
    // The damaged file is kept (nothing is deleted behind the operator's back) and still reported.
    const { result } = await checkCli(repo);
    assert.ok(result.errors.some((e) => e.code === 'INDEX_CORRUPT' && e.subject === `index/${idx}`), JSON.stringify(result.errors));
    assert.ok(!result.errors.some((e) => e.code === 'BLOB_MISSING'), 'no blob is missing once packs are re-indexed');
    removeDir(repo);
  });

  it(
    '(c2) in an index file: a snapshot whose packs are listed by other index files still restores',
    async () => {
      const repo = copyRepo();
      const idx = indexFilesA[0]!;
      const size = fs.statSync(path.join(repo, 'index', idx)).size;
      await corruptLocalObject(repo, { kind: 'index', name: idx }, Math.floor(size / 2));
      try {
        await assertRestoresExactly(repo, snapB, srcB, digestB);
      } finally {
        removeDir(repo);
      }
    },
  );

  it('(d) in a snapshot file: check reports SNAPSHOT_CORRUPT naming it; other snapshots restore exactly', async () => {
    const repo = copyRepo();
    const size = fs.statSync(path.join(repo, 'snapshots', snapA)).size;
    await corruptLocalObject(repo, { kind: 'snapshots', name: snapA }, Math.floor(size / 2));
    for (const flags of [[], ['--read-data']]) {
      const { run, result } = await checkCli(repo, ...flags);
      assert.equal(run.code, 1, describeRun(['check', ...flags], run));
      assert.equal(result.errors.length, 1, JSON.stringify(result.errors));
      const e = result.errors[0]!;
      assert.equal(e.code, 'SNAPSHOT_CORRUPT');
      assert.equal(e.subject, `snapshots/${snapA}`);
      assert.ok(e.message.includes(snapA), e.message);
    }
    const target = path.join(base, `restore-${++copies}`);
    const { run } = await restoreCli(repo, snapA, target);
    assert.equal(run.code, 1, describeRun(['restore', snapA], run));
    const err = errorOf(run);
    assert.equal(err.code, 'SNAPSHOT_CORRUPT');
    assert.ok(err.message.includes(snapA), err.message);
    removeDir(target);
    await assertRestoresExactly(repo, snapB, srcB, digestB);
    removeDir(repo);
  });

  it(
    '(d2) in a snapshot file: new backups still work',
    async () => {
      const repo = copyRepo();
      try {
        await corruptLocalObject(repo, { kind: 'snapshots', name: snapA }, 10);
        const args = ['--json', 'backup', path.join(srcB, 'text')];
        const run = await cli(args, repo);
        assert.equal(run.code, 0, describeRun(args, run));
      } finally {
        removeDir(repo);
      }
    },
  );

  it('(e) in a tree pack: plain check names the pack; restore fails naming it; other snapshots restore exactly', async () => {
    const repo = copyRepo();
    await corruptLocalObject(repo, { kind: 'data', name: treePack }, treeBlob.offset + Math.floor(treeBlob.stored / 2));
    for (const flags of [[], ['--read-data']]) {
      const { run, result } = await checkCli(repo, ...flags);
      assert.equal(run.code, 1, describeRun(['check', ...flags], run));
      assert.ok(result.errors.length > 0);
      for (const e of result.errors) {
        assert.ok(e.code === 'PACK_CORRUPT' || e.code === 'TREE_CORRUPT', JSON.stringify(e));
        assert.equal(e.subject, `data/${treePack}`, JSON.stringify(e));
        assert.ok(e.message.includes(treePack), e.message);
      }
    }
    const target = path.join(base, `restore-${++copies}`);
    const { run } = await restoreCli(repo, snapA, target);
    assert.equal(run.code, 1, describeRun(['restore', snapA], run));
    const err = errorOf(run);
    assert.equal(err.code, 'PACK_CORRUPT');
    assert.ok(err.message.includes(treePack), err.message);
    removeDir(target);
    await assertRestoresExactly(repo, snapB, srcB, digestB);
    removeDir(repo);
  });
});

describe('truncated packs', () => {
  for (const [what, cut] of [
    ['to half its size', (n: number) => Math.floor(n / 2)],
    ['by a few trailer bytes', (n: number) => n - 10],
    ['to nothing', () => 0],
  ] as const) {
    it(`a data pack cut ${what} is reported by check --read-data`, async () => {
      const repo = copyRepo();
      const size = fs.statSync(path.join(repo, 'data', dataPack.slice(0, 2), dataPack)).size;
      await truncateLocalObject(repo, { kind: 'data', name: dataPack }, cut(size));
      const { run, result } = await checkCli(repo, '--read-data');
      assert.equal(run.code, 1, describeRun(['check', '--read-data'], run));
      assert.ok(result.errors.length > 0);
      for (const e of result.errors) {
        assert.ok(['PACK_CORRUPT', 'SHORT_READ'].includes(e.code), JSON.stringify(e));
        assert.equal(e.subject, `data/${dataPack}`, JSON.stringify(e));
      }
      removeDir(repo);
    });
  }

  it('a pack cut into its blobs is caught by a plain check too', async () => {
    const repo = copyRepo();
    const size = fs.statSync(path.join(repo, 'data', dataPack.slice(0, 2), dataPack)).size;
    await truncateLocalObject(repo, { kind: 'data', name: dataPack }, Math.floor(size / 2));
    const { run, result } = await checkCli(repo);
    assert.equal(run.code, 1, describeRun(['check'], run));
    assert.ok(result.errors.some((e) => e.code === 'PACK_CORRUPT' && e.subject === `data/${dataPack}`), JSON.stringify(result.errors));
    removeDir(repo);
  });
});

describe('short reads (CorruptingStorage)', () => {
  it('reading a blob fails with SHORT_READ or PACK_CORRUPT, never silently', async () => {
    const repo = copyRepo();
    const storage = new CorruptingStorage(new LocalStorage(repo)).shortReads({ kind: 'data' }, 1);
    const r = await openRepo(storage);
    await r.loadIndex();
    await assert.rejects(r.readBlob(Buffer.from(dataBlob.id, 'hex')), (err: unknown) => {
      assert.ok(isBulwarkError(err) && ['SHORT_READ', 'PACK_CORRUPT'].includes(err.code), String(err));
      assert.ok(err.subject?.includes(dataPack), String(err.subject));
      return true;
    });
    assert.ok(storage.corruptedReads > 0);
    removeDir(repo);
  });

  it('check --read-data reports every pack read short', async () => {
    const repo = copyRepo();
    const storage = new CorruptingStorage(new LocalStorage(repo)).shortReads({ kind: 'data' }, 3);
    const r = await openRepo(storage);
    const res = await checkRepository(r, { readData: true });
    const named = new Set(res.errors.map((e) => e.subject));
    for (const pack of r.index.packs.allHex()) assert.ok(named.has(`data/${pack}`), `pack ${pack} reported`);
    for (const e of res.errors) assert.ok(['SHORT_READ', 'PACK_CORRUPT'].includes(e.code), JSON.stringify(e));
    removeDir(repo);
  });

  it('restore with short reads of data packs reports errors; files it does not report are exact', async () => {
    const repo = copyRepo();
    const r0 = await openRepo(repo);
    await r0.loadIndex();
    const dataPacks = new Set(r0.index.packs.allHex().filter((h) => r0.index.packs.type(r0.index.packs.find(h)!) === BlobType.data));
    const storage = new CorruptingStorage(new LocalStorage(repo)).shortReads((h) => h.kind === 'data' && dataPacks.has(h.name), 1);
    const r = await openRepo(storage);
    const target = path.join(base, `restore-${++copies}`);
    const snap: Snapshot = await loadSnapshot(r, snapA);
    const res = await restoreSnapshot(r, snap, { target, threads: 2 });
    assert.ok(res.errors.length > 0, 'short reads are reported');
    for (const e of res.errors) assert.ok(['PACK_CORRUPT', 'SHORT_READ'].includes(e.code), JSON.stringify(e));
    const bad = new Set(res.errors.map((e) => path.relative(path.join(target, srcA), e.path)));
    const restored = digestTree(path.join(target, srcA));
    let exact = 0;
    for (const [k, v] of digestA) {
      if (v === 'dir' || bad.has(k)) continue;
      assert.equal(restored.get(k), v, `${k}: not reported as damaged, so it must be exact`);
      exact++;
    }
    assert.ok(exact > 0);
    removeDir(target);
    removeDir(repo);
  });
});

describe('property: check --read-data finds every flipped byte', () => {
  it('30 random single-byte flips across all packs are each reported, naming the pack', async () => {
    const repo = copyRepo();
    const r = await openRepo(repo);
    const packs = await listNames(r.storage, 'data');
    const total = packs.reduce((n, p) => n + p.size, 0);
    const seed = Date.now() >>> 0;
    const rnd = seededRandom(seed);
    for (let i = 0; i < 30; i++) {
      let at = Math.floor(rnd() * total);
      let p = 0;
      while (at >= packs[p]!.size) at -= packs[p++]!.size;
      const pack = packs[p]!.name;
      const xor = 1 + Math.floor(rnd() * 255);
      const where = `seed ${seed}, flip ${i}: pack ${pack} offset ${at}/${packs[p]!.size} xor ${xor}`;
      await corruptLocalObject(repo, { kind: 'data', name: pack }, at, xor);
      const res = await checkRepository(r, { readData: true });
      assert.ok(res.errors.length > 0, `${where}: not detected`);
      for (const e of res.errors) assert.equal(e.subject, `data/${pack}`, `${where}: ${JSON.stringify(e)}`);
      await corruptLocalObject(repo, { kind: 'data', name: pack }, at, xor);
    }
    const clean = await checkRepository(await openRepo(repo), { readData: true });
    assert.deepEqual(clean.errors, []);
    removeDir(repo);
  });
});
