// The backup pipeline's worker side: chunk workers that stat the files they are given, assemble
// their own data and tree packs, and agree through a shared claim set on who stores a chunk that
// two of them meet; the walk hands files the parent has to the workers while most turn out changed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { runBackup } from '../src/backup/backup.js';
import { hexList, WorkerPool } from '../src/backup/worker-pool.js';
import { checkRepository } from '../src/check/checker.js';
import { ClaimSet, createClaimSet } from '../src/pack/claim-set.js';
import { Packer } from '../src/pack/packer.js';
import { restoreSnapshot } from '../src/restore/restorer.js';
import { listSnapshots } from '../src/snapshot/snapshot.js';
import { initRepo, listNames, openRepo } from './fault-helpers.js';
import { compareTrees, dirTree, tempRoots } from './helpers.js';

const newRoot = tempRoots('bulwark-wp-');

describe('claim set', () => {
  it('the first claim of an ID wins, later ones lose, other IDs are unaffected', () => {
    const view = createClaimSet();
    const a = new ClaimSet(view);
    const b = new ClaimSet(view);
    const id = randomBytes(32);
    assert.equal(a.claim(id), true);
    assert.equal(b.claim(id), false);
    assert.equal(a.claim(Buffer.from(id)), false);
    const other = Buffer.from(id);
    other[31] = other[31]! ^ 1;
    assert.equal(b.claim(other), true, 'an ID differing in one byte is a different blob');
  });

  it('never refuses an ID nobody claimed, even when the table overflows (it may forget, not invent)', () => {
    const set = new ClaimSet(createClaimSet());
    const ids = Array.from({ length: 200_000 }, () => randomBytes(32));
    for (const id of ids) assert.equal(set.claim(id), true);
    // Most recent claims are remembered; none of the fresh IDs is ever refused.
    let remembered = 0;
    for (const id of ids.slice(-1000)) if (!set.claim(id)) remembered++;
    assert.ok(remembered > 900, `recent claims remembered: ${remembered}`);
    for (let i = 0; i < 1000; i++) assert.equal(set.claim(randomBytes(32)), true);
  });

  it('two threads racing over the same IDs: each ID is won exactly once', async () => {
    const view = createClaimSet();
    const ids = Array.from({ length: 5000 }, () => randomBytes(32));
    const all = Buffer.concat(ids);
    const url = new URL('../src/pack/claim-set.js', import.meta.url).href;
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.url).then(({ ClaimSet }) => {
        const set = new ClaimSet(workerData.view);
        const won = [];
        for (let i = 0; i < workerData.all.length / 32; i++) if (set.claim(workerData.all.subarray(i * 32, i * 32 + 32))) won.push(i);
        parentPort.postMessage(won);
      });`;
    const run = (): Promise<number[]> =>
      new Promise((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { url, view, all } });
        w.once('message', (m: number[]) => resolve(m));
        w.once('error', reject);
      });
    const [x, y] = await Promise.all([run(), run()]);
    const wins = [...x!, ...y!].sort((p, q) => p - q);
    assert.deepEqual(wins, ids.map((_, i) => i));
  });
});

describe('chunk workers', () => {
  async function pool(root: string): Promise<{ pool: WorkerPool; packer: Packer; close: () => Promise<void> }> {
    const repo = await initRepo(path.join(root, 'repo'));
    await repo.loadIndex();
    const packer = new Packer(repo);
    const p = new WorkerPool(repo, packer, 2);
    return { pool: p, packer, close: () => p.close() };
  }

  it('a stat job reports the stat of what it read, and a changed type instead of reading it', async () => {
    const root = newRoot();
    const { pool: p, close } = await pool(root);
    try {
      const file = path.join(root, 'f');
      fs.writeFileSync(file, 'hello');
      fs.chmodSync(file, 0o640);
      fs.symlinkSync(file, path.join(root, 'link'));
      fs.mkdirSync(path.join(root, 'dir'));
      execFileSync('mkfifo', [path.join(root, 'fifo')]);
      const save = async (name: string): ReturnType<WorkerPool['save']> => {
        await p.acquire();
        return p.save({ path: path.join(root, name), stat: true });
      };
      const r = await save('f');
      assert.equal(r.err, undefined);
      assert.equal(r.size, 5);
      const st = fs.lstatSync(file);
      assert.ok(r.stats !== undefined && r.statAt !== undefined);
      assert.equal(r.stats[r.statAt], 0o100640, 'full mode: a regular file with permissions 0640');
      assert.equal(r.stats[r.statAt + 5], st.ino);
      assert.equal(r.stats[r.statAt + 8], 5);
      assert.equal(hexList(r).length, 1);
      // A symlink, a directory and a FIFO are handed back (the FIFO must not block the worker).
      for (const name of ['link', 'dir', 'fifo']) assert.equal((await save(name)).retype, true, name);
      const gone = await save('missing');
      assert.equal(gone.err?.code, 'ENOENT');
    } finally {
      await close();
    }
  });

  it('a stat job with the parent node is answered without reading when nothing changed', async () => {
    const root = newRoot();
    const { pool: p, close } = await pool(root);
    try {
      const file = path.join(root, 'f');
      fs.writeFileSync(file, randomBytes(1000));
      const st = fs.statSync(file);
      const ns = (ms: number): string => `${Math.round(ms * 1000)}000`;
      const prev = { size: st.size, mtime: ns(st.mtimeMs), ctime: ns(st.ctimeMs), inode: String(st.ino) };
      await p.acquire();
      const same = await p.save({ path: file, stat: true, prev });
      assert.equal(same.unchanged, true);
      assert.equal(same.ids.length, 0, 'not read');
      await p.acquire();
      const moved = await p.save({ path: file, stat: true, prev: { ...prev, inode: '1' } });
      assert.equal(moved.unchanged, undefined);
      assert.equal(moved.size, 1000);
      assert.equal(hexList(moved).length, 1);
    } finally {
      await close();
    }
  });
});

describe('backups through worker-assembled packs', () => {
  it('identical files met by both workers are stored once; the repository checks clean and restores', async () => {
    const root = newRoot();
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    const shared = randomBytes(200 * 1024);
    for (let d = 0; d < 8; d++) {
      const dir = path.join(src, `d${d}`);
      fs.mkdirSync(dir);
      for (let i = 0; i < 40; i++) {
        fs.writeFileSync(path.join(dir, `same-${i}`), shared);
        fs.writeFileSync(path.join(dir, `own-${i}`), randomBytes(3000 + i));
      }
    }
    const repo = await initRepo(path.join(root, 'repo'));
    const r = await runBackup(repo, { paths: [src], threads: 2 });
    // 320 distinct small files, plus the shared content: a 200 KiB file is one chunk. Every blob
    // in a pack counts here, so a chunk stored twice would show as 322 or more.
    assert.equal(r.snapshot.summary!.dataBlobs, 321);
    assert.equal(r.snapshot.summary!.filesNew, 640);
    // Random bytes stay raw: the distinct files (966,240 bytes), the shared one once, 29 bytes of
    // sealing per blob, and well under 100 kB of trees and trailers; a second copy would add 200 KiB.
    const stored = (await listNames(repo.storage, 'data')).reduce((n, o) => n + o.size, 0);
    assert.ok(stored < 966_240 + shared.length + 321 * 29 + 100_000, `stored ${stored} bytes: the shared chunk was stored more than once`);
    const again = await openRepo(path.join(root, 'repo'));
    const check = await checkRepository(again, { readData: true });
    assert.deepEqual(check.errors, []);
    const target = path.join(root, 'out');
    const [snap] = await listSnapshots(again);
    await restoreSnapshot(again, snap!, { target });
    compareTrees(src, path.join(target, src), { rootMeta: false });
    assert.deepEqual(fs.readdirSync(path.join(root, 'repo', 'tmp')), [], 'no temp packs left');
  });

  it('trees handed to the workers in groups are all stored: more than a group, and the last partial one', async () => {
    const root = newRoot();
    const src = path.join(root, 'src');
    // 150 distinct directories: two full groups of 64 trees and a partial one that only flush sends.
    for (let d = 0; d < 150; d++) {
      fs.mkdirSync(path.join(src, `d${d}`), { recursive: true });
      fs.writeFileSync(path.join(src, `d${d}`, 'f'), `file ${d}`);
    }
    const repo = await initRepo(path.join(root, 'repo'));
    const r = await runBackup(repo, { paths: [src], threads: 2 });
    assert.ok(r.snapshot.summary!.treeBlobs >= 151, `tree blobs ${r.snapshot.summary!.treeBlobs}`);
    const again = await openRepo(path.join(root, 'repo'));
    const check = await checkRepository(again, { readData: true });
    assert.deepEqual(check.errors, []);
    const target = path.join(root, 'out');
    await restoreSnapshot(again, (await listSnapshots(again))[0]!, { target });
    compareTrees(src, path.join(target, src), { rootMeta: false });
  });

  it('files copied anew (every inode changed) are re-read through the workers, unchanged ones after them are recognised there', async () => {
    const root = newRoot();
    const src = path.join(root, 'src');
    for (const d of ['a', 'b']) {
      fs.mkdirSync(path.join(src, d), { recursive: true });
      for (let i = 0; i < 60; i++) fs.writeFileSync(path.join(src, d, `f${String(i).padStart(2, '0')}`), randomBytes(500 + i));
    }
    const repo = await initRepo(path.join(root, 'repo'));
    await runBackup(repo, { paths: [src], threads: 2 });
    // Replace every file of a/ by a copy: same bytes and mtime, new inode and ctime. After the
    // first few, the walk hands a/'s files to the workers with the parent's node; it is still
    // doing so when it reaches b/, whose files the workers must find unchanged.
    for (const name of fs.readdirSync(path.join(src, 'a'))) {
      const f = path.join(src, 'a', name);
      const st = fs.statSync(f);
      fs.copyFileSync(f, `${f}.new`);
      fs.utimesSync(`${f}.new`, st.atime, st.mtime);
      fs.renameSync(`${f}.new`, f);
    }
    const second = await runBackup(repo, { paths: [src], threads: 2 });
    assert.equal(second.snapshot.summary!.filesChanged, 60);
    assert.equal(second.snapshot.summary!.filesUnmodified, 60);
    assert.equal(second.snapshot.summary!.dataBlobs, 0, 'same content: nothing new stored');
    const third = await runBackup(repo, { paths: [src], threads: 2 });
    assert.equal(third.snapshot.summary!.filesUnmodified, 120);
    assert.equal(await dirTree(repo, third.snapshot.tree, src), await dirTree(repo, second.snapshot.tree, src), 'an unchanged tree encodes to the same blob');
    const target = path.join(root, 'out');
    const snaps = await listSnapshots(repo);
    await restoreSnapshot(repo, snaps[snaps.length - 1]!, { target });
    compareTrees(src, path.join(target, src), { rootMeta: false });
  });
});
