// Restore worker: opens sealed blobs from one pack (checking each blob's ID) and writes them into
// the files that need them with synchronous positional writes. All-zero chunks are skipped after a
// truncate to the final size, so sparse files come back sparse. Also verifies restored files.
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { blobId } from '../crypto/keys.js';
import { BlobCodec } from '../pack/blob-codec.js';
import { sysCode } from '../errors.js';
import type { FileMeta, PackFile, PackTask, RestoreInit, TaskDone, VerifyTask } from './restore-protocol.js';

const init = workerData as RestoreInit;
const port = parentPort!;
const codec = new BlobCodec(init.encKey, 0);

export function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

const myUid = process.getuid?.() ?? -1;
const myGid = process.getgid?.() ?? -1;

export function applyMeta(fd: number, meta: FileMeta, owner: boolean): void {
  // New files already belong to us: chown only when the owner differs.
  if (owner && (meta.uid !== myUid || meta.gid !== myGid)) fs.fchownSync(fd, meta.uid, meta.gid);
  fs.fchmodSync(fd, meta.mode);
  fs.futimesSync(fd, meta.mtime, meta.mtime);
}

function errOf(path: string, err: unknown): { path: string; code: string; message: string } {
  return { path, code: sysCode(err) ?? 'EIO', message: err instanceof Error ? err.message : String(err) };
}

const { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_NOFOLLOW } = fs.constants;

const openOnce = (path: string, flags: number): Promise<number> =>
  new Promise((resolve, reject) => fs.open(path, flags, 0o600, (err, fd) => (err === null ? resolve(fd) : reject(err))));

/**
 * Opens a file to restore into without following a symlink that already sits at its name (which
 * could point outside the target): such an entry is removed and the open retried.
 */
async function openAsync(path: string, whole: boolean): Promise<number> {
  const flags = (whole ? O_WRONLY | O_CREAT | O_TRUNC : O_RDWR) | O_NOFOLLOW;
  try {
    return await openOnce(path, flags);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ELOOP') throw err;
    fs.unlinkSync(path);
    return openOnce(path, flags | O_CREAT);
  }
}

/** Files opened at once per worker: creating a file is latency-bound on many filesystems. */
const OPEN_CONCURRENCY = 16;

async function runPack(task: PackTask): Promise<TaskDone> {
  const done: TaskDone = { task: task.task, bytes: 0, errors: [] };
  // Decoded blobs are kept only while another write in this task still needs them.
  const uses = new Uint32Array(task.blobs.length);
  for (const f of task.files) for (const [bi] of f.writes) uses[bi]!++;
  const decoded: Array<Buffer | null | undefined> = new Array(task.blobs.length);
  const blob = (i: number): Buffer | null => {
    const left = --uses[i]!;
    const cached = decoded[i];
    if (cached !== undefined) {
      if (left === 0) decoded[i] = undefined;
      return cached;
    }
    const b = task.blobs[i]!;
    const start = b.offset - task.base;
    const plain = codec.decodeTransient(task.data.subarray(start, start + b.stored), b.raw);
    if (plain.length !== b.raw || !blobId(init.idKey, plain).equals(b.id)) throw new Error(`blob at offset ${b.offset} does not match its ID`);
    // Zero runs are written as holes; keep only a marker for them.
    const v = b.stored * 16 < plain.length && isZero(plain) ? null : plain;
    // The decoded bytes live in a reused buffer: keep a copy only if another write needs them.
    if (left > 0) decoded[i] = v === null ? null : Buffer.from(v);
    return v;
  };
  const writeFile = (f: PackFile, fd: number): void => {
    let end = 0;
    for (const [bi, off] of f.writes) {
      let data: Buffer | null;
      try {
        data = blob(bi);
      } catch (err) {
        done.errors.push({ path: f.path, code: 'PACK_CORRUPT', message: `pack ${task.pack}: ${err instanceof Error ? err.message : String(err)}` });
        continue;
      }
      if (data === null) continue;
      let w = 0;
      while (w < data.length) w += fs.writeSync(fd, data, w, data.length - w, off + w);
      done.bytes += data.length;
      end = Math.max(end, off + data.length);
    }
    // Skipped zero chunks at the end leave a hole up to the size (a sparse tail).
    if (f.whole && end < f.size) fs.ftruncateSync(fd, f.size);
    if (f.whole && f.meta !== undefined) applyMeta(fd, f.meta, init.owner);
  };
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < task.files.length) {
      const f = task.files[next++]!;
      let fd: number | undefined;
      try {
        fd = await openAsync(f.path, f.whole);
        writeFile(f, fd);
      } catch (err) {
        done.errors.push(errOf(f.path, err));
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, task.files.length) }, lane));
  return done;
}

function runVerify(task: VerifyTask): TaskDone {
  const done: TaskDone = { task: task.task, bytes: 0, errors: [] };
  for (const f of task.files) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(f.path, 'r');
      const st = fs.fstatSync(fd);
      if (st.size !== f.size) throw Object.assign(new Error(`size is ${st.size}, expected ${f.size}`), { code: 'VERIFY_FAILED' });
      let pos = 0;
      for (let i = 0; i < f.raws.length; i++) {
        const len = f.raws[i]!;
        const buf = Buffer.allocUnsafe(len);
        let got = 0;
        while (got < len) {
          const n = fs.readSync(fd, buf, got, len - got, pos + got);
          if (n === 0) break;
          got += n;
        }
        const want = f.ids.subarray(i * 32, i * 32 + 32);
        if (got !== len || !blobId(init.idKey, buf).equals(want)) {
          throw Object.assign(new Error(`content differs from the snapshot at offset ${pos}`), { code: 'VERIFY_FAILED' });
        }
        pos += len;
        done.bytes += len;
      }
    } catch (err) {
      done.errors.push(errOf(f.path, err));
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
  return done;
}

port.on('message', (msg: PackTask | VerifyTask) => {
  if (msg.t === 'verify') port.postMessage(runVerify(msg));
  else void runPack(msg).then((d) => port.postMessage(d));
});
