// bulwark status: per job, the last successful backup (in every repository), its age against the
// tier's RPO, the next scheduled run, and recent failures; from the config and the run catalog.
import { Catalog } from '../../catalog/catalog.js';
import { loadConfig } from '../../config/config.js';
import { formatDuration } from '../../config/durations.js';
import { nextRun } from '../../daemon/cron.js';
import type { Command } from '../command.js';

export interface JobStatus {
  job: string;
  tier: string;
  rpoMs: number;
  rtoMs: number;
  repositories: Array<{ repository: string; lastSuccess: string | null }>;
  /** The oldest of the per-repository last successes: every copy is at least this fresh. */
  lastSuccess: string | null;
  ageMs: number | null;
  rpoCompliant: boolean;
  nextRun: string | null;
  consecutiveFailures: number;
  failuresLast24h: number;
  lastRun: { status: string; startedAt: string; errorCode: string | null; errorMessage: string | null } | null;
}

export const status: Command = {
  name: 'status',
  usage: 'bulwark status [--config FILE]',
  options: {},
  async run(ctx) {
    const cfg = loadConfig(ctx.configPath());
    const catalog = await Catalog.open(cfg.daemon.catalog);
    const now = Date.now();
    const out: JobStatus[] = [];
    try {
      for (const job of Object.values(cfg.jobs)) {
        const last = await catalog.lastSuccess(job.name);
        const repos = job.repositories.map((r) => ({ repository: r, lastSuccess: last.has(r) ? new Date(last.get(r)!).toISOString() : null }));
        const oldest = repos.some((r) => r.lastSuccess === null) ? null : Math.min(...job.repositories.map((r) => last.get(r)!));
        const fails = await catalog.failureCounts(job.name, now - 86_400_000);
        const [lastRun] = await catalog.runs({ job: job.name, limit: 1 });
        const next = job.schedule !== undefined ? nextRun(job.schedule, new Date(now), job.timezone) : undefined;
        out.push({
          job: job.name,
          tier: job.tier,
          rpoMs: job.rpoMs,
          rtoMs: job.rtoMs,
          repositories: repos,
          lastSuccess: oldest === null ? null : new Date(oldest).toISOString(),
          ageMs: oldest === null ? null : now - oldest,
          rpoCompliant: oldest !== null && now - oldest <= job.rpoMs,
          nextRun: next === undefined ? null : next.toISOString(),
          consecutiveFailures: fails.consecutive,
          failuresLast24h: fails.recent,
          lastRun: lastRun === undefined ? null : { status: lastRun.status, startedAt: new Date(lastRun.startedAt).toISOString(), errorCode: lastRun.errorCode, errorMessage: lastRun.errorMessage },
        });
      }
    } finally {
      await catalog.close();
    }
    ctx.result(out, () =>
      [
        `${'JOB'.padEnd(20)} ${'TIER'.padEnd(10)} ${'LAST SUCCESS'.padEnd(20)} ${'AGE'.padEnd(10)} ${'RPO'.padEnd(8)} ${'OK'.padEnd(4)} ${'NEXT RUN'.padEnd(20)} FAILS`,
        ...out.map(
          (s) =>
            `${s.job.padEnd(20)} ${s.tier.padEnd(10)} ${(s.lastSuccess?.replace('T', ' ').slice(0, 19) ?? 'never').padEnd(20)} ${(s.ageMs === null ? '-' : formatDuration(s.ageMs)).padEnd(10)} ${formatDuration(s.rpoMs).padEnd(8)} ${(s.rpoCompliant ? 'yes' : 'NO').padEnd(4)} ${(s.nextRun?.replace('T', ' ').slice(0, 19) ?? 'after deps').padEnd(20)} ${s.consecutiveFailures}${s.lastRun?.errorCode ? ` (${s.lastRun.errorCode})` : ''}`,
        ),
      ].join('\n'),
    );
    return 0;
  },
};
