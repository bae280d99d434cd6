// Main-thread side of the chunk workers: batches file jobs, spreads them over the workers, resolves
// one promise per file with its chunk list, and stores the data packs the workers finish (through
// the Packer, which indexes them). Memory stays bounded two ways: at most `maxQueued` files are
// queued or in flight (callers await `acquire()`), and workers block while more than
// `maxPacksWaiting` finished packs wait to be stored.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import * as path from 'node:path';
import { BulwarkError, type ErrorCode } from '../errors.js';
import { Worker } from 'node:worker_threads';
import { BlobType, ID_LEN, type SharedIndexView } from '../pack/blob-index.js';
import { createClaimSet } from '../pack/claim-set.js';
import type { PackBlob } from '../pack/formats.js';
import type { Packer } from '../pack/packer.js';
import type { Repository } from '../repo/repository.js';
import { createRing, RingWriter, ringOpened } from '../worker/byte-ring.js';
import type { FileJob, FromWorker, PackMsg, ResultMsg, ToWorker, WorkerInit } from '../worker/protocol.js';
import type { PumpInit } from '../worker/pump-worker.js';

export interface FileResult {
  /** The chunk IDs, concatenated (see `idList` and `hexList`). */
  ids: Uint8Array;
  size: number;
  err?: { code: string; message: string };
  /** For a `stat` job: the packed stat (see tree/node packStat) at `statAt`, and the exact IDs of a multi-link file. */
  stats?: Float64Array;
  statAt?: number;
  exact?: { inode: string; dev: string };
  /** The file matched the job's `prev` and was not read. */
  unchanged?: true;
  /** The entry is no longer a regular file. */
  retype?: true;
}

/** A result's chunk IDs as buffers. */
export function idList(r: FileResult): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < r.ids.length; i += ID_LEN) out.push(Buffer.from(r.ids.buffer, r.ids.byteOffset + i, ID_LEN));
  return out;
}

/** A result's chunk IDs as hex strings (one conversion for the whole list). */
export function hexList(r: FileResult): string[] {
  const all = Buffer.from(r.ids.buffer, r.ids.byteOffset, r.ids.length).toString('hex');
  const out: string[] = [];
  for (let i = 0; i < all.length; i += 2 * ID_LEN) out.push(all.slice(i, i + 2 * ID_LEN));
  return out;
}

interface Pending {
  job: FileJob;
  /** ID parts received so far (a long file's come in several messages). */
  ids: Uint8Array[];
  resolve: (r: FileResult) => void;
}

interface Slot {
  worker: Worker;
  batches: Map<number, Pending[]>;
}

const BATCH_FILES = 64;
const NO_IDS = new Uint8Array(0);
/** Trees are sent to the workers in groups of up to this many, or this many bytes. */
const TREE_GROUP = 64;
const TREE_GROUP_BYTES = 256 * 1024;
/** Shared ring between a stream's pump thread and its chunk worker. */
const STREAM_RING_BYTES = 4 * 1024 * 1024;

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly packsWaiting = new SharedArrayBuffer(4);
  private readonly packsWaitingView = new Int32Array(this.packsWaiting);
  private readonly claims = createClaimSet();
  private readonly tmpDir: string;
  /** Name prefix of this pool's temp packs (removed by `close` if a failure left any). */
  private readonly packPrefix = `pack-${randomBytes(6).toString('hex')}-`;
  private flushWaiters: Array<() => void> = [];
  private batch: Pending[] = [];
  private nextBatch = 1;
  private queued = 0;
  private readonly waiters: Array<() => void> = [];
  private failure: Error | undefined;
  private readonly pumps = new Set<Worker>();

  constructor(
    private readonly repo: Repository,
    private readonly packer: Packer,
    private readonly threads = Math.max(1, availableParallelism()),
    private readonly maxQueued = 256,
  ) {
    this.tmpDir = repo.storage.tempDir?.() ?? tmpdir();
  }

  /** Workers start with the first file to read, so a backup with nothing changed starts none. */
  private start(): void {
    const repo = this.repo;
    const url = new URL('../worker/chunk-worker.js', import.meta.url);
    for (let i = 0; i < this.threads; i++) {
      const init: WorkerInit = {
        encKey: repo.keys.enc,
        idKey: repo.keys.id,
        idHash: repo.idHash,
        gear: repo.keys.gear,
        chunker: repo.config.chunker,
        level: repo.config.compression,
        index: repo.index.shared(),
        claims: this.claims,
        tmpDir: this.tmpDir,
        packPrefix: `${this.packPrefix}w${i}-`,
        packSize: repo.config.packSize,
        packsWaiting: this.packsWaiting,
        maxPacksWaiting: this.threads + 2,
      };
      this.shared = init.index;
      const worker = new Worker(url, { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      const slot: Slot = { worker, batches: new Map() };
      worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
      worker.on('error', (err: unknown) => this.fail(err instanceof Error ? err : new BulwarkError('INTERNAL', `chunk worker failed: ${String(err)}`)));
      this.slots.push(slot);
    }
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    switch (m.t) {
      case 'res':
        this.onResult(slot, m);
        return;
      case 'pack':
        this.onPack(m);
        return;
      case 'flushed':
        this.flushWaiters.shift()?.();
        return;
      case 'fail':
        this.fail(new BulwarkError(m.code as ErrorCode, m.message, { ...(m.subject !== undefined ? { subject: m.subject } : {}), ...(m.hint !== undefined ? { hint: m.hint } : {}) }));
        return;
    }
  }

  /** A worker finished a pack: store it; the workers may go on once it is stored. */
  private onPack(m: PackMsg): void {
    const blobs: PackBlob[] = [];
    for (let i = 0; i < m.meta.length / 3; i++) {
      blobs.push({ id: Buffer.from(m.ids.buffer, m.ids.byteOffset + i * ID_LEN, ID_LEN), offset: m.meta[i * 3]!, stored: m.meta[i * 3 + 1]!, raw: m.meta[i * 3 + 2]! });
    }
    this.packer.adoptPack(m.file, { id: Buffer.from(m.id), type: m.type, blobs }, () => {
      // Indexed (or failed, which fails the backup): the tree IDs need no separate record any more.
      if (m.type === BlobType.tree) for (const b of blobs) this.treesSent.delete(Buffer.from(b.id).toString('hex'));
      // The workers read the index live, but a grown index lives in new shared buffers: point them
      // there, so blobs stored in this run stay known once the claim set has forgotten them.
      const now = this.repo.index.shared();
      if (now.ids !== this.shared?.ids || now.table !== this.shared.table) this.refreshIndex(this.repo);
      Atomics.sub(this.packsWaitingView, 0, 1);
      Atomics.notify(this.packsWaitingView, 0);
    });
  }

  /** Tree IDs handed to workers and not yet in a stored pack. */
  private readonly treesSent = new Set<string>();
  private nextTreeSlot = 0;

  /** True once the chunk workers run (a backup with nothing to read never starts them). */
  get started(): boolean {
    return this.slots.length > 0;
  }

  /** True if a tree blob with this ID is stored, or queued here or in the Packer. */
  hasTree(id: Uint8Array): boolean {
    return this.packer.has(id) || this.treesSent.has(Buffer.from(id).toString('hex'));
  }

  /**
   * Hands a new tree blob (see `hasTree`) to a running worker, which compresses and seals it into
   * its tree pack: the main thread only encodes trees and computes their IDs. Trees go out in
   * groups (see TreesMsg); `flush` sends the last group.
   */
  saveTree(id: Uint8Array, data: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    this.treesSent.add(Buffer.from(id).toString('hex'));
    this.groupIds.push(id);
    this.groupTrees.push(data);
    this.groupBytes += data.length;
    if (this.groupIds.length >= TREE_GROUP || this.groupBytes >= TREE_GROUP_BYTES) this.sendTrees();
  }

  /** Trees waiting to be sent: their IDs, their data, and the data's total length. */
  private groupIds: Uint8Array[] = [];
  private groupTrees: Uint8Array[] = [];
  private groupBytes = 0;

  private sendTrees(): void {
    const n = this.groupIds.length;
    if (n === 0) return;
    // Fresh buffers (not Buffer's shared pool), so they can be transferred.
    const ids = new Uint8Array(n * ID_LEN);
    const lens = new Uint32Array(n);
    const data = new Uint8Array(this.groupBytes);
    let off = 0;
    for (let i = 0; i < n; i++) {
      const tree = this.groupTrees[i]!;
      ids.set(this.groupIds[i]!, i * ID_LEN);
      data.set(tree, off);
      lens[i] = tree.length;
      off += tree.length;
    }
    this.groupIds = [];
    this.groupTrees = [];
    this.groupBytes = 0;
    const slot = this.slots[this.nextTreeSlot++ % this.slots.length]!;
    const msg: ToWorker = { t: 'trees', ids, data, lens };
    slot.worker.postMessage(msg, [ids.buffer, data.buffer, lens.buffer]);
  }

  /**
   * Has every started worker finish its open data pack and hand it over; after this, the Packer's
   * own flush stores and indexes everything. Throws the pool's failure, if any.
   */
  async flush(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    this.sendTrees();
    const answers = this.slots.map(
      (s) =>
        new Promise<void>((resolve) => {
          this.flushWaiters.push(resolve);
          const msg: ToWorker = { t: 'flush' };
          s.worker.postMessage(msg);
        }),
    );
    await Promise.all(answers);
    if (this.failure !== undefined) throw this.failure;
  }

  /** Takes a queue place if one is free right now. */
  tryAcquire(): boolean {
    if (this.failure !== undefined) throw this.failure;
    if (this.queued >= this.maxQueued) return false;
    this.queued++;
    return true;
  }

  /** Waits for a queue place and takes it; call before `save`. */
  async acquire(): Promise<void> {
    while (!this.tryAcquire()) await this.room();
  }

  /** Resolves when the queue has room (without taking it): lets the walker pace itself. */
  async room(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.queued < this.maxQueued) return;
    this.flushBatch();
    await new Promise<void>((r) => this.waiters.push(r));
    if (this.failure !== undefined) throw this.failure;
  }

  /** Queues a file (after taking a place); resolves when all its chunks are handed over. */
  save(job: FileJob): Promise<FileResult> {
    return new Promise<FileResult>((resolve) => {
      this.batch.push({ job, ids: [], resolve });
      if (this.batch.length >= BATCH_FILES) this.flushBatch();
      else if (this.batch.length === 1) setImmediate(() => this.flushBatch());
    });
  }

  /**
   * Queues a stream, a named pipe (after taking a place): a pump thread of its own reads the pipe
   * into a shared ring that the chunk worker consumes, so the pipe's writer keeps going while the
   * worker cuts, hashes and seals. `saved` resolves like `save` once the stream has ended and its
   * chunks are handed over; `ring` tells when the pump has opened the pipe (ringOpened).
   */
  saveStream(path: string): { saved: Promise<FileResult>; ring: SharedArrayBuffer } {
    const ring = createRing(STREAM_RING_BYTES);
    const init: PumpInit = { path, ring };
    const pump = new Worker(new URL('../worker/pump-worker.js', import.meta.url), { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 1 } });
    this.pumps.add(pump);
    pump.on('exit', () => {
      this.pumps.delete(pump);
      // A pump stopped before it opened the pipe: the capture must not wait for it any longer.
      if (ringOpened(ring) === 0) new RingWriter(ring).opened(false);
    });
    // The pump reports its own read errors through the ring; this is for a thread that died.
    pump.on('error', (err: unknown) => new RingWriter(ring).fail({ code: 'EPIPELINE', message: `stream reader failed: ${err instanceof Error ? err.message : String(err)}` }));
    const saved = new Promise<FileResult>((resolve) => this.batch.push({ job: { path, ring }, ids: [], resolve }));
    this.flushBatch();
    return { saved, ring };
  }

  /** Sends the partly filled batch; call before awaiting results. */
  flushBatch(): void {
    if (this.batch.length === 0) return;
    const files = this.batch;
    this.batch = [];
    if (this.slots.length === 0) this.start();
    let best = this.slots[0]!;
    for (const s of this.slots) if (s.batches.size < best.batches.size) best = s;
    const id = this.nextBatch++;
    best.batches.set(id, files);
    const msg: ToWorker = { t: 'batch', id, files: files.map((p) => p.job) };
    best.worker.postMessage(msg);
  }

  /** The index buffers the workers were last given. */
  private shared: SharedIndexView | undefined;

  /** Tells workers about blobs stored since they started, so they skip compressing them. */
  refreshIndex(repo: Repository): void {
    const msg: ToWorker = { t: 'index', index: repo.index.shared() };
    this.shared = msg.index;
    for (const s of this.slots) s.worker.postMessage(msg);
  }

  private onResult(slot: Slot, m: ResultMsg): void {
    const files = slot.batches.get(m.batch);
    if (files === undefined) return;
    try {
      for (const part of m.parts) {
        const p = files[part.f]!;
        if ((part.at + part.n) * ID_LEN > m.ids.length) throw new BulwarkError('INTERNAL', `chunk worker sent a result beyond its IDs for ${p.job.path}`);
        if (part.n > 0) p.ids.push(m.ids.subarray(part.at * ID_LEN, (part.at + part.n) * ID_LEN));
        if (part.end) {
          const r: FileResult = { ids: p.ids.length === 1 ? p.ids[0]! : p.ids.length === 0 ? NO_IDS : Buffer.concat(p.ids), size: part.size };
          if (part.err !== undefined) r.err = part.err;
          if (part.st !== undefined && m.stats !== undefined) {
            r.stats = m.stats;
            r.statAt = part.st;
          }
          if (part.exact !== undefined) r.exact = part.exact;
          if (part.unchanged === true) r.unchanged = true;
          if (part.retype === true) r.retype = true;
          this.done();
          p.resolve(r);
        }
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
    if (m.done) slot.batches.delete(m.batch);
  }

  private done(): void {
    this.queued--;
    for (const w of this.waiters.splice(0)) w();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiters.splice(0)) w();
    for (const w of this.flushWaiters.splice(0)) w();
    for (const s of this.slots) {
      for (const files of s.batches.values()) for (const p of files) p.resolve({ ids: new Uint8Array(0), size: 0, err: { code: 'EPIPELINE', message: err.message } });
      s.batches.clear();
    }
  }

  get error(): Error | undefined {
    return this.failure;
  }

  async close(): Promise<void> {
    await Promise.all([...this.slots.map((s) => s.worker.terminate()), ...[...this.pumps].map((p) => p.terminate())]);
    // Packs a stopped worker had open, or finished but not yet handed over (failure paths only).
    if (this.slots.length === 0) return;
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.tmpDir).filter((n) => n.startsWith(this.packPrefix));
    } catch {
      return;
    }
    for (const n of names) fs.rmSync(path.join(this.tmpDir, n), { force: true });
  }
}
