// Restore: create directories, then stream packs to workers that decode blobs and write files in
// parallel, then links and special files, then directory metadata (deepest first, because writing
// into a directory changes its mtime). Each pack is read once, as one range covering the blobs
// needed from it, so a full restore reads the repository sequentially pack by pack.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BulwarkError } from '../errors.js';
import { Lock } from '../repo/lock.js';
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { TreeNode } from '../tree/node.js';
import type { FileMeta, PackFile, PackTask, RestoreInit, TaskDone, VerifyTask } from '../worker/restore-protocol.js';
import { planRestore, type PlannedEntry, type RestorePlan } from './plan.js';

export interface RestoreOptions {
  target: string;
  subpath?: string;
  includes?: string[];
  excludes?: string[];
  verify?: boolean;
  dryRun?: boolean;
  threads?: number;
  onProgress?: (p: { files: number; bytes: number; totalBytes: number }) => void;
}

export interface RestoreResult {
  dirs: number;
  files: number;
  links: number;
  bytes: number;
  verified: number;
  errors: Array<{ path: string; code: string; message: string }>;
  dryRun: boolean;
}

const owner = process.getuid?.() === 0;

function metaOf(n: TreeNode): FileMeta {
  return { mode: n.mode, uid: n.uid, gid: n.gid, mtimeNs: n.mtime };
}

class Pool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly waiting = new Map<number, (d: TaskDone) => void>();
  private next = 1;

  constructor(repo: Repository, threads: number) {
    const init: RestoreInit = { encKey: repo.keys.enc, idKey: repo.keys.id, owner };
    const url = new URL('../worker/restore-worker.js', import.meta.url);
    for (let i = 0; i < threads; i++) {
      const w = new Worker(url, { workerData: init });
      w.on('message', (d: TaskDone) => {
        this.busy[i]!--;
        this.waiting.get(d.task)?.(d);
        this.waiting.delete(d.task);
      });
      this.workers.push(w);
      this.busy.push(0);
    }
  }

  run(task: Omit<PackTask, 'task'> | Omit<VerifyTask, 'task'>, transfer: ArrayBuffer[] = []): Promise<TaskDone> {
    const id = this.next++;
    let best = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.busy[i]! < this.busy[best]!) best = i;
    this.busy[best]!++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.workers[best]!.postMessage({ ...task, task: id }, transfer);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

interface PackWork {
  pack: number;
  blobs: Array<{ entry: number; offset: number; stored: number }>;
  blobIndex: Map<number, number>;
  files: PackFile[];
}

/** Groups every file's blobs by pack. Files whose blobs span packs are pre-created here. */
function groupByPack(repo: Repository, files: PlannedEntry[]): { work: Map<number, PackWork>; spanning: PlannedEntry[] } {
  const work = new Map<number, PackWork>();
  const spanning: PlannedEntry[] = [];
  for (const f of files) {
    const content = f.node.content ?? [];
    const locs = content.map((h) => {
      const e = repo.index.find(Buffer.from(h, 'hex'));
      if (e < 0) {
        throw new BulwarkError('BLOB_MISSING', `blob ${h} of ${f.source} is not in the index`, {
          subject: f.source,
          hint: 'run `bulwark check` to see which snapshots are affected',
        });
      }
      return { e, loc: repo.index.location(e) };
    });
    const packs = new Set(locs.map((l) => l.loc.pack));
    const whole = packs.size === 1;
    if (!whole) spanning.push(f);
    const perPack = new Map<number, PackFile>();
    let off = 0;
    for (const { e, loc } of locs) {
      let w = work.get(loc.pack);
      if (w === undefined) {
        w = { pack: loc.pack, blobs: [], blobIndex: new Map(), files: [] };
        work.set(loc.pack, w);
      }
      let bi = w.blobIndex.get(e);
      if (bi === undefined) {
        bi = w.blobs.length;
        w.blobs.push({ entry: e, offset: loc.offset, stored: loc.stored });
        w.blobIndex.set(e, bi);
      }
      let pf = perPack.get(loc.pack);
      if (pf === undefined) {
        pf = { path: f.target, size: f.node.size ?? 0, whole, writes: [] };
        if (whole) pf.meta = metaOf(f.node);
        perPack.set(loc.pack, pf);
        w.files.push(pf);
      }
      pf.writes.push([bi, off]);
      off += loc.raw;
    }
  }
  return { work, spanning };
}

export async function restoreSnapshot(repo: Repository, snap: Snapshot, opts: RestoreOptions): Promise<RestoreResult> {
  const lock = await Lock.acquire(repo, 'shared', 'restore');
  try {
    await repo.loadIndex();
    const plan = await planRestore(repo, snap.tree, {
      target: opts.target,
      subpath: opts.subpath ?? '',
      includes: opts.includes ?? [],
      excludes: opts.excludes ?? [],
    });
    const result: RestoreResult = {
      dirs: plan.dirs.length,
      files: plan.files.length,
      links: plan.hardlinks.length + plan.symlinks.length,
      bytes: plan.bytes,
      verified: 0,
      errors: [],
      dryRun: opts.dryRun === true,
    };
    if (opts.dryRun === true) return result;
    await execute(repo, plan, opts, result);
    return result;
  } finally {
    await lock.release();
  }
}

async function execute(repo: Repository, plan: RestorePlan, opts: RestoreOptions, result: RestoreResult): Promise<void> {
  const fail = (path: string, err: unknown): void => {
    result.errors.push({ path, code: (err as { code?: string }).code ?? 'EIO', message: err instanceof Error ? err.message : String(err) });
  };
  fs.mkdirSync(opts.target, { recursive: true });
  for (const d of plan.dirs) fs.mkdirSync(d.target, { recursive: true, mode: 0o700 });
  const { work, spanning } = groupByPack(repo, plan.files.filter((f) => (f.node.content ?? []).length > 0));
  const spans = new Set(spanning);
  for (const f of plan.files) {
    if ((f.node.content ?? []).length > 0 && !spans.has(f)) continue;
    try {
      const fd = fs.openSync(f.target, 'w', 0o600);
      fs.ftruncateSync(fd, f.node.size ?? 0);
      fs.closeSync(fd);
    } catch (err) {
      fail(f.target, err);
    }
  }
  const threads = opts.threads ?? Math.max(1, availableParallelism());
  const pool = new Pool(repo, threads);
  let written = 0;
  try {
    const tasks = [...work.values()];
    const inflight = new Set<Promise<void>>();
    for (const w of tasks) {
      while (inflight.size >= threads * 2) await Promise.race(inflight);
      const p = runPackWork(repo, pool, w).then(
        (d) => {
          written += d.bytes;
          result.errors.push(...d.errors);
          opts.onProgress?.({ files: 0, bytes: written, totalBytes: plan.bytes });
        },
        (err: unknown) => fail(`data/${repo.index.packs.hex(w.pack)}`, err),
      );
      const tracked = p.finally(() => inflight.delete(tracked));
      inflight.add(tracked);
    }
    await Promise.all(inflight);
    for (const f of spanning) applyMetaByPath(f, fail);
    for (const f of plan.files) if ((f.node.content ?? []).length === 0) applyMetaByPath(f, fail);
    finishLinks(plan, fail);
    if (opts.verify === true) result.verified = await verify(repo, pool, plan, result);
  } finally {
    await pool.close();
  }
  for (const d of [...plan.dirs].reverse()) applyMetaByPath(d, fail);
}

async function runPackWork(repo: Repository, pool: Pool, w: PackWork): Promise<TaskDone> {
  let lo = Infinity;
  let hi = 0;
  for (const b of w.blobs) {
    lo = Math.min(lo, b.offset);
    hi = Math.max(hi, b.offset + b.stored);
  }
  const pack = repo.index.packs.hex(w.pack);
  const data = await repo.storage.read({ kind: 'data', name: pack }, lo, hi - lo);
  // Transfer the buffer to the worker when it owns its memory; copy only pooled small buffers.
  const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !(data.buffer instanceof SharedArrayBuffer);
  const copy = owned ? new Uint8Array(data.buffer, 0, data.length) : Uint8Array.from(data);
  const task: Omit<PackTask, 'task'> = {
    t: 'pack',
    pack,
    data: copy,
    base: lo,
    blobs: w.blobs.map((b) => ({ offset: b.offset, stored: b.stored, id: repo.index.idAt(b.entry) })),
    files: w.files,
  };
  return pool.run(task, [copy.buffer]);
}

function applyMetaByPath(e: PlannedEntry, fail: (p: string, err: unknown) => void): void {
  try {
    if (owner) fs.lchownSync(e.target, e.node.uid, e.node.gid);
    if (e.node.type !== 'symlink') fs.chmodSync(e.target, e.node.mode);
    const t = Number(BigInt(e.node.mtime)) / 1e9;
    fs.lutimesSync(e.target, t, t);
  } catch (err) {
    fail(e.target, err);
  }
}

function finishLinks(plan: RestorePlan, fail: (p: string, err: unknown) => void): void {
  for (const [e, first] of plan.hardlinks) {
    try {
      fs.rmSync(e.target, { force: true });
      fs.linkSync(first, e.target);
    } catch (err) {
      fail(e.target, err);
    }
  }
  for (const e of plan.symlinks) {
    try {
      fs.rmSync(e.target, { force: true });
      fs.symlinkSync(e.node.target ?? '', e.target);
      applyMetaByPath(e, fail);
    } catch (err) {
      fail(e.target, err);
    }
  }
  for (const e of plan.specials) {
    try {
      fs.rmSync(e.target, { force: true });
      if (e.node.type === 'fifo') execFileSync('mkfifo', ['-m', (e.node.mode & 0o777).toString(8), e.target]);
      else if ((e.node.type === 'chardev' || e.node.type === 'blockdev') && owner) {
        const rdev = e.node.rdev ?? 0;
        const major = (rdev >> 8) & 0xfff;
        const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
        execFileSync('mknod', [e.target, e.node.type === 'chardev' ? 'c' : 'b', String(major), String(minor)]);
      } else {
        fail(e.target, Object.assign(new Error(`${e.node.type} not restored (needs ${e.node.type === 'socket' ? 'its program' : 'root'})`), { code: 'SKIPPED' }));
        continue;
      }
      applyMetaByPath(e, fail);
    } catch (err) {
      fail(e.target, err);
    }
  }
}

async function verify(repo: Repository, pool: Pool, plan: RestorePlan, result: RestoreResult): Promise<number> {
  const batches: VerifyTask['files'][] = [[]];
  for (const f of plan.files) {
    const content = f.node.content ?? [];
    const ids = Buffer.concat(content.map((h) => Buffer.from(h, 'hex')));
    // Chunk lengths are not in the tree; the index has them.
    const raws = content.map((h) => repo.index.location(repo.index.find(Buffer.from(h, 'hex'))).raw);
    batches[batches.length - 1]!.push({ path: f.target, size: f.node.size ?? 0, raws, ids });
    if (batches[batches.length - 1]!.length >= 256) batches.push([]);
  }
  return Promise.all(batches.map((files) => pool.run({ t: 'verify', files }))).then((done) => {
    let n = 0;
    for (const d of done) {
      result.errors.push(...d.errors.map((e) => ({ ...e, code: 'VERIFY_FAILED' })));
      n += d.bytes;
    }
    return n;
  });
}
