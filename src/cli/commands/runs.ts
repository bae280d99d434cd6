// bulwark runs: the run history from the catalog, newest first.
import { Catalog, type RunStatus } from '../../catalog/catalog.js';
import { loadConfig } from '../../config/config.js';
import { formatDuration } from '../../config/durations.js';
import { BulwarkError } from '../../errors.js';
import { str, type Command } from '../command.js';
import { formatBytes } from '../context.js';

export const runs: Command = {
  name: 'runs',
  usage: 'bulwark runs [--job JOB] [--status STATUS] [--limit N] [--config FILE]',
  options: { job: { type: 'string' }, status: { type: 'string' }, limit: { type: 'string' } },
  async run(ctx, _args, values) {
    const cfg = loadConfig(ctx.configPath());
    const limit = Number(str(values, 'limit') ?? '50');
    if (!Number.isInteger(limit) || limit < 1) throw new BulwarkError('USAGE', `--limit must be a positive whole number, not ${str(values, 'limit')}`, { subject: '--limit' });
    const catalog = await Catalog.open(cfg.daemon.catalog);
    try {
      const job = str(values, 'job');
      const st = str(values, 'status');
      const list = await catalog.runs({ limit, ...(job !== undefined ? { job } : {}), ...(st !== undefined ? { status: st as RunStatus } : {}) });
      ctx.result(list, () =>
        list
          .map(
            (r) =>
              `${r.id}  ${new Date(r.startedAt).toISOString().replace('T', ' ').slice(0, 19)}  ${r.job.padEnd(16)} ${r.repository.padEnd(10)} ${r.status.padEnd(11)} ${(r.endedAt !== null ? formatDuration(r.endedAt - r.startedAt) : '-').padEnd(8)} ${r.bytesAdded !== null ? `+${formatBytes(r.bytesAdded)}` : ''}${r.snapshotId !== null ? ` ${r.snapshotId.slice(0, 8)}` : ''}${r.errorCode !== null ? ` [${r.errorCode}] ${(r.errorMessage ?? '').split('\n')[0]}` : ''}`,
          )
          .join('\n'),
      );
      return 0;
    } finally {
      await catalog.close();
    }
  },
};
