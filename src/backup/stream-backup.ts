// Stream backups: snapshots whose files are the output of producers (a database dump tool, a
// replication stream, stdin) rather than files on disk. Each producer writes into a named pipe; a
// pump thread reads the pipe into a shared ring that a chunk worker consumes like a file, so streams
// get the same multi-core chunk/hash/compress/seal pipeline as files, with the same backpressure:
// when the repository falls behind, the worker stops reading, the ring and then the pipe fill, and
// the producer blocks in write(). Nothing is buffered in temp files and memory stays bounded
// whatever the stream's size.
//
// A producer that fails (non-zero exit, killed, connection lost) fails the whole run before the
// snapshot document is written, so a broken dump never looks like a good snapshot. Blobs it already
// stored stay in packs that later backups reuse (or prune removes); earlier snapshots are untouched.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { BlobType } from '../pack/blob-index.js';
import { Packer } from '../pack/packer.js';
import { BulwarkError } from '../errors.js';
import { Lock } from '../repo/lock.js';
import { recoverPacks } from '../repo/recover.js';
import type { Repository } from '../repo/repository.js';
import { saveSnapshot, type SnapshotDoc, type SourceInfo } from '../snapshot/snapshot.js';
import { compareNames, encodeTree, type TreeNode } from '../tree/node.js';
import { VERSION } from '../version.js';
import { registerTempDir, releaseTempDir } from '../sources/temp-dirs.js';
import { safeUser } from './backup.js';
import { ringOpened } from '../worker/byte-ring.js';
import { idList, WorkerPool } from './worker-pool.js';

/**
 * One file of a stream snapshot. `produce` writes the file's bytes to `fd` (blocking writes are
 * fine: a worker is reading the other end) and resolves once the producer has finished
 * successfully; it must reject if the output is incomplete. It must not close `fd` itself unless it
 * hands it to a child process. When `signal` aborts (the repository side failed: disk full,
 * storage error), the producer must stop at once (kill its child, stop writing). The value it
 * resolves with is kept as the item's metadata.
 */
export interface StreamItem {
  name: string;
  mode?: number;
  produce(fd: number, signal: AbortSignal): Promise<Record<string, unknown> | void>;
}

export interface StreamBackupOptions {
  items: StreamItem[];
  /** The snapshot's `paths` (for a database: its redacted URL). */
  paths: string[];
  tags?: string[];
  host?: string;
  /** Describes the source once every item is captured (sizes and producer metadata known). */
  source?: (items: StreamItemResult[]) => SourceInfo;
  threads?: number;
  lockWaitMs?: number;
  /** Called after each item with its size; lets callers report progress. */
  onItem?: (name: string, size: number) => void;
}

export interface StreamItemResult {
  name: string;
  size: number;
  meta: Record<string, unknown>;
}

export interface StreamBackupResult {
  id: string;
  snapshot: SnapshotDoc;
  items: StreamItemResult[];
}

export async function runStreamBackup(repo: Repository, opts: StreamBackupOptions): Promise<StreamBackupResult> {
  const names = new Set<string>();
  for (const it of opts.items) {
    if (it.name === '' || it.name.includes('/') || it.name === '.' || it.name === '..' || names.has(it.name)) {
      throw new BulwarkError('INTERNAL', `invalid or duplicate stream name ${JSON.stringify(it.name)}`);
    }
    names.add(it.name);
  }
  const lock = await Lock.acquire(repo, 'shared', 'backup', opts.lockWaitMs === undefined ? {} : { waitMs: opts.lockWaitMs });
  try {
    return await streamLocked(repo, opts, lock);
  } finally {
    await lock.release();
  }
}

async function streamLocked(repo: Repository, opts: StreamBackupOptions, lock: Lock): Promise<StreamBackupResult> {
  const start = new Date();
  await repo.loadIndex();
  await recoverPacks(repo);
  const packer = new Packer(repo);
  const pool = new WorkerPool(repo, packer, opts.threads ?? 2);
  const dir = registerTempDir(fs.mkdtempSync(path.join(tmpdir(), 'bulwark-stream-')));
  const nodes: TreeNode[] = [];
  const results: StreamItemResult[] = [];
  let blobsBefore = 0;
  try {
    const captured = await captureAll(pool, dir, opts.items, Math.max(1, opts.threads ?? 2));
    for (const [i, item] of opts.items.entries()) {
      const r = captured[i]!;
      const now = `${BigInt(Date.now()) * 1_000_000n}`;
      nodes.push({
        name: item.name,
        type: 'file',
        mode: item.mode ?? 0o600,
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        mtime: now,
        ctime: now,
        inode: '0',
        dev: '0',
        links: 1,
        size: r.size,
        content: r.content.map((b) => b.toString('hex')),
      });
      results.push({ name: item.name, size: r.size, meta: r.meta });
      opts.onItem?.(item.name, r.size);
    }
    await pool.flush();
    blobsBefore = packer.stats.blobsAdded;
    nodes.sort((a, b) => compareNames(a.name, b.name));
    const treeData = encodeTree(nodes);
    const treeId = repo.blobId(treeData);
    if (!packer.has(treeId)) packer.add(BlobType.tree, treeId, repo.newCodec().encode(treeData), treeData.length);
    await packer.flush();
    lock.assertHeld();
    const total = results.reduce((n, r) => n + r.size, 0);
    const doc: SnapshotDoc = {
      time: start.toISOString(),
      host: opts.host ?? hostname(),
      username: safeUser(),
      paths: opts.paths,
      tags: opts.tags ?? [],
      tree: treeId.toString('hex'),
      programVersion: `bulwark ${VERSION}`,
      ...(opts.source !== undefined ? { source: opts.source(results) } : {}),
      summary: {
        backupStart: start.toISOString(),
        backupEnd: new Date().toISOString(),
        filesNew: results.length,
        filesChanged: 0,
        filesUnmodified: 0,
        dirsNew: 0,
        dirsChanged: 0,
        dirsUnmodified: 0,
        treeBlobs: packer.stats.blobsAdded - blobsBefore,
        dataBlobs: blobsBefore,
        dataAdded: packer.stats.rawAdded,
        dataAddedPacked: packer.stats.storedAdded,
        totalFilesProcessed: results.length,
        totalBytesProcessed: total,
        errors: 0,
      },
    };
    const id = await saveSnapshot(repo, doc);
    return { id, snapshot: doc, items: results };
  } catch (err) {
    // Stop the workers first, so no late result opens a new temp pack after the drain.
    await pool.close();
    await packer.drain();
    // The repository's own failure (DISK_FULL, STORAGE_IO) is the cause, not the producer's
    // broken pipe that followed it.
    throw pool.error ?? err;
  } finally {
    await pool.close();
    releaseTempDir(dir);
  }
}

type Captured = { content: Buffer[]; size: number; meta: Record<string, unknown> };

/**
 * Captures the items, up to `parallel` at a time (each on its own chunk worker), so that a small
 * item (a globals dump) does not hold up a large one and several databases dump side by side. The
 * first failure stops every other producer before it is reported: nothing is left writing into a
 * pipe that no worker reads any more.
 */
async function captureAll(pool: WorkerPool, dir: string, items: StreamItem[], parallel: number): Promise<Captured[]> {
  // Every item's pipe at once: one mkfifo process instead of one per item.
  const fifos = items.map((_, i) => path.join(dir, `pipe-${i}`));
  if (fifos.length > 0) execFileSync('mkfifo', ['-m', '600', ...fifos], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
  const out: Captured[] = new Array(items.length);
  const stop = new AbortController();
  let failure: unknown;
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < items.length && failure === undefined) {
      const i = next++;
      try {
        out[i] = await captureItem(pool, fifos[i]!, items[i]!, stop.signal);
      } catch (err) {
        failure ??= err;
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, runner));
  if (failure !== undefined) throw failure;
  return out;
}

/**
 * Runs one producer into its named pipe (made by captureAll) while a pump thread reads it into a
 * chunk worker's ring. The pipe is first opened read-write, which on Linux never blocks and makes
 * this process a reader and a writer at once: the producer's write end then opens at once, and the
 * pump's read open can never wait forever for a writer, whatever happens to the workers. The
 * read-write descriptor is closed as soon as the pump has its end open (or has given up), so the
 * producer closing its end is what ends the stream; until then it also keeps anything the producer
 * already wrote from being discarded.
 */
async function captureItem(pool: WorkerPool, fifo: string, item: StreamItem, stop: AbortSignal): Promise<Captured> {
  const stopped = (): BulwarkError => new BulwarkError('DUMP_FAILED', `capture of ${item.name} stopped: another stream failed`, { subject: item.name });
  if (stop.aborted) throw stopped();
  if (!pool.tryAcquire()) await pool.acquire();
  const { saved, ring } = pool.saveStream(fifo);
  let rdwr: number | undefined = fs.openSync(fifo, fs.constants.O_RDWR);
  const release = (): void => {
    if (rdwr !== undefined) closeQuietly(rdwr);
    rdwr = undefined;
  };
  let wfd: number;
  try {
    wfd = fs.openSync(fifo, fs.constants.O_WRONLY);
  } catch (err) {
    release();
    throw err;
  }
  // The pool marks the ring when the pump opens the pipe, fails to, or exits: this always ends.
  const pumpReady = (async () => {
    while (ringOpened(ring) === 0) await new Promise((r) => setTimeout(r, 2));
    release();
  })();
  let closed = false;
  const close = (): void => {
    if (!closed) {
      closed = true;
      closeQuietly(wfd);
    }
  };
  const abort = new AbortController();
  // Another item's failure stops this producer too (also if it came before the listener).
  const onStop = (): void => abort.abort();
  stop.addEventListener('abort', onStop, { once: true });
  if (stop.aborted) abort.abort();
  try {
    // The producer writes to (or hands its child) the write end; closing it is the end of stream.
    const produced = item.produce(wfd, abort.signal).finally(close);
    produced.catch(() => undefined);
    // If the repository side fails first, the worker stops reading and the producer would block on
    // a full pipe forever: stop the producer, then report the repository's error.
    let r: Awaited<typeof saved>;
    try {
      r = await Promise.race([saved, produced.then(() => saved)]);
    } catch (err) {
      // The producer failed. If the repository side failed first (a worker's pack hit a full disk),
      // the worker dropped the stream and the producer died of the closed pipe before the worker's
      // report reached this thread: give that report a moment, and prefer the repository's error.
      await Promise.race([saved, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      throw pool.error ?? err;
    }
    if (r.err !== undefined) {
      abort.abort();
      await produced.catch(() => undefined);
      throw pool.error ?? new BulwarkError('DUMP_FAILED', `reading the stream for ${item.name} failed: ${r.err.message}`, { subject: item.name });
    }
    const meta = await produced;
    if (stop.aborted) throw stopped();
    return { content: idList(r), size: r.size, meta: meta ?? {} };
  } finally {
    stop.removeEventListener('abort', onStop);
    close();
    await pumpReady;
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed by its owner
  }
}
