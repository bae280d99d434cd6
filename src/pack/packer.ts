// Packer: groups sealed blobs into pack files (data and tree blobs in separate packs), stores
// finished packs with bounded concurrency, and writes index files for them.
//
// Packs are assembled in temp files (in the storage's own temp directory when it has one, so a
// local repository publishes a pack by linking the file into place, without copying it), hashing
// as they grow. A blob's bytes therefore leave memory as soon as they are written, and memory does
// not grow with the pack size.
//
// Ordering is what makes crashes harmless: a pack is fully written (atomic write) before any index
// file names it, and index files are written before the snapshot that needs their blobs. A crash
// leaves at worst packs that no index lists (and temp files); `recoverPacks` indexes such packs from
// their trailers so the next backup reuses them.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Repository } from '../repo/repository.js';
import { putObject } from '../repo/objects.js';
import { BlobType, type BlobTypeCode } from './blob-index.js';
import { indexPackPart, sealIndex, type PackDescriptor } from './formats.js';
import { PackFile, tempFileError } from './pack-file.js';

const INDEX_FLUSH_BLOBS = 50_000;

export interface PackerStats {
  blobsAdded: number;
  rawAdded: number;
  storedAdded: number;
  packsWritten: number;
  indexFilesWritten: number;
}

export class Packer {
  readonly stats: PackerStats = { blobsAdded: 0, rawAdded: 0, storedAdded: 0, packsWritten: 0, indexFilesWritten: 0 };
  private readonly open: Partial<Record<BlobTypeCode, PackFile>> = {};
  private readonly pending = new Set<string>();
  private readonly uploads = new Set<Promise<void>>();
  /** Stored packs whose index file is not written yet, as index body parts (compact). */
  private unindexed: Uint8Array[] = [];
  private unindexedBlobs = 0;
  private failure: unknown;
  private readonly tmpDir: string;
  /**
   * When false, `add` stores a blob even if the master index already has it (prune copies live
   * blobs out of packs it is about to delete). Blobs queued in this run are still stored once.
   */
  dedupAgainstIndex = true;
  /**
   * Every pack stored by this packer (only while `recordPacks` is set: prune needs them; a backup
   * would hold a descriptor per blob for the whole run), and every index file it wrote.
   */
  readonly writtenPacks: PackDescriptor[] = [];
  recordPacks = false;
  readonly writtenIndexFiles: string[] = [];

  constructor(
    private readonly repo: Repository,
    private readonly maxUploads = 2,
  ) {
    this.tmpDir = repo.storage.tempDir?.() ?? os.tmpdir();
  }

  /** True if the blob is stored or queued in this run. */
  has(id: Uint8Array): boolean {
    return this.repo.index.has(id) || this.pending.has(Buffer.from(id).toString('hex'));
  }

  /** Appends a sealed blob to the open pack of its type. Returns false if the blob is already stored. */
  add(type: BlobTypeCode, id: Uint8Array, sealed: Uint8Array, raw: number): boolean {
    this.throwIfFailed();
    const hex = Buffer.from(id).toString('hex');
    if ((this.dedupAgainstIndex && this.repo.index.has(id)) || this.pending.has(hex)) return false;
    let p = this.open[type];
    if (p === undefined) {
      p = new PackFile(type, path.join(this.tmpDir, `pack-${randomBytes(8).toString('hex')}`));
      this.open[type] = p;
    }
    this.pending.add(hex);
    p.add(Buffer.from(id), sealed, raw);
    this.stats.blobsAdded++;
    this.stats.rawAdded += raw;
    this.stats.storedAdded += sealed.length;
    if (p.size >= this.repo.config.packSize) this.finishPack(type);
    return true;
  }

  /** Resolves when fewer than the maximum uploads are in flight (callers that can wait, should). */
  async backpressure(): Promise<void> {
    while (this.uploads.size >= this.maxUploads) await Promise.race(this.uploads);
    this.throwIfFailed();
  }

  private finishPack(type: BlobTypeCode): void {
    const p = this.open[type];
    if (p === undefined) return;
    delete this.open[type];
    const id = p.finish(this.repo.keys.enc);
    this.store(p.file, { id, type, blobs: p.blobs });
  }

  /**
   * Stores a finished pack file that a chunk worker assembled (its blobs are counted here), then
   * indexes it like the packer's own; `stored` runs once the pack is stored or has failed.
   */
  adoptPack(file: string, desc: PackDescriptor, stored: () => void): void {
    for (const b of desc.blobs) {
      this.stats.blobsAdded++;
      this.stats.rawAdded += b.raw;
      this.stats.storedAdded += b.stored;
    }
    this.store(file, desc, stored);
  }

  /**
   * Starts storing a finished pack file and indexes it once stored. Callers that produce packs on
   * this thread wait on `backpressure` (at most `maxUploads` in flight); the chunk workers are held
   * back by the pool instead (see WorkerPool.onPack).
   */
  private store(file: string, desc: PackDescriptor, stored?: () => void): void {
    const h = { kind: 'data' as const, name: Buffer.from(desc.id).toString('hex') };
    const storage = this.repo.storage;
    const put =
      storage.adopt !== undefined
        ? storage.adopt(h, file)
        : fs.promises.readFile(file).then(
            (b) => storage.write(h, b),
            (err: unknown) => {
              throw tempFileError(err, file);
            },
          );
    const upload = put
      .then(() => {
        this.repo.addToIndex([desc]);
        for (const b of desc.blobs) this.pending.delete(Buffer.from(b.id).toString('hex'));
        this.unindexed.push(indexPackPart(desc));
        if (this.recordPacks) this.writtenPacks.push(desc);
        this.unindexedBlobs += desc.blobs.length;
        this.stats.packsWritten++;
      })
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => {
        fs.rmSync(file, { force: true });
        this.uploads.delete(upload);
        stored?.();
      });
    this.uploads.add(upload);
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Writes an index file for packs stored so far if enough have accumulated (or `force`). */
  async maybeWriteIndex(force = false): Promise<void> {
    if (this.unindexed.length === 0 || (!force && this.unindexedBlobs < INDEX_FLUSH_BLOBS)) return;
    const packs = this.unindexed;
    this.unindexed = [];
    this.unindexedBlobs = 0;
    const name = await putObject(this.repo.storage, 'index', sealIndex(this.repo.keys.enc, packs));
    this.repo.indexFiles.add(name);
    this.writtenIndexFiles.push(name);
    this.stats.indexFilesWritten++;
  }

  /** Finishes open packs, waits for every upload, and indexes everything written. */
  async flush(): Promise<void> {
    this.finishPack(BlobType.data);
    this.finishPack(BlobType.tree);
    while (this.uploads.size > 0) await Promise.race(this.uploads);
    this.throwIfFailed();
    await this.maybeWriteIndex(true);
  }

  /** Abort path: waits for uploads to settle and removes unfinished temp files. */
  async drain(): Promise<void> {
    for (const t of [BlobType.data, BlobType.tree] as const) {
      const p = this.open[t];
      if (p === undefined) continue;
      delete this.open[t];
      p.discard();
    }
    while (this.uploads.size > 0) await Promise.race(this.uploads);
  }
}
