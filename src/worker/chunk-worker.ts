// Chunk worker: stats and reads files, cuts them into content-defined chunks, computes keyed IDs,
// and for chunks the repository does not already hold (and no other worker has claimed), compresses
// and seals them into a data pack of its own. Finished packs (temp files) go to the main thread,
// which stores and indexes them; only chunk IDs and stats travel with file results. Uses
// synchronous file I/O on purpose: inside a worker it costs no event-loop time and avoids a
// thread-pool hop per call.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { Chunker } from '../chunker/fastcdc.js';
import { WasmChunkBuffer } from '../chunker/gear-wasm.js';
import { blobIdFn } from '../crypto/blob-id.js';
import { BlobType, ID_LEN, SharedIndexReader, type BlobTypeCode } from '../pack/blob-index.js';
import { BlobCodec } from '../pack/blob-codec.js';
import { ClaimSet } from '../pack/claim-set.js';
import { PackFile } from '../pack/pack-file.js';
import { BulwarkError, sysCode } from '../errors.js';
import { STAT_FIELDS, msToNs, packStat } from '../tree/node.js';
import { RingReader } from './byte-ring.js';
import type { BatchMsg, FailMsg, FileJob, FilePart, FlushedMsg, PackMsg, PrevFile, ResultMsg, ToWorker, WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const chunker = new Chunker(init.gear, init.chunker);
const codec = new BlobCodec(init.encKey, init.level, init.chunker.max);
const blobId = await blobIdFn(init.idHash, init.idKey);
let known = new SharedIndexReader(init.index);
const claims = new ClaimSet(init.claims);
const waiting = new Int32Array(init.packsWaiting);
// One maximum chunk plus room to read ahead: refills move only the unfinished chunk to the front.
// The buffer lives in the WebAssembly chunker's memory, which searches it for cut points in place.
const wasm = new WasmChunkBuffer(chunker, init.chunker.max + Math.max(init.chunker.max >> 2, 1024 * 1024));
const buf = wasm.buf;
/** A long file's chunk IDs are sent in parts of at most this many. */
const FLUSH_CHUNKS = 4096;

/** A failure of this worker's pack file (full disk, I/O error): it fails the backup, not one file. */
class PackFailure extends Error {
  constructor(readonly failure: unknown) {
    super(failure instanceof Error ? failure.message : String(failure));
  }
}

// This worker's open packs: data blobs and tree blobs never share a pack.
const packs: [PackFile | undefined, PackFile | undefined] = [undefined, undefined];
let packSeq = 0;

/**
 * Compresses and seals a blob into this worker's open pack of its type, finishing the pack when it
 * is full.
 */
function packBlob(type: BlobTypeCode, id: Uint8Array, raw: Uint8Array): void {
  let p = packs[type];
  try {
    p ??= packs[type] = new PackFile(type, path.join(init.tmpDir, `${init.packPrefix}${packSeq++}`));
    p.addStreamed(id, raw.length, (write) => codec.encodeTo(raw, write));
  } catch (err) {
    throw new PackFailure(err);
  }
  if (p.size >= init.packSize) finishPack(type);
}

/** Seals the open pack's trailer and hands the file to the main thread to store. */
function finishPack(type: BlobTypeCode): void {
  const p = packs[type];
  if (p === undefined) return;
  packs[type] = undefined;
  let id: Buffer;
  try {
    id = p.finish(init.encKey);
  } catch (err) {
    throw new PackFailure(err);
  }
  const n = p.blobs.length;
  const ids = new Uint8Array(n * ID_LEN);
  const meta = new Uint32Array(n * 3);
  p.blobs.forEach((b, i) => {
    ids.set(b.id, i * ID_LEN);
    meta[i * 3] = b.offset;
    meta[i * 3 + 1] = b.stored;
    meta[i * 3 + 2] = b.raw;
  });
  Atomics.add(waiting, 0, 1);
  const msg: PackMsg = { t: 'pack', type, file: p.file, id, ids, meta };
  port.postMessage(msg, [ids.buffer, meta.buffer]);
  waitForRoom();
}

class Outbox {
  parts: FilePart[] = [];
  transfer: ArrayBuffer[] = [];
  /** Stats of `stat` jobs, STAT_FIELDS numbers each, sent as one array per message. */
  private stats = new Float64Array(STAT_FIELDS * 64);
  private nstats = 0;
  /** Chunk IDs of this message's parts, ID_LEN bytes each (see FilePart.at). */
  private ids = new Uint8Array(ID_LEN * 256);
  nids = 0;
  constructor(private readonly batch: number) {}

  /** Records a stat for the part about to be pushed; returns its offset in this message's stats. */
  addStat(st: fs.Stats): number {
    if (this.nstats + STAT_FIELDS > this.stats.length) {
      const grown = new Float64Array(this.stats.length * 2);
      grown.set(this.stats);
      this.stats = grown;
    }
    const at = this.nstats;
    packStat(st, this.stats, at);
    this.nstats += STAT_FIELDS;
    return at;
  }

  /** Appends a chunk ID to this message's IDs. */
  addId(id: Uint8Array): void {
    if ((this.nids + 1) * ID_LEN > this.ids.length) {
      const grown = new Uint8Array(this.ids.length * 2);
      grown.set(this.ids);
      this.ids = grown;
    }
    this.ids.set(id, this.nids * ID_LEN);
    this.nids++;
  }

  send(done: boolean): void {
    const ids = this.ids.slice(0, this.nids * ID_LEN);
    const msg: ResultMsg = { t: 'res', batch: this.batch, parts: this.parts, ids, done };
    this.transfer.push(ids.buffer);
    if (this.nstats > 0) {
      msg.stats = this.stats.slice(0, this.nstats);
      this.transfer.push(msg.stats.buffer as ArrayBuffer);
    }
    port.postMessage(msg, this.transfer);
    this.parts = [];
    this.transfer = [];
    this.nstats = 0;
    this.nids = 0;
  }
}

/** A finished part of file `f`: its chunk IDs are the `n` before the Outbox's current count. */
function newPart(f: number, out: Outbox, n: number, end: boolean): FilePart {
  return { f, at: out.nids - n, n, end, size: 0 };
}

/** Blocks this worker while too many finished packs wait to be stored. */
function waitForRoom(): void {
  for (;;) {
    const cur = Atomics.load(waiting, 0);
    if (cur <= init.maxPacksWaiting) return;
    Atomics.wait(waiting, 0, cur, 200);
  }
}

/** Smallest read once the expected end of a file is passed (the file grew while being read). */
const MIN_READ = 64 * 1024;

// O_NONBLOCK: an entry that turned into a FIFO since the directory was listed must not block the
// open; it has no effect on regular files.
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** Exact inode and device of a file with several links (they identify hard-link groups). */
function exactIds(st: fs.Stats, fd: number): { inode: string; dev: string } | undefined {
  if (st.nlink <= 1) return undefined;
  const big = fs.fstatSync(fd, { bigint: true });
  return { inode: big.ino.toString(), dev: big.dev.toString() };
}

function sameAsPrev(st: fs.Stats, exact: { inode: string } | undefined, prev: PrevFile): boolean {
  return st.size === prev.size && msToNs(st.mtimeMs) === prev.mtime && msToNs(st.ctimeMs) === prev.ctime && (exact?.inode ?? String(st.ino)) === prev.inode;
}

/**
 * Stats a file the walk only saw in a listing. Returns the open descriptor and its stat, or
 * undefined when the job is already answered (unchanged, no longer a regular file, or an error).
 */
function statJob(f: number, job: FileJob, out: Outbox): { fd: number; st: fs.Stats; exact?: { inode: string; dev: string } } | undefined {
  const empty = (): FilePart => newPart(f, out, 0, true);
  let fd = -1;
  try {
    // Open first and stat the descriptor: one path lookup. The walk sends a file with `prev` only
    // while most such files turn out changed, so the open is rarely wasted.
    fd = fs.openSync(job.path, OPEN_FLAGS);
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      fs.closeSync(fd);
      out.parts.push({ ...empty(), retype: true });
      return undefined;
    }
    const exact = exactIds(st, fd);
    if (job.prev !== undefined && sameAsPrev(st, exact, job.prev)) {
      fs.closeSync(fd);
      const part: FilePart = { ...empty(), unchanged: true, size: st.size, st: out.addStat(st) };
      if (exact !== undefined) part.exact = exact;
      out.parts.push(part);
      return undefined;
    }
    return exact === undefined ? { fd, st } : { fd, st, exact };
  } catch (err) {
    if (fd >= 0) fs.closeSync(fd);
    // ELOOP: the name is now a symlink (O_NOFOLLOW); the walk records it as one.
    if (sysCode(err) === 'ELOOP') out.parts.push({ ...empty(), retype: true });
    else out.parts.push({ ...empty(), err: errInfo(err) });
    return undefined;
  }
}

/**
 * The file being read (one at a time per worker): its descriptor or ring, how much it should hold,
 * and the read buffer's state. Module state rather than closures: nothing is allocated per file.
 */
let fd = -1;
let ring: RingReader | undefined;
let expected: number | undefined;
let got = 0;
let filled = 0;
let pos = 0;
let eof = false;

/**
 * Moves the unfinished chunk to the front and reads until the buffer is full or the file ends.
 * With the expected size known, a read asks for one byte more than what should be left, so the
 * read that finds end of file asks for little (see FileJob.size).
 */
function fill(): void {
  if (pos > 0) {
    buf.copyWithin(0, pos, filled);
    filled -= pos;
    pos = 0;
  }
  while (filled < buf.length) {
    const room = buf.length - filled;
    const want = expected === undefined ? room : Math.min(room, Math.max(expected - got + 1, MIN_READ));
    const n = ring === undefined ? fs.readSync(fd, buf, filled, want, null) : ring.read(buf, filled, want);
    if (n === 0) {
      eof = true;
      break;
    }
    filled += n;
    got += n;
    // A short read that reaches the expected size is end of file: on a regular file, read()
    // returns less than asked only there. Asking once more would return 0 and cost a system
    // call per file. A file that grew fills the one extra byte asked for and is read on.
    if (expected !== undefined && got === expected && n < want && ring === undefined) {
      eof = true;
      break;
    }
  }
}

function processFile(f: number, job: FileJob, out: Outbox): void {
  expected = job.size;
  ring = job.ring === undefined ? undefined : new RingReader(job.ring);
  fd = -1;
  got = 0;
  filled = 0;
  pos = 0;
  eof = false;
  // A stat job's stat goes into the message that carries the file's last part.
  let stat: fs.Stats | undefined;
  let exact: { inode: string; dev: string } | undefined;
  if (job.stat) {
    const s = statJob(f, job, out);
    if (s === undefined) return;
    ({ fd, st: stat, exact } = s);
    expected = stat.size;
  } else {
    try {
      // O_NONBLOCK here too: the stat this job comes with may be the pre-walk's, taken a while ago,
      // and a name that became a FIFO since must fail to read, not block this worker in open().
      if (ring === undefined) fd = fs.openSync(job.path, OPEN_FLAGS);
    } catch (err) {
      const part = newPart(f, out, 0, true);
      part.err = errInfo(err);
      out.parts.push(part);
      return;
    }
  }
  // IDs of this file in the Outbox not yet in a part, and the bytes cut so far.
  let pending = 0;
  let size = 0;
  try {
    for (;;) {
      if (pos === filled) {
        if (eof) break;
        fill();
        if (pos === filled) break;
      }
      const len = wasm.cut(pos, filled);
      // A cut is final when it falls before the end of the data at hand, or when a whole maximum
      // chunk (or the rest of the file) was available; otherwise read more and cut again.
      if (!eof && len === filled - pos && len < chunker.max) {
        fill();
        continue;
      }
      const chunk = buf.subarray(pos, pos + len);
      pos += len;
      size += len;
      const id = blobId(chunk);
      // Claimed before compressing, so a chunk met by two workers at once is sealed by one.
      if (!known.has(id) && claims.claim(id)) packBlob(BlobType.data, id, chunk);
      out.addId(id);
      if (++pending >= FLUSH_CHUNKS) {
        out.parts.push(newPart(f, out, pending, false));
        pending = 0;
        out.send(false);
      }
    }
    const part = newPart(f, out, pending, true);
    part.size = size;
    if (stat !== undefined) {
      part.st = out.addStat(stat);
      if (exact !== undefined) part.exact = exact;
    }
    out.parts.push(part);
  } catch (err) {
    if (err instanceof PackFailure) throw err;
    const part = newPart(f, out, pending, true);
    part.err = errInfo(err);
    out.parts.push(part);
  } finally {
    if (ring === undefined) fs.closeSync(fd);
    else ring.close();
  }
}

function errInfo(err: unknown): { code: string; message: string } {
  return { code: sysCode(err) ?? 'EIO', message: err instanceof Error ? err.message : String(err) };
}

/** Reports a pack failure to the main thread, which fails the backup with it. */
function fail(err: PackFailure): void {
  const c = err.failure;
  const msg: FailMsg =
    c instanceof BulwarkError
      ? { t: 'fail', code: c.code, message: c.message, ...(c.subject !== undefined ? { subject: c.subject } : {}), ...(c.hint !== undefined ? { hint: c.hint } : {}) }
      : { t: 'fail', code: 'STORAGE_IO', message: err.message };
  for (const t of [BlobType.data, BlobType.tree] as const) {
    packs[t]?.discard();
    packs[t] = undefined;
  }
  port.postMessage(msg);
}

port.on('message', (msg: ToWorker) => {
  try {
    if (msg.t === 'index') {
      known = new SharedIndexReader(msg.index);
      return;
    }
    if (msg.t === 'trees') {
      // The main thread has checked that no stored or queued tree has these IDs.
      let off = 0;
      for (let i = 0; i < msg.lens.length; i++) {
        const len = msg.lens[i]!;
        packBlob(BlobType.tree, msg.ids.subarray(i * ID_LEN, (i + 1) * ID_LEN), msg.data.subarray(off, off + len));
        off += len;
      }
      return;
    }
    if (msg.t === 'flush') {
      finishPack(BlobType.data);
      finishPack(BlobType.tree);
      const done: FlushedMsg = { t: 'flushed' };
      port.postMessage(done);
      return;
    }
    const batch: BatchMsg = msg;
    const out = new Outbox(batch.id);
    batch.files.forEach((file, f) => processFile(f, file, out));
    out.send(true);
  } catch (err) {
    if (err instanceof PackFailure) fail(err);
    else throw err;
  }
});
