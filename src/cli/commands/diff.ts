// bulwark diff: what changed between two snapshots (added, removed, modified paths).
import { BulwarkError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { findSnapshot } from '../../snapshot/snapshot.js';
import type { TreeNode } from '../../tree/node.js';
import { loadTree } from '../../tree/tree-reader.js';
import type { Command } from '../command.js';

export interface Change {
  path: string;
  change: '+' | '-' | 'M' | 'T' | 'U';
}

function sameContent(a: TreeNode, b: TreeNode): boolean {
  return a.type === b.type && a.size === b.size && (a.content ?? []).join() === (b.content ?? []).join() && a.target === b.target;
}

export async function diffTrees(repo: Repository, a: string | undefined, b: string | undefined, prefix: string, out: Change[]): Promise<void> {
  if (a === b) return;
  const left = new Map((a === undefined ? [] : await loadTree(repo, a)).map((n) => [n.name, n]));
  const right = new Map((b === undefined ? [] : await loadTree(repo, b)).map((n) => [n.name, n]));
  const names = [...new Set([...left.keys(), ...right.keys()])].sort();
  for (const name of names) {
    const l = left.get(name);
    const r = right.get(name);
    const p = `${prefix}/${name}`;
    if (l === undefined) out.push({ path: r!.type === 'dir' ? p + '/' : p, change: '+' });
    else if (r === undefined) out.push({ path: l.type === 'dir' ? p + '/' : p, change: '-' });
    else if (l.type !== r.type) out.push({ path: p, change: 'T' });
    else if (l.type !== 'dir' && !sameContent(l, r)) out.push({ path: p, change: 'M' });
    else if (l.type !== 'dir' && (l.mode !== r.mode || l.uid !== r.uid || l.gid !== r.gid || l.mtime !== r.mtime)) out.push({ path: p, change: 'U' });
    const ls = l?.type === 'dir' ? l.subtree : undefined;
    const rs = r?.type === 'dir' ? r.subtree : undefined;
    if (ls !== undefined || rs !== undefined) await diffTrees(repo, ls, rs, p, out);
  }
}

export const diff: Command = {
  name: 'diff',
  usage: 'bulwark diff SNAPSHOT1 SNAPSHOT2',
  options: {},
  async run(ctx, args) {
    if (args.length !== 2) throw new BulwarkError('USAGE', 'diff needs two snapshots', { hint: this.usage });
    const repo = await ctx.openRepo();
    const a = await findSnapshot(repo, args[0]!);
    const b = await findSnapshot(repo, args[1]!);
    await repo.loadIndex();
    const changes: Change[] = [];
    await diffTrees(repo, a.tree, b.tree, '', changes);
    const count = (c: Change['change']): number => changes.filter((x) => x.change === c).length;
    const summary = { added: count('+'), removed: count('-'), modified: count('M'), typeChanged: count('T'), metadataOnly: count('U') };
    ctx.result({ from: a.id, to: b.id, changes, summary }, () =>
      [
        `comparing snapshot ${a.id.slice(0, 8)} to ${b.id.slice(0, 8)}:`,
        ...changes.map((c) => `${c.change}    ${c.path}`),
        `Added: ${summary.added}  Removed: ${summary.removed}  Modified: ${summary.modified}  Type changed: ${summary.typeChanged}  Metadata only: ${summary.metadataOnly}`,
      ].join('\n'),
    );
    return 0;
  },
};
