// bulwark run JOB: run one job of the config now, in the foreground (hooks, every repository,
// retention), recorded in the catalog like a scheduled run.
import { Catalog } from '../../catalog/catalog.js';
import { loadConfig } from '../../config/config.js';
import { runJob } from '../../daemon/job-runner.js';
import { BulwarkError } from '../../errors.js';
import type { Command } from '../command.js';

export const run: Command = {
  name: 'run',
  usage: 'bulwark run JOB [--config FILE]',
  options: {},
  async run(ctx, args) {
    const [name] = args;
    const cfg = loadConfig(ctx.configPath());
    const job = name === undefined ? undefined : cfg.jobs[name];
    if (job === undefined) {
      throw new BulwarkError('JOB_NOT_FOUND', name === undefined ? 'run needs a JOB name' : `no job ${name} in ${cfg.file}`, {
        subject: name ?? '',
        hint: `jobs: ${Object.keys(cfg.jobs).join(', ')}`,
      });
    }
    const catalog = await Catalog.open(cfg.daemon.catalog);
    try {
      const r = await runJob(cfg, job, catalog, { trigger: 'manual', attempt: 1, log: (l) => ctx.progress(l) });
      ctx.result(r, () =>
        r.repositories
          .map((o) => `${job.name} -> ${o.repository}: ${o.status}${o.snapshotId !== undefined ? ` snapshot ${o.snapshotId.slice(0, 8)}` : ''}${o.error !== undefined ? ` [${o.error.code}] ${o.error.message}` : ''}${o.retention !== undefined ? ` (retention: ${o.retention.removed} removed, ${o.retention.kept} kept)` : ''}`)
          .join('\n'),
      );
      return r.ok ? (r.repositories.some((o) => o.status === 'partial') ? 3 : 0) : 1;
    } finally {
      await catalog.close();
    }
  },
};
