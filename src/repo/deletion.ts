// The one place where repository content is deleted (snapshot documents, index files, packs).
// forget and prune go through here, and here an append-only repository refuses them (the storage
// wrapper in storage/append-only.ts refuses again below).
// Lock objects are not repository content: their lifecycle stays in lock.ts.
//
// Also here: taking the exclusive lock politely. While other operations hold locks we only read
// the lock list, without writing a lock of our own, so backups starting meanwhile are not turned
// away by a lock we would have removed a moment later anyway.
import { BulwarkError, isBulwarkError } from '../errors.js';
import { APPEND_ONLY_HINT } from '../storage/append-only.js';
import { isStale, Lock, lockTtlFromEnv, type LockDoc } from './lock.js';
import { getJSON } from './objects.js';
import { mapLimit } from '../concurrency.js';
import type { Repository } from './repository.js';

export type DeletableKind = 'snapshots' | 'index' | 'data';

export interface DeleteOptions {
  concurrency?: number;
  /** Called after each object is gone (or was already gone). */
  onDeleted?: (name: string) => void;
}

/**
 * Refuses (APPEND_ONLY) when this Repository may not delete: an append-only repository opened
 * without its delete token. forget and prune call it before doing any work; deleteObjects again.
 */
export function assertMayDelete(repo: Repository, operation: string): void {
  if (repo.appendOnly) {
    throw new BulwarkError('APPEND_ONLY', `${operation} deletes from ${repo.storage.location}, which is append-only`, { subject: repo.storage.location, hint: APPEND_ONLY_HINT });
  }
}

/**
 * Deletes objects of one kind. An object that is already gone counts as deleted (a re-run after a
 * crash). The first other failure stops further deletions and is thrown.
 */
export async function deleteObjects(repo: Repository, kind: DeletableKind, names: readonly string[], opts: DeleteOptions = {}): Promise<number> {
  if (names.length > 0) assertMayDelete(repo, `deleting ${kind}`);
  let deleted = 0;
  let failure: unknown;
  await mapLimit(names, opts.concurrency ?? 4, async (name) => {
    if (failure !== undefined) return;
    try {
      await repo.storage.delete({ kind, name });
    } catch (err) {
      if (!isBulwarkError(err, 'OBJECT_NOT_FOUND')) {
        failure ??= err;
        return;
      }
    }
    deleted++;
    opts.onDeleted?.(name);
  });
  if (failure !== undefined) throw failure;
  return deleted;
}

/** Locks that are live now (not stale), other than `except`. */
async function liveLocks(repo: Repository): Promise<LockDoc[]> {
  const ttl = lockTtlFromEnv();
  const now = Date.now();
  const out: LockDoc[] = [];
  for await (const o of repo.storage.list('locks')) {
    try {
      const doc = (await getJSON(repo.storage, repo.keys.enc, 'locks', o.name)) as LockDoc;
      if (!isStale(doc, now, ttl)) out.push(doc);
    } catch (err) {
      if (!isBulwarkError(err, 'OBJECT_NOT_FOUND')) throw err;
    }
  }
  return out;
}

/**
 * Takes the exclusive lock, waiting up to `waitMs` for other locks (running backups) to go away.
 * Fails with LOCK_CONFLICT when the wait runs out.
 */
export async function acquireExclusive(repo: Repository, operation: string, waitMs: number, pollMs = 250): Promise<Lock> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const live = Date.now() < deadline ? await liveLocks(repo) : [];
    if (live.length === 0) {
      try {
        return await Lock.acquire(repo, 'exclusive', operation);
      } catch (err) {
        if (!isBulwarkError(err, 'LOCK_CONFLICT') || Date.now() >= deadline) throw err;
      }
    }
    if (Date.now() >= deadline) {
      const l = live[0]!;
      throw new BulwarkError('LOCK_CONFLICT', `repository ${repo.storage.location} is still locked by ${l.operation} (pid ${l.pid} on ${l.host}) after waiting ${Math.round(waitMs / 1000)} s`, {
        subject: repo.storage.location,
        retryable: true,
        hint: 'wait for that operation to finish; locks of crashed processes expire on their own',
      });
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
