// Reading trees back: load one directory, resolve a path inside a snapshot, walk a whole tree.
import { BulwarkError } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import { decodeTree, type TreeNode } from './node.js';

export async function loadTree(repo: Repository, id: string): Promise<TreeNode[]> {
  return decodeTree(await repo.readTreeBlob(Buffer.from(id, 'hex')), id);
}

/** Splits "a/b/c" or "/a/b/c" into components, ignoring empty ones and ".". */
export function splitPath(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * Finds the node at `subpath` below the tree `root`. Returns a synthetic directory node for the
 * root itself (empty subpath).
 */
export async function resolvePath(repo: Repository, root: string, subpath: string): Promise<{ node: TreeNode; parentPath: string }> {
  let node: TreeNode = { name: '', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: '0', ctime: '0', inode: '0', dev: '0', links: 1, subtree: root };
  const parts = splitPath(subpath);
  const seen: string[] = [];
  for (const part of parts) {
    if (node.type !== 'dir' || node.subtree === undefined) {
      throw new BulwarkError('PATH_NOT_FOUND', `/${seen.join('/')} is not a directory in this snapshot`, { subject: subpath });
    }
    const next = (await loadTree(repo, node.subtree)).find((n) => n.name === part);
    if (next === undefined) {
      throw new BulwarkError('PATH_NOT_FOUND', `/${[...seen, part].join('/')} does not exist in this snapshot`, {
        subject: subpath,
        hint: '`bulwark ls SNAPSHOT` lists what the snapshot holds',
      });
    }
    seen.push(part);
    node = next;
  }
  return { node, parentPath: '/' + seen.slice(0, -1).join('/') };
}

export type Visitor = (path: string, node: TreeNode) => Promise<boolean | void> | boolean | void;

/** Depth-first walk in name order; the visitor returns false to skip a directory's contents. */
export async function walkTree(repo: Repository, treeId: string, prefix: string, visit: Visitor): Promise<void> {
  for (const n of await loadTree(repo, treeId)) {
    const p = prefix === '/' ? `/${n.name}` : `${prefix}/${n.name}`;
    const descend = await visit(p, n);
    if (n.type === 'dir' && n.subtree !== undefined && descend !== false) await walkTree(repo, n.subtree, p, visit);
  }
}
