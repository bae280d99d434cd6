// bulwark prune: delete data no snapshot needs (see docs/design.md, "Prune").
import { parseMaxUnused, runPrune, type PruneResult } from '../../repo/prune.js';
import { flag, str, type Command } from '../command.js';
import { formatBytes } from '../context.js';

export function pruneText(r: PruneResult): string[] {
  const verb = r.dryRun ? 'would ' : '';
  const lines = [
    `${r.snapshots} snapshot(s)${r.newSnapshots > 0 ? ` (+${r.newSnapshots} written meanwhile)` : ''}: ${r.blobs.used} used blobs, ${r.blobs.unused} unused, ${r.blobs.duplicates} duplicate copies`,
    `used ${formatBytes(r.bytes.used)}, unused ${formatBytes(r.bytes.unusedBefore)} of ${formatBytes(r.bytes.before)} (max unused ${r.maxUnused})`,
  ];
  if (r.dryRun) {
    for (const p of r.toDelete) lines.push(`  delete ${p.type} pack ${p.pack.slice(0, 12)}  ${formatBytes(p.size)}  (${p.unusedBlobs} unused blobs)`);
    for (const p of r.toRepack) lines.push(`  repack ${p.type} pack ${p.pack.slice(0, 12)}  ${formatBytes(p.size)}  (${p.usedBlobs} used, ${p.unusedBlobs} unused blobs)`);
    for (const n of r.unindexed) lines.push(`  delete unindexed pack ${n.slice(0, 12)}`);
  }
  lines.push(
    `${verb}delete ${r.toDelete.length} pack(s), ${verb}repack ${r.toRepack.length} pack(s)${r.unindexed.length > 0 ? `, ${verb}delete ${r.unindexed.length} unindexed pack(s)` : ''}${r.packs.keptForNewSnapshots > 0 ? `, kept ${r.packs.keptForNewSnapshots} for new snapshots` : ''}`,
    `${r.dryRun ? 'would free' : 'freed'} ${formatBytes(r.bytes.freed)}: ${formatBytes(r.bytes.before)} -> ${formatBytes(r.bytes.after)}, unused left ${formatBytes(r.bytes.unusedAfter)}`,
  );
  if (r.dryRun) lines.push('dry run: nothing was changed');
  return lines;
}

export const prune: Command = {
  name: 'prune',
  usage: 'bulwark prune [--max-unused 5%|SIZE|unlimited] [--dry-run]',
  options: { 'max-unused': { type: 'string' }, 'dry-run': { type: 'boolean', short: 'n' } },
  async run(ctx, _args, values) {
    const m = str(values, 'max-unused');
    const maxUnused = m === undefined ? undefined : parseMaxUnused(m);
    const repo = await ctx.openRepo();
    const r = await runPrune(repo, { ...(maxUnused !== undefined ? { maxUnused } : {}), dryRun: flag(values, 'dry-run'), onProgress: (msg) => ctx.progress(msg) });
    ctx.result(r, () => pruneText(r).join('\n'));
    return 0;
  },
};
