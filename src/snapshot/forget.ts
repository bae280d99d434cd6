// forget: remove snapshot documents chosen by a retention policy (or by ID), then optionally prune.
// The policy is applied to an unlocked listing; the deletions run under the exclusive lock, held
// only for them (see docs/design.md, "Retention").
import { BulwarkError } from '../errors.js';
import { acquireExclusive, assertMayDelete, deleteObjects } from '../repo/deletion.js';
import { runPrune, type PruneOptions, type PruneResult } from '../repo/prune.js';
import type { Repository } from '../repo/repository.js';
import { applyPolicy, policyIsEmpty, type GroupField, type PolicyGroup, type RetentionPolicy } from './retention.js';
import { findSnapshot, listSnapshots, matches, type Snapshot, type SnapshotFilter } from './snapshot.js';

export interface ForgetOptions {
  /** Remove exactly these snapshots (IDs or unique prefixes) instead of applying a policy. */
  ids?: string[];
  /** Only snapshots matching the filter are considered. */
  filter?: SnapshotFilter;
  groupBy?: readonly GroupField[];
  dryRun?: boolean;
  /** Prune afterwards if any snapshot was removed (true, or prune's options). */
  prune?: boolean | PruneOptions;
  /** How long to wait for running backups before deleting (default 30 minutes). */
  lockWaitMs?: number;
  now?: Date;
}

export interface ForgetResult {
  dryRun: boolean;
  /** True when the policy keeps nothing by itself: then nothing is removed (restic's rule). */
  policyEmpty: boolean;
  groups: PolicyGroup[];
  /** IDs of removed snapshots (planned ones for a dry run). */
  removed: string[];
  kept: number;
  prune?: PruneResult;
  durationMs: number;
}

export const EMPTY_POLICY_MESSAGE = 'no policy was specified, no snapshots will be removed';

export async function runForget(repo: Repository, policy: RetentionPolicy, opts: ForgetOptions = {}): Promise<ForgetResult> {
  const started = Date.now();
  const ids = opts.ids ?? [];
  const empty = policyIsEmpty(policy);
  if (opts.dryRun !== true && (ids.length > 0 || !empty)) assertMayDelete(repo, 'forget');
  if (ids.length > 0 && !empty) {
    throw new BulwarkError('USAGE', 'give either snapshot IDs or a --keep-* policy, not both', { hint: 'bulwark forget ID... | bulwark forget --keep-daily 7 ...' });
  }
  let groups: PolicyGroup[] = [];
  let toRemove: Snapshot[] = [];
  if (ids.length > 0) {
    const seen = new Set<string>();
    for (const ref of ids) {
      const s = await findSnapshot(repo, ref);
      if (!seen.has(s.id)) toRemove.push(s);
      seen.add(s.id);
    }
    groups = [{ key: 'explicit', keep: [], remove: toRemove }];
  } else if (!empty) {
    const all = (await listSnapshots(repo)).filter((s) => matches(s, opts.filter ?? {}));
    groups = applyPolicy(all, policy, { ...(opts.groupBy !== undefined ? { groupBy: opts.groupBy } : {}), ...(opts.now !== undefined ? { now: opts.now } : {}) }).groups;
    toRemove = groups.flatMap((g) => g.remove);
  }
  const result: ForgetResult = {
    dryRun: opts.dryRun === true,
    policyEmpty: ids.length === 0 && empty,
    groups,
    removed: toRemove.map((s) => s.id),
    kept: groups.reduce((n, g) => n + g.keep.length, 0),
    durationMs: 0,
  };
  if (opts.dryRun !== true && toRemove.length > 0) {
    const lock = await acquireExclusive(repo, 'forget', opts.lockWaitMs ?? 30 * 60_000);
    try {
      lock.assertHeld();
      await deleteObjects(repo, 'snapshots', result.removed);
    } finally {
      await lock.release();
    }
  }
  // A dry run does not prune: prune's plan depends on snapshots actually being gone.
  if (opts.prune !== undefined && opts.prune !== false && toRemove.length > 0 && opts.dryRun !== true) {
    result.prune = await runPrune(repo, opts.prune === true ? {} : opts.prune);
  }
  result.durationMs = Date.now() - started;
  return result;
}
