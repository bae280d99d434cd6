// bulwark restore: write a snapshot (or part of it) to a directory.
import { restoreSnapshot } from '../../restore/restorer.js';
import { findSnapshot } from '../../snapshot/snapshot.js';
import { BulwarkError } from '../../errors.js';
import { flag, str, strs, type Command } from '../command.js';
import { formatBytes } from '../context.js';

export const restore: Command = {
  name: 'restore',
  usage: 'bulwark restore SNAPSHOT[:SUBPATH] --target DIR [--include P] [--exclude P] [--verify] [--dry-run]',
  options: {
    target: { type: 'string', short: 't' },
    include: { type: 'string', multiple: true, short: 'i' },
    exclude: { type: 'string', multiple: true, short: 'e' },
    verify: { type: 'boolean' },
    'dry-run': { type: 'boolean', short: 'n' },
    host: { type: 'string' },
    threads: { type: 'string' },
  },
  async run(ctx, args, values) {
    const ref = args[0];
    const target = str(values, 'target');
    if (ref === undefined || args.length > 1) throw new BulwarkError('USAGE', 'restore needs exactly one SNAPSHOT', { hint: this.usage });
    if (target === undefined) throw new BulwarkError('USAGE', 'restore needs --target DIR', { hint: this.usage });
    const colon = ref.indexOf(':');
    const id = colon < 0 ? ref : ref.slice(0, colon);
    const subpath = colon < 0 ? '' : ref.slice(colon + 1);
    const repo = await ctx.openRepo();
    const host = str(values, 'host');
    const snap = await findSnapshot(repo, id, host !== undefined ? { host } : {});
    const threads = Number(str(values, 'threads'));
    const r = await restoreSnapshot(repo, snap, {
      target,
      subpath,
      includes: strs(values, 'include'),
      excludes: strs(values, 'exclude'),
      verify: flag(values, 'verify'),
      dryRun: flag(values, 'dry-run'),
      ...(Number.isInteger(threads) && threads > 0 ? { threads } : {}),
      onProgress: (p) => ctx.progress(`${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)}`),
    });
    for (const e of r.errors) ctx.warn(`${e.path}: ${e.message}`);
    ctx.result({ snapshot: snap.id, target, ...r }, () =>
      r.dryRun
        ? `would restore ${r.files} files, ${r.dirs} dirs, ${r.links} links, ${formatBytes(r.bytes)} from snapshot ${snap.id.slice(0, 8)} to ${target}`
        : `restored ${r.files} files, ${r.dirs} dirs, ${r.links} links, ${formatBytes(r.bytes)} from snapshot ${snap.id.slice(0, 8)} to ${target}` +
          (flag(values, 'verify') ? `\nverified ${formatBytes(r.verified)}` : '') +
          (r.errors.length > 0 ? `\n${r.errors.length} error(s)` : ''),
    );
    return r.errors.length > 0 ? 1 : 0;
  },
};
