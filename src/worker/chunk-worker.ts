// Chunk worker: reads files, cuts them into content-defined chunks, computes keyed IDs, and for
// chunks the repository does not already hold, compresses and seals them. Uses synchronous file I/O
// on purpose: inside a worker it costs no event-loop time and avoids a thread-pool hop per call.
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Chunker } from '../chunker/fastcdc.js';
import { WasmChunkBuffer } from '../chunker/gear-wasm.js';
import { blobId } from '../crypto/keys.js';
import { SharedIndexReader } from '../pack/blob-index.js';
import { BlobCodec } from '../pack/blob-codec.js';
import { sysCode } from '../errors.js';
import { RingReader } from './byte-ring.js';
import type { BatchMsg, FileJob, FilePart, ResultMsg, ToWorker, WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const chunker = new Chunker(init.gear, init.chunker);
const codec = new BlobCodec(init.encKey, init.level);
let known = new SharedIndexReader(init.index);
const inflight = new Int32Array(init.inflight);
// One maximum chunk plus room to read ahead: refills move only the unfinished chunk to the front.
// The buffer lives in the WebAssembly chunker's memory, which searches it for cut points in place.
const wasm = new WasmChunkBuffer(chunker, init.chunker.max + Math.max(init.chunker.max >> 2, 1024 * 1024));
const buf = wasm.buf;
const FLUSH_BYTES = 4 * 1024 * 1024;

class Outbox {
  parts: FilePart[] = [];
  transfer: ArrayBuffer[] = [];
  bytes = 0;
  constructor(private readonly batch: number) {}

  send(done: boolean): void {
    const msg: ResultMsg = { t: 'res', batch: this.batch, parts: this.parts, done };
    port.postMessage(msg, this.transfer);
    this.parts = [];
    this.transfer = [];
    this.bytes = 0;
  }
}

function overLimit(): boolean {
  return Atomics.load(inflight, 0) > init.inflightLimit;
}

/** Blocks this worker while the main thread holds too many sealed bytes it has not stored yet. */
function waitForRoom(): void {
  for (;;) {
    const cur = Atomics.load(inflight, 0);
    if (cur <= init.inflightLimit) return;
    Atomics.wait(inflight, 0, cur, 200);
  }
}

/** Smallest read once the expected end of a file is passed (the file grew while being read). */
const MIN_READ = 64 * 1024;

function processFile(f: number, job: FileJob, out: Outbox): void {
  const expected = job.size;
  const ring = job.ring === undefined ? undefined : new RingReader(job.ring);
  let fd = -1;
  try {
    if (ring === undefined) fd = fs.openSync(job.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    out.parts.push({ f, ids: new Uint8Array(0), raws: [], blobs: [], end: true, err: errInfo(err) });
    return;
  }
  let part: FilePart = { f, ids: new Uint8Array(0), raws: [], blobs: [], end: false };
  let ids: Buffer[] = [];
  let size = 0;
  const flushPart = (end: boolean): void => {
    part.ids = Buffer.concat(ids);
    part.end = end;
    out.parts.push(part);
    part = { f, ids: new Uint8Array(0), raws: [], blobs: [], end: false };
    ids = [];
  };
  try {
    let filled = 0;
    let pos = 0;
    let eof = false;
    let got = 0;
    // Moves the unfinished chunk to the front and reads until the buffer is full or the file ends.
    // With the expected size known, a read asks for one byte more than what should be left, so the
    // read that finds end of file asks for little (see FileJob.size).
    const fill = (): void => {
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
      }
    };
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
      const id = blobId(init.idKey, chunk);
      let sealed: Uint8Array | null = null;
      if (!known.has(id)) {
        if (overLimit()) {
          // Hand over everything produced so far before blocking; this chunk goes in the next part.
          flushPart(false);
          out.send(false);
          waitForRoom();
        }
        sealed = codec.encode(chunk);
        Atomics.add(inflight, 0, sealed.length);
        out.transfer.push(sealed.buffer as ArrayBuffer);
        out.bytes += sealed.length;
      }
      // ids, raws and blobs of a part stay index-aligned: push all three together.
      ids.push(id);
      part.raws.push(len);
      part.blobs.push(sealed);
      if (out.bytes >= FLUSH_BYTES) {
        flushPart(false);
        out.send(false);
      }
    }
    part.size = size;
    flushPart(true);
  } catch (err) {
    part.err = errInfo(err);
    flushPart(true);
  } finally {
    if (ring === undefined) fs.closeSync(fd);
    else ring.close();
  }
}

function errInfo(err: unknown): { code: string; message: string } {
  return { code: sysCode(err) ?? 'EIO', message: err instanceof Error ? err.message : String(err) };
}

port.on('message', (msg: ToWorker) => {
  if (msg.t === 'index') {
    known = new SharedIndexReader(msg.index);
    return;
  }
  const batch: BatchMsg = msg;
  const out = new Outbox(batch.id);
  batch.files.forEach((file, f) => processFile(f, file, out));
  out.send(true);
});
