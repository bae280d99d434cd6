// Messages between the restorer and its workers.
import type { IdHash } from '../crypto/blob-id.js';

export interface RestoreInit {
  encKey: Uint8Array;
  idKey: Uint8Array;
  /** The repository's blob-ID hash (see crypto/blob-id.ts). */
  idHash: IdHash;
  owner: boolean;
}

export interface FileMeta {
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
}

/** Numbers per file in `PackTask.files`. */
export const FILE_FIELDS = 7;

/**
 * One slice of a pack to decode and write out. Encoded column-wise in typed arrays (cheap to send
 * to a worker, no per-file objects to clone or collect).
 */
export interface PackTask {
  t: 'pack';
  task: number;
  pack: string;
  /** Bytes of the pack from `base` on. */
  data: Uint8Array;
  base: number;
  /** Per blob: offset in the pack, stored length, raw length. */
  blobs: Uint32Array;
  /** Per blob: its 32-byte ID. */
  ids: Uint8Array;
  paths: string[];
  /**
   * Per file, FILE_FIELDS numbers: whole (1 if every blob of the file is in this task: the worker
   * creates the file and applies its metadata; 0: the file exists and only gets its writes), size,
   * mode, uid, gid, mtime (seconds), number of writes.
   */
  files: Float64Array;
  /** Per write, in file order: blob number in this task, offset in the file. */
  writes: Float64Array;
}

export interface VerifyTask {
  t: 'verify';
  task: number;
  files: Array<{ path: string; size: number; raws: number[]; ids: Uint8Array }>;
}

export interface TaskDone {
  task: number;
  bytes: number;
  /** The slice buffer of a pack task, handed back for reuse. */
  data?: Uint8Array;
  errors: Array<{ path: string; code: string; message: string }>;
}
