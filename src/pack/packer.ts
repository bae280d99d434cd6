// Packer: groups sealed blobs into pack files (data and tree blobs in separate packs), uploads
// finished packs with bounded concurrency, and writes index files for them.
//
// Ordering is what makes crashes harmless: a pack is fully written (atomic write) before any index
// file names it, and index files are written before the snapshot that needs their blobs. A crash
// leaves at worst packs that no index lists; `Repository.recoverPacks` indexes them from their
// trailers so the next backup reuses them.
import { sha256 } from '../crypto/keys.js';
import { BulwarkError } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import { putObject } from '../repo/objects.js';
import { BlobType, type BlobTypeCode } from './blob-index.js';
import { encodeIndex, encodeTrailer, type PackBlob, type PackDescriptor } from './formats.js';

const INDEX_FLUSH_BLOBS = 50_000;

class OpenPack {
  parts: Uint8Array[] = [];
  blobs: PackBlob[] = [];
  size = 0;
  credit = 0;
  constructor(readonly type: BlobTypeCode) {}
}

export interface PackerStats {
  blobsAdded: number;
  rawAdded: number;
  storedAdded: number;
  packsWritten: number;
  indexFilesWritten: number;
}

export class Packer {
  readonly stats: PackerStats = { blobsAdded: 0, rawAdded: 0, storedAdded: 0, packsWritten: 0, indexFilesWritten: 0 };
  private readonly open: Record<BlobTypeCode, OpenPack> = { [BlobType.data]: new OpenPack(0), [BlobType.tree]: new OpenPack(1) };
  private readonly pending = new Set<string>();
  private readonly uploads = new Set<Promise<void>>();
  private unindexed: PackDescriptor[] = [];
  private unindexedBlobs = 0;
  private failure: unknown;
  readonly newIndexFiles: string[] = [];

  constructor(
    private readonly repo: Repository,
    private readonly release: (bytes: number) => void = () => undefined,
    private readonly maxUploads = 2,
  ) {}

  /** True if the blob is stored or queued in this run. */
  has(id: Uint8Array): boolean {
    return this.repo.index.has(id) || this.pending.has(Buffer.from(id).toString('hex'));
  }

  /**
   * Queues a sealed blob. Returns false if it is already stored. `credit` is released (via the
   * constructor's callback) once the blob is safely in storage or found to be a duplicate.
   */
  add(type: BlobTypeCode, id: Uint8Array, sealed: Uint8Array, raw: number, credit = 0): boolean {
    this.throwIfFailed();
    const hex = Buffer.from(id).toString('hex');
    if (this.repo.index.has(id) || this.pending.has(hex)) {
      if (credit > 0) this.release(credit);
      return false;
    }
    this.pending.add(hex);
    const p = this.open[type];
    p.blobs.push({ id: Buffer.from(id), offset: p.size, stored: sealed.length, raw });
    p.parts.push(sealed);
    p.size += sealed.length;
    p.credit += credit;
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
    if (p.blobs.length === 0) return;
    this.open[type] = new OpenPack(type);
    const trailer = encodeTrailer(this.repo.keys.enc, type, p.blobs);
    const bytes = Buffer.concat([...p.parts, trailer]);
    p.parts = [];
    const id = sha256(bytes);
    const name = id.toString('hex');
    const upload = this.repo.storage
      .write({ kind: 'data', name }, bytes)
      .then(() => {
        const desc: PackDescriptor = { id, type, blobs: p.blobs };
        this.repo.addToIndex([desc]);
        for (const b of p.blobs) this.pending.delete(Buffer.from(b.id).toString('hex'));
        this.unindexed.push(desc);
        this.unindexedBlobs += p.blobs.length;
        this.stats.packsWritten++;
      })
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.uploads.delete(upload);
        if (p.credit > 0) this.release(p.credit);
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
    const name = await putObject(this.repo.storage, 'index', encodeIndex(this.repo.keys.enc, packs));
    this.repo.indexFiles.add(name);
    this.newIndexFiles.push(name);
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

  /** Waits for uploads to settle without raising (used on abort paths). */
  async drain(): Promise<void> {
    while (this.uploads.size > 0) await Promise.race(this.uploads);
  }
}

export function assertNotFailed(err: unknown): never {
  throw err instanceof BulwarkError ? err : new BulwarkError('INTERNAL', String(err));
}
