// Repository locks with leases. A lock is a sealed document in locks/ naming its kind, host and
// process. Shared locks (backup, restore, check) coexist; an exclusive lock (destructive maintenance)
// excludes every other lock. A holder refreshes its lease by writing a new lock object and deleting
// the old one; a lock not refreshed within the TTL is stale and ignored. A lock from this host whose
// process is gone is stale at once, so no manual unlock is ever needed.
//
// Acquisition writes our lock first, then lists: if a conflicting live lock exists, we remove ours
// and fail (or retry until the wait time runs out). Two racing exclusive lockers may both back off;
// neither can both succeed.
import { hostname } from 'node:os';
import { BulwarkError, isBulwarkError } from '../errors.js';
import { getJSON, putJSON } from './objects.js';
import type { Repository } from './repository.js';

export type LockKind = 'shared' | 'exclusive';

export interface LockDoc {
  kind: LockKind;
  host: string;
  pid: number;
  time: number;
  operation: string;
}

export interface LockOptions {
  ttlMs?: number;
  refreshMs?: number;
  waitMs?: number;
  now?: () => number;
}

const DEFAULT_TTL = 5 * 60_000;

export function lockTtlFromEnv(): number {
  const v = Number(process.env['BULWARK_LOCK_TTL_SECONDS']);
  return Number.isFinite(v) && v > 0 ? v * 1000 : DEFAULT_TTL;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

export function isStale(doc: LockDoc, now: number, ttl: number): boolean {
  if (now - doc.time > ttl) return true;
  return doc.host === hostname() && doc.pid !== process.pid && !processAlive(doc.pid);
}

export class Lock {
  private name = '';
  private timer: NodeJS.Timeout | undefined;
  private lost: unknown;
  private refreshing: Promise<void> | undefined;
  private released = false;
  private readonly ttl: number;
  private readonly now: () => number;

  private constructor(
    private readonly repo: Repository,
    private readonly kind: LockKind,
    private readonly operation: string,
    private readonly opts: LockOptions,
  ) {
    this.ttl = opts.ttlMs ?? lockTtlFromEnv();
    this.now = opts.now ?? Date.now;
  }

  static async acquire(repo: Repository, kind: LockKind, operation: string, opts: LockOptions = {}): Promise<Lock> {
    const lock = new Lock(repo, kind, operation, opts);
    const deadline = lock.now() + (opts.waitMs ?? 0);
    for (;;) {
      await lock.write();
      let conflict: LockDoc | undefined;
      try {
        conflict = await lock.findConflict();
      } catch (err) {
        await lock.remove().catch(() => undefined);
        throw err;
      }
      if (conflict === undefined) break;
      await lock.remove();
      if (lock.now() >= deadline) {
        throw new BulwarkError(
          'LOCK_CONFLICT',
          `repository ${repo.storage.location} is locked ${conflict.kind === 'exclusive' ? 'exclusively ' : ''}by ${conflict.operation} (pid ${conflict.pid} on ${conflict.host}, since ${new Date(conflict.time).toISOString()})`,
          { subject: repo.storage.location, retryable: true, hint: 'wait for that operation to finish; locks of crashed processes expire on their own' },
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const every = opts.refreshMs ?? Math.max(1000, Math.floor(lock.ttl / 5));
    lock.timer = setInterval(() => {
      // One renewal at a time: a slow store must not make two renewals delete the same old lock.
      lock.refreshing ??= lock.refresh().finally(() => (lock.refreshing = undefined));
    }, every);
    lock.timer.unref();
    return lock;
  }

  private async write(): Promise<void> {
    const doc: LockDoc = { kind: this.kind, host: hostname(), pid: process.pid, time: this.now(), operation: this.operation };
    this.name = await putJSON(this.repo.storage, this.repo.keys.enc, 'locks', doc);
  }

  private async remove(): Promise<void> {
    if (this.name === '') return;
    try {
      await this.repo.storage.delete({ kind: 'locks', name: this.name });
    } catch (err) {
      if (!isBulwarkError(err, 'OBJECT_NOT_FOUND')) throw err;
    }
    this.name = '';
  }

  /**
   * Scans all locks for one that conflicts with ours. A lock that vanishes between listing and
   * reading was either released or renewed under a new name that this listing missed, so the scan
   * starts over (a renewal writes the new lock before deleting the old one).
   */
  private async findConflict(): Promise<LockDoc | undefined> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.scanOnce();
      if (r !== 'rescan') return r;
      if (attempt >= 20) return undefined;
    }
  }

  private async scanOnce(): Promise<LockDoc | undefined | 'rescan'> {
    const now = this.now();
    for await (const o of this.repo.storage.list('locks')) {
      if (o.name === this.name) continue;
      let doc: LockDoc;
      try {
        doc = (await getJSON(this.repo.storage, this.repo.keys.enc, 'locks', o.name)) as LockDoc;
      } catch (err) {
        if (isBulwarkError(err, 'OBJECT_NOT_FOUND')) return 'rescan';
        throw err;
      }
      if (isStale(doc, now, this.ttl)) {
        if (this.kind === 'exclusive') await this.repo.storage.delete({ kind: 'locks', name: o.name }).catch(() => undefined);
        continue;
      }
      if (this.kind === 'exclusive' || doc.kind === 'exclusive') return doc;
    }
    return undefined;
  }

  /** Renews the lease: new lock object first, then the old one goes, so the lease never lapses. */
  async refresh(): Promise<void> {
    if (this.released) return;
    const old = this.name;
    try {
      await this.write();
      if (old !== '' && old !== this.name) await this.repo.storage.delete({ kind: 'locks', name: old });
    } catch (err) {
      this.lost ??= err;
    }
  }

  /** Throws if refreshing failed (the lease may have lapsed and another process may hold the lock). */
  assertHeld(): void {
    if (this.lost !== undefined) {
      throw new BulwarkError('LOCK_LOST', `the lock on ${this.repo.storage.location} could not be renewed`, {
        subject: this.repo.storage.location,
        cause: this.lost,
        retryable: true,
      });
    }
  }

  async release(): Promise<void> {
    this.released = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.refreshing !== undefined) await this.refreshing;
    await this.remove();
  }
}
