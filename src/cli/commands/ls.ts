// bulwark ls: list the files of a snapshot (below an optional path).
import { findSnapshot } from '../../snapshot/snapshot.js';
import type { TreeNode } from '../../tree/node.js';
import { resolvePath, walkTree } from '../../tree/tree-reader.js';
import { BulwarkError } from '../../errors.js';
import { flag, type Command } from '../command.js';

export function modeString(n: TreeNode): string {
  const t = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', chardev: 'c', blockdev: 'b', socket: 's' }[n.type];
  let s = t;
  for (let i = 8; i >= 0; i--) s += n.mode & (1 << i) ? 'rwx'[(8 - i) % 3] : '-';
  return s;
}

function mtimeIso(n: TreeNode): string {
  return new Date(Number(BigInt(n.mtime) / 1_000_000n)).toISOString();
}

export const ls: Command = {
  name: 'ls',
  usage: 'bulwark ls SNAPSHOT [PATH] [--long] [--recursive]',
  options: { long: { type: 'boolean', short: 'l' }, recursive: { type: 'boolean', short: 'R' } },
  async run(ctx, args, values) {
    const [ref, sub = '/'] = args;
    if (ref === undefined) throw new BulwarkError('USAGE', 'ls needs a SNAPSHOT', { hint: this.usage });
    const repo = await ctx.openRepo();
    const snap = await findSnapshot(repo, ref);
    await repo.loadIndex();
    const { node } = await resolvePath(repo, snap.tree, sub);
    const base = '/' + sub.split('/').filter((c) => c !== '').join('/');
    const rows: Array<{ path: string; node: TreeNode }> = [];
    const recursive = flag(values, 'recursive') || args.length === 1;
    if (node.type === 'dir' && node.subtree !== undefined) {
      await walkTree(repo, node.subtree, base, (p, n) => {
        rows.push({ path: p, node: n });
        return recursive;
      });
    } else rows.push({ path: base, node });
    const long = flag(values, 'long');
    ctx.result(
      rows.map(({ path, node: n }) => ({ path, type: n.type, size: n.size ?? 0, mode: n.mode, uid: n.uid, gid: n.gid, mtime: mtimeIso(n), ...(n.target !== undefined ? { target: n.target } : {}) })),
      () =>
        rows
          .map(({ path, node: n }) =>
            long ? `${modeString(n)} ${String(n.uid).padStart(5)} ${String(n.gid).padStart(5)} ${String(n.size ?? 0).padStart(12)} ${mtimeIso(n)} ${path}${n.target !== undefined ? ` -> ${n.target}` : ''}` : path,
          )
          .join('\n'),
    );
    return 0;
  },
};
