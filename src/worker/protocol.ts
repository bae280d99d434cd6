// Messages between the backup pipeline's main thread and its chunk workers.
import type { ChunkerParams } from '../chunker/fastcdc.js';
import type { IdHash } from '../crypto/blob-id.js';
import type { BlobTypeCode, SharedIndexView } from '../pack/blob-index.js';
import type { ClaimSetView } from '../pack/claim-set.js';

export interface WorkerInit {
  encKey: Uint8Array;
  idKey: Uint8Array;
  /** The repository's blob-ID hash (see crypto/blob-id.ts). */
  idHash: IdHash;
  gear: Int32Array;
  chunker: ChunkerParams;
  level: number;
  index: SharedIndexView;
  /** Blob IDs claimed by the pool's workers in this run (see pack/claim-set). */
  claims: ClaimSetView;
  /** Where data packs are assembled, and the name prefix of this worker's temp packs. */
  tmpDir: string;
  packPrefix: string;
  /** A data pack is finished once it holds this many bytes. */
  packSize: number;
  /** Int32 [0]: packs finished by the workers and not yet stored (backpressure). */
  packsWaiting: SharedArrayBuffer;
  maxPacksWaiting: number;
}

/** Jobs are built with the same fields in the same order (absent ones undefined), so the worker sees one shape. */
export interface FileJob {
  path: string;
  /**
   * The size lstat() gave when the walk saw the file (absent for pipes). Only a hint: the worker
   * still reads until end of file, but sizes its reads by it, because on Linux a read() that hits
   * end of file costs time in proportion to the length asked for (a 10 MiB request at EOF costs
   * more than reading a small file's whole content).
   */
  size?: number | undefined;
  /** Set for a stream: the bytes come through this ring from a pump thread, not from `path`. */
  ring?: SharedArrayBuffer;
  /**
   * Set when the walk has not stat'ed the file (it only saw a regular file in its directory
   * listing): the worker stats it, reports the stat with the result, and reads it only if it
   * differs from `prev`.
   */
  stat?: boolean;
  /** The parent snapshot's node of this file, when all its blobs are stored (see `stat`). */
  prev?: PrevFile | undefined;
}

/** What decides that a file is unchanged since the parent snapshot (all must be equal). */
export interface PrevFile {
  size: number;
  mtime: string;
  ctime: string;
  inode: string;
}

export interface BatchMsg {
  t: 'batch';
  id: number;
  files: FileJob[];
}

export interface IndexMsg {
  t: 'index';
  index: SharedIndexView;
}

/**
 * Tree blobs to compress, seal and put in the worker's tree pack (their IDs are new to the run), sent
 * in groups: one message per directory would cost more than sealing the tree. `ids` holds the
 * concatenated 32-byte IDs, `data` the concatenated trees, `lens` each tree's length.
 */
export interface TreesMsg {
  t: 'trees';
  ids: Uint8Array;
  data: Uint8Array;
  lens: Uint32Array;
}

/** Finish the open packs now (end of a backup); answered by `flushed`. */
export interface FlushMsg {
  t: 'flush';
}

export type ToWorker = BatchMsg | IndexMsg | TreesMsg | FlushMsg;

/** Part of one file's result; a file's parts arrive in order, the last has `end` set. */
export interface FilePart {
  f: number;
  /**
   * This part's chunk IDs are `n` 32-byte IDs from index `at` of the message's `ids` (new ones are
   * in the worker's packs).
   */
  at: number;
  n: number;
  end: boolean;
  /** On the last part: the bytes read. */
  size: number;
  err?: { code: string; message: string };
  /** For a `stat` job, on the last part: where its stat starts in the message's `stats` (STAT_FIELDS numbers, see tree/node packStat). */
  st?: number;
  /** Exact inode and device of a file with several links (BigInt stat). */
  exact?: { inode: string; dev: string };
  /** The file matched `prev`: it was not read, and the parent's content list stands. */
  unchanged?: true;
  /** The entry is no longer a regular file: the walk must look at it again. */
  retype?: true;
}

export interface ResultMsg {
  t: 'res';
  batch: number;
  parts: FilePart[];
  /** The chunk IDs of all parts, concatenated (see FilePart.at). */
  ids: Uint8Array;
  /** Packed stats of `stat` jobs finished in this message (see FilePart.st). */
  stats?: Float64Array;
  /** Set on the last message of a batch. */
  done: boolean;
}

/** A finished pack (temp file) to store and index. */
export interface PackMsg {
  t: 'pack';
  type: BlobTypeCode;
  file: string;
  id: Uint8Array;
  /** Concatenated blob IDs, and per blob offset, stored length and raw length (u32 each). */
  ids: Uint8Array;
  meta: Uint32Array;
}

export interface FlushedMsg {
  t: 'flushed';
}

/** The worker's pack file failed (full disk, I/O error): the backup fails with this error. */
export interface FailMsg {
  t: 'fail';
  code: string;
  message: string;
  subject?: string;
  hint?: string;
}

export type FromWorker = ResultMsg | PackMsg | FlushedMsg | FailMsg;
