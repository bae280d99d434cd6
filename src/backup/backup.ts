// One backup run: lock (shared), load the index, index packs left by an interrupted run, pick the
// parent snapshot, archive, write packs and index, and only then the snapshot document.
import { hostname, userInfo } from 'node:os';
import { Packer } from '../pack/packer.js';
import { Lock } from '../repo/lock.js';
import { recoverPacks } from '../repo/recover.js';
import type { Repository } from '../repo/repository.js';
import { listSnapshots, matches, saveSnapshot, type Snapshot, type SnapshotDoc } from '../snapshot/snapshot.js';
import { VERSION } from '../version.js';
import { absolutePaths, Archiver, buildTrie, type ArchiveStats, type Progress, type Warning } from './archiver.js';
import { Excluder } from './exclude.js';
import type { Prewalk } from './prewalk.js';
import { WorkerPool } from './worker-pool.js';

export interface BackupOptions {
  paths: string[];
  excludes?: string[];
  tags?: string[];
  host?: string;
  /** Parent snapshot ID; undefined picks the latest with the same host and paths; null forces none. */
  parent?: string | null;
  threads?: number;
  onProgress?: (p: Progress) => void;
  lockWaitMs?: number;
  /** A pre-walk of the same paths and excludes, started before the repository was opened. */
  prewalk?: Prewalk;
}

export interface BackupResult {
  id: string;
  snapshot: SnapshotDoc;
  warnings: Warning[];
  recoveredPacks: number;
}

export async function runBackup(repo: Repository, opts: BackupOptions): Promise<BackupResult> {
  const lock = await Lock.acquire(repo, 'shared', 'backup', opts.lockWaitMs === undefined ? {} : { waitMs: opts.lockWaitMs });
  try {
    return await backupLocked(repo, opts, lock);
  } finally {
    await lock.release();
  }
}

async function backupLocked(repo: Repository, opts: BackupOptions, lock: Lock): Promise<BackupResult> {
  const start = new Date();
  const host = opts.host ?? hostname();
  const paths = absolutePaths(opts.paths);
  await repo.loadIndex();
  const { recovered } = await recoverPacks(repo);
  const parent = await pickParent(repo, opts, host, paths);

  let tree: string;
  let warnings: Warning[] = [];
  let stats: ArchiveStats;
  let totals = { files: 0, bytes: 0 };
  let packer: Packer;
  {
    packer = new Packer(repo);
    const pool = new WorkerPool(repo, packer, opts.threads);
    const archiver = new Archiver(repo, packer, pool, new Excluder(opts.excludes ?? []), repo.newCodec(), opts.prewalk);
    const timer = opts.onProgress === undefined ? undefined : setInterval(() => opts.onProgress?.(archiver.progress), 250);
    try {
      tree = await archiver.archiveTrie(buildTrie(paths), '/', parent?.tree);
      await pool.flush();
      await packer.flush();
    } catch (err) {
      await packer.drain();
      throw err;
    } finally {
      if (timer !== undefined) clearInterval(timer);
      opts.prewalk?.stop();
      await pool.close();
    }
    warnings = archiver.warnings;
    stats = archiver.stats;
    totals = { files: archiver.progress.files, bytes: archiver.progress.bytes };
  }
  lock.assertHeld();
  const doc: SnapshotDoc = {
    time: start.toISOString(),
    host,
    username: safeUser(),
    paths,
    tags: opts.tags ?? [],
    tree,
    ...(parent !== undefined ? { parent: parent.id } : {}),
    ...(opts.excludes !== undefined && opts.excludes.length > 0 ? { excludes: opts.excludes } : {}),
    programVersion: `bulwark ${VERSION}`,
    summary: {
      backupStart: start.toISOString(),
      backupEnd: new Date().toISOString(),
      ...stats,
      dataBlobs: packer.stats.blobsAdded - stats.treeBlobs,
      dataAdded: packer.stats.rawAdded,
      dataAddedPacked: packer.stats.storedAdded,
      totalFilesProcessed: totals.files,
      totalBytesProcessed: totals.bytes,
      errors: warnings.length,
    },
  };
  const id = await saveSnapshot(repo, doc);
  return { id, snapshot: doc, warnings, recoveredPacks: recovered };
}

async function pickParent(repo: Repository, opts: BackupOptions, host: string, paths: string[]): Promise<Snapshot | undefined> {
  if (opts.parent === null) return undefined;
  const all = await listSnapshots(repo);
  if (opts.parent !== undefined) {
    const hit = all.filter((s) => s.id.startsWith(opts.parent as string));
    return hit.length === 1 ? hit[0] : undefined;
  }
  const same = all.filter((s) => matches(s, { host, paths }));
  return same[same.length - 1];
}

export function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}
