// Runs one job of the config: hooks, a backup of its source into its first repository and a copy
// of that snapshot into each further one (the source is read once; every repository stays up to
// date), the retention policy after each success, and a catalog row plus a report (JSON and text)
// per repository. Used by the daemon for scheduled runs and by `bulwark run JOB` by hand.
//
// A run that is interrupted (SIGTERM past the grace period, SIGKILL) never leaves a half-written
// snapshot: the snapshot document is written last and atomically by the engine. Its catalog row
// stays 'running' until the next daemon start marks it interrupted.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runBackup } from '../backup/backup.js';
import { runStreamBackup } from '../backup/stream-backup.js';
import type { Catalog, RunEnd } from '../catalog/catalog.js';
import { scrub, type Config, type Hook, type JobConfig, type RepositoryConfig } from '../config/config.js';
import { BulwarkError, isBulwarkError } from '../errors.js';
import { Repository } from '../repo/repository.js';
import type { SnapshotDoc } from '../snapshot/snapshot.js';
import { copySnapshots } from '../copy/copy.js';
import { commandItem } from '../sources/command.js';
import { engineForUrl } from '../sources/engines.js';
import { runTool } from '../sources/process.js';
import { readTokenFile } from '../storage/append-only.js';
import { openStorage } from '../storage/open.js';
import { applyRetention } from './retention-step.js';

export interface JobRunContext {
  trigger: string;
  attempt: number;
  scheduledFor?: number;
  signal?: AbortSignal;
  now?: () => number;
  log?: (line: string) => void;
}

export interface RepoOutcome {
  repository: string;
  runId: string;
  status: 'success' | 'partial' | 'failed';
  snapshotId?: string;
  error?: { code: string; message: string };
  retention?: { removed: number; kept: number; skipped?: string };
}

export interface JobOutcome {
  ok: boolean;
  error?: { code: string; message: string };
  repositories: RepoOutcome[];
}

export async function openConfiguredRepo(r: RepositoryConfig): Promise<Repository> {
  let pw = r.password;
  if (pw === undefined && r.passwordFile !== undefined) {
    try {
      pw = fs.readFileSync(r.passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new BulwarkError('NO_PASSWORD', `cannot read the password file of repository ${r.name}: ${(err as Error).message}`, { subject: r.passwordFile });
    }
  }
  if (pw === undefined || pw === '') throw new BulwarkError('NO_PASSWORD', `repository ${r.name} has no password`, { subject: r.name });
  return Repository.open(openStorage(r.url), pw, r.deleteTokenFile !== undefined ? { deleteToken: readTokenFile(r.deleteTokenFile) } : {});
}

/**
 * Runs a hook command with a timeout; its environment says which job and what happened. The hook
 * runs in its own process group, so the timeout (or the daemon stopping) also ends whatever the
 * hook started (a shell pipeline, a curl).
 */
async function runHook(h: Hook, which: string, env: Record<string, string>, signal?: AbortSignal): Promise<void> {
  const [cmd, ...args] = h.command;
  const stop = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    stop.abort();
  }, h.timeoutMs);
  const onAbort = (): void => stop.abort();
  signal?.addEventListener('abort', onAbort);
  try {
    await runTool(cmd!, args, { env, signal: stop.signal, processGroup: true, what: `${which} hook (${h.command.join(' ').slice(0, 80)})`, failCode: 'HOOK_FAILED' });
  } catch (err) {
    if (timedOut) throw new BulwarkError('HOOK_FAILED', `${which} hook timed out after ${h.timeoutMs} ms and was killed`, { subject: which });
    throw err;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

function summaryOf(doc: SnapshotDoc): Pick<RunEnd, 'bytesRead' | 'bytesAdded' | 'bytesStored' | 'files'> {
  const s = doc.summary;
  return s === undefined ? {} : { bytesRead: s.totalBytesProcessed, bytesAdded: s.dataAdded, bytesStored: s.dataAddedPacked, files: s.totalFilesProcessed };
}

/** One backup of the job's source into one repository. */
async function backupInto(cfg: Config, job: JobConfig, repo: Repository, lockWaitMs: number): Promise<{ id: string; doc: SnapshotDoc; warnings: string[] }> {
  const source = cfg.sources[job.source]!;
  const tags = [...job.tags, `job:${job.name}`];
  if (source.type === 'files') {
    const r = await runBackup(repo, { paths: source.paths, excludes: source.exclude, tags, lockWaitMs });
    return { id: r.id, doc: r.snapshot, warnings: r.warnings.map((w) => `${w.path}: ${w.message}`) };
  }
  if (source.type === 'command') {
    const r = await runStreamBackup(repo, {
      items: [commandItem(source.filename, source.command, scrub(cfg.secrets ?? [], source.command.join(' ')))],
      paths: [`/${source.filename}`],
      tags,
      lockWaitMs,
      source: (items) => ({ engine: 'command', items: items.map((i) => ({ file: i.name, kind: 'stdout', format: 'raw', size: i.size, meta: i.meta })) }),
    });
    return { id: r.id, doc: r.snapshot, warnings: [] };
  }
  const engine = engineForUrl(source.url);
  const plan = await engine.prepareBackup(source.url, { databases: source.databases, excludeTables: source.excludeTables, schemaOnly: source.schemaOnly });
  const r = await runStreamBackup(repo, { items: plan.items, paths: plan.paths, tags: [...plan.tags, ...tags], lockWaitMs, source: plan.describe });
  return { id: r.id, doc: r.snapshot, warnings: [] };
}

export async function runJob(cfg: Config, job: JobConfig, catalog: Catalog, ctx: JobRunContext): Promise<JobOutcome> {
  const now = ctx.now ?? Date.now;
  const log = ctx.log ?? (() => undefined);
  const baseEnv = { BULWARK_JOB: job.name, BULWARK_SOURCE: job.source, BULWARK_TRIGGER: ctx.trigger };
  const outcomes: RepoOutcome[] = [];
  let primary: { repo: Repository; id: string; doc: SnapshotDoc; warnings: string[] } | undefined;
  const opened: Repository[] = [];
  for (const repoName of job.repositories) {
    const started = now();
    const runId = await catalog.startRun({
      job: job.name,
      source: job.source,
      repository: repoName,
      trigger: ctx.trigger,
      attempt: ctx.attempt,
      startedAt: started,
      ...(ctx.scheduledFor !== undefined ? { scheduledFor: ctx.scheduledFor } : {}),
    });
    const env = { ...baseEnv, BULWARK_REPOSITORY: repoName, BULWARK_RUN_ID: runId };
    let end: RunEnd;
    let outcome: RepoOutcome;
    try {
      if (ctx.signal?.aborted === true) throw new BulwarkError('INTERRUPTED', 'the daemon is stopping; the run did not start');
      for (const h of job.hooks.before) await runHook(h, 'before', env, ctx.signal);
      const repo = await openConfiguredRepo(cfg.repositories[repoName]!);
      opened.push(repo);
      let b: { id: string; doc: SnapshotDoc; warnings: string[] };
      const details: Record<string, unknown> = { tier: job.tier };
      if (primary === undefined) {
        b = await backupInto(cfg, job, repo, cfg.daemon.lockWaitMs);
        primary = { repo, id: b.id, doc: b.doc, warnings: b.warnings };
      } else {
        // Further repositories get a copy of the snapshot just taken: the source is read once.
        const c = await copySnapshots(primary.repo, repo, { snapshots: [primary.id], lockWaitMs: cfg.daemon.lockWaitMs });
        const target = c.copied[0]?.target;
        if (target === undefined) throw new BulwarkError('INTERNAL', `copy of snapshot ${primary.id.slice(0, 8)} to ${repoName} produced no snapshot`);
        b = { id: target, doc: primary.doc, warnings: primary.warnings };
        details['copiedFrom'] = { repository: job.repositories[0], snapshot: primary.id, bytesCopied: c.copied[0]?.bytesCopied };
      }
      const status = b.warnings.length > 0 ? 'partial' : 'success';
      outcome = { repository: repoName, runId, status, snapshotId: b.id };
      details['tags'] = b.doc.tags;
      details['paths'] = b.doc.paths;
      // The snapshot is saved: from here on, a failure (retention, an after hook) is a warning on a
      // successful run, not a failed backup (which would trigger retries and false RPO alarms).
      const warnings = [...b.warnings];
      if (job.retention !== null) {
        try {
          const kept = await applyRetention(repo, job, cfg.daemon.lockWaitMs);
          outcome.retention = kept;
          details['retention'] = kept;
        } catch (err) {
          warnings.push(`retention: [${isBulwarkError(err) ? err.code : 'INTERNAL'}] ${(err as Error).message}`);
        }
      }
      for (const h of job.hooks.after) {
        try {
          await runHook(h, 'after', { ...env, BULWARK_STATUS: status, BULWARK_SNAPSHOT: b.id }, ctx.signal);
        } catch (err) {
          warnings.push(`after hook: ${(err as Error).message}`);
        }
      }
      end = { status, endedAt: now(), snapshotId: b.id, warnings, details, ...summaryOf(b.doc) };
    } catch (err) {
      const e = isBulwarkError(err) ? err : new BulwarkError('INTERNAL', err instanceof Error ? err.message : String(err));
      outcome = { repository: repoName, runId, status: 'failed', error: { code: e.code, message: e.message } };
      end = { status: 'failed', endedAt: now(), errorCode: e.code, errorMessage: e.message, details: { tier: job.tier } };
      for (const h of job.hooks.onFailure) {
        try {
          await runHook(h, 'on-failure', { ...env, BULWARK_STATUS: 'failed', BULWARK_ERROR_CODE: e.code, BULWARK_ERROR: e.message.split('\n')[0]! }, ctx.signal);
        } catch (hookErr) {
          end.warnings = [...(end.warnings ?? []), `on-failure hook: ${(hookErr as Error).message}`];
        }
      }
    }
    const secrets = cfg.secrets ?? [];
    if (end.errorMessage !== undefined) end.errorMessage = scrub(secrets, end.errorMessage);
    if (end.warnings !== undefined) end.warnings = end.warnings.map((w) => scrub(secrets, w));
    if (outcome.error !== undefined) outcome.error.message = scrub(secrets, outcome.error.message);
    await catalog.endRun(runId, end);
    writeReport(cfg.daemon.reports, job, repoName, runId, started, end, ctx);
    log(`job=${job.name} repo=${repoName} run=${runId} status=${end.status}${end.snapshotId !== undefined ? ` snapshot=${end.snapshotId.slice(0, 8)}` : ''}${end.errorCode !== undefined ? ` error=${end.errorCode}: ${(end.errorMessage ?? '').split('\n')[0]}` : ''}`);
    outcomes.push(outcome);
  }
  for (const r of opened) await r.storage.close().catch(() => undefined);
  const failed = outcomes.find((o) => o.status === 'failed');
  return failed === undefined ? { ok: true, repositories: outcomes } : { ok: false, error: failed.error!, repositories: outcomes };
}

/** A report per run: `<reports>/<job>/<start>-<run>.json` and `.txt`. */
function writeReport(dir: string, job: JobConfig, repository: string, runId: string, started: number, end: RunEnd, ctx: JobRunContext): void {
  try {
    const d = path.join(dir, job.name);
    fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
    const report = { ...end, runId, job: job.name, source: job.source, repository, tier: job.tier, trigger: ctx.trigger, attempt: ctx.attempt, startedAt: new Date(started).toISOString(), endedAt: new Date(end.endedAt).toISOString(), durationMs: end.endedAt - started };
    fs.writeFileSync(path.join(d, `${stamp}-${runId}.json`), JSON.stringify(report, null, 2) + '\n', { mode: 0o600 });
    const lines = [
      `Bulwark run ${runId}: job ${job.name} (${job.tier}) -> repository ${repository}`,
      `status:    ${end.status}`,
      `trigger:   ${ctx.trigger}, attempt ${ctx.attempt}`,
      `started:   ${report.startedAt}`,
      `ended:     ${report.endedAt} (${((end.endedAt - started) / 1000).toFixed(1)} s)`,
      ...(end.snapshotId !== undefined ? [`snapshot:  ${end.snapshotId}`] : []),
      ...(end.bytesRead !== undefined ? [`read:      ${end.bytesRead} bytes in ${end.files ?? 0} files; added ${end.bytesAdded ?? 0} bytes (${end.bytesStored ?? 0} stored)`] : []),
      ...(end.errorCode !== undefined ? [`error:     ${end.errorCode}: ${end.errorMessage ?? ''}`] : []),
      ...(end.warnings ?? []).map((w) => `warning:   ${w}`),
    ];
    fs.writeFileSync(path.join(d, `${stamp}-${runId}.txt`), lines.join('\n') + '\n', { mode: 0o600 });
  } catch {
    // A report that cannot be written must not fail the backup; the catalog row has the facts.
  }
}
