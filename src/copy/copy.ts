// Copying snapshots between repositories with different keys and backends. Blob IDs are keyed by
// each repository's own secret, so a blob's ID in the source says nothing about the target: each
// blob is decrypted, re-identified with the target's key, and stored only if the target lacks it.
// Trees are re-encoded with the target's IDs (bottom-up), so the copied snapshot is an ordinary
// snapshot of the target, with `original` naming the source snapshot.
//
// What makes repeated copies cheap: a snapshot whose ID already appears as some target snapshot's
// `original` is skipped, and a per-pair cache (source ID → target ID, kept in the user's cache
// directory and checked against the target's index before use) lets unchanged trees and blobs be
// skipped without reading them again. What makes an interrupted copy safe: the target snapshot is
// written last; packs already written are indexed by the next run (recoverPacks) and reused.
import * as fs from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { BulwarkError } from '../errors.js';
import { BlobType } from '../pack/blob-index.js';
import { Packer } from '../pack/packer.js';
import { Lock } from '../repo/lock.js';
import { recoverPacks } from '../repo/recover.js';
import type { Repository } from '../repo/repository.js';
import { listSnapshots, matches, saveSnapshot, type Snapshot, type SnapshotDoc, type SnapshotFilter } from '../snapshot/snapshot.js';
import { decodeTree, encodeTree, type TreeNode } from '../tree/node.js';

export interface CopyOptions {
  /** Source snapshot IDs or unique prefixes ("latest" too); empty: every snapshot matching `filter`. */
  snapshots?: string[];
  filter?: SnapshotFilter;
  dryRun?: boolean;
  lockWaitMs?: number;
  /** Directory for the ID cache (default: $XDG_CACHE_HOME/bulwark/copy). */
  cacheDir?: string;
  onProgress?: (message: string) => void;
}

export interface CopiedSnapshot {
  source: string;
  target: string;
  blobsCopied: number;
  bytesCopied: number;
  blobsSkipped: number;
}

export interface CopyResult {
  dryRun: boolean;
  copied: CopiedSnapshot[];
  /** Source snapshots the target already had. */
  alreadyPresent: string[];
  /** Planned copies for a dry run. */
  planned: string[];
  durationMs: number;
}

function cacheFile(src: Repository, dst: Repository, dir?: string): string {
  const base = dir ?? path.join(process.env['XDG_CACHE_HOME'] ?? path.join(homedir(), '.cache'), 'bulwark', 'copy');
  return path.join(base, `${src.config.id}-${dst.config.id}.json`);
}

/** Source ID (hex) → target ID (hex); only entries whose target blob is indexed are trusted. */
class IdMap {
  private readonly map = new Map<string, string>();
  constructor(private readonly file: string) {
    try {
      const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
      for (const [k, v] of Object.entries(raw)) if (/^[0-9a-f]{64}$/.test(k) && /^[0-9a-f]{64}$/.test(v)) this.map.set(k, v);
    } catch {
      // no cache yet, or unreadable: start empty (it is only an optimisation)
    }
  }
  get(src: string, dst: Repository, packer: Packer): string | undefined {
    const t = this.map.get(src);
    return t !== undefined && (dst.index.hasHex(t) || packer.has(Buffer.from(t, 'hex'))) ? t : undefined;
  }
  set(src: string, dst: string): void {
    this.map.set(src, dst);
  }
  save(): void {
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      const tmp = `${this.file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.map)), { mode: 0o600 });
      fs.renameSync(tmp, this.file);
    } catch {
      // a cache that cannot be written only costs time next run
    }
  }
}

function pickSnapshots(all: Snapshot[], opts: CopyOptions): Snapshot[] {
  const refs = opts.snapshots ?? [];
  if (refs.length === 0) return all.filter((s) => matches(s, opts.filter ?? {}));
  const out: Snapshot[] = [];
  for (const ref of refs) {
    const hits = ref === 'latest' ? all.slice(-1) : all.filter((s) => s.id.startsWith(ref));
    if (hits.length !== 1) {
      throw new BulwarkError(hits.length === 0 ? 'SNAPSHOT_NOT_FOUND' : 'SNAPSHOT_AMBIGUOUS', `${hits.length === 0 ? 'no' : 'more than one'} snapshot ${ref} in the source repository`, {
        subject: ref,
      });
    }
    if (!out.includes(hits[0]!)) out.push(hits[0]!);
  }
  return out;
}

export async function copySnapshots(src: Repository, dst: Repository, opts: CopyOptions = {}): Promise<CopyResult> {
  const started = Date.now();
  if (src.config.id === dst.config.id) throw new BulwarkError('USAGE', 'the source and target of a copy are the same repository', { subject: src.storage.location });
  const srcLock = await Lock.acquire(src, 'shared', 'copy (source)', opts.lockWaitMs === undefined ? {} : { waitMs: opts.lockWaitMs });
  try {
    const wanted = pickSnapshots(await listSnapshots(src), opts);
    const present = new Set<string>();
    for (const s of await listSnapshots(dst)) {
      present.add(s.id);
      if (s.original !== undefined) present.add(s.original);
    }
    // A source snapshot that is itself a copy is the same backup as its original.
    const have = (s: Snapshot): boolean => present.has(s.id) || (s.original !== undefined && present.has(s.original));
    const todo = wanted.filter((s) => !have(s));
    const result: CopyResult = { dryRun: opts.dryRun === true, copied: [], alreadyPresent: wanted.filter(have).map((s) => s.id), planned: todo.map((s) => s.id), durationMs: 0 };
    if (opts.dryRun === true || todo.length === 0) {
      result.durationMs = Date.now() - started;
      return result;
    }
    const dstLock = await Lock.acquire(dst, 'shared', 'copy (target)', opts.lockWaitMs === undefined ? {} : { waitMs: opts.lockWaitMs });
    try {
      await src.loadIndex();
      await dst.loadIndex();
      await recoverPacks(dst);
      const ids = new IdMap(cacheFile(src, dst, opts.cacheDir));
      for (const snap of todo) {
        opts.onProgress?.(`copying snapshot ${snap.id.slice(0, 8)}`);
        const copied = await copyOne(src, dst, snap, ids);
        dstLock.assertHeld();
        result.copied.push(copied);
        ids.save();
      }
    } finally {
      await dstLock.release();
    }
    result.durationMs = Date.now() - started;
    return result;
  } finally {
    await srcLock.release();
  }
}

async function copyOne(src: Repository, dst: Repository, snap: Snapshot, ids: IdMap): Promise<CopiedSnapshot> {
  const packer = new Packer(dst);
  const codec = dst.newCodec();
  const stats = { blobsCopied: 0, bytesCopied: 0, blobsSkipped: 0 };

  const copyData = async (srcHex: string): Promise<string> => {
    const cached = ids.get(srcHex, dst, packer);
    if (cached !== undefined) {
      stats.blobsSkipped++;
      return cached;
    }
    const plain = await src.readBlob(Buffer.from(srcHex, 'hex'));
    const id = dst.blobId(plain);
    if (dst.index.has(id) || packer.has(id)) stats.blobsSkipped++;
    else {
      packer.add(BlobType.data, id, codec.encode(plain), plain.length);
      stats.blobsCopied++;
      stats.bytesCopied += plain.length;
      await packer.backpressure();
    }
    const hex = id.toString('hex');
    ids.set(srcHex, hex);
    return hex;
  };

  const copyTree = async (srcHex: string): Promise<string> => {
    const cached = ids.get(srcHex, dst, packer);
    if (cached !== undefined) {
      stats.blobsSkipped++;
      return cached;
    }
    const nodes = decodeTree(await src.readTreeBlob(Buffer.from(srcHex, 'hex')), srcHex);
    const out: TreeNode[] = [];
    for (const n of nodes) {
      const m: TreeNode = { ...n };
      if (n.content !== undefined) {
        const content: string[] = [];
        for (const c of n.content) content.push(await copyData(c));
        m.content = content;
      }
      if (n.subtree !== undefined) m.subtree = await copyTree(n.subtree);
      out.push(m);
    }
    const data = encodeTree(out);
    const id = dst.blobId(data);
    if (!dst.index.has(id) && !packer.has(id)) {
      packer.add(BlobType.tree, id, codec.encode(data), data.length);
      stats.blobsCopied++;
      stats.bytesCopied += data.length;
    } else stats.blobsSkipped++;
    const hex = id.toString('hex');
    ids.set(srcHex, hex);
    return hex;
  };

  try {
    const tree = await copyTree(snap.tree);
    await packer.flush();
    const { id: _ignored, ...doc } = snap;
    const copy: SnapshotDoc = { ...doc, tree, original: snap.original ?? snap.id };
    delete copy.parent;
    const target = await saveSnapshot(dst, copy);
    return { source: snap.id, target, ...stats };
  } catch (err) {
    await packer.drain();
    throw err;
  }
}
