// Restore planning: walk the snapshot (below an optional subpath), apply include/exclude patterns,
// and list what must be created: directories, regular files with their blobs, links, special files.
import * as path from 'node:path';
import { Excluder } from '../backup/exclude.js';
import type { Repository } from '../repo/repository.js';
import type { TreeNode } from '../tree/node.js';
import { resolvePath, walkTree } from '../tree/tree-reader.js';

export interface PlannedEntry {
  /** Path inside the snapshot. */
  source: string;
  /** Path on disk. */
  target: string;
  node: TreeNode;
}

export interface RestorePlan {
  dirs: PlannedEntry[];
  files: PlannedEntry[];
  /** Later occurrences of a hard-linked inode: [entry, target of the first occurrence]. */
  hardlinks: Array<[PlannedEntry, string]>;
  symlinks: PlannedEntry[];
  specials: PlannedEntry[];
  bytes: number;
}

export interface PlanOptions {
  target: string;
  subpath: string;
  includes: string[];
  excludes: string[];
}

export async function planRestore(repo: Repository, rootTree: string, opts: PlanOptions): Promise<RestorePlan> {
  const plan: RestorePlan = { dirs: [], files: [], hardlinks: [], symlinks: [], specials: [], bytes: 0 };
  const { node: start } = await resolvePath(repo, rootTree, opts.subpath);
  const exclude = new Excluder(opts.excludes);
  const include = new Excluder(opts.includes);
  const inodes = new Map<string, string>();
  const base = path.resolve(opts.target);
  const prefix = opts.subpath === '' || opts.subpath === '/' ? '/' : '/' + opts.subpath.replace(/^\/+|\/+$/g, '');
  const targetOf = (source: string): string => path.join(base, prefix === '/' ? source : source.slice(prefix.length));
  // Directories are added only once something inside them (or they themselves) is included.
  const added = new Set<string>();
  const addDirsUpTo = (source: string): void => {
    const chain: string[] = [];
    for (let p = path.posix.dirname(source); p !== '/' && p.length >= prefix.length && p !== prefix; p = path.posix.dirname(p)) chain.push(p);
    for (const p of chain.reverse()) if (dirNodes.has(p) && !added.has(p)) {
      added.add(p);
      plan.dirs.push({ source: p, target: targetOf(p), node: dirNodes.get(p)! });
    }
  };
  const dirNodes = new Map<string, TreeNode>();
  const consider = (source: string, node: TreeNode, included: boolean): void => {
    if (!included) return;
    addDirsUpTo(source);
    const e: PlannedEntry = { source, target: targetOf(source), node };
    switch (node.type) {
      case 'dir':
        if (!added.has(source)) {
          added.add(source);
          plan.dirs.push(e);
        }
        return;
      case 'file': {
        if (node.links > 1) {
          const key = `${node.dev}:${node.inode}`;
          const first = inodes.get(key);
          if (first !== undefined) {
            plan.hardlinks.push([e, first]);
            return;
          }
          inodes.set(key, e.target);
        }
        plan.files.push(e);
        plan.bytes += node.size ?? 0;
        return;
      }
      case 'symlink':
        plan.symlinks.push(e);
        return;
      default:
        plan.specials.push(e);
    }
  };
  if (start.type !== 'dir' || start.subtree === undefined) {
    consider(prefix, start, true);
    const only = plan.files[0] ?? plan.symlinks[0] ?? plan.specials[0];
    if (only !== undefined) only.target = path.join(base, start.name);
    return plan;
  }
  const walk = async (treeId: string, dir: string, inherited: boolean): Promise<void> => {
    await walkTree(repo, treeId, dir, async (source, node) => {
      if (!exclude.empty && exclude.excluded(source)) return false;
      const inc = inherited || include.empty || include.excluded(source);
      if (node.type === 'dir') {
        dirNodes.set(source, node);
        consider(source, node, inc);
        if (node.subtree !== undefined) await walk(node.subtree, source, inc && !include.empty ? true : inherited);
        return false;
      }
      consider(source, node, inc);
      return true;
    });
  };
  await walk(start.subtree, prefix, false);
  return plan;
}
