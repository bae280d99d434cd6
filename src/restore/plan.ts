// Restore planning: walk the snapshot (below an optional subpath), apply include/exclude patterns,
// and list what must be created. The plan keeps only what restoring needs (target path, metadata,
// blob list) so that it stays small for trees with millions of files.
import * as path from 'node:path';
import { Excluder } from '../backup/exclude.js';
import { BulwarkError } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import type { NodeType, TreeNode } from '../tree/node.js';
import { resolvePath, walkTree } from '../tree/tree-reader.js';

export interface PlannedItem {
  target: string;
  type: NodeType;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (what utimes takes). */
  mtime: number;
  size: number;
  /** Index entry numbers of the file's blobs, in order (compact: no hex IDs kept). */
  blobs?: number[];
  linkTarget?: string;
  rdev?: number;
}

/**
 * The regular files of a plan, column-wise: one target string per file and typed arrays for the
 * rest, so a plan of a million files is a few arrays rather than millions of small objects (less
 * memory, and far less work for the garbage collector while the restore runs).
 */
export class FileList {
  count = 0;
  targets: string[] = [];
  mode = new Uint16Array(1024);
  uid = new Uint32Array(1024);
  gid = new Uint32Array(1024);
  /** Seconds since the epoch (what utimes takes). */
  mtime = new Float64Array(1024);
  size = new Float64Array(1024);
  /** The blobs of file i are index entries blobs[blobStart[i] .. blobStart[i + 1]). */
  blobStart = new Uint32Array(1025);
  blobs = new Uint32Array(4096);
  private nBlobs = 0;

  add(it: PlannedItem): number {
    const i = this.count;
    if (i + 1 === this.mode.length) {
      const n = 2 * this.mode.length;
      this.mode = grow(this.mode, new Uint16Array(n));
      this.uid = grow(this.uid, new Uint32Array(n));
      this.gid = grow(this.gid, new Uint32Array(n));
      this.mtime = grow(this.mtime, new Float64Array(n));
      this.size = grow(this.size, new Float64Array(n));
      this.blobStart = grow(this.blobStart, new Uint32Array(n + 1));
    }
    const bl = it.blobs ?? [];
    while (this.nBlobs + bl.length > this.blobs.length) this.blobs = grow(this.blobs, new Uint32Array(2 * this.blobs.length));
    this.targets.push(it.target);
    this.mode[i] = it.mode;
    this.uid[i] = it.uid;
    this.gid[i] = it.gid;
    this.mtime[i] = it.mtime;
    this.size[i] = it.size;
    this.blobs.set(bl, this.nBlobs);
    this.nBlobs += bl.length;
    this.blobStart[i + 1] = this.nBlobs;
    return this.count++;
  }

  blobCount(i: number): number {
    return this.blobStart[i + 1]! - this.blobStart[i]!;
  }

  /** The index entries of file i's blobs (a view, not a copy). */
  blobsOf(i: number): Uint32Array {
    return this.blobs.subarray(this.blobStart[i]!, this.blobStart[i + 1]!);
  }

  /** File i as a PlannedItem (for the few places that want one). */
  item(i: number): PlannedItem {
    return { target: this.targets[i]!, type: 'file', mode: this.mode[i]!, uid: this.uid[i]!, gid: this.gid[i]!, mtime: this.mtime[i]!, size: this.size[i]! };
  }
}

function grow<T extends Uint16Array | Uint32Array | Float64Array>(from: T, to: T): T {
  to.set(from.subarray(0, Math.min(from.length, to.length)) as never);
  return to;
}

export interface RestorePlan {
  /** Parents before children. */
  dirs: PlannedItem[];
  files: FileList;
  /** Later names of a hard-linked inode: [item, target of the first name]. */
  hardlinks: Array<[PlannedItem, string]>;
  symlinks: PlannedItem[];
  specials: PlannedItem[];
  bytes: number;
}

export interface PlanOptions {
  target: string;
  subpath: string;
  includes: string[];
  excludes: string[];
}

function item(repo: Repository, target: string, n: TreeNode): PlannedItem {
  const it: PlannedItem = { target, type: n.type, mode: n.mode, uid: n.uid, gid: n.gid, mtime: Number(BigInt(n.mtime)) / 1e9, size: n.size ?? 0 };
  if (n.content !== undefined) {
    it.blobs = n.content.map((h) => {
      const e = repo.index.findHex(h);
      if (e < 0) {
        throw new BulwarkError('BLOB_MISSING', `blob ${h} of ${target} is not in the index`, {
          subject: target,
          hint: 'run `bulwark check` to see which snapshots are affected',
        });
      }
      return e;
    });
  }
  if (n.target !== undefined) it.linkTarget = n.target;
  if (n.rdev !== undefined) it.rdev = n.rdev;
  return it;
}

export async function planRestore(repo: Repository, rootTree: string, opts: PlanOptions): Promise<RestorePlan> {
  const plan: RestorePlan = { dirs: [], files: new FileList(), hardlinks: [], symlinks: [], specials: [], bytes: 0 };
  const { node: start } = await resolvePath(repo, rootTree, opts.subpath);
  const exclude = new Excluder(opts.excludes);
  const include = new Excluder(opts.includes);
  const inodes = new Map<string, string>();
  const base = path.resolve(opts.target);
  const prefix = opts.subpath === '' || opts.subpath === '/' ? '/' : '/' + opts.subpath.replace(/^\/+|\/+$/g, '');
  const targetOf = (source: string): string => path.join(base, prefix === '/' ? source : source.slice(prefix.length));

  const add = (target: string, n: TreeNode): void => {
    const it = item(repo, target, n);
    switch (n.type) {
      case 'dir':
        plan.dirs.push(it);
        return;
      case 'file': {
        if (n.links > 1) {
          const key = `${n.dev}:${n.inode}`;
          const first = inodes.get(key);
          if (first !== undefined) {
            plan.hardlinks.push([it, first]);
            return;
          }
          inodes.set(key, it.target);
        }
        plan.files.add(it);
        plan.bytes += it.size;
        return;
      }
      case 'symlink':
        plan.symlinks.push(it);
        return;
      default:
        plan.specials.push(it);
    }
  };

  if (start.type !== 'dir' || start.subtree === undefined) {
    add(targetOf(prefix), start);
    if (plan.files.count > 0) plan.files.targets[0] = path.join(base, start.name);
    const only = plan.symlinks[0] ?? plan.specials[0];
    if (only !== undefined) only.target = path.join(base, start.name);
    return plan;
  }

  // A directory is added only when something inside it (or the directory itself) is included:
  // `chain` is the path of directories above the current entry (source path, target, node), `added`
  // those already planned. A file's target is its directory's target + "/" + name: V8 keeps that as
  // a two-part rope sharing the directory's string, which keeps the plan small.
  const added = new Set<string>();
  const flat = (s: string): string => {
    s.charCodeAt(0); // flattens a rope in place, so children share one flat directory string
    return s;
  };
  const walk = async (treeId: string, dir: string, dirTarget: string, inherited: boolean, chain: Array<[string, string, TreeNode]>): Promise<void> => {
    // One flat "dir/" string per directory: each entry's target is then a single rope node.
    const dirSlash = flat(`${dirTarget}/`);
    await walkTree(repo, treeId, dir, async (source, node) => {
      if (!exclude.empty && exclude.excluded(source)) return false;
      const inc = inherited || include.empty || include.excluded(source);
      const target = node.type === 'dir' ? flat(dirSlash + node.name) : dirSlash + node.name;
      if (inc) {
        for (const [s, t, n] of chain) {
          if (added.has(s)) continue;
          added.add(s);
          add(t, n);
        }
        if (node.type === 'dir' && !include.empty) added.add(source);
        add(target, node);
      }
      if (node.type === 'dir' && node.subtree !== undefined) {
        await walk(node.subtree, source, target, inc && !include.empty ? true : inherited, inc ? [] : [...chain, [source, target, node]]);
      }
      return false;
    });
  };
  await walk(start.subtree, prefix, flat(targetOf(prefix)).replace(/\/+$/, ''), false, []);
  return plan;
}
