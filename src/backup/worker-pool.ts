// Main-thread side of the chunk workers: batches file jobs, spreads them over the workers, hands
// sealed blobs to the Packer as they arrive, and resolves one promise per file with its chunk list.
// Memory stays bounded two ways: at most `maxQueued` files are queued or in flight (callers await
// `acquire()`), and workers block when sealed bytes not yet stored exceed `inflightLimit`.
import { availableParallelism } from 'node:os';
import { BulwarkError } from '../errors.js';
import { Worker } from 'node:worker_threads';
import { BlobType } from '../pack/blob-index.js';
import type { Packer } from '../pack/packer.js';
import type { Repository } from '../repo/repository.js';
import { createRing, RingWriter, ringOpened } from '../worker/byte-ring.js';
import type { FileJob, ResultMsg, ToWorker, WorkerInit } from '../worker/protocol.js';
import type { PumpInit } from '../worker/pump-worker.js';

export interface FileResult {
  content: Buffer[];
  size: number;
  /** Number of chunks that were new to the repository. */
  err?: { code: string; message: string };
}

interface Pending {
  job: FileJob;
  ids: Buffer[];
  resolve: (r: FileResult) => void;
}

interface Slot {
  worker: Worker;
  batches: Map<number, Pending[]>;
}

const BATCH_FILES = 64;
/** Shared ring between a stream's pump thread and its chunk worker. */
const STREAM_RING_BYTES = 4 * 1024 * 1024;

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly inflight = new SharedArrayBuffer(4);
  private readonly inflightView = new Int32Array(this.inflight);
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
  ) {}

  /** Workers start with the first file to read, so a backup with nothing changed starts none. */
  private start(): void {
    const repo = this.repo;
    const init: WorkerInit = {
      encKey: repo.keys.enc,
      idKey: repo.keys.id,
      gear: repo.keys.gear,
      chunker: repo.config.chunker,
      level: repo.config.compression,
      index: repo.index.shared(),
      inflight: this.inflight,
      inflightLimit: 4 * repo.config.chunker.max,
    };
    const url = new URL('../worker/chunk-worker.js', import.meta.url);
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(url, { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      const slot: Slot = { worker, batches: new Map() };
      worker.on('message', (m: ResultMsg) => this.onResult(slot, m));
      worker.on('error', (err: unknown) => this.fail(err instanceof Error ? err : new BulwarkError('INTERNAL', `chunk worker failed: ${String(err)}`)));
      this.slots.push(slot);
    }
  }

  /** Bytes released by the Packer once stored (or dropped as duplicates). */
  release = (bytes: number): void => {
    Atomics.sub(this.inflightView, 0, bytes);
    Atomics.notify(this.inflightView, 0);
  };

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
  save(path: string, size?: number): Promise<FileResult> {
    return new Promise<FileResult>((resolve) => {
      this.batch.push({ job: size === undefined ? { path } : { path, size }, ids: [], resolve });
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

  /** Tells workers about blobs stored since they started, so they skip compressing them. */
  refreshIndex(repo: Repository): void {
    const msg: ToWorker = { t: 'index', index: repo.index.shared() };
    for (const s of this.slots) s.worker.postMessage(msg);
  }

  private onResult(slot: Slot, m: ResultMsg): void {
    const files = slot.batches.get(m.batch);
    if (files === undefined) return;
    try {
      for (const part of m.parts) {
        const p = files[part.f]!;
        if (part.blobs.length !== part.raws.length || part.ids.length !== part.raws.length * 32) {
          throw new BulwarkError('INTERNAL', `chunk worker sent a misaligned result for ${p.job.path}`);
        }
        for (let i = 0; i < part.raws.length; i++) {
          const id = Buffer.from(part.ids.buffer, part.ids.byteOffset + i * 32, 32);
          p.ids.push(id);
          const blob = part.blobs[i];
          if (blob !== null && blob !== undefined) this.packer.add(BlobType.data, id, blob, part.raws[i]!, blob.length);
        }
        if (part.end) {
          const r: FileResult = { content: p.ids, size: part.size ?? 0 };
          if (part.err !== undefined) r.err = part.err;
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
    for (const s of this.slots) {
      for (const files of s.batches.values()) for (const p of files) p.resolve({ content: [], size: 0, err: { code: 'EPIPELINE', message: err.message } });
      s.batches.clear();
    }
  }

  get error(): Error | undefined {
    return this.failure;
  }

  async close(): Promise<void> {
    await Promise.all([...this.slots.map((s) => s.worker.terminate()), ...[...this.pumps].map((p) => p.terminate())]);
  }
}
