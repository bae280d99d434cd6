// Messages between the restorer and its workers.

export interface RestoreInit {
  encKey: Uint8Array;
  idKey: Uint8Array;
  owner: boolean;
}

export interface FileMeta {
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
}

export interface PackFile {
  path: string;
  size: number;
  /** True if every blob of the file is in this pack: the worker creates and finishes it. */
  whole: boolean;
  meta?: FileMeta;
  /** [blob index in the task, offset in the file] pairs. */
  writes: Array<[number, number]>;
}

export interface PackTask {
  t: 'pack';
  task: number;
  pack: string;
  /** Bytes of the pack from `base` on. */
  data: Uint8Array;
  base: number;
  blobs: Array<{ offset: number; stored: number; raw: number; id: Uint8Array }>;
  files: PackFile[];
}

export interface VerifyTask {
  t: 'verify';
  task: number;
  files: Array<{ path: string; size: number; raws: number[]; ids: Uint8Array }>;
}

export interface TaskDone {
  task: number;
  bytes: number;
  errors: Array<{ path: string; code: string; message: string }>;
}
