// bulwark forget: remove snapshots by ID or by a retention policy (restic's flags), optionally prune.
import { BulwarkError } from '../../errors.js';
import { loadConfig } from '../../config/config.js';
import { parseMaxUnused, runPrune } from '../../repo/prune.js';
import { EMPTY_POLICY_MESSAGE, runForget } from '../../snapshot/forget.js';
import { parseGroupBy, parseDuration, type RetentionPolicy } from '../../snapshot/retention.js';
import { flag, str, strs, type Command, type Values } from '../command.js';
import type { Context } from '../context.js';
import { pruneText } from './prune.js';

function count(values: Values, key: string): number | undefined {
  const v = str(values, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^-?\d+$/.test(v.trim()) || n < -1) {
    throw new BulwarkError('USAGE', `--${key} ${JSON.stringify(v)} is not a count (a whole number, or -1 for unlimited)`, { subject: `--${key}` });
  }
  return n;
}

export function policyFromFlags(values: Values): RetentionPolicy {
  const p: RetentionPolicy = {};
  const set = (k: 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly'): void => {
    const n = count(values, `keep-${k}`);
    if (n !== undefined) p[k] = n;
  };
  for (const k of ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) set(k);
  const within = str(values, 'keep-within');
  if (within !== undefined) {
    parseDuration(within);
    p.within = within;
  }
  const tags = strs(values, 'keep-tag');
  if (tags.length > 0) p.tags = tags;
  return p;
}

export const forget: Command = {
  name: 'forget',
  usage:
    'bulwark forget [SNAPSHOT...] [--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-yearly N]\n' +
    '       [--keep-within DURATION] [--keep-tag T] [--host H] [--tag T] [--path P] [--group-by host,paths,tags] [--dry-run] [--prune] [--max-unused X]\n' +
    '       bulwark forget --policy-from-config [--config FILE] [--job JOB] [--dry-run] [--prune] [--max-unused X]',
  options: {
    'keep-last': { type: 'string' },
    'keep-hourly': { type: 'string' },
    'keep-daily': { type: 'string' },
    'keep-weekly': { type: 'string' },
    'keep-monthly': { type: 'string' },
    'keep-yearly': { type: 'string' },
    'keep-within': { type: 'string' },
    'keep-tag': { type: 'string', multiple: true },
    host: { type: 'string' },
    tag: { type: 'string', multiple: true },
    path: { type: 'string', multiple: true },
    'group-by': { type: 'string' },
    'dry-run': { type: 'boolean', short: 'n' },
    prune: { type: 'boolean' },
    'max-unused': { type: 'string' },
    'policy-from-config': { type: 'boolean' },
    job: { type: 'string' },
  },
  async run(ctx, args, values) {
    if (flag(values, 'policy-from-config')) return forgetByConfig(ctx, args, values);
    const policy = policyFromFlags(values);
    const groupByArg = str(values, 'group-by');
    const groupBy = groupByArg === undefined ? undefined : parseGroupBy(groupByArg);
    const maxUnusedArg = str(values, 'max-unused');
    const maxUnused = maxUnusedArg === undefined ? undefined : parseMaxUnused(maxUnusedArg);
    const host = str(values, 'host');
    const dryRun = flag(values, 'dry-run');
    const repo = await ctx.openRepo();
    const r = await runForget(repo, policy, {
      ids: args,
      filter: { ...(host !== undefined ? { host } : {}), tags: strs(values, 'tag').flatMap((t) => t.split(',')).filter((t) => t !== ''), paths: strs(values, 'path') },
      ...(groupBy !== undefined ? { groupBy } : {}),
      dryRun,
      ...(flag(values, 'prune') ? { prune: maxUnused !== undefined ? { maxUnused, onProgress: (m: string) => ctx.progress(m) } : { onProgress: (m: string) => ctx.progress(m) } } : {}),
    });
    if (r.policyEmpty) ctx.warn(EMPTY_POLICY_MESSAGE);
    const json = {
      dryRun: r.dryRun,
      policyEmpty: r.policyEmpty,
      groups: r.groups.map((g) => ({
        key: g.key,
        ...(g.host !== undefined ? { host: g.host } : {}),
        ...(g.paths !== undefined ? { paths: g.paths } : {}),
        ...(g.tags !== undefined ? { tags: g.tags } : {}),
        keep: g.keep.map((k) => ({ id: k.snapshot.id, time: k.snapshot.time, reasons: k.reasons })),
        remove: g.remove.map((s) => ({ id: s.id, time: s.time })),
      })),
      removed: r.removed,
      kept: r.kept,
      ...(r.prune !== undefined ? { prune: r.prune } : {}),
      durationMs: r.durationMs,
    };
    ctx.result(json, () => {
      if (r.policyEmpty) return '';
      const lines: string[] = [];
      for (const g of r.groups) {
        lines.push(`snapshots for ${g.key}:`);
        if (g.keep.length > 0) {
          lines.push(`keep ${g.keep.length} snapshot(s):`);
          for (const k of g.keep) lines.push(`  ${k.snapshot.id.slice(0, 8)}  ${k.snapshot.time.replace('T', ' ').slice(0, 19)}  ${k.reasons.join(', ')}`);
        }
        if (g.remove.length > 0) {
          lines.push(`remove ${g.remove.length} snapshot(s):`);
          for (const s of g.remove) lines.push(`  ${s.id.slice(0, 8)}  ${s.time.replace('T', ' ').slice(0, 19)}`);
        }
        lines.push('');
      }
      lines.push(r.dryRun ? `would remove ${r.removed.length} snapshot(s) (dry run, nothing changed)` : `removed ${r.removed.length} snapshot(s)`);
      if (r.prune !== undefined) lines.push('', ...pruneText(r.prune));
      return lines.join('\n');
    });
    return 0;
  },
};

/**
 * --policy-from-config: each job's retention policy (its own, the config default, or GFS) applied to
 * that job's snapshots (tag job:NAME) in this repository, as the daemon does after each backup;
 * then one prune if asked.
 */
async function forgetByConfig(ctx: Context, args: string[], values: Values): Promise<number> {
  if (args.length > 0 || Object.keys(policyFromFlags(values)).length > 0) {
    throw new BulwarkError('USAGE', '--policy-from-config takes neither snapshot IDs nor --keep-* flags', { subject: '--policy-from-config' });
  }
  const cfg = loadConfig(ctx.configPath());
  const only = str(values, 'job');
  if (only !== undefined && cfg.jobs[only] === undefined) {
    throw new BulwarkError('JOB_NOT_FOUND', `no job ${only} in ${cfg.file}`, { subject: only, hint: `jobs: ${Object.keys(cfg.jobs).join(', ')}` });
  }
  const dryRun = flag(values, 'dry-run');
  const repo = await ctx.openRepo();
  const jobs = Object.values(cfg.jobs).filter((j) => (only === undefined || j.name === only) && j.retention !== null);
  const results: Array<{ job: string; removed: string[]; kept: number; groups: Array<{ key: string; keep: Array<{ id: string; reasons: string[] }>; remove: string[] }> }> = [];
  for (const j of jobs) {
    const r = await runForget(repo, j.retention!, { filter: { tags: [`job:${j.name}`] }, dryRun });
    results.push({
      job: j.name,
      removed: r.removed,
      kept: r.kept,
      groups: r.groups.map((g) => ({ key: g.key, keep: g.keep.map((k) => ({ id: k.snapshot.id, reasons: k.reasons })), remove: g.remove.map((s) => s.id) })),
    });
  }
  const removed = results.reduce((n, r) => n + r.removed.length, 0);
  const maxUnusedArg = str(values, 'max-unused');
  const prune = flag(values, 'prune') && !dryRun && removed > 0 ? await runPrune(repo, maxUnusedArg !== undefined ? { maxUnused: parseMaxUnused(maxUnusedArg) } : {}) : undefined;
  ctx.result({ dryRun, jobs: results, removed, ...(prune !== undefined ? { prune } : {}) }, () =>
    [
      ...results.flatMap((r) => [
        `job ${r.job}: keep ${r.kept}, ${dryRun ? 'would remove' : 'removed'} ${r.removed.length}`,
        ...r.groups.flatMap((g) => g.keep.map((k) => `  keep   ${k.id.slice(0, 8)}  ${k.reasons.join(', ')}`).concat(g.remove.map((id) => `  remove ${id.slice(0, 8)}`))),
      ]),
      ...(prune !== undefined ? ['', ...pruneText(prune)] : []),
    ].join('\n'),
  );
  return 0;
}
