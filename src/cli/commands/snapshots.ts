// bulwark snapshots: list snapshots, oldest first.
import type { BulwarkError } from '../../errors.js';
import { listSnapshots, matches } from '../../snapshot/snapshot.js';
import { str, strs, type Command } from '../command.js';

export const snapshots: Command = {
  name: 'snapshots',
  usage: 'bulwark snapshots [--host H] [--tag T] [--path P]',
  options: { host: { type: 'string' }, tag: { type: 'string', multiple: true }, path: { type: 'string', multiple: true } },
  async run(ctx, _args, values) {
    const repo = await ctx.openRepo();
    const host = str(values, 'host');
    const damaged: BulwarkError[] = [];
    const list = (await listSnapshots(repo, damaged)).filter((s) =>
      matches(s, { ...(host !== undefined ? { host } : {}), tags: strs(values, 'tag'), paths: strs(values, 'path') }),
    );
    for (const d of damaged) ctx.warn(`${d.message} (left out)`);
    ctx.result(list, () => {
      const rows = list.map((s) => `${s.id.slice(0, 8)}  ${s.time.replace('T', ' ').slice(0, 19)}  ${s.host.padEnd(12)}  ${s.tags.join(',').padEnd(10)}  ${s.paths.join(' ')}`);
      return [`ID        Time                 Host          Tags        Paths`, ...rows, `${list.length} snapshot(s)`].join('\n');
    });
    return 0;
  },
};
