// Prune: mark every blob that a snapshot needs, then delete packs holding nothing needed and repack
// packs holding some garbage. The order of operations is what keeps it safe against crashes and
// running backups; docs/design.md ("Prune") is the specification, step numbers refer to it.
//
// Phase 1 (shared lock, beside backups): list, mark, plan, repack. It only adds objects.
// Phase 2 (exclusive lock, short): mark snapshots that appeared meanwhile, keep what they need,
// write the new index, delete the superseded index files, then the packs.
import { BulwarkError, isBulwarkError } from '../errors.js';
import { BlobType, type BlobTypeCode } from '../pack/blob-index.js';
import { encodeIndex, type PackBlob, type PackDescriptor } from '../pack/formats.js';
import { Packer } from '../pack/packer.js';
import { listSnapshots, loadSnapshot, type Snapshot } from '../snapshot/snapshot.js';
import { decodeTree } from '../tree/node.js';
import { acquireExclusive, assertMayDelete, deleteObjects } from './deletion.js';
import { Lock } from './lock.js';
import { putObject } from './objects.js';
import { mapLimit } from '../concurrency.js';
import type { Repository } from './repository.js';

export type MaxUnused = { kind: 'percent'; value: number } | { kind: 'bytes'; value: number } | { kind: 'unlimited' };

export const DEFAULT_MAX_UNUSED: MaxUnused = { kind: 'percent', value: 5 };

/** `5%`, `unlimited`, or a size in bytes with an optional k/m/g/t suffix (powers of 1024), like restic. */
export function parseMaxUnused(s: string): MaxUnused {
  const t = s.trim().toLowerCase();
  if (t === 'unlimited') return { kind: 'unlimited' };
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (pct !== null) {
    const v = Number(pct[1]);
    if (v >= 0 && v <= 100) return v === 100 ? { kind: 'unlimited' } : { kind: 'percent', value: v };
  }
  const size = /^(\d+(?:\.\d+)?)([kmgt]?)(i?b)?$/.exec(t);
  if (size !== null) {
    const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[size[2] as '' | 'k' | 'm' | 'g' | 't'];
    return { kind: 'bytes', value: Math.floor(Number(size[1]) * mult) };
  }
  throw new BulwarkError('USAGE', `--max-unused ${JSON.stringify(s)} is not a percentage (5%), a size (100M) or "unlimited"`, { subject: s });
}

export function formatMaxUnused(m: MaxUnused): string {
  return m.kind === 'unlimited' ? 'unlimited' : m.kind === 'percent' ? `${m.value}%` : `${m.value} bytes`;
}

export interface PruneOptions {
  maxUnused?: MaxUnused;
  /** Plan only: print what would happen, change nothing (no lock beyond a shared one). */
  dryRun?: boolean;
  /** How long to wait for running backups before the exclusive phase (default 30 minutes). */
  lockWaitMs?: number;
  onProgress?: (message: string) => void;
  /** Test hook: called after repacking, before the shared lock is released. */
  beforeExclusive?: () => Promise<void>;
}

export type PackAction = 'keep' | 'delete' | 'repack';

export interface PrunePackPlan {
  pack: string;
  type: 'data' | 'tree';
  size: number;
  usedBlobs: number;
  unusedBlobs: number;
  usedBytes: number;
  unusedBytes: number;
}

export interface PruneResult {
  dryRun: boolean;
  maxUnused: string;
  snapshots: number;
  /** Snapshots written by backups while prune ran (marked in the exclusive phase). */
  newSnapshots: number;
  blobs: { used: number; unused: number; duplicates: number };
  packs: {
    before: number;
    deleted: number;
    repacked: number;
    kept: number;
    written: number;
    unindexedDeleted: number;
    /** Packs taken off the deletion plan because a snapshot written meanwhile needs them. */
    keptForNewSnapshots: number;
    missingDropped: number;
  };
  bytes: {
    /** Size of all packs when prune started. */
    before: number;
    /** Size after prune (planned, for dry runs). */
    after: number;
    freed: number;
    used: number;
    unusedBefore: number;
    unusedAfter: number;
    repackedWritten: number;
  };
  indexFiles: { deleted: number; written: number };
  toDelete: PrunePackPlan[];
  toRepack: PrunePackPlan[];
  unindexed: string[];
  durationMs: number;
}

interface PackState extends PrunePackPlan {
  typeCode: BlobTypeCode;
  blobs: PackBlob[];
  present: boolean;
  action: PackAction;
}

const hexOf = (id: Uint8Array): string => Buffer.from(id).toString('hex');

function unsafe(message: string, cause?: unknown): BulwarkError {
  return new BulwarkError('PRUNE_UNSAFE', message, {
    ...(cause !== undefined ? { cause } : {}),
    hint: 'nothing was deleted; run `bulwark check` and repair the repository first',
  });
}

/** Marks every blob reachable from `tree` into `used`; returns the blobs that were not in it yet. */
async function markTree(repo: Repository, tree: string, used: Set<string>, added: string[], where: string): Promise<void> {
  if (used.has(tree)) return;
  if (!repo.index.hasHex(tree)) throw unsafe(`${where}: tree ${tree} is not in the index`);
  used.add(tree);
  added.push(tree);
  let nodes;
  try {
    nodes = decodeTree(await repo.readTreeBlob(Buffer.from(tree, 'hex')), tree);
  } catch (err) {
    throw unsafe(`${where}: tree ${tree} cannot be read (${err instanceof Error ? err.message : String(err)})`, err);
  }
  for (const n of nodes) {
    if (n.type === 'file') {
      for (const c of n.content ?? []) {
        if (used.has(c)) continue;
        if (!repo.index.hasHex(c)) throw unsafe(`${where}/${n.name}: data blob ${c} is not in the index`);
        used.add(c);
        added.push(c);
      }
    } else if (n.type === 'dir' && n.subtree !== undefined) {
      await markTree(repo, n.subtree, used, added, `${where}/${n.name}`);
    }
  }
}

async function markSnapshots(repo: Repository, snaps: readonly Snapshot[], used: Set<string>): Promise<string[]> {
  const added: string[] = [];
  for (const s of snaps) await markTree(repo, s.tree, used, added, `snapshot ${s.id.slice(0, 8)}`);
  return added;
}

function maxUnusedBytes(m: MaxUnused, used: number): number {
  if (m.kind === 'unlimited') return Infinity;
  if (m.kind === 'bytes') return m.value;
  return (used * m.value) / (100 - m.value);
}

const INDEX_FILE_BLOBS = 50_000;

/** Writes index files for `packs` (at most ~50,000 blobs each), naming `supersedes`. */
async function writeIndexFiles(repo: Repository, packs: readonly PackDescriptor[], supersedes: readonly string[]): Promise<string[]> {
  const sup = supersedes.map((n) => Buffer.from(n, 'hex'));
  const names: string[] = [];
  let batch: PackDescriptor[] = [];
  let blobs = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    names.push(await putObject(repo.storage, 'index', encodeIndex(repo.keys.enc, batch, sup)));
    batch = [];
    blobs = 0;
  };
  for (const p of packs) {
    batch.push(p);
    blobs += p.blobs.length;
    if (blobs >= INDEX_FILE_BLOBS) await flush();
  }
  await flush();
  return names;
}

function planOf(p: PackState): PrunePackPlan {
  return { pack: p.pack, type: p.type, size: p.size, usedBlobs: p.usedBlobs, unusedBlobs: p.unusedBlobs, usedBytes: p.usedBytes, unusedBytes: p.unusedBytes };
}

/** Runs prune (see the file comment). Every deletion goes through deletion.ts. */
export async function runPrune(repo: Repository, opts: PruneOptions = {}): Promise<PruneResult> {
  const started = Date.now();
  const maxUnused = opts.maxUnused ?? DEFAULT_MAX_UNUSED;
  const progress = opts.onProgress ?? (() => undefined);
  if (opts.dryRun !== true) assertMayDelete(repo, 'prune');
  const shared = await Lock.acquire(repo, 'shared', 'prune');
  let sharedHeld = true;
  try {
    // 1. What exists now. Index files first: a pack is written before any index file names it, so
    // every pack an index file read here names is in the data listing that follows (unless lost).
    // The Repository may have loaded index files before (a daemon's): loadIndex adds the rest.
    // Entries of index files that no longer exist can only make prune refuse, never delete more.
    await repo.loadIndex();
    const listedIndex = new Set<string>();
    for await (const o of repo.storage.list('index')) listedIndex.add(o.name);
    const oldIndexNames = [...repo.indexFiles].filter((n) => listedIndex.has(n));
    // Packs of a damaged index file were indexed again from their trailers by loadIndex; packs
    // whose trailers are damaged too stay unindexed, and are then not deleted as leftovers.
    const keepUnindexed = repo.damagedIndexes.length > 0;
    const startData = new Map<string, number>();
    for await (const o of repo.storage.list('data')) startData.set(o.name, o.size);
    const packs = new Map<string, PackState>();
    await mapLimit(oldIndexNames, 8, async (name) => {
      const idx = await repo.readIndexFile(name);
      for (const d of idx.packs) {
        const pack = hexOf(d.id);
        if (packs.has(pack)) continue;
        const size = startData.get(pack);
        packs.set(pack, {
          pack,
          type: d.type === BlobType.tree ? 'tree' : 'data',
          typeCode: d.type,
          blobs: d.blobs.map((b) => ({ ...b, id: Buffer.from(b.id) })),
          present: size !== undefined,
          size: size ?? 0,
          usedBlobs: 0,
          unusedBlobs: 0,
          usedBytes: 0,
          unusedBytes: 0,
          action: 'keep',
        });
      }
    });
    const damaged: BulwarkError[] = [];
    const snapshots = await listSnapshots(repo, damaged);
    if (damaged.length > 0) throw unsafe(`${damaged.length} snapshot document(s) cannot be read (${damaged[0]!.message}); their data cannot be told apart from garbage`);
    const startSnapshots = new Set(snapshots.map((s) => s.id));
    progress(`marking blobs of ${snapshots.length} snapshots`);

    // 2. Mark.
    const used = new Set<string>();
    await markSnapshots(repo, snapshots, used);

    // 3. Plan. First choose one copy of every used blob: the one in the pack with the most used bytes.
    const ratio = new Map<string, number>();
    for (const p of packs.values()) {
      if (!p.present) continue;
      let u = 0;
      let t = 0;
      for (const b of p.blobs) {
        t += b.stored;
        if (used.has(hexOf(b.id))) u += b.stored;
      }
      ratio.set(p.pack, t === 0 ? 0 : u / t);
    }
    const chosen = new Map<string, string>();
    let copies = 0;
    for (const p of packs.values()) {
      if (!p.present) continue;
      for (const b of p.blobs) {
        const h = hexOf(b.id);
        if (!used.has(h)) continue;
        const cur = chosen.get(h);
        if (cur === undefined) chosen.set(h, p.pack);
        else {
          copies++;
          const better = ratio.get(p.pack)! > ratio.get(cur)! || (ratio.get(p.pack) === ratio.get(cur) && p.pack < cur);
          if (better) chosen.set(h, p.pack);
        }
      }
    }
    for (const h of used) if (!chosen.has(h)) throw unsafe(`blob ${h} is needed but every pack holding it is missing from storage`);
    let totalUsed = 0;
    let missingDropped = 0;
    for (const p of packs.values()) {
      if (!p.present) {
        missingDropped++;
        p.action = 'delete';
        continue;
      }
      const seen = new Set<string>();
      for (const b of p.blobs) {
        const h = hexOf(b.id);
        if (chosen.get(h) === p.pack && !seen.has(h)) {
          seen.add(h);
          p.usedBlobs++;
          p.usedBytes += b.stored;
        } else {
          p.unusedBlobs++;
          p.unusedBytes += b.stored;
        }
      }
      totalUsed += p.usedBytes;
      if (p.usedBlobs === 0) p.action = 'delete';
      else if (p.unusedBlobs === 0) p.action = 'keep';
      else if (p.typeCode === BlobType.tree) p.action = 'repack';
    }
    const limit = maxUnusedBytes(maxUnused, totalUsed);
    const candidates = [...packs.values()].filter((p) => p.present && p.action === 'keep' && p.unusedBlobs > 0);
    let unusedLeft = candidates.reduce((n, p) => n + p.unusedBytes, 0);
    candidates.sort((a, b) => b.unusedBytes / (b.usedBytes + b.unusedBytes) - a.unusedBytes / (a.usedBytes + a.unusedBytes) || (a.pack < b.pack ? -1 : 1));
    for (const p of candidates) {
      if (unusedLeft <= limit) break;
      p.action = 'repack';
      unusedLeft -= p.unusedBytes;
    }
    const unindexed = keepUnindexed ? [] : [...startData.keys()].filter((n) => !packs.has(n)).sort();
    const unusedBefore = [...packs.values()].reduce((n, p) => n + p.unusedBytes, 0) + unindexed.reduce((n, u) => n + startData.get(u)!, 0);
    const bytesBefore = [...startData.values()].reduce((a, b) => a + b, 0);

    const result: PruneResult = {
      dryRun: opts.dryRun === true,
      maxUnused: formatMaxUnused(maxUnused),
      snapshots: snapshots.length,
      newSnapshots: 0,
      blobs: { used: used.size, unused: [...packs.values()].reduce((n, p) => n + p.unusedBlobs, 0) - copies, duplicates: copies },
      packs: { before: startData.size, deleted: 0, repacked: 0, kept: 0, written: 0, unindexedDeleted: 0, keptForNewSnapshots: 0, missingDropped },
      bytes: { before: bytesBefore, after: 0, freed: 0, used: totalUsed, unusedBefore, unusedAfter: 0, repackedWritten: 0 },
      indexFiles: { deleted: 0, written: 0 },
      toDelete: [],
      toRepack: [],
      unindexed,
      durationMs: 0,
    };
    const summarize = (): void => {
      const present = [...packs.values()].filter((p) => p.present);
      result.toDelete = present.filter((p) => p.action === 'delete').map(planOf);
      result.toRepack = present.filter((p) => p.action === 'repack').map(planOf);
      result.packs.kept = present.filter((p) => p.action === 'keep').length;
      const removedBytes = [...result.toDelete, ...result.toRepack].reduce((n, p) => n + p.size, 0) + result.unindexed.reduce((n, u) => n + (startData.get(u) ?? 0), 0);
      const repackUsed = result.toRepack.reduce((n, p) => n + p.usedBytes, 0);
      result.bytes.after = bytesBefore - removedBytes + (result.bytes.repackedWritten > 0 ? result.bytes.repackedWritten : repackUsed);
      result.bytes.freed = bytesBefore - result.bytes.after;
      result.bytes.unusedAfter = present.filter((p) => p.action === 'keep').reduce((n, p) => n + p.unusedBytes, 0);
    };
    summarize();
    if (opts.dryRun === true) {
      result.packs.deleted = result.toDelete.length;
      result.packs.repacked = result.toRepack.length;
      result.packs.unindexedDeleted = unindexed.length;
      result.durationMs = Date.now() - started;
      return result;
    }

    if (result.toDelete.length === 0 && result.toRepack.length === 0 && unindexed.length === 0 && missingDropped === 0) {
      result.durationMs = Date.now() - started;
      return result;
    }

    // 4. Repack: copy the chosen copies of used blobs out of packs to repack (adds objects only).
    const packer = new Packer(repo);
    packer.recordPacks = true;
    packer.dedupAgainstIndex = false;
    const toRepack = [...packs.values()].filter((p) => p.action === 'repack');
    let done = 0;
    try {
      for (const p of toRepack) {
        const bytes = await repo.storage.read({ kind: 'data', name: p.pack });
        const codec = repo.newCodec();
        for (const b of p.blobs) {
          const h = hexOf(b.id);
          if (chosen.get(h) !== p.pack) continue;
          if (b.offset + b.stored > bytes.length) throw unsafe(`pack ${p.pack} is shorter than its index says`);
          const sealed = bytes.subarray(b.offset, b.offset + b.stored);
          // Verify before copying: a damaged blob must not replace the original.
          try {
            repo.decodeBlob(sealed, b.id, p.pack, b.offset, codec);
          } catch (err) {
            throw unsafe(`pack ${p.pack}: blob ${h} is damaged, prune will not copy it (${err instanceof Error ? err.message : String(err)})`, err);
          }
          packer.add(p.typeCode, b.id, Buffer.from(sealed), b.raw);
          await packer.backpressure();
        }
        progress(`repacked ${++done} of ${toRepack.length} packs`);
      }
      await packer.flush();
    } catch (err) {
      await packer.drain();
      throw err;
    }
    const repackIndexNames = [...packer.writtenIndexFiles];
    const repacked = new Map<string, PackDescriptor>(packer.writtenPacks.map((d) => [hexOf(d.id), d]));
    result.packs.written = repacked.size;
    result.bytes.repackedWritten = 0;
    for (const n of repacked.keys()) {
      const st = await repo.storage.stat({ kind: 'data', name: n });
      result.bytes.repackedWritten += st.size;
    }
    shared.assertHeld();
    if (opts.beforeExclusive !== undefined) await opts.beforeExclusive();
    await shared.release();
    sharedHeld = false;

    // Phase 2: exclusive.
    progress('waiting for the exclusive lock');
    const lock = await acquireExclusive(repo, 'prune', opts.lockWaitMs ?? 30 * 60_000);
    try {
      // 5. What changed meanwhile.
      const indexNow = new Set<string>();
      for await (const o of repo.storage.list('index')) indexNow.add(o.name);
      const gone = oldIndexNames.filter((n) => !indexNow.has(n));
      if (gone.length > 0) {
        throw new BulwarkError('REPO_CHANGED', `index file ${gone[0]!} disappeared while prune ran (another prune?); nothing was deleted`, {
          subject: `index/${gone[0]!}`,
          retryable: true,
          hint: 'run prune again',
        });
      }
      const protectedPacks = new Set<string>();
      const ours = new Set([...oldIndexNames, ...repackIndexNames]);
      for (const name of indexNow) {
        if (ours.has(name) || repo.indexFiles.has(name)) continue;
        let idx;
        try {
          idx = await repo.readIndexFile(name);
        } catch (err) {
          if (isBulwarkError(err, 'INDEX_CORRUPT')) continue;
          throw err;
        }
        if (idx.supersedes.length > 0) {
          throw new BulwarkError('REPO_CHANGED', `index file ${name} was written by another prune while this one ran; nothing was deleted`, {
            subject: `index/${name}`,
            retryable: true,
            hint: 'run prune again',
          });
        }
        repo.addToIndex(idx.packs);
        repo.indexFiles.add(name);
        for (const d of idx.packs) protectedPacks.add(hexOf(d.id));
      }
      for (const n of protectedPacks) {
        const p = packs.get(n);
        if (p !== undefined && p.present && p.action !== 'keep') {
          p.action = 'keep';
          result.packs.keptForNewSnapshots++;
        }
      }
      const damagedNow: BulwarkError[] = [];
      const now = await listSnapshots(repo, damagedNow);
      const freshDamaged = damagedNow.filter((e) => ![...startSnapshots].some((id) => e.subject === `snapshots/${id}`));
      if (freshDamaged.length > 0) throw unsafe(`a snapshot written while prune ran cannot be read (${freshDamaged[0]!.message})`);
      const fresh = now.filter((s) => !startSnapshots.has(s.id));
      result.newSnapshots = fresh.length;
      if (fresh.length > 0) {
        const added = await markSnapshots(repo, fresh, used);
        // Where each blob lives among the old packs (only needed for the newly marked blobs).
        const wanted = new Set(added);
        const where = new Map<string, string[]>();
        for (const p of packs.values()) {
          if (!p.present) continue;
          for (const b of p.blobs) {
            const h = hexOf(b.id);
            if (wanted.has(h)) where.set(h, [...(where.get(h) ?? []), p.pack]);
          }
        }
        const inRepacked = new Set<string>();
        for (const d of repacked.values()) for (const b of d.blobs) inRepacked.add(hexOf(b.id));
        const inProtected = (h: string): boolean => {
          const e = repo.index.findHex(h);
          return e >= 0 && protectedPacks.has(repo.index.packs.hex(repo.index.location(e).pack));
        };
        for (const h of added) {
          const locs = where.get(h) ?? [];
          if (locs.some((n) => packs.get(n)!.action === 'keep') || inRepacked.has(h)) continue;
          if (locs.length === 0) {
            if (inProtected(h)) continue;
            throw unsafe(`blob ${h} of a snapshot written while prune ran is in no known pack`);
          }
          packs.get(locs[0]!)!.action = 'keep';
          result.packs.keptForNewSnapshots++;
        }
      }
      summarize();

      // 6. The new index: every kept old pack (all its blobs, trailer order) and the repacked packs.
      lock.assertHeld();
      const finalPacks: PackDescriptor[] = [];
      for (const p of packs.values()) if (p.present && p.action === 'keep') finalPacks.push({ id: Buffer.from(p.pack, 'hex'), type: p.typeCode, blobs: p.blobs });
      finalPacks.push(...repacked.values());
      const superseded = [...oldIndexNames, ...repackIndexNames];
      progress(`writing the new index (${finalPacks.length} packs)`);
      const written = await writeIndexFiles(repo, finalPacks, superseded);
      result.indexFiles.written = written.length + repackIndexNames.length;

      // 7. Delete superseded index files, then packs. No pack is deleted while an index names it.
      lock.assertHeld();
      result.indexFiles.deleted = await deleteObjects(repo, 'index', superseded);
      const doomed = [...packs.values()].filter((p) => p.present && p.action !== 'keep').map((p) => p.pack);
      const strays = unindexed.filter((n) => !protectedPacks.has(n) && !repacked.has(n));
      result.unindexed = strays;
      lock.assertHeld();
      progress(`deleting ${doomed.length + strays.length} packs`);
      await deleteObjects(repo, 'data', [...doomed, ...strays]);
      result.packs.deleted = result.toDelete.length;
      result.packs.repacked = result.toRepack.length;
      result.packs.unindexedDeleted = strays.length;
      summarize();
    } finally {
      repo.resetIndex();
      await lock.release();
    }
    let after = 0;
    for await (const o of repo.storage.list('data')) after += o.size;
    result.bytes.after = after;
    result.bytes.freed = bytesBefore - after;
    result.durationMs = Date.now() - started;
    return result;
  } finally {
    if (sharedHeld) await shared.release();
  }
}
