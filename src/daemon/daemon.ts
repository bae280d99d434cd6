// `bulwark daemon`: loads the config, opens the run catalog, marks runs that a previous daemon left
// unfinished as interrupted, and hands the jobs to the scheduler: one scheduled job per config job
// (backup into each of its repositories, then retention), plus one prune job per repository that
// needs the repository to itself. SIGHUP reloads the config (a bad file is reported and the running
// config kept); SIGTERM/SIGINT stop cleanly: nothing new starts, running jobs get a grace period,
// and a job still running after it is abandoned without a snapshot (snapshots are written last,
// atomically) and recorded as interrupted.
import { Catalog } from '../catalog/catalog.js';
import { loadConfig, type Config, type JobConfig } from '../config/config.js';
import { isBulwarkError } from '../errors.js';
import { processAlive } from '../repo/lock.js';
import { runJob } from './job-runner.js';
import { runPruneJob } from './retention-step.js';
import { Scheduler } from './scheduler.js';
import type { Clock } from './scheduler-clock.js';
import type { JobSpec, LastRunStore, RunContext, RunOutcome, SchedulerEvent } from './scheduler-config.js';

export const PRUNE_PREFIX = 'prune:';

export interface DaemonOptions {
  configPath: string;
  log?: (line: string) => void;
  clock?: Clock;
}

/** The scheduler's view of the config: backup jobs and per-repository prune jobs. */
export function schedulerJobs(cfg: Config): JobSpec[] {
  const specs: JobSpec[] = Object.values(cfg.jobs).map((j: JobConfig) => {
    const s: JobSpec = {
      name: j.name,
      dependsOn: j.dependsOn,
      repositories: j.repositories,
      priority: j.priority,
      retries: j.retries,
      catchUp: j.catchUp,
      lockWaitMs: cfg.daemon.lockWaitMs,
    };
    if (j.schedule !== undefined) s.schedule = j.schedule;
    if (j.timezone !== undefined) s.timezone = j.timezone;
    return s;
  });
  const prune = cfg.daemon.prune;
  if (prune !== null) {
    const used = new Set(Object.values(cfg.jobs).flatMap((j) => j.repositories));
    for (const repo of used) {
      specs.push({
        name: `${PRUNE_PREFIX}${repo}`,
        schedule: prune.schedule,
        ...(prune.timezone !== undefined ? { timezone: prune.timezone } : {}),
        repositories: [repo],
        exclusiveRepositories: true,
        priority: 10,
        catchUp: false,
        lockWaitMs: cfg.daemon.lockWaitMs,
        retries: { max: 1, initialDelayMs: 600_000, maxDelayMs: 600_000 },
      });
    }
  }
  return specs;
}

/** The catalog as the scheduler's synchronous store: read once at start, written through. */
class CatalogStore implements LastRunStore {
  constructor(
    private readonly catalog: Catalog,
    private readonly cache: Map<string, number>,
    private readonly log: (l: string) => void,
  ) {}
  lastScheduled(job: string): Date | undefined {
    const t = this.cache.get(job);
    return t === undefined ? undefined : new Date(t);
  }
  recordScheduled(job: string, at: Date): void {
    this.cache.set(job, at.getTime());
    this.catalog.recordScheduled(job, at.getTime()).catch((err: unknown) => this.log(`catalog: cannot record schedule of ${job}: ${(err as Error).message}`));
  }
}

export class Daemon {
  private cfg: Config;
  private catalog: Catalog | undefined;
  private scheduler: Scheduler | undefined;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: DaemonOptions) {
    this.log = opts.log ?? ((l) => process.stdout.write(`${new Date().toISOString()} ${l}\n`));
    this.cfg = loadConfig(opts.configPath);
  }

  get config(): Config {
    return this.cfg;
  }

  async start(): Promise<void> {
    this.catalog = await Catalog.open(this.cfg.daemon.catalog);
    const n = await this.catalog.failInterrupted(Date.now(), processAlive);
    if (n > 0) this.log(`marked ${n} run(s) of an earlier daemon as interrupted`);
    const store = new CatalogStore(this.catalog, await this.catalog.allLastScheduled(), this.log);
    this.scheduler = new Scheduler({
      jobs: schedulerJobs(this.cfg),
      run: (spec, ctx) => this.execute(spec, ctx),
      concurrency: this.cfg.daemon.concurrency,
      store,
      onEvent: (e) => this.onEvent(e),
      ...(this.opts.clock !== undefined ? { clock: this.opts.clock } : {}),
    });
    await this.scheduler.start();
    this.log(`daemon started: ${Object.keys(this.cfg.jobs).length} job(s) from ${this.cfg.file}; catalog ${this.catalog.location}`);
  }

  private async execute(spec: JobSpec, ctx: RunContext): Promise<RunOutcome> {
    const catalog = this.catalog!;
    const cfg = this.cfg;
    const runCtx = { trigger: ctx.reason, attempt: ctx.attempt, scheduledFor: ctx.scheduledFor.getTime(), signal: ctx.signal, log: this.log };
    try {
      if (spec.name.startsWith(PRUNE_PREFIX)) return await runPruneJob(cfg, spec.name.slice(PRUNE_PREFIX.length), catalog, runCtx);
      const job = cfg.jobs[spec.name];
      if (job === undefined) return { ok: false, error: { code: 'CONFIG_INVALID', message: `job ${spec.name} is no longer in the config` } };
      const r = await runJob(cfg, job, catalog, runCtx);
      return r.error !== undefined ? { ok: r.ok, error: r.error } : { ok: r.ok };
    } catch (err) {
      return { ok: false, error: { code: isBulwarkError(err) ? err.code : 'INTERNAL', message: err instanceof Error ? err.message : String(err) } };
    }
  }

  private onEvent(e: SchedulerEvent): void {
    switch (e.type) {
      case 'scheduled':
        this.log(`job=${e.job} next=${e.next.toISOString()}`);
        break;
      case 'started':
        this.log(`job=${e.job} started (${e.reason}, attempt ${e.attempt})`);
        break;
      case 'queued':
        this.log(`job=${e.job} waiting (${e.waitingFor})`);
        break;
      case 'coalesced':
        this.log(`job=${e.job} still running: one more run queued`);
        break;
      case 'retry-scheduled':
        this.log(`job=${e.job} failed (${e.error?.code ?? 'unknown'}); retry ${e.attempt} at ${e.retryAt.toISOString()}`);
        break;
      case 'store-failed':
        this.log(`catalog: could not record the schedule of ${e.job}`);
        break;
      case 'skipped':
        this.log(`job=${e.job} skipped: ${e.outcome.error?.code ?? ''} ${e.outcome.error?.message ?? ''}`);
        break;
      case 'finished':
        this.log(`job=${e.job} finished ${e.outcome.ok ? 'ok' : `failed (${e.outcome.error?.code ?? 'unknown'})`} in ${(e.durationMs / 1000).toFixed(1)} s`);
        break;
    }
  }

  /** Re-reads the config; a config that does not validate is reported and the running one kept. */
  reload(): boolean {
    let next: Config;
    try {
      next = loadConfig(this.opts.configPath);
    } catch (err) {
      this.log(`reload refused, keeping the running config: ${(err as Error).message}`);
      return false;
    }
    try {
      this.scheduler?.reload(schedulerJobs(next));
    } catch (err) {
      this.log(`reload refused, keeping the running config: ${(err as Error).message}`);
      return false;
    }
    const restartOnly = (['concurrency', 'catalog'] as const).filter((k) => next.daemon[k] !== this.cfg.daemon[k]);
    this.cfg = next;
    this.log(`config reloaded: ${Object.keys(next.jobs).length} job(s)${restartOnly.length > 0 ? `; daemon.${restartOnly.join(' and daemon.')} change(s) take effect at the next restart` : ''}`);
    return true;
  }

  /**
   * Stops the scheduler; running jobs get `stopGraceMs` to finish. Returns whether they all did
   * (if not, the caller exits and the next start marks them interrupted).
   */
  async stop(): Promise<boolean> {
    const s = this.scheduler;
    let settled = true;
    if (s !== undefined) {
      const grace = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), this.cfg.daemon.stopGraceMs).unref());
      settled = (await Promise.race([s.stop().then(() => 'done' as const), grace])) === 'done';
    }
    if (settled) await this.catalog?.close();
    this.log(settled ? 'daemon stopped' : `daemon stopping with run(s) still in progress after ${this.cfg.daemon.stopGraceMs} ms; they are recorded as interrupted at the next start`);
    return settled;
  }
}
