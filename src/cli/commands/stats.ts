// bulwark stats: sizes before and after deduplication and compression.
import { findSnapshot, listSnapshots, type Snapshot } from '../../snapshot/snapshot.js';
import type { Repository } from '../../repo/repository.js';
import { loadTree } from '../../tree/tree-reader.js';
import type { Command } from '../command.js';
import { formatBytes } from '../context.js';

export interface RepoStats {
  snapshots: number;
  totalFiles: number;
  /** Sum over snapshots of the bytes a full restore would write. */
  totalRestoreSize: number;
  uniqueBlobs: number;
  /** Raw bytes of the distinct blobs the snapshots reference. */
  uniqueRawSize: number;
  /** Stored bytes of those blobs (after compression and encryption). */
  uniqueStoredSize: number;
  packFiles: number;
  packBytes: number;
  dedupRatio: number;
  compressionRatio: number;
  indexEntries: number;
  indexBytesPerEntry: number;
}

export async function computeStats(repo: Repository, snaps: Snapshot[]): Promise<RepoStats> {
  const seenBlobs = new Set<string>();
  let totalFiles = 0;
  let totalRestore = 0;
  let raw = 0;
  let stored = 0;
  const fileCount = new Map<string, [number, number]>();
  const countTree = async (id: string): Promise<[number, number]> => {
    const hit = fileCount.get(id);
    if (hit !== undefined) return hit;
    let files = 0;
    let bytes = 0;
    for (const n of await loadTree(repo, id)) {
      if (n.type === 'dir' && n.subtree !== undefined) {
        const [f, b] = await countTree(n.subtree);
        files += f;
        bytes += b;
      } else {
        files++;
        bytes += n.size ?? 0;
        for (const h of n.content ?? []) {
          if (seenBlobs.has(h)) continue;
          seenBlobs.add(h);
          const e = repo.index.find(Buffer.from(h, 'hex'));
          if (e >= 0) {
            const loc = repo.index.location(e);
            raw += loc.raw;
            stored += loc.stored;
          }
        }
      }
    }
    const r: [number, number] = [files, bytes];
    fileCount.set(id, r);
    return r;
  };
  for (const s of snaps) {
    const [f, b] = await countTree(s.tree);
    totalFiles += f;
    totalRestore += b;
  }
  let packFiles = 0;
  let packBytes = 0;
  for await (const o of repo.storage.list('data')) {
    packFiles++;
    packBytes += o.size;
  }
  return {
    snapshots: snaps.length,
    totalFiles,
    totalRestoreSize: totalRestore,
    uniqueBlobs: seenBlobs.size,
    uniqueRawSize: raw,
    uniqueStoredSize: stored,
    packFiles,
    packBytes,
    dedupRatio: raw === 0 ? 1 : totalRestore / raw,
    compressionRatio: stored === 0 ? 1 : raw / stored,
    indexEntries: repo.index.count,
    indexBytesPerEntry: Math.round(repo.index.bytesPerEntry() * 10) / 10,
  };
}

export const stats: Command = {
  name: 'stats',
  usage: 'bulwark stats [SNAPSHOT...]',
  options: {},
  async run(ctx, args) {
    const repo = await ctx.openRepo();
    const snaps = args.length === 0 ? await listSnapshots(repo) : await Promise.all(args.map((a) => findSnapshot(repo, a)));
    await repo.loadIndex();
    const s = await computeStats(repo, snaps);
    ctx.result(s, () =>
      [
        `Snapshots:            ${s.snapshots}`,
        `Files (all snapshots): ${s.totalFiles}`,
        `Restore size:         ${formatBytes(s.totalRestoreSize)}`,
        `Unique data:          ${formatBytes(s.uniqueRawSize)} in ${s.uniqueBlobs} blobs (dedup ${s.dedupRatio.toFixed(2)}x)`,
        `Stored data:          ${formatBytes(s.uniqueStoredSize)} (compression ${s.compressionRatio.toFixed(2)}x)`,
        `Pack files:           ${s.packFiles}, ${formatBytes(s.packBytes)}`,
        `Index:                ${s.indexEntries} entries, ${s.indexBytesPerEntry} bytes each in memory`,
      ].join('\n'),
    );
    return 0;
  },
};
