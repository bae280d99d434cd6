// Restore: create directories, then stream packs to workers that decode blobs and write files in
// parallel, then links and special files, then directory metadata (deepest first, because writing
// into a directory changes its mtime). Each slice of a pack (see `sliceOf`) is read once, as one
// range covering the blobs needed from it, so a full restore reads the repository sequentially.
// The work for a slice (which files, which offsets) is built just before it is sent, so memory
// holds the plan plus a few slices in flight, not a copy of the whole plan per pack.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BulwarkError } from '../errors.js';
import { Lock } from '../repo/lock.js';
import { mapLimit, type Repository } from '../repo/repository.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { PackFile, PackTask, RestoreInit, TaskDone, VerifyTask } from '../worker/restore-protocol.js';
import { planRestore, type PlannedItem, type RestorePlan } from './plan.js';

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

class Pool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly waiting = new Map<number, (d: TaskDone) => void>();
  private next = 1;

  constructor(repo: Repository, threads: number) {
    const init: RestoreInit = { encKey: repo.keys.enc, idKey: repo.keys.id, owner };
    const url = new URL('../worker/restore-worker.js', import.meta.url);
    for (let i = 0; i < threads; i++) {
      const w = new Worker(url, { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      w.on('message', (d: TaskDone) => {
        this.busy[i]!--;
        this.waiting.get(d.task)?.(d);
        this.waiting.delete(d.task);
      });
      // A worker that dies fails every outstanding task instead of leaving the restore waiting.
      const die = (why: string): void => {
        for (const [task, resolve] of this.waiting) {
          resolve({ task, bytes: 0, errors: [{ path: '(restore worker)', code: 'INTERNAL', message: why }] });
        }
        this.waiting.clear();
      };
      w.on('error', (err: unknown) => die(`restore worker failed: ${err instanceof Error ? err.message : String(err)}`));
      w.on('exit', (code) => {
        if (!this.closing) die(`restore worker exited (code ${code})`);
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

  private closing = false;

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Restore work is cut into slices: the blobs of one pack whose offsets fall in the same 4 MiB window.
 * A slice is read with one ranged read and decoded by one worker, so each task holds at most a few
 * MiB however large packs are. For each slice: the files that need something from it; and the
 * files whose blobs span several slices (created up front, finished after all slices).
 */
const SLICE = 4 * 1024 * 1024;
const SLICES_PER_PACK = 256;

function sliceOf(pack: number, offset: number): number {
  return pack * SLICES_PER_PACK + Math.min(SLICES_PER_PACK - 1, Math.floor(offset / SLICE));
}

interface Layout {
  byPack: Map<number, number[]>;
  spanning: Set<number>;
}

function layout(repo: Repository, files: PlannedItem[]): Layout {
  const byPack = new Map<number, number[]>();
  const spanning = new Set<number>();
  files.forEach((f, fi) => {
    let firstPack = -1;
    for (const e of f.blobs ?? []) {
      const loc = repo.index.location(e);
      const pack = sliceOf(loc.pack, loc.offset);
      if (firstPack === -1) firstPack = pack;
      else if (pack !== firstPack) spanning.add(fi);
      let list = byPack.get(pack);
      if (list === undefined) byPack.set(pack, (list = []));
      if (list[list.length - 1] !== fi) list.push(fi);
    }
  });
  return { byPack, spanning };
}

/** The task for one pack: its needed blobs (each once) and, per file, what to write where. */
function packTask(repo: Repository, pack: number, plan: RestorePlan, lay: Layout): { task: Omit<PackTask, 'task' | 'data' | 'base'>; lo: number; hi: number } {
  const blobIndex = new Map<number, number>();
  const blobs: PackTask['blobs'] = [];
  const files: PackFile[] = [];
  let lo = Infinity;
  let hi = 0;
  for (const fi of lay.byPack.get(pack) ?? []) {
    const f = plan.files[fi]!;
    const whole = !lay.spanning.has(fi);
    const pf: PackFile = { path: f.target, size: f.size, whole, writes: [] };
    if (whole) pf.meta = { mode: f.mode, uid: f.uid, gid: f.gid, mtime: f.mtime };
    let off = 0;
    for (const e of f.blobs ?? []) {
      const loc = repo.index.location(e);
      if (sliceOf(loc.pack, loc.offset) === pack) {
        let bi = blobIndex.get(e);
        if (bi === undefined) {
          bi = blobs.length;
          blobIndex.set(e, bi);
          blobs.push({ offset: loc.offset, stored: loc.stored, raw: loc.raw, id: repo.index.idAt(e) });
          lo = Math.min(lo, loc.offset);
          hi = Math.max(hi, loc.offset + loc.stored);
        }
        pf.writes.push([bi, off]);
      }
      off += loc.raw;
    }
    files.push(pf);
  }
  return { task: { t: 'pack', pack: repo.index.packs.hex(Math.floor(pack / SLICES_PER_PACK)), blobs, files }, lo, hi };
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
    repo.dropCaches();
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

type Fail = (path: string, err: unknown) => void;

/** Creates directories level by level, each level in parallel (file creation is latency-bound). */
async function makeDirs(target: string, dirs: PlannedItem[], fail: Fail): Promise<void> {
  try {
    fs.mkdirSync(target, { recursive: true });
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new BulwarkError(code === 'ENOSPC' ? 'DISK_FULL' : 'PATH_NOT_FOUND', `cannot create restore target ${target}: ${(err as Error).message}`, {
      subject: target,
      hint: 'choose a --target directory that can be created and written',
    });
  }
  const levels = new Map<number, PlannedItem[]>();
  for (const d of dirs) {
    const depth = d.target.split('/').length;
    let l = levels.get(depth);
    if (l === undefined) levels.set(depth, (l = []));
    l.push(d);
  }
  for (const depth of [...levels.keys()].sort((a, b) => a - b)) {
    await mapLimit(levels.get(depth)!, 32, async (d) => {
      try {
        await fs.promises.mkdir(d.target, { mode: 0o700 });
      } catch (err) {
        if ((err as { code?: string }).code !== 'EEXIST') return fail(d.target, err);
        // Something exists there: keep a real directory, replace anything else (a symlink to a
        // directory elsewhere must not receive the restored files).
        try {
          if (!fs.lstatSync(d.target).isDirectory()) {
            fs.rmSync(d.target, { force: true });
            fs.mkdirSync(d.target, { mode: 0o700 });
          }
        } catch (e) {
          fail(d.target, e);
        }
      }
    });
  }
}

async function execute(repo: Repository, plan: RestorePlan, opts: RestoreOptions, result: RestoreResult): Promise<void> {
  const fail: Fail = (path, err) => {
    result.errors.push({ path, code: (err as { code?: string }).code ?? 'EIO', message: err instanceof Error ? err.message : String(err) });
  };
  await makeDirs(opts.target, plan.dirs, fail);
  const lay = layout(repo, plan.files);
  const spans = lay.spanning;
  // Empty files and files spanning packs are created here; the rest by the worker of their pack.
  for (let fi = 0; fi < plan.files.length; fi++) {
    const f = plan.files[fi]!;
    if ((f.blobs ?? []).length > 0 && !spans.has(fi)) continue;
    try {
      if (fs.lstatSync(f.target, { throwIfNoEntry: false })?.isSymbolicLink() === true) fs.unlinkSync(f.target);
      const fd = fs.openSync(f.target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600);
      fs.ftruncateSync(fd, f.size);
      fs.closeSync(fd);
    } catch (err) {
      fail(f.target, err);
    }
  }
  // One decoding worker per core: measured side by side with restic on two cores, one worker
  // restored 1.35x slower than two (at 0.75x the memory); speed wins the default.
  const threads = opts.threads ?? Math.max(1, availableParallelism());
  const pool = new Pool(repo, threads);
  let written = 0;
  try {
    const inflight = new Set<Promise<void>>();
    for (const pack of lay.byPack.keys()) {
      while (inflight.size >= 2 * threads) await Promise.race(inflight);
      const p = runPack(repo, pool, pack, plan, lay).then(
        (d) => {
          written += d.bytes;
          result.errors.push(...d.errors);
          opts.onProgress?.({ files: 0, bytes: written, totalBytes: plan.bytes });
        },
        (err: unknown) => fail(`data/${repo.index.packs.hex(Math.floor(pack / SLICES_PER_PACK))}`, err),
      );
      const tracked = p.finally(() => inflight.delete(tracked));
      inflight.add(tracked);
    }
    await Promise.all(inflight);
    for (let fi = 0; fi < plan.files.length; fi++) {
      const f = plan.files[fi]!;
      if ((f.blobs ?? []).length === 0 || spans.has(fi)) applyMeta(f, fail);
    }
    finishLinks(plan, fail);
    if (opts.verify === true) result.verified = await verify(repo, pool, plan, result);
  } finally {
    await pool.close();
  }
  for (const d of [...plan.dirs].reverse()) applyMeta(d, fail);
}

async function runPack(repo: Repository, pool: Pool, pack: number, plan: RestorePlan, lay: Layout): Promise<TaskDone> {
  const { task, lo, hi } = packTask(repo, pack, plan, lay);
  const data = await repo.storage.read({ kind: 'data', name: task.pack }, lo, hi - lo);
  // Transfer the buffer to the worker when it owns its memory; copy only pooled small buffers.
  const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !(data.buffer instanceof SharedArrayBuffer);
  const bytes = owned ? new Uint8Array(data.buffer, 0, data.length) : Uint8Array.from(data);
  return pool.run({ ...task, data: bytes, base: lo }, [bytes.buffer as ArrayBuffer]);
}

function applyMeta(e: PlannedItem, fail: Fail): void {
  try {
    if (owner) fs.lchownSync(e.target, e.uid, e.gid);
    if (e.type !== 'symlink') fs.chmodSync(e.target, e.mode);
    fs.lutimesSync(e.target, e.mtime, e.mtime);
  } catch (err) {
    fail(e.target, err);
  }
}

function finishLinks(plan: RestorePlan, fail: Fail): void {
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
      fs.symlinkSync(e.linkTarget ?? '', e.target);
      applyMeta(e, fail);
    } catch (err) {
      fail(e.target, err);
    }
  }
  for (const e of plan.specials) {
    try {
      fs.rmSync(e.target, { force: true });
      if (e.type === 'fifo') execFileSync('mkfifo', ['-m', (e.mode & 0o777).toString(8), e.target], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
      else if ((e.type === 'chardev' || e.type === 'blockdev') && owner) {
        const rdev = e.rdev ?? 0;
        const major = (rdev >> 8) & 0xfff;
        const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
        execFileSync('mknod', [e.target, e.type === 'chardev' ? 'c' : 'b', String(major), String(minor)], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
      } else {
        fail(e.target, Object.assign(new Error(`${e.type} not restored (needs ${e.type === 'socket' ? 'its program' : 'root'})`), { code: 'SKIPPED' }));
        continue;
      }
      applyMeta(e, fail);
    } catch (err) {
      fail(e.target, err);
    }
  }
}

async function verify(repo: Repository, pool: Pool, plan: RestorePlan, result: RestoreResult): Promise<number> {
  const batches: VerifyTask['files'][] = [[]];
  plan.files.forEach((f) => {
    const es = f.blobs ?? [];
    const ids = Buffer.concat([...es].map((e) => repo.index.idAt(e)));
    const raws = [...es].map((e) => repo.index.location(e).raw);
    batches[batches.length - 1]!.push({ path: f.target, size: f.size, raws, ids });
    if (batches[batches.length - 1]!.length >= 256) batches.push([]);
  });
  const done = await Promise.all(batches.map((files) => pool.run({ t: 'verify', files })));
  let n = 0;
  for (const d of done) {
    result.errors.push(...d.errors.map((e) => ({ ...e, code: 'VERIFY_FAILED' })));
    n += d.bytes;
  }
  return n;
}
