// A pack being assembled in a temp file: blobs are appended (small ones gathered into 1 MiB writes),
// the file is hashed as it grows, and `finish` seals the trailer and names the pack by the SHA-256
// of its bytes. Used by the Packer on the main thread (tree packs, prune, copy) and by each chunk
// worker for the data packs of a backup, so a blob's sealed bytes go to disk from the thread that
// sealed them.
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { BulwarkError, sysCode } from '../errors.js';
import type { BlobTypeCode } from './blob-index.js';
import { encodeTrailer, type PackBlob } from './formats.js';

/** Turns a temp-file error into the engine's error (a full disk gets its own code). */
export function tempFileError(err: unknown, file: string): BulwarkError {
  const code = sysCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BulwarkError('DISK_FULL', `no space left for pack file ${file}`, {
      subject: file,
      cause: err,
      hint: "free space (packs are assembled in the repository's tmp directory); earlier snapshots are intact",
    });
  }
  return new BulwarkError('STORAGE_IO', `cannot write pack file ${file}: ${err instanceof Error ? err.message : String(err)}`, { subject: file, cause: err });
}

/** Small blobs are gathered into writes of this size (one syscall and hash update per batch). */
const STAGE_BYTES = 1024 * 1024;

/**
 * Stage buffers of finished packs, kept for the next pack of this thread: allocating and freeing
 * 1 MiB per pack fragments the thread's malloc heap (see crypto/aead SEAL_SLICE).
 */
const spareStages: Buffer[] = [];
const MAX_SPARE_STAGES = 2;

export class PackFile {
  blobs: PackBlob[] = [];
  size = 0;
  private readonly hash: Hash = createHash('sha256');
  private fd: number;
  private stage: Buffer | undefined;
  private staged = 0;
  constructor(
    readonly type: BlobTypeCode,
    readonly file: string,
  ) {
    try {
      this.fd = fs.openSync(file, 'wx', 0o600);
    } catch (err) {
      throw tempFileError(err, file);
    }
  }

  /** Appends one sealed blob and records it for the trailer. */
  add(id: Uint8Array, sealed: Uint8Array, raw: number): void {
    this.blobs.push({ id, offset: this.size, stored: sealed.length, raw });
    this.append(sealed);
  }

  /** Appends one blob whose sealed bytes `produce` passes, piece by piece, to its `write`. */
  addStreamed(id: Uint8Array, raw: number, produce: (write: (piece: Uint8Array) => void) => void): void {
    const offset = this.size;
    produce(this.appendPiece);
    this.blobs.push({ id, offset, stored: this.size - offset, raw });
  }

  private readonly appendPiece = (piece: Uint8Array): void => this.append(piece);

  private append(data: Uint8Array): void {
    if (data.length < STAGE_BYTES / 4) {
      if (this.staged + data.length > STAGE_BYTES) this.flush();
      this.stage ??= spareStages.pop() ?? Buffer.allocUnsafe(STAGE_BYTES);
      this.stage.set(data, this.staged);
      this.staged += data.length;
    } else {
      this.flush();
      this.write(data);
    }
    this.size += data.length;
  }

  private flush(): void {
    if (this.staged === 0) return;
    const n = this.staged;
    this.staged = 0;
    this.write(this.stage!.subarray(0, n));
  }

  private write(data: Uint8Array): void {
    let off = 0;
    try {
      while (off < data.length) off += fs.writeSync(this.fd, data, off, data.length - off);
    } catch (err) {
      throw tempFileError(err, this.file);
    }
    this.hash.update(data);
  }

  /** Writes the trailer and closes the file; returns the pack's ID. On error the file is removed. */
  finish(encKey: Uint8Array): Buffer {
    try {
      this.append(encodeTrailer(encKey, this.type, this.blobs));
      this.flush();
    } catch (err) {
      this.discard();
      throw err;
    }
    fs.closeSync(this.fd);
    this.fd = -1;
    this.releaseStage();
    return this.hash.digest();
  }

  private releaseStage(): void {
    if (this.stage !== undefined && spareStages.length < MAX_SPARE_STAGES) spareStages.push(this.stage);
    this.stage = undefined;
    this.staged = 0;
  }

  /** Closes and removes the temp file (abort paths). */
  discard(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    this.releaseStage();
    fs.rmSync(this.file, { force: true });
  }
}
