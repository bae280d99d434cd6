// Messages between the backup pipeline's main thread and its chunk workers.
import type { ChunkerParams } from '../chunker/fastcdc.js';
import type { SharedIndexView } from '../pack/blob-index.js';

export interface WorkerInit {
  encKey: Uint8Array;
  idKey: Uint8Array;
  gear: Int32Array;
  chunker: ChunkerParams;
  level: number;
  index: SharedIndexView;
  /** Int32 [0]: sealed bytes handed to the main thread and not yet stored (backpressure). */
  inflight: SharedArrayBuffer;
  inflightLimit: number;
}

export interface FileJob {
  path: string;
  /**
   * The size lstat() gave when the walk saw the file (absent for pipes). Only a hint: the worker
   * still reads until end of file, but sizes its reads by it, because on Linux a read() that hits
   * end of file costs time in proportion to the length asked for (a 10 MiB request at EOF costs
   * more than reading a small file's whole content).
   */
  size?: number;
  /** Set for a stream: the bytes come through this ring from a pump thread, not from `path`. */
  ring?: SharedArrayBuffer;
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

export type ToWorker = BatchMsg | IndexMsg;

/** Part of one file's result; a file's parts arrive in order, the last has `end` set. */
export interface FilePart {
  f: number;
  /** Concatenated 32-byte blob IDs of the chunks in this part. */
  ids: Uint8Array;
  raws: number[];
  /** Sealed blob per chunk, or null where the worker found the blob already stored. */
  blobs: Array<Uint8Array | null>;
  end: boolean;
  size?: number;
  err?: { code: string; message: string };
}

export interface ResultMsg {
  t: 'res';
  batch: number;
  parts: FilePart[];
  /** Set on the last message of a batch. */
  done: boolean;
}
