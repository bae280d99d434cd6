// Retention after a successful backup (the job's policy over the job's own snapshots in one
// repository), and the scheduled prune that reclaims the space (the one run that needs the
// repository to itself; the scheduler keeps backups of that repository waiting meanwhile).
import type { Catalog } from '../catalog/catalog.js';
import type { Config, JobConfig } from '../config/config.js';
import { BulwarkError, isBulwarkError } from '../errors.js';
import { parseMaxUnused, runPrune } from '../repo/prune.js';
import type { Repository } from '../repo/repository.js';
import { runForget } from '../snapshot/forget.js';
import { openConfiguredRepo, type JobRunContext } from './job-runner.js';

export async function applyRetention(repo: Repository, job: JobConfig, lockWaitMs: number): Promise<{ removed: number; kept: number; skipped?: string }> {
  if (job.retention === null) return { removed: 0, kept: 0 };
  // An append-only repository keeps everything unless the config holds its delete token.
  if (repo.appendOnly) return { removed: 0, kept: 0, skipped: 'append-only repository without its delete token' };
  const r = await runForget(repo, job.retention, { filter: { tags: [`job:${job.name}`] }, lockWaitMs });
  return { removed: r.removed.length, kept: r.kept };
}

export async function runPruneJob(cfg: Config, repoName: string, catalog: Catalog, ctx: JobRunContext): Promise<{ ok: boolean; error?: { code: string; message: string } }> {
  const now = ctx.now ?? Date.now;
  const started = now();
  const runId = await catalog.startRun({
    job: `prune:${repoName}`,
    kind: 'prune',
    source: '-',
    repository: repoName,
    trigger: ctx.trigger,
    attempt: ctx.attempt,
    startedAt: started,
    ...(ctx.scheduledFor !== undefined ? { scheduledFor: ctx.scheduledFor } : {}),
  });
  try {
    const repoCfg = cfg.repositories[repoName];
    if (repoCfg === undefined) throw new BulwarkError('CONFIG_INVALID', `repository ${repoName} is no longer in the config`, { subject: repoName });
    const repo = await openConfiguredRepo(repoCfg);
    if (repo.appendOnly) {
      throw new BulwarkError('APPEND_ONLY', `repository ${repoName} is append-only and the config holds no delete token for it: nothing is pruned`, {
        subject: repoName,
        hint: 'set repositories.NAME.delete-token-file, or turn the prune off (daemon.prune: false)',
      });
    }
    const r = await runPrune(repo, { maxUnused: parseMaxUnused(cfg.daemon.prune?.maxUnused ?? '5%'), lockWaitMs: cfg.daemon.lockWaitMs }).finally(() => repo.storage.close().catch(() => undefined));
    await catalog.endRun(runId, { status: 'success', endedAt: now(), details: { packs: r.packs, blobs: r.blobs, bytes: r.bytes } });
    ctx.log?.(`job=prune:${repoName} run=${runId} status=success packs deleted=${r.packs.deleted} repacked=${r.packs.repacked}`);
    return { ok: true };
  } catch (err) {
    const e = isBulwarkError(err) ? err : new BulwarkError('INTERNAL', err instanceof Error ? err.message : String(err));
    await catalog.endRun(runId, { status: 'failed', endedAt: now(), errorCode: e.code, errorMessage: e.message });
    ctx.log?.(`job=prune:${repoName} run=${runId} status=failed error=${e.code}: ${e.message.split('\n')[0]}`);
    return { ok: false, error: { code: e.code, message: e.message } };
  }
}
