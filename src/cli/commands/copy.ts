// bulwark copy: copy snapshots from another repository (other keys, other backend), storing only
// the blobs the target lacks. The source password comes from --from-password-file,
// BULWARK_FROM_PASSWORD_FILE or BULWARK_FROM_PASSWORD; the target is --to-repo, else --repo.
import { copySnapshots } from '../../copy/copy.js';
import { BulwarkError } from '../../errors.js';
import { Repository } from '../../repo/repository.js';
import { openStorage } from '../../storage/open.js';
import { flag, str, strs, type Command } from '../command.js';
import { formatBytes } from '../context.js';

export const copy: Command = {
  name: 'copy',
  usage: 'bulwark copy --from-repo LOCATION [--to-repo LOCATION] [--from-password-file FILE] [--host H] [--tag T] [--path P] [--dry-run] [SNAPSHOT...]',
  options: {
    'from-repo': { type: 'string' },
    'to-repo': { type: 'string' },
    'from-password-file': { type: 'string' },
    host: { type: 'string' },
    tag: { type: 'string', multiple: true },
    path: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean', short: 'n' },
  },
  async run(ctx, args, values) {
    const from = str(values, 'from-repo') ?? ctx.env['BULWARK_FROM_REPO'];
    if (from === undefined || from === '') throw new BulwarkError('USAGE', 'copy needs --from-repo LOCATION (or BULWARK_FROM_REPO)', { hint: this.usage });
    const to = str(values, 'to-repo');
    const dst = to !== undefined ? await Repository.open(openStorage(to), ctx.password()) : await ctx.openRepo();
    const src = await Repository.open(openStorage(from), ctx.fromPassword(str(values, 'from-password-file')));
    const host = str(values, 'host');
    const tags = strs(values, 'tag');
    const paths = strs(values, 'path');
    const r = await copySnapshots(src, dst, {
      snapshots: args,
      filter: { ...(host !== undefined ? { host } : {}), ...(tags.length > 0 ? { tags } : {}), ...(paths.length > 0 ? { paths } : {}) },
      dryRun: flag(values, 'dry-run'),
      onProgress: (m) => ctx.progress(m),
    });
    ctx.result(r, () =>
      [
        ...r.alreadyPresent.map((id) => `snapshot ${id.slice(0, 8)} is already in the target`),
        ...(r.dryRun ? r.planned.map((id) => `would copy snapshot ${id.slice(0, 8)}`) : []),
        ...r.copied.map((c) => `snapshot ${c.source.slice(0, 8)} copied to ${c.target.slice(0, 8)}: ${c.blobsCopied} blobs (${formatBytes(c.bytesCopied)}) stored, ${c.blobsSkipped} already there`),
      ].join('\n') || 'nothing to copy',
    );
    return 0;
  },
};
