// End-to-end tests through the CLI binary: init, backup of a rich tree, full and partial restores
// compared byte for byte and attribute for attribute, and the read-only commands (snapshots, ls,
// diff, stats, dump), incremental backups, --stdin, excludes and snapshot references.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { Repository } from '../src/repo/repository.js';
import { findSnapshot } from '../src/snapshot/snapshot.js';
import { LocalStorage } from '../src/storage/local.js';
import { resolvePath } from '../src/tree/tree-reader.js';
import { compareTrees, isRoot, jsonError, makeTree, rmrf, runCli, runOk, sha256, sha256File, SPARSE_SIZE, tempRoots, type TreeInfo } from './helpers.js';

const PASSWORD = 'correct horse battery staple';

const newRoot = tempRoots('bulwark-rt-');

/** Where a restore of the whole snapshot puts the absolute path `abs` below `target`. */
function under(target: string, abs: string): string {
  return path.join(target, abs);
}

interface LsRow {
  path: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: string;
  target?: string;
}

describe('round trip of a rich tree', () => {
  let root: string;
  let src: string;
  let repo: string;
  let env: Record<string, string>;
  let info: TreeInfo;
  let id: string;
  let backupJson: { id: string; snapshot: { summary: Record<string, number>; tags: string[]; host: string }; warnings: unknown[] };

  before(async () => {
    root = newRoot();
    src = path.join(root, 'src');
    repo = path.join(root, 'repo');
    fs.mkdirSync(src);
    info = makeTree(src);
    env = { BULWARK_REPO: repo, BULWARK_PASSWORD: PASSWORD };
    await runOk(['init'], env);
    const r = await runOk(['backup', src, '--tag', 'a,b', '--tag', 'c', '--host', 'testhost', '--json'], env);
    backupJson = JSON.parse(r.stdout) as typeof backupJson;
    id = backupJson.id;
  });

  it('backup --json reports the new snapshot and counts every file', () => {
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.deepEqual(backupJson.warnings, []);
    const s = backupJson.snapshot.summary;
    assert.equal(s['filesNew'], info.files.length);
    assert.equal(s['filesChanged'], 0);
    assert.equal(s['filesUnmodified'], 0);
    assert.equal(s['errors'], 0);
    // Content of the random files cannot be compressed or deduplicated away.
    assert.ok(s['dataAddedPacked']! > 60_000_000, `dataAddedPacked ${s['dataAddedPacked']}`);
  });

  it('the big files span several chunks and packs (premise of the round trip)', async () => {
    const r = await Repository.open(new LocalStorage(repo), PASSWORD);
    await r.loadIndex();
    const snap = await findSnapshot(r, id);
    const chunksOf = async (rel: string): Promise<string[]> => (await resolvePath(r, snap.tree, `${src}/${rel}`)).node.content ?? [];
    const c20 = await chunksOf('big/random-20m.bin');
    assert.ok(c20.length >= 3, `20 MB file has ${c20.length} chunks`);
    const c40 = await chunksOf('big/random-40m.bin');
    const packs = new Set(c40.map((h) => r.index.location(r.index.find(Buffer.from(h, 'hex'))).pack));
    assert.ok(packs.size >= 2, `40 MiB file is in ${packs.size} pack(s)`);
  });

  it('restore latest recreates the tree exactly', async () => {
    const target = path.join(root, 'restore-full');
    const r = await runOk(['restore', 'latest', '--target', target, '--json'], env);
    const out = JSON.parse(r.stdout) as { files: number; links: number; bytes: number; errors: unknown[]; dryRun: boolean; snapshot: string };
    assert.deepEqual(out.errors, []);
    assert.equal(out.snapshot, id);
    assert.equal(out.dryRun, false);
    assert.equal(out.files, info.files.length - 1); // one name is the second link of a pair
    assert.equal(out.links, info.symlinks.length + 1);
    assert.equal(out.bytes, info.bytes);
    const restored = under(target, src);
    compareTrees(src, restored);
    // Special checks on top of compareTrees.
    assert.ok(fs.lstatSync(path.join(restored, 'nested/pipe')).isFIFO(), 'FIFO restored as a FIFO');
    assert.equal(fs.statSync(path.join(restored, 'hl-first')).ino, fs.statSync(path.join(restored, 'nested/hl-second')).ino);
    assert.equal(fs.readlinkSync(path.join(restored, 'link-dangling')), 'does/not/exist');
    if (isRoot) {
      const st = fs.lstatSync(path.join(restored, 'owned/by-other'));
      assert.equal(st.uid, 1234);
      assert.equal(st.gid, 5678);
      assert.equal(fs.lstatSync(path.join(restored, 'owned/link-other')).uid, 2222);
      for (const d of info.devices) assert.ok(fs.lstatSync(path.join(restored, d)).isCharacterDevice());
    }
    assert.equal((fs.statSync(path.join(restored, 'sticky')).mode & 0o7777), 0o1777);
  });

  it('restoring again over an existing restore leaves the same tree', async () => {
    const target = path.join(root, 'restore-full');
    if (!fs.existsSync(target)) await runOk(['restore', 'latest', '--target', target], env);
    const r = await runOk(['restore', 'latest', '--target', target, '--json'], env);
    assert.deepEqual((JSON.parse(r.stdout) as { errors: unknown[] }).errors, []);
    compareTrees(src, under(target, src));
  });

  it('check --read-data finds no errors in the repository', async () => {
    const r = await runOk(['check', '--read-data', '--json'], env);
    const out = JSON.parse(r.stdout) as { ok: boolean; errors: unknown[]; packsRead: number; snapshots: number };
    assert.equal(out.ok, true);
    assert.deepEqual(out.errors, []);
    assert.equal(out.snapshots, 1);
    assert.ok(out.packsRead >= 4);
  });

  it('restore keeps the sparse file sparse', async () => {
    const target = path.join(root, 'restore-full');
    const f = path.join(under(target, src), 'big/sparse.img');
    if (!fs.existsSync(f)) await runOk(['restore', 'latest', '--target', target], env);
    const st = fs.statSync(f);
    assert.equal(st.size, SPARSE_SIZE);
    assert.equal(sha256File(f), sha256File(path.join(src, 'big/sparse.img')));
    const srcAllocated = fs.statSync(path.join(src, 'big/sparse.img')).blocks * 512;
    assert.ok(srcAllocated < SPARSE_SIZE / 16, `premise: the source is sparse (${srcAllocated} bytes allocated)`);
    const allocated = st.blocks * 512;
    assert.ok(allocated < SPARSE_SIZE / 4, `restored sparse file has ${allocated} of ${SPARSE_SIZE} bytes allocated`);
  });

  it('restore --verify succeeds and reports the verified bytes', async () => {
    const target = path.join(root, 'restore-verify');
    const r = await runOk(['restore', id, '--target', target, '--verify', '--json'], env);
    const out = JSON.parse(r.stdout) as { verified: number; bytes: number; errors: unknown[] };
    assert.deepEqual(out.errors, []);
    assert.equal(out.bytes, info.bytes);
    assert.equal(out.verified, info.bytes);
    const text = await runOk(['restore', id.slice(0, 10), '--target', path.join(root, 'restore-verify2'), '--verify'], env);
    assert.match(text.stdout, /verified \d/);
    rmrf(target);
    rmrf(path.join(root, 'restore-verify2'));
  });

  it('restore SNAPSHOT:/sub/dir restores only the contents of that directory', async () => {
    const target = path.join(root, 'restore-sub');
    await runOk(['restore', `latest:${src}/nested/deep`, '--target', target], env);
    compareTrees(path.join(src, 'nested/deep'), target, { rootMeta: false });
    assert.deepEqual(fs.readdirSync(target).sort(), ['b.log', 'deeper', 'link-dir']);
  });

  it('restore SNAPSHOT:/file restores that single file into the target', async () => {
    const target = path.join(root, 'restore-one');
    await runOk(['restore', `${id.slice(0, 8)}:${src}/100k.bin`, '--target', target], env);
    assert.deepEqual(fs.readdirSync(target), ['100k.bin']);
    compareTrees(path.join(src, '100k.bin'), path.join(target, '100k.bin'));
  });

  it('restore --include restores only matching paths (and their parents)', async () => {
    const target = path.join(root, 'restore-include');
    await runOk(['restore', 'latest', '--target', target, '--include', 'deeper', '--include', 'hl-second'], env);
    const t = under(target, src);
    assert.equal(fs.readFileSync(path.join(t, 'nested/deep/deeper/c.bin')).equals(fs.readFileSync(path.join(src, 'nested/deep/deeper/c.bin'))), true);
    // The second name of a hard-link pair, restored without the first, still gets the content.
    assert.equal(fs.readFileSync(path.join(t, 'nested/hl-second'), 'utf8'), 'hard linked content\n');
    assert.deepEqual(fs.readdirSync(t).sort(), ['nested']);
    assert.deepEqual(fs.readdirSync(path.join(t, 'nested')).sort(), ['deep', 'hl-second']);
    assert.deepEqual(fs.readdirSync(path.join(t, 'nested/deep')).sort(), ['deeper']);
  });

  it('restore --exclude skips matching paths (by name and by full path)', async () => {
    const target = path.join(root, 'restore-exclude');
    await runOk(['restore', 'latest', '--target', target, '--exclude', '*.log', '--exclude', `${src}/big`, '--exclude', 'deeper'], env);
    const t = under(target, src);
    assert.equal(fs.existsSync(path.join(t, 'big')), false, 'big/ excluded');
    assert.equal(fs.existsSync(path.join(t, 'nested/deep/b.log')), false, '*.log excluded');
    assert.equal(fs.existsSync(path.join(t, 'nested/deep/deeper')), false, 'deeper excluded');
    assert.equal(fs.readFileSync(path.join(t, 'small.txt'), 'utf8'), 'hello, bulwark\n');
    assert.ok(fs.lstatSync(path.join(t, 'nested/deep/link-dir')).isSymbolicLink());
    compareTrees(path.join(src, 'private'), path.join(t, 'private'));
    rmrf(target);
  });

  it('restore --dry-run writes nothing and reports the counts', async () => {
    const target = path.join(root, 'restore-dry');
    const r = await runOk(['restore', 'latest', '--target', target, '--dry-run', '--json'], env);
    const out = JSON.parse(r.stdout) as { files: number; dirs: number; links: number; bytes: number; dryRun: boolean };
    assert.equal(out.dryRun, true);
    assert.equal(out.files, info.files.length - 1);
    assert.equal(out.links, info.symlinks.length + 1);
    assert.equal(out.bytes, info.bytes);
    assert.equal(out.dirs, info.dirs.length + src.split('/').filter((c) => c !== '').length);
    assert.equal(fs.existsSync(target), false, 'dry run created the target');
  });

  it('snapshots --json lists the snapshot with its fields, tags and host', async () => {
    const r = await runOk(['snapshots', '--json'], env);
    const list = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.ok(Array.isArray(list));
    assert.equal(list.length, 1);
    const s = list[0]!;
    assert.equal(s['id'], id);
    assert.ok(!Number.isNaN(Date.parse(s['time'] as string)));
    assert.equal(s['host'], 'testhost');
    assert.deepEqual(s['paths'], [src]);
    assert.deepEqual(s['tags'], ['a', 'b', 'c']);
    assert.match(s['tree'] as string, /^[0-9a-f]{64}$/);
    assert.equal(typeof s['username'], 'string');
    assert.equal(typeof s['summary'], 'object');
    // Filters.
    assert.equal((JSON.parse((await runOk(['snapshots', '--json', '--host', 'otherhost'], env)).stdout) as unknown[]).length, 0);
    assert.equal((JSON.parse((await runOk(['snapshots', '--json', '--tag', 'b'], env)).stdout) as unknown[]).length, 1);
    assert.equal((JSON.parse((await runOk(['snapshots', '--json', '--tag', 'zzz'], env)).stdout) as unknown[]).length, 0);
  });

  it('ls --json lists every entry with type, size, mode, owner, mtime and link target', async () => {
    const r = await runOk(['ls', id, '--json'], env);
    const rows = JSON.parse(r.stdout) as LsRow[];
    const byPath = new Map(rows.map((x) => [x.path, x]));
    const expectType = (rel: string, type: string): LsRow => {
      const row = byPath.get(`${src}/${rel}`);
      assert.ok(row !== undefined, `ls lacks ${rel}`);
      assert.equal(row.type, type, `type of ${rel}`);
      const st = fs.lstatSync(path.join(src, rel), { bigint: true });
      assert.equal(row.mtime, new Date(Number(st.mtimeNs / 1_000_000n)).toISOString(), `mtime of ${rel}`);
      assert.equal(row.uid, Number(st.uid));
      assert.equal(row.gid, Number(st.gid));
      if (type !== 'symlink') assert.equal(row.mode, Number(st.mode & 0o7777n), `mode of ${rel}`);
      return row;
    };
    for (const f of info.files) assert.equal(expectType(f, 'file').size, fs.statSync(path.join(src, f)).size);
    for (const d of info.dirs) expectType(d, 'dir');
    for (const l of info.symlinks) assert.equal(expectType(l, 'symlink').target, fs.readlinkSync(path.join(src, l)));
    for (const p of info.fifos) expectType(p, 'fifo');
    for (const d of info.devices) expectType(d, 'chardev');
    assert.equal(byPath.get(`${src}/private/secret`)?.mode, 0o600);
    assert.equal(byPath.get(`${src}/run.sh`)?.mode, 0o755);
    assert.ok(byPath.has(`${src}/ünïcødé-日本語.txt`));
    assert.ok(byPath.has(`${src}/-leading-dash`));
    // Listing one directory, non-recursively.
    const sub = JSON.parse((await runOk(['ls', 'latest', `${src}/nested/deep`, '--json'], env)).stdout) as LsRow[];
    assert.deepEqual(sub.map((x) => x.path).sort(), [`${src}/nested/deep/b.log`, `${src}/nested/deep/deeper`, `${src}/nested/deep/link-dir`]);
    // Text output names the files too.
    const text = await runOk(['ls', 'latest'], env);
    assert.ok(text.stdout.split('\n').includes(`${src}/with space.txt`));
  });

  it('stats --json reports sizes, deduplication and packs', async () => {
    const r = await runOk(['stats', '--json'], env);
    const s = JSON.parse(r.stdout) as Record<string, number>;
    for (const k of ['snapshots', 'totalFiles', 'totalRestoreSize', 'uniqueBlobs', 'uniqueRawSize', 'uniqueStoredSize', 'packFiles', 'packBytes', 'dedupRatio', 'compressionRatio', 'indexEntries', 'indexBytesPerEntry']) {
      assert.equal(typeof s[k], 'number', `stats.${k}`);
    }
    assert.equal(s['snapshots'], 1);
    assert.equal(s['totalFiles'], info.files.length + info.symlinks.length + info.fifos.length + info.devices.length);
    assert.equal(s['totalRestoreSize'], info.bytes + Buffer.byteLength('hard linked content\n'));
    // The sparse file's zero chunks are one blob: unique data is much smaller than the restore size.
    assert.ok(s['uniqueRawSize']! < s['totalRestoreSize']! - SPARSE_SIZE / 2, `uniqueRawSize ${s['uniqueRawSize']}`);
    assert.ok(s['dedupRatio']! > 1);
    assert.ok(s['packFiles']! >= 4, `${s['packFiles']} packs for > 60 MB of random data`);
    assert.ok(s['packBytes']! > 60_000_000);
    assert.ok(s['uniqueBlobs']! >= 5);
    assert.ok(s['indexEntries']! >= s['uniqueBlobs']!);
  });

  it('dump writes a file byte for byte (small, binary, empty, large, sparse)', async () => {
    for (const rel of ['small.txt', '100k.bin', 'empty.txt', 'ünïcødé-日本語.txt', 'big/random-40m.bin', 'big/random-20m.bin', 'big/sparse.img']) {
      const r = await runOk(['dump', 'latest', `${src}/${rel}`], env);
      const want = sha256File(path.join(src, rel));
      assert.equal(r.stdoutBuf.length, fs.statSync(path.join(src, rel)).size, `size of dumped ${rel}`);
      assert.equal(sha256(r.stdoutBuf), want, `content of dumped ${rel}`);
    }
    // Through a symlinked path component? No: dump takes snapshot paths; a directory is a usage error.
    const r = await runCli(['dump', 'latest', `${src}/nested`, '--json'], env);
    assert.equal(r.code, 2);
    assert.equal(jsonError(r).code, 'USAGE');
    const missing = await runCli(['dump', 'latest', `${src}/no-such-file`, '--json'], env);
    assert.equal(missing.code, 1);
    assert.equal(jsonError(missing).code, 'PATH_NOT_FOUND');
  });

  it('snapshot references: full ID, prefix and latest resolve; an unknown prefix is SNAPSHOT_NOT_FOUND', async () => {
    for (const ref of [id, id.slice(0, 8), id.slice(0, 1), 'latest']) {
      const r = await runOk(['ls', ref, `${src}/small.txt`, '--json'], env);
      assert.equal((JSON.parse(r.stdout) as LsRow[])[0]?.path, `${src}/small.txt`, `ref ${ref}`);
    }
    const other = (id[0] === 'f' ? '0' : 'f') + id.slice(1, 8);
    for (const ref of [other, 'not-an-id', 'LATEST']) {
      const r = await runCli(['ls', ref, '--json'], env);
      assert.equal(r.code, 1, `ref ${ref}: ${r.stderr}`);
      const e = jsonError(r);
      assert.equal(e.code, 'SNAPSHOT_NOT_FOUND');
      assert.equal(e.subject, ref);
    }
    const r = await runCli(['restore', other, '--target', path.join(root, 'never'), '--json'], env);
    assert.equal(jsonError(r).code, 'SNAPSHOT_NOT_FOUND');
    assert.equal(fs.existsSync(path.join(root, 'never')), false);
  });
});

describe('snapshot references with several snapshots', () => {
  it('latest on an empty repository is SNAPSHOT_NOT_FOUND; an ambiguous prefix is SNAPSHOT_AMBIGUOUS', async () => {
    const root = newRoot();
    const env = { BULWARK_REPO: path.join(root, 'repo'), BULWARK_PASSWORD: PASSWORD };
    await runOk(['init'], env);
    const empty = await runCli(['ls', 'latest', '--json'], env);
    assert.equal(empty.code, 1);
    assert.equal(jsonError(empty).code, 'SNAPSHOT_NOT_FOUND');
    // Make snapshots until two share a first hex digit (at most 17 by pigeonhole).
    const ids: string[] = [];
    let shared: string | undefined;
    for (let i = 0; i < 17 && shared === undefined; i++) {
      const r = await runOk(['backup', '--stdin', '--stdin-filename', `f${i}`, '--json'], env, { input: `content ${i}\n` });
      const sid = (JSON.parse(r.stdout) as { id: string }).id;
      shared = ids.find((x) => x[0] === sid[0])?.[0];
      ids.push(sid);
    }
    assert.ok(shared !== undefined);
    const r = await runCli(['ls', shared, '--json'], env);
    assert.equal(r.code, 1);
    const e = jsonError(r);
    assert.equal(e.code, 'SNAPSHOT_AMBIGUOUS');
    assert.equal(e.subject, shared);
    // Each full ID still resolves, and latest is the last one made.
    const latest = JSON.parse((await runOk(['ls', 'latest', '--json'], env)).stdout) as LsRow[];
    assert.deepEqual(latest.map((x) => x.path), [`/f${ids.length - 1}`]);
    for (const [i, sid] of ids.entries()) {
      const rows = JSON.parse((await runOk(['ls', sid, '--json'], env)).stdout) as LsRow[];
      assert.deepEqual(rows.map((x) => x.path), [`/f${i}`]);
    }
  });
});

describe('incremental backups and diff', () => {
  let root: string;
  let src: string;
  let env: Record<string, string>;
  let info: TreeInfo;
  let first: string;
  let second: string;
  let third: string;
  type Summary = Record<string, number>;
  let s2: Summary;
  let s3: Summary;

  before(async () => {
    root = newRoot();
    src = path.join(root, 'src');
    fs.mkdirSync(src);
    info = makeTree(src, { big: false });
    env = { BULWARK_REPO: path.join(root, 'repo'), BULWARK_PASSWORD: PASSWORD };
    await runOk(['init'], env);
    const parse = (out: string): { id: string; snapshot: { summary: Summary; parent?: string } } => JSON.parse(out) as { id: string; snapshot: { summary: Summary; parent?: string } };
    first = parse((await runOk(['backup', src, '--json'], env)).stdout).id;
    // A copy of the original tree, to compare the second snapshot against later.
    execFileSync('cp', ['-a', src, path.join(root, 'orig')]);
    const b2 = parse((await runOk(['backup', src, '--json'], env)).stdout);
    second = b2.id;
    s2 = b2.snapshot.summary;
    assert.equal(b2.snapshot.parent, first);
    // Modify: new content in one file (same size, new mtime), add a file and a directory, remove a
    // file, change only the mode of another, turn a symlink into a file.
    fs.writeFileSync(path.join(src, 'nested/a.txt'), 'FILE A\n');
    fs.utimesSync(path.join(src, 'nested/a.txt'), 1_700_000_000, 1_700_000_000);
    fs.writeFileSync(path.join(src, 'new.txt'), 'new file\n');
    fs.mkdirSync(path.join(src, 'newdir'));
    fs.writeFileSync(path.join(src, 'newdir/inner.txt'), 'inner\n');
    fs.rmSync(path.join(src, 'one-byte'));
    fs.chmodSync(path.join(src, 'small.txt'), 0o600);
    fs.rmSync(path.join(src, 'link-rel'));
    fs.writeFileSync(path.join(src, 'link-rel'), 'was a symlink\n');
    const b3 = parse((await runOk(['backup', src, '--json'], env)).stdout);
    third = b3.id;
    s3 = b3.snapshot.summary;
  });

  it('an unchanged second backup reads nothing and adds no data', () => {
    assert.equal(s2['filesUnmodified'], info.files.length);
    assert.equal(s2['filesNew'], 0);
    assert.equal(s2['filesChanged'], 0);
    assert.equal(s2['dataBlobs'], 0);
    // At most the tree blobs of directories above the source (whose mtimes other processes touch).
    assert.ok(s2['dataAdded']! < 4096, `dataAdded ${s2['dataAdded']}`);
    assert.equal(s2['dirsNew'], 0);
  });

  it('a backup after changes reports the changed and new files', () => {
    assert.equal(s3['filesNew'], 2); // new.txt, newdir/inner.txt
    assert.equal(s3['filesChanged'], 3); // a.txt (content), small.txt (mode, so its ctime changed), link-rel (was a symlink)
    assert.equal(s3['filesUnmodified'], info.files.length - 3);
    assert.ok(s3['dataBlobs']! >= 3);
  });

  it('diff --json shows added, removed, modified and metadata-only changes', async () => {
    const r = await runOk(['diff', second, third, '--json'], env);
    const d = JSON.parse(r.stdout) as { from: string; to: string; changes: Array<{ path: string; change: string }>; summary: Record<string, number> };
    assert.equal(d.from, second);
    assert.equal(d.to, third);
    const got = d.changes.map((c) => `${c.change} ${c.path}`).sort();
    assert.deepEqual(got, [`+ ${src}/new.txt`, `+ ${src}/newdir/`, `+ ${src}/newdir/inner.txt`, `- ${src}/one-byte`, `M ${src}/nested/a.txt`, `U ${src}/small.txt`, `T ${src}/link-rel`].sort());
    assert.deepEqual(d.summary, { added: 3, removed: 1, modified: 1, typeChanged: 1, metadataOnly: 1 });
    // The reverse direction swaps + and -.
    const back = JSON.parse((await runOk(['diff', third.slice(0, 12), second.slice(0, 12), '--json'], env)).stdout) as typeof d;
    assert.deepEqual(back.summary, { added: 1, removed: 3, modified: 1, typeChanged: 1, metadataOnly: 1 });
    // Unchanged snapshots: no differences.
    const same = JSON.parse((await runOk(['diff', first, second, '--json'], env)).stdout) as typeof d;
    assert.deepEqual(same.changes, []);
  });

  it('the unchanged snapshot restores the original tree and the latest one the modified tree', async () => {
    const t2 = path.join(root, 'r2');
    await runOk(['restore', second, '--target', t2], env);
    compareTrees(path.join(root, 'orig'), under(t2, src));
    const t3 = path.join(root, 'r3');
    await runOk(['restore', 'latest', '--target', t3], env);
    compareTrees(src, under(t3, src));
  });
});

describe('backup --stdin', () => {
  it('stores piped input as one file that dump returns unchanged', async () => {
    const root = newRoot();
    const env = { BULWARK_REPO: path.join(root, 'repo'), BULWARK_PASSWORD: PASSWORD };
    await runOk(['init'], env);
    // Larger than two maximum chunks, so the stream is cut in several passes.
    const data = Buffer.concat([Buffer.from('-- SQL dump\nCREATE TABLE t (x int);\n'), randomBytes(20 * 1024 * 1024), Buffer.from('\n-- end\n')]);
    const r = await runOk(['backup', '--stdin', '--stdin-filename', 'db.sql', '--tag', 'db', '--json'], env, { input: data });
    const out = JSON.parse(r.stdout) as { id: string; snapshot: { paths: string[]; summary: Record<string, number> } };
    assert.deepEqual(out.snapshot.paths, ['/db.sql']);
    assert.equal(out.snapshot.summary['totalBytesProcessed'], data.length);
    const rows = JSON.parse((await runOk(['ls', 'latest', '--json'], env)).stdout) as LsRow[];
    assert.deepEqual(rows.map((x) => [x.path, x.type, x.size]), [['/db.sql', 'file', data.length]]);
    const dumped = await runOk(['dump', out.id.slice(0, 8), '/db.sql'], env);
    assert.equal(dumped.stdoutBuf.length, data.length);
    assert.ok(dumped.stdoutBuf.equals(data), 'dumped stdin backup differs');
    // And restore writes it as a file.
    const target = path.join(root, 'r');
    await runOk(['restore', 'latest:/db.sql', '--target', target], env);
    assert.ok(fs.readFileSync(path.join(target, 'db.sql')).equals(data));
    // Empty stdin makes an empty file.
    await runOk(['backup', '--stdin', '--stdin-filename', 'empty', '--json'], env, { input: '' });
    assert.equal((await runOk(['dump', 'latest', 'empty'], env)).stdoutBuf.length, 0);
  });
});

describe('backup --exclude and --exclude-file', () => {
  let root: string;
  let src: string;
  let env: Record<string, string>;

  before(async () => {
    root = newRoot();
    src = path.join(root, 'src');
    fs.mkdirSync(src);
    makeTree(src, { big: false, owners: false });
    // Names that contain (but do not start with) the names used in "**/" patterns below.
    fs.writeFileSync(path.join(src, 'nested/deep/xb.log'), 'not b.log\n');
    fs.writeFileSync(path.join(src, 'nested/banana.txt'), 'no a at the start\n');
    env = { BULWARK_REPO: path.join(root, 'repo'), BULWARK_PASSWORD: PASSWORD };
    await runOk(['init'], env);
  });

  async function paths(id: string): Promise<string[]> {
    const rows = JSON.parse((await runOk(['ls', id, '--json'], env)).stdout) as LsRow[];
    return rows.map((r) => r.path).filter((p) => p.startsWith(src + '/')).map((p) => p.slice(src.length + 1));
  }

  it('--exclude leaves matching names out of the snapshot', async () => {
    const r = await runOk(['backup', src, '--exclude', '*.log', '-e', 'deeper', '--exclude', `${src}/private`, '--json'], env);
    const out = JSON.parse(r.stdout) as { id: string; snapshot: { excludes?: string[] } };
    assert.deepEqual(out.snapshot.excludes, ['*.log', 'deeper', `${src}/private`]);
    const got = await paths(out.id);
    assert.ok(!got.includes('nested/deep/b.log'));
    assert.ok(!got.some((p) => p.includes('deeper')), got.join(','));
    assert.ok(!got.some((p) => p.startsWith('private')), got.join(','));
    for (const keep of ['small.txt', 'nested/a.txt', 'nested/deep', 'nested/deep/link-dir', 'empty', 'link-dangling', '-leading-dash']) assert.ok(got.includes(keep), `missing ${keep}`);
  });

  it('--exclude-file reads patterns (with comments and re-includes) from a file', async () => {
    const file = path.join(root, 'excludes.txt');
    fs.writeFileSync(file, ['# a comment', '', `${src}/nested`, 'empty', '*.txt', '!small.txt', ''].join('\n'));
    const r = await runOk(['backup', src, '--exclude-file', file, '--json'], env);
    const got = await paths((JSON.parse(r.stdout) as { id: string }).id);
    assert.ok(!got.some((p) => p === 'nested' || p.startsWith('nested/')), got.join(','));
    assert.ok(!got.includes('empty'));
    assert.ok(!got.includes('one-byte.txt') && !got.includes('with space.txt') && !got.includes('compressible.txt'), got.join(','));
    assert.ok(got.includes('small.txt'), 're-included by !small.txt');
    assert.ok(got.includes('one-byte') && got.includes('100k.bin') && got.includes('private/secret'), got.join(','));
  });


  it('a "**/" pattern matches whole names at any depth (backup --exclude)', async () => {
    const r = await runOk(['backup', src, '--exclude', `${src}/**/b.log`, '--exclude', '**/a*', '--json'], env);
    const got = await paths((JSON.parse(r.stdout) as { id: string }).id);
    assert.ok(!got.includes('nested/deep/b.log'), 'b.log not excluded');
    assert.ok(!got.includes('nested/a.txt'), 'a.txt not excluded');
    assert.ok(got.includes('nested/deep/xb.log'), 'xb.log was excluded by **/b.log');
    assert.ok(got.includes('nested/banana.txt'), 'banana.txt was excluded by **/a*');
  });

  it('a "**/" pattern matches whole names at any depth (restore --include/--exclude)', async () => {
    const id = (JSON.parse((await runOk(['backup', src, '--force', '--json'], env)).stdout) as { id: string }).id;
    const t1 = path.join(root, 'inc');
    await runOk(['restore', id, '--target', t1, '--include', '**/a.txt'], env);
    assert.ok(fs.existsSync(path.join(t1, src, 'nested/a.txt')));
    assert.equal(fs.existsSync(path.join(t1, src, 'nested/banana.txt')), false, 'banana.txt included by **/a.txt');
    const t2 = path.join(root, 'exc');
    await runOk(['restore', id, '--target', t2, '--exclude', `${src}/**/b.log`], env);
    assert.equal(fs.existsSync(path.join(t2, src, 'nested/deep/b.log')), false);
    assert.ok(fs.existsSync(path.join(t2, src, 'nested/deep/xb.log')), 'xb.log excluded by **/b.log');
  });

  it('an unreadable exclude file is a usage error', async () => {
    const r = await runCli(['backup', src, '--exclude-file', path.join(root, 'nope'), '--json'], env);
    assert.equal(r.code, 2);
    assert.equal(jsonError(r).code, 'USAGE');
  });
});
