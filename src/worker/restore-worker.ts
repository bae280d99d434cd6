// Restore worker: opens sealed blobs from one pack (checking each blob's ID) and writes them into
// the files that need them with synchronous positional writes. All-zero chunks are skipped after a
// truncate to the final size, so sparse files come back sparse. Also verifies restored files.
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { blobIdFn } from '../crypto/blob-id.js';
import { BlobCodec } from '../pack/blob-codec.js';
import { sysCode } from '../errors.js';
import { FILE_FIELDS, type FileMeta, type PackTask, type RestoreInit, type TaskDone, type VerifyTask } from './restore-protocol.js';

const init = workerData as RestoreInit;
const port = parentPort!;
const codec = new BlobCodec(init.encKey, 0);
const blobId = await blobIdFn(init.idHash, init.idKey);

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

/**
 * Opens a file to restore into without following a symlink that already sits at its name (which
 * could point outside the target): such an entry is removed and the open retried. Opens are
 * synchronous: each worker is its own thread, and on a local filesystem a thread-pool hop per file
 * costs more CPU than the open itself (measured about 3x on tmpfs).
 */
function openFile(path: string, whole: boolean): number {
  const flags = (whole ? O_WRONLY | O_CREAT | O_TRUNC : O_RDWR) | O_NOFOLLOW;
  try {
    return fs.openSync(path, flags, 0o600);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ELOOP') throw err;
    fs.unlinkSync(path);
    return fs.openSync(path, flags | O_CREAT, 0o600);
  }
}

function runPack(task: PackTask): TaskDone {
  const done: TaskDone = { task: task.task, bytes: 0, errors: [] };
  const nBlobs = task.blobs.length / 3;
  const ids = Buffer.from(task.ids.buffer, task.ids.byteOffset, task.ids.byteLength);
  const W = task.writes;
  const F = task.files;
  // Decoded blobs are kept only while another write in this task still needs them.
  const uses = new Uint32Array(nBlobs);
  for (let w = 0; w < W.length; w += 2) uses[W[w]!]!++;
  const decoded: Array<Buffer | null | undefined> = new Array(nBlobs);
  const blob = (i: number): Buffer | null => {
    const left = --uses[i]!;
    const cached = decoded[i];
    if (cached !== undefined) {
      if (left === 0) decoded[i] = undefined;
      return cached;
    }
    const offset = task.blobs[3 * i]!;
    const stored = task.blobs[3 * i + 1]!;
    const raw = task.blobs[3 * i + 2]!;
    const start = offset - task.base;
    const plain = codec.decodeTransient(task.data.subarray(start, start + stored), raw);
    if (plain.length !== raw || !blobId(plain).equals(ids.subarray(32 * i, 32 * i + 32))) {
      throw new Error(`blob at offset ${offset} does not match its ID`);
    }
    // Zero runs are written as holes; keep only a marker for them.
    const v = stored * 16 < plain.length && isZero(plain) ? null : plain;
    // The decoded bytes live in a reused buffer: keep a copy only if another write needs them.
    if (left > 0) decoded[i] = v === null ? null : Buffer.from(v);
    return v;
  };
  let w = 0;
  for (let fi = 0; fi < task.paths.length; fi++) {
    const path = task.paths[fi]!;
    const base = fi * FILE_FIELDS;
    const whole = F[base] === 1;
    const size = F[base + 1]!;
    const wEnd = w + 2 * F[base + 6]!;
    let fd: number | undefined;
    try {
      fd = openFile(path, whole);
      let end = 0;
      for (; w < wEnd; w += 2) {
        const off = W[w + 1]!;
        let data: Buffer | null;
        try {
          data = blob(W[w]!);
        } catch (err) {
          done.errors.push({ path, code: 'PACK_CORRUPT', message: `pack ${task.pack}: ${err instanceof Error ? err.message : String(err)}` });
          continue;
        }
        if (data === null) continue;
        let n = 0;
        while (n < data.length) n += fs.writeSync(fd, data, n, data.length - n, off + n);
        done.bytes += data.length;
        end = Math.max(end, off + data.length);
      }
      if (whole) {
        // Skipped zero chunks at the end leave a hole up to the size (a sparse tail).
        if (end < size) fs.ftruncateSync(fd, size);
        applyMeta(fd, { mode: F[base + 2]!, uid: F[base + 3]!, gid: F[base + 4]!, mtime: F[base + 5]! }, init.owner);
      }
    } catch (err) {
      done.errors.push(errOf(path, err));
      w = wEnd;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
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
        if (got !== len || !blobId(buf).equals(want)) {
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
  else {
    // The slice buffer goes back to the main thread, which reads the next slice into it.
    const d = runPack(msg);
    d.data = msg.data;
    port.postMessage(d, [msg.data.buffer as ArrayBuffer]);
  }
});
