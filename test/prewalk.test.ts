// The pre-walk lists and stats the sources while the repository opens; the archiver takes its
// listings. A backup that uses them must record exactly what a backup without them records.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { runBackup } from '../src/backup/backup.js';
import { Excluder } from '../src/backup/exclude.js';
import { Prewalk, prewalkRoots } from '../src/backup/prewalk.js';
import { restoreSnapshot } from '../src/restore/restorer.js';
import { listSnapshots } from '../src/snapshot/snapshot.js';
import { STAT_FIELDS } from '../src/tree/node.js';
import { initRepo } from './fault-helpers.js';
import { compareTrees, dirTree, makeTree, tempRoots } from './helpers.js';

const newRoot = tempRoots('bulwark-prewalk-');

/** A new root holding directories d0, d1, ... with `files` empty files each. */
function dirsOfFiles(dirs: number, files: number): string {
  const root = newRoot();
  for (let d = 0; d < dirs; d++) {
    fs.mkdirSync(path.join(root, `d${d}`));
    for (let f = 0; f < files; f++) fs.writeFileSync(path.join(root, `d${d}`, `f${f}`), '');
  }
  return root;
}

async function finish(w: Prewalk): Promise<void> {
  for (let turns = 0; !w.finished; turns++) {
    assert.ok(turns < 100_000, 'the pre-walk neither finished nor paused');
    await new Promise((r) => setImmediate(r));
  }
}

describe('pre-walk', () => {
  it('lists every directory in name order with each entry lstat, skipping excluded ones', async () => {
    const root = newRoot();
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    const info = makeTree(src, { big: false });
    fs.mkdirSync(path.join(src, 'skipme'));
    fs.writeFileSync(path.join(src, 'skipme', 'x'), 'x');
    const w = new Prewalk(prewalkRoots([src]), new Excluder(['skipme'])).start();
    await finish(w);
    assert.equal(w.take(path.join(src, 'skipme')), undefined, 'an excluded directory is not listed');
    let checked = 0;
    let relisted = 0;
    for (const rel of ['', ...info.dirs]) {
      const dir = rel === '' ? src : path.join(src, rel);
      const l = w.take(dir);
      assert.ok(l !== undefined, `listing of ${dir}`);
      const want = fs.readdirSync(dir).filter((n) => n !== 'skipme').sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      assert.deepEqual(l.names, want, dir);
      l.names.forEach((n, i) => {
        const st = fs.lstatSync(path.join(dir, n));
        const at = i * STAT_FIELDS;
        if (st.nlink > 1 && !st.isDirectory()) {
          // Hard links need an exact (BigInt) inode: left to the archiver to stat again.
          assert.ok(Number.isNaN(l.stats[at]), `${n} is marked to be stat'ed again`);
          relisted++;
          return;
        }
        assert.deepEqual([l.stats[at], l.stats[at + 5], l.stats[at + 8], l.stats[at + 3]], [st.mode, st.ino, st.size, st.mtimeMs], `${dir}/${n}`);
        checked++;
      });
    }
    assert.ok(checked > 20 && relisted >= 2, `entries checked: ${checked}, hard links: ${relisted}`);
    assert.equal(w.held, 0, 'no listing beyond the tree');
  });

  it('listings cut from shared slabs keep their own stats (more entries than two slabs hold)', async () => {
    // 2 slabs hold about 26,000 entries; each file's size is unique, so a listing whose stats
    // overlapped another's would show a wrong size.
    const root = newRoot();
    const dirs = 300;
    const files = 100;
    for (let d = 0; d < dirs; d++) {
      fs.mkdirSync(path.join(root, `d${d}`));
      for (let f = 0; f < files; f++) fs.writeFileSync(path.join(root, `d${d}`, `f${f}`), Buffer.alloc(d * files + f));
    }
    // One big directory too, which gets an array of its own.
    fs.mkdirSync(path.join(root, 'zbig'));
    for (let f = 0; f < 4000; f++) fs.writeFileSync(path.join(root, 'zbig', `f${f}`), Buffer.alloc(f % 7));
    const w = new Prewalk([root], new Excluder([]), 1_000_000).start();
    await finish(w);
    const listings = [...Array(dirs).keys()].map((d) => w.take(path.join(root, `d${d}`)));
    const big = w.take(path.join(root, 'zbig'));
    for (let d = 0; d < dirs; d++) {
      const l = listings[d];
      assert.ok(l !== undefined && l.names.length === files, `listing of d${d}`);
      l.names.forEach((n, i) => assert.equal(l.stats[i * STAT_FIELDS + 8], d * files + Number(n.slice(1)), `d${d}/${n}`));
    }
    assert.ok(big !== undefined && big.names.length === 4000);
    big.names.forEach((n, i) => assert.equal(big.stats[i * STAT_FIELDS + 8], Number(n.slice(1)) % 7, `zbig/${n}`));
  });

  it('walks a source path inside another source path once', () => {
    assert.deepEqual(prewalkRoots(['/a/b', '/a', '/c/', '/ab', '/a/b/c']), ['/a', '/ab', '/c']);
    assert.deepEqual(prewalkRoots(['/x', '/']), ['/']);
    // The archiver's order, one name at a time: "app" before "app-data".
    assert.deepEqual(prewalkRoots(['/srv/app-data', '/srv/app/x']), ['/srv/app/x', '/srv/app-data']);
  });

  it('pauses at its bound and resumes as listings are taken', async () => {
    const root = dirsOfFiles(20, 10);
    const w = new Prewalk([root], new Excluder([]), 50).start();
    await finish(w);
    // The root (20 entries) and the directories listed until 50 entries were reached: 20 + 3 × 10.
    assert.equal(w.listed, 50);
    assert.equal(w.held, 4);
    // Taking listings makes room: the walk goes on where it paused (two more directories), up to
    // the bound again. Directories go in name order: d0, d1, d10, d11, ...
    assert.equal(w.take(root)?.names.length, 20);
    await finish(w);
    assert.equal(w.listed, 70);
    const order = Array.from({ length: 20 }, (_, d) => `d${d}`).sort();
    assert.deepEqual(
      order.slice(0, 6).map((d) => w.take(path.join(root, d))?.names.length),
      [10, 10, 10, 10, 10, undefined],
    );
    w.stop();
  });

  it('skips what the archiver reached first', async () => {
    const root = dirsOfFiles(8, 10);
    // Bound 8: the root's listing (8 entries) fills it, and d0..d7 wait to be listed.
    const w = new Prewalk([root], new Excluder([]), 8).start();
    await finish(w);
    assert.equal(w.listed, 8);
    assert.ok(w.take(root) !== undefined);
    // The archiver gets to d2 before the walk resumes: it lists d0..d2 itself, the walk goes on at d3.
    assert.equal(w.take(path.join(root, 'd2')), undefined);
    await finish(w);
    assert.equal(w.listed, 18, 'one more directory (10 entries) fills the bound again');
    assert.equal(w.take(path.join(root, 'd0')), undefined);
    assert.equal(w.take(path.join(root, 'd1')), undefined);
    assert.equal(w.take(path.join(root, 'd3'))?.names.length, 10);
    await finish(w);
    assert.equal(w.take(path.join(root, 'd4'))?.names.length, 10);
    w.stop();
  });

  it('a backup beside a pre-walk that pauses and resumes takes every listing and records the same tree', async () => {
    const root = newRoot();
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    makeTree(src, { big: false });
    for (let d = 0; d < 12; d++) {
      fs.mkdirSync(path.join(src, `more${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 6; f++) fs.writeFileSync(path.join(src, `more${d}`, 'sub', `f${f}`), `${d}-${f}`);
    }
    const repo = await initRepo(path.join(root, 'repo'));
    const plain = await runBackup(repo, { paths: [src], parent: null, threads: 2 });
    // Bound 8: the walk keeps pausing and resuming while the archiver takes its listings.
    const w = new Prewalk(prewalkRoots([src]), new Excluder([]), 8).start();
    const r = await runBackup(repo, { paths: [src], parent: null, threads: 2, prewalk: w });
    assert.ok(w.listed > 8, `listed ${w.listed}`);
    assert.equal(w.held, 0, 'the archiver took every listing made');
    assert.equal(r.warnings.length, 0);
    assert.equal(await dirTree(repo, r.snapshot.tree, src), await dirTree(repo, plain.snapshot.tree, src));
  });

  it('a file that became a FIFO after the pre-walk does not block the backup', { timeout: 30_000 }, async () => {
    const root = newRoot();
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a'), 'a');
    fs.writeFileSync(path.join(src, 'x'), 'x'.repeat(1000));
    const w = new Prewalk(prewalkRoots([src]), new Excluder([])).start();
    await finish(w);
    fs.rmSync(path.join(src, 'x'));
    execFileSync('mkfifo', [path.join(src, 'x')]);
    const repo = await initRepo(path.join(root, 'repo'));
    // The worker opens "x" as the regular file the pre-walk saw: without O_NONBLOCK, open() would
    // wait for a writer that never comes.
    const r = await runBackup(repo, { paths: [src], threads: 1, prewalk: w });
    assert.equal(w.held, 0);
    // Both names are accounted for: "a" read, and "x" recorded (a FIFO without a writer reads as empty) or reported.
    assert.equal(r.snapshot.summary!.totalFilesProcessed + r.warnings.length, 2);
  });

  it('a backup from its listings records the same trees as one without, read or unchanged', async () => {
    const root = newRoot();
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    makeTree(src, { big: false });
    const repo = await initRepo(path.join(root, 'repo'));
    const plain = await runBackup(repo, { paths: [src], parent: null, threads: 2 });
    for (const parent of [null, undefined] as const) {
      // parent null: every file is read (queued with the pre-walk's stat); undefined: the first
      // backup is the parent and every file is found unchanged from the pre-walk's stat.
      const w = new Prewalk(prewalkRoots([src]), new Excluder([])).start();
      await finish(w);
      assert.ok(w.held > 5);
      const r = await runBackup(repo, { paths: [src], threads: 2, prewalk: w, ...(parent === null ? { parent } : {}) });
      assert.equal(w.held, 0, 'the archiver took every listing');
      assert.equal(await dirTree(repo, r.snapshot.tree, src), await dirTree(repo, plain.snapshot.tree, src), `same tree for the source (parent ${String(parent)})`);
      assert.equal(r.warnings.length, 0);
      if (parent === undefined) assert.equal(r.snapshot.summary!.filesChanged + r.snapshot.summary!.filesNew, 0);
      else assert.ok(r.snapshot.summary!.filesNew > 10);
    }
    const target = path.join(root, 'restore');
    const snap = (await listSnapshots(repo)).at(-1)!;
    await restoreSnapshot(repo, snap, { target });
    compareTrees(src, path.join(target, src), { rootMeta: false });
  });
});
