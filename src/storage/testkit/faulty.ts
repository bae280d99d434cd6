// Fault-injecting Storage wrapper for tests. FaultyStorage forwards every call to an inner Storage
// unless a programmed fault fires first; faults are deterministic so a failing test replays exactly:
//  - failNth:       fail the Nth call (1-based) of a method;
//  - failWhen:      fail every call whose method/kind/name satisfy a predicate;
//  - failFraction:  fail a fraction of calls, drawn from a PRNG seeded in the constructor;
//  - delay:         sleep before calls (to widen races), without failing them;
//  - crashAfterBytes: a byte budget for writes. The write that would cross it "crashes": the inner
//    store never sees it (writes are atomic, so a failed write leaves no visible object), an
//    optional hook receives the prefix that did reach the device (to plant temp-file debris), and
//    every later write fails too until clearFaults().
// Injected failures are BulwarkError with code STORAGE_IO and retryable true unless configured.
// Calls are counted per method (failed attempts included) for tests to assert on.
import { BulwarkError, type ErrorCode } from '../../errors.js';
import { describe, type Handle, type ObjectInfo, type ObjectKind, type Storage } from '../storage.js';

export type StorageMethod = 'create' | 'list' | 'stat' | 'read' | 'write' | 'delete' | 'close';

export const STORAGE_METHODS: readonly StorageMethod[] = ['create', 'list', 'stat', 'read', 'write', 'delete', 'close'];

/** What a fault predicate sees about one call. `kind`/`name` are undefined where the method has none. */
export interface CallInfo {
  method: StorageMethod;
  /** 1-based number of this call among calls of the same method (since construction or resetCounts()). */
  call: number;
  kind: ObjectKind | undefined;
  name: string | undefined;
}

export interface FaultOptions {
  /** Error code of the injected failure (default STORAGE_IO). */
  code?: ErrorCode;
  /** Whether the injected error says retrying could help (default true). */
  retryable?: boolean;
  message?: string;
  /** Fire at most this many times (default: unlimited). */
  times?: number;
}

export interface CrashOptions extends FaultOptions {
  /** Receives the bytes of the crashing write that "reached the device" before the crash. */
  onCrash?: (h: Handle, written: Uint8Array) => void | Promise<void>;
}

/** Which methods a fault applies to: one, several, or '*' for all. */
export type MethodSelector = StorageMethod | readonly StorageMethod[] | '*';

interface Rule {
  methods: MethodSelector;
  when: (c: CallInfo) => boolean;
  opts: FaultOptions;
  fired: number;
}

interface DelayRule {
  methods: MethodSelector;
  ms: number;
  when: (c: CallInfo) => boolean;
}

/** Deterministic PRNG (mulberry32) returning floats in [0, 1). Same seed, same sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function selects(sel: MethodSelector, m: StorageMethod): boolean {
  if (sel === '*') return true;
  if (typeof sel === 'string') return sel === m;
  return sel.includes(m);
}

export class FaultyStorage implements Storage {
  readonly location: string;
  readonly readSize?: number;
  private readonly rules: Rule[] = [];
  private readonly delays: DelayRule[] = [];
  private readonly counts = new Map<StorageMethod, number>();
  private readonly random: () => number;
  private budget: { remaining: number; opts: CrashOptions } | undefined;
  private crashed = false;
  /** Total bytes of writes that reached the inner store. */
  bytesWritten = 0;

  constructor(
    readonly inner: Storage,
    options: { seed?: number } = {},
  ) {
    this.location = inner.location;
    if (inner.readSize !== undefined) this.readSize = inner.readSize;
    this.random = seededRandom(options.seed ?? 1);
  }

  /** Fails the `n`th call (or each of the listed calls) of `method`, counting from 1. */
  failNth(method: StorageMethod, n: number | readonly number[], opts: FaultOptions = {}): this {
    const ns = typeof n === 'number' ? [n] : n;
    return this.failWhen(method, (c) => ns.includes(c.call), opts);
  }

  /** Fails every call of the selected methods for which `when` returns true. */
  failWhen(methods: MethodSelector, when: (c: CallInfo) => boolean, opts: FaultOptions = {}): this {
    this.rules.push({ methods, when, opts, fired: 0 });
    return this;
  }

  /** Fails each selected call with probability `fraction`, using the seeded PRNG. */
  failFraction(methods: MethodSelector, fraction: number, opts: FaultOptions = {}): this {
    return this.failWhen(methods, () => this.random() < fraction, opts);
  }

  /** Waits `ms` before forwarding each selected call (only those matching `when`, if given). */
  delay(methods: MethodSelector, ms: number, when: (c: CallInfo) => boolean = () => true): this {
    this.delays.push({ methods, ms, when });
    return this;
  }

  /** Lets `bytes` more bytes be written, then crashes the write that would cross the budget. */
  crashAfterBytes(bytes: number, opts: CrashOptions = {}): this {
    this.budget = { remaining: bytes, opts };
    this.crashed = false;
    return this;
  }

  /** Removes all faults and delays (counts are kept). */
  clearFaults(): this {
    this.rules.length = 0;
    this.delays.length = 0;
    this.budget = undefined;
    this.crashed = false;
    return this;
  }

  /** Number of calls of `method` so far, including those that failed. */
  count(method: StorageMethod): number {
    return this.counts.get(method) ?? 0;
  }

  resetCounts(): void {
    this.counts.clear();
  }

  private async enter(method: StorageMethod, kind?: ObjectKind, name?: string): Promise<void> {
    const call = this.count(method) + 1;
    this.counts.set(method, call);
    const info: CallInfo = { method, call, kind, name };
    for (const d of this.delays) {
      if (selects(d.methods, method) && d.when(info)) await new Promise((r) => setTimeout(r, d.ms));
    }
    for (const rule of this.rules) {
      if (!selects(rule.methods, method)) continue;
      if (rule.opts.times !== undefined && rule.fired >= rule.opts.times) continue;
      if (!rule.when(info)) continue;
      rule.fired++;
      throw this.fault(info, rule.opts);
    }
  }

  private fault(c: CallInfo, opts: FaultOptions, what = 'injected fault'): BulwarkError {
    const subject = c.kind === undefined ? this.location : describe({ kind: c.kind, name: c.name ?? '' });
    const message = opts.message ?? `${what}: ${c.method} ${subject} (call #${c.call}) in ${this.location}`;
    return new BulwarkError(opts.code ?? 'STORAGE_IO', message, { subject, retryable: opts.retryable ?? true });
  }

  async create(): Promise<void> {
    await this.enter('create');
    return this.inner.create();
  }

  list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    // Counted when called (not when first iterated); a fault surfaces on the first next().
    const entered = this.enter('list', kind);
    entered.catch(() => undefined);
    const inner = this.inner;
    return (async function* () {
      await entered;
      yield* inner.list(kind);
    })();
  }

  async stat(h: Handle): Promise<ObjectInfo> {
    await this.enter('stat', h.kind, h.name);
    return this.inner.stat(h);
  }

  async read(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    await this.enter('read', h.kind, h.name);
    return this.inner.read(h, offset, length);
  }

  async write(h: Handle, data: Uint8Array): Promise<void> {
    await this.enter('write', h.kind, h.name);
    const b = this.budget;
    if (b !== undefined && (this.crashed || data.length > b.remaining)) {
      const info: CallInfo = { method: 'write', call: this.count('write'), kind: h.kind, name: h.name };
      if (!this.crashed) {
        this.crashed = true;
        const written = data.subarray(0, b.remaining);
        b.remaining = 0;
        await b.opts.onCrash?.(h, written);
      }
      throw this.fault(info, b.opts, 'simulated crash during write');
    }
    // Debit before the (asynchronous) write, so concurrent writes cannot all pass the check.
    if (b !== undefined) b.remaining -= data.length;
    await this.inner.write(h, data);
    this.bytesWritten += data.length;
  }

  async delete(h: Handle): Promise<void> {
    await this.enter('delete', h.kind, h.name);
    return this.inner.delete(h);
  }

  async close(): Promise<void> {
    await this.enter('close');
    return this.inner.close();
  }
}
