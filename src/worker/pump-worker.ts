// Pump thread for stream backups: reads a named pipe with blocking reads into a shared byte ring
// that a chunk worker consumes (see byte-ring.ts). It does no other work, so the process writing
// the pipe (a database dump) is never held up by the chunk worker's bursts of CPU work.
import * as fs from 'node:fs';
import { workerData } from 'node:worker_threads';
import { sysCode } from '../errors.js';
import { RingWriter } from './byte-ring.js';

export interface PumpInit {
  path: string;
  ring: SharedArrayBuffer;
}

const init = workerData as PumpInit;
const ring = new RingWriter(init.ring);

function errInfo(err: unknown): { code: string; message: string } {
  return { code: sysCode(err) ?? 'EIO', message: err instanceof Error ? err.message : String(err) };
}

let fd: number | undefined;
try {
  try {
    fd = fs.openSync(init.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } finally {
    ring.opened(fd !== undefined);
  }
  const from = fd;
  while (ring.produce((buf, off, len) => fs.readSync(from, buf, off, len, null)));
  ring.end();
} catch (err) {
  ring.fail(errInfo(err));
} finally {
  if (fd !== undefined) fs.closeSync(fd);
}
