// bulwark check: verify repository structure, and optionally read and verify the data itself.
import { checkRepository } from '../../check/checker.js';
import { BulwarkError } from '../../errors.js';
import { flag, str, type Command } from '../command.js';
import { formatBytes } from '../context.js';

export function parseSubset(s: string): number {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(s);
  const frac = /^(\d+)\/(\d+)$/.exec(s);
  const v = pct !== null ? Number(pct[1]) / 100 : frac !== null ? Number(frac[1]) / Number(frac[2]) : NaN;
  if (!(v > 0 && v <= 1)) {
    throw new BulwarkError('USAGE', `--read-data-subset ${JSON.stringify(s)} is not a percentage like 10% (or a fraction like 1/5) in (0, 100%]`, { subject: s });
  }
  return v;
}

export const check: Command = {
  name: 'check',
  usage: 'bulwark check [--read-data | --read-data-subset N%]',
  options: { 'read-data': { type: 'boolean' }, 'read-data-subset': { type: 'string' } },
  async run(ctx, _args, values) {
    const subsetArg = str(values, 'read-data-subset');
    const subset = subsetArg === undefined ? undefined : parseSubset(subsetArg);
    const repo = await ctx.openRepo();
    const r = await checkRepository(repo, {
      readData: flag(values, 'read-data'),
      ...(subset !== undefined ? { subset } : {}),
      onProgress: (d, t) => ctx.progress(`read ${d} of ${t} packs`),
    });
    for (const w of r.warnings) ctx.warn(w.message);
    ctx.result({ ok: r.errors.length === 0, ...r }, () =>
      [
        `${r.snapshots} snapshots, ${r.trees} trees, ${r.blobs} blobs in ${r.packs} packs checked`,
        ...(r.packsRead > 0 ? [`read ${r.packsRead} packs (${formatBytes(r.bytesRead)})`] : []),
        ...r.errors.map((e) => `error [${e.code}] ${e.message}`),
        r.errors.length === 0 ? 'no errors were found' : `${r.errors.length} error(s) found`,
      ].join('\n'),
    );
    return r.errors.length === 0 ? 0 : 1;
  },
};
