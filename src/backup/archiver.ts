// The archiver walks the source paths and turns them into tree blobs, handing file contents to the
// chunk workers. It reads directories and stats synchronously (cheap calls, no thread-pool hop) and
// keeps many files in flight: a directory dispatches its files, starts its subdirectories, and only
// then waits, so the workers never run dry at directory boundaries.
//
// A file whose size, mtime, ctime and inode match the parent snapshot's node, and whose blobs are all
// indexed, is not read again: its node reuses the parent's content list.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulwarkError, sysCode } from '../errors.js';
import { BlobType } from '../pack/blob-index.js';
import type { BlobCodec } from '../pack/blob-codec.js';
import type { Packer } from '../pack/packer.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotSummary } from '../snapshot/snapshot.js';
import { STAT_FIELDS, compareNames, encodeTree, statNode, statNodeFrom, type TreeNode } from '../tree/node.js';
import { loadTree } from '../tree/tree-reader.js';
import type { FileJob, PrevFile } from '../worker/protocol.js';
import type { Excluder } from './exclude.js';
import type { Prewalk } from './prewalk.js';
import { hexList, type FileResult, type WorkerPool } from './worker-pool.js';

export interface Warning {
  path: string;
  code: string;
  message: string;
}

export interface Progress {
  files: number;
  dirs: number;
  bytes: number;
  errors: number;
  current: string;
}

/** The counters the archiver keeps are those of the snapshot summary. */
export type ArchiveStats = Pick<
  SnapshotSummary,
  'filesNew' | 'filesChanged' | 'filesUnmodified' | 'dirsNew' | 'dirsChanged' | 'dirsUnmodified' | 'treeBlobs'
>;

/** A node of the virtual tree that connects "/" to each backed-up path. */
export interface PathTrie {
  children: Map<string, PathTrie>;
  /** Set where a requested path ends: everything below comes from the filesystem. */
  leaf: boolean;
}

export function buildTrie(paths: readonly string[]): PathTrie {
  const root: PathTrie = { children: new Map(), leaf: false };
  for (const p of paths) {
    let t = root;
    for (const c of p.split('/').filter((x) => x !== '')) {
      let next = t.children.get(c);
      if (next === undefined) {
        next = { children: new Map(), leaf: false };
        t.children.set(c, next);
      }
      t = next;
    }
    t.leaf = true;
  }
  return root;
}

/** A walked entry: its finished node, or a promise of it (null: skipped). */
interface Entry {
  done: Promise<TreeNode | null> | TreeNode | null;
}

export class Archiver {
  readonly warnings: Warning[] = [];
  readonly progress: Progress = { files: 0, dirs: 0, bytes: 0, errors: 0, current: '' };
  readonly stats: ArchiveStats = { filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirsNew: 0, dirsChanged: 0, dirsUnmodified: 0, treeBlobs: 0 };

  constructor(
    private readonly repo: Repository,
    private readonly packer: Packer,
    private readonly pool: WorkerPool,
    private readonly excluder: Excluder,
    private readonly codec: BlobCodec,
    /** Listings made while the repository opened (see prewalk.ts), taken as the walk gets there. */
    private readonly prewalk?: Prewalk,
  ) {}

  private warn(p: string, code: string, message: string): void {
    this.warnings.push({ path: p, code, message });
    this.progress.errors++;
  }

  /** Stores a tree blob (once) and returns its ID. */
  saveTree(nodes: TreeNode[]): string {
    const data = encodeTree(nodes);
    const id = this.repo.blobId(data);
    if (!this.pool.hasTree(id)) {
      // Once the chunk workers run, they compress and seal trees too, off this thread.
      if (this.pool.started) this.pool.saveTree(id, data);
      else this.packer.add(BlobType.tree, id, this.codec.encode(data), data.length);
      this.stats.treeBlobs++;
    }
    return id.toString('hex');
  }

  private async parentNodes(treeId: string | undefined): Promise<Map<string, TreeNode> | undefined> {
    if (treeId === undefined) return undefined;
    try {
      const byName = new Map<string, TreeNode>();
      for (const n of await loadTree(this.repo, treeId)) byName.set(n.name, n);
      return byName;
    } catch {
      return undefined; // an unreadable parent only costs re-reading files
    }
  }

  /** Archives the virtual tree from "/" down to each requested path; returns the root tree ID. */
  async archiveTrie(trie: PathTrie, abs: string, parentTree: string | undefined): Promise<string> {
    if (trie.leaf && abs === '/') {
      // Backing up "/" itself: the root tree is the root directory's own tree.
      const prev = parentTree === undefined ? undefined : ({ ...statNode('/', '').node, subtree: parentTree } as TreeNode);
      const { done } = await this.dir('/', statNode('/', '').node, prev);
      return (await done).subtree!;
    }
    const { done } = await this.trieWalk(trie, abs, parentTree);
    return done;
  }

  private async trieWalk(trie: PathTrie, abs: string, parentTree: string | undefined): Promise<{ done: Promise<string> }> {
    const parent = await this.parentNodes(parentTree);
    const pending: Array<Promise<TreeNode | null> | TreeNode | null> = [];
    for (const [name, child] of [...trie.children].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const p = abs === '/' ? `/${name}` : `${abs}/${name}`;
      const prev = parent?.get(name);
      if (child.leaf) {
        pending.push((await this.entry(p, name, prev)).done);
        continue;
      }
      let node: TreeNode;
      try {
        // Components above a requested path are recorded as directories even when they are
        // symlinks to directories, so the path resolves in the snapshot as it did on disk.
        node = statNode(p, name, true).node;
      } catch (err) {
        throw new BulwarkError('PATH_NOT_FOUND', `cannot read ${p}: ${err instanceof Error ? err.message : String(err)}`, { subject: p });
      }
      const sub = await this.trieWalk(child, p, prev?.subtree);
      pending.push(sub.done.then((subtree) => ({ ...node, subtree })));
    }
    return { done: Promise.all(pending).then((nodes) => this.saveTree(nodes.filter((n): n is TreeNode => n !== null))) };
  }

  /**
   * Walks one filesystem entry. The walk itself is sequential (depth first, one directory listed at
   * a time, pausing only when the worker queue is full); what it returns is a promise of the
   * finished node, which settles once the entry's file contents (and, for a directory, everything
   * below it) have been handed over. Null means the entry is skipped.
   */
  private entry(p: string, name: string, prev: TreeNode | undefined): Entry | Promise<Entry> {
    let node: TreeNode;
    let size: number;
    try {
      ({ node, size } = statNode(p, name));
    } catch (err) {
      this.warn(p, sysCode(err) ?? 'EIO', err instanceof Error ? err.message : String(err));
      return { done: null };
    }
    return this.statted(p, node, size, prev);
  }

  /** Walks an entry whose lstat is known. */
  private statted(p: string, node: TreeNode, size: number, prev: TreeNode | undefined): Entry | Promise<Entry> {
    switch (node.type) {
      case 'dir':
        return this.dir(p, node, prev);
      case 'file':
        return this.file(p, node, size, prev);
      case 'symlink':
        try {
          node.target = fs.readlinkSync(p);
        } catch (err) {
          this.warn(p, sysCode(err) ?? 'EIO', err instanceof Error ? err.message : String(err));
          return { done: null };
        }
        this.progress.files++;
        return { done: node };
      default:
        this.progress.files++;
        return { done: node };
    }
  }

  private unchanged(prev: TreeNode | undefined, node: TreeNode, size: number): boolean {
    if (prev === undefined || prev.type !== 'file' || prev.content === undefined) return false;
    const same = prev.size === size && prev.mtime === node.mtime && prev.ctime === node.ctime && prev.inode === node.inode;
    this.observe(!same);
    return same && prev.content.every((h) => this.repo.index.hasHex(h));
  }

  /**
   * How often files the parent snapshot has turn out changed, as a moving average. While most do
   * (a tree restored or copied anew, so every inode differs), stat'ing them here only to queue them
   * anyway is wasted main-thread time: such files go to the workers with the parent's node, and
   * the workers stat, compare and read. While most are unchanged, they are stat'ed here.
   */
  private changedRate = 0;

  private observe(changed: boolean): void {
    this.changedRate = this.changedRate * 0.9 + (changed ? 0.1 : 0);
  }

  /** What a worker compares a listed file with: the parent's node, if all its blobs are stored. */
  private prevFile(prev: TreeNode | undefined): PrevFile | undefined {
    if (prev === undefined || prev.type !== 'file' || prev.content === undefined || prev.size === undefined) return undefined;
    if (!prev.content.every((h) => this.repo.index.hasHex(h))) return undefined;
    return { size: prev.size, mtime: prev.mtime, ctime: prev.ctime, inode: prev.inode };
  }

  /**
   * Queues a changed file (waiting only when the queue is full); its `done` settles when its chunks
   * are handed over. An unchanged file is finished at once, without a promise.
   */
  private file(p: string, node: TreeNode, size: number, prev: TreeNode | undefined): Entry | Promise<Entry> {
    if (this.unchanged(prev, node, size)) return { done: this.keepPrev(node, prev!) };
    if (this.pool.tryAcquire()) return this.queue(p, node, size, prev);
    return this.pool.acquire().then(() => this.queue(p, node, size, prev));
  }

  private queue(p: string, node: TreeNode, size: number, prev: TreeNode | undefined): Entry {
    this.progress.current = p;
    const done = this.pool.save({ path: p, size, stat: false, prev: undefined }).then((r) => {
      if (r.err !== undefined) {
        this.warn(p, r.err.code, r.err.message);
        return null;
      }
      return this.readInto(node, r, prev);
    });
    return { done };
  }

  /** Finishes an unchanged file's node: the parent's content list stands. */
  private keepPrev(node: TreeNode, prev: TreeNode): TreeNode {
    node.size = prev.size!;
    node.content = prev.content!;
    this.stats.filesUnmodified++;
    this.progress.files++;
    this.progress.bytes += node.size;
    return node;
  }

  /** Finishes a read file's node with what the worker found. */
  private readInto(node: TreeNode, r: FileResult, prev: TreeNode | undefined): TreeNode {
    node.size = r.size;
    node.content = hexList(r);
    if (prev === undefined) this.stats.filesNew++;
    else this.stats.filesChanged++;
    this.progress.files++;
    this.progress.bytes += r.size;
    return node;
  }

  /** Queues a file seen only in a directory listing; the worker stats it (see FileJob.stat). */
  private listedFile(p: string, name: string, prev: TreeNode | undefined, pf?: PrevFile): Entry | Promise<Entry> {
    const job: FileJob = { path: p, size: undefined, stat: true, prev: pf };
    if (this.pool.tryAcquire()) return this.queueListed(job, name, prev);
    return this.pool.acquire().then(() => this.queueListed(job, name, prev));
  }

  private queueListed(job: FileJob, name: string, prev: TreeNode | undefined): Entry {
    this.progress.current = job.path;
    return { done: this.pool.save(job).then((r) => this.listedResult(r, job.path, name, prev)) };
  }

  private listedResult(r: FileResult, p: string, name: string, prev: TreeNode | undefined): TreeNode | null | Promise<TreeNode | null> {
    if (r.retype === true) {
      // Replaced by something else since the listing: look at it like any other entry.
      const e = this.entry(p, name, prev);
      return e instanceof Promise ? e.then((x) => x.done) : e.done;
    }
    if (r.err !== undefined || r.stats === undefined || r.statAt === undefined) {
      this.warn(p, r.err?.code ?? 'EIO', r.err?.message ?? 'no stat from the chunk worker');
      return null;
    }
    const node = statNodeFrom(name, r.stats, r.statAt, r.exact).node;
    if (prev !== undefined && prev.type === 'file') this.observe(r.unchanged !== true);
    return r.unchanged === true && prev?.content !== undefined && prev.size !== undefined ? this.keepPrev(node, prev) : this.readInto(node, r, prev);
  }

  private async dir(p: string, node: TreeNode, prev: TreeNode | undefined): Promise<{ done: Promise<TreeNode> }> {
    const parent = await this.parentNodes(prev?.type === 'dir' ? prev.subtree : undefined);
    const pending: Array<Promise<TreeNode | null> | TreeNode | null> = [];
    const cached = this.prewalk?.take(p);
    if (cached !== undefined) {
      // Listed and stat'ed while the repository opened: the stats are at hand, so even a file the
      // parent has is compared here, and a changed one goes to a worker that only opens and reads it.
      for (let i = 0; i < cached.names.length; i++) {
        const name = cached.names[i]!;
        const child = childPath(p, name);
        if (!this.excluder.empty && this.excluder.excluded(child)) continue;
        const at = i * STAT_FIELDS;
        let e: Entry | Promise<Entry>;
        if (Number.isNaN(cached.stats[at])) e = this.entry(child, name, parent?.get(name));
        else {
          const { node: n, size } = statNodeFrom(name, cached.stats, at);
          e = this.statted(child, n, size, parent?.get(name));
        }
        if (e instanceof Promise) e = await e;
        pending.push(e.done);
      }
      return { done: this.finishDir(pending, node, prev, parent) };
    }
    let listing: fs.Dirent[] = [];
    try {
      listing = fs.readdirSync(p, { withFileTypes: true }).sort(byName);
    } catch (err) {
      this.warn(p, sysCode(err) ?? 'EIO', err instanceof Error ? err.message : String(err));
    }
    for (const d of listing) {
      const name = d.name;
      const child = childPath(p, name);
      if (!this.excluder.empty && this.excluder.excluded(child)) continue;
      const prev = parent?.get(name);
      let e: Entry | Promise<Entry>;
      if (!d.isFile()) e = this.entry(child, name, prev);
      else if (prev === undefined || prev.type !== 'file') {
        // A new file (all of them in a first backup): the worker opens and stats it, off this thread.
        e = this.listedFile(child, name, prev);
      } else {
        // A file the parent has: stat'ed here while most such files are unchanged, else by a worker.
        const pf = this.changedRate > 0.5 ? this.prevFile(prev) : undefined;
        e = pf === undefined ? this.entry(child, name, prev) : this.listedFile(child, name, prev, pf);
      }
      if (e instanceof Promise) e = await e;
      pending.push(e.done);
    }
    return { done: this.finishDir(pending, node, prev, parent) };
  }

  /** Settles once every entry of a directory is done: saves its tree and finishes its node. */
  private finishDir(pending: Array<Promise<TreeNode | null> | TreeNode | null>, node: TreeNode, prev: TreeNode | undefined, parent: Map<string, TreeNode> | undefined): Promise<TreeNode> {
    return Promise.all(pending).then(async (all) => {
      const nodes = all.filter((n): n is TreeNode => n !== null);
      // A directory whose entries all equal the parent's encodes to the parent's tree: skip encoding.
      node.subtree = prev?.subtree !== undefined && parent !== undefined && sameEntries(nodes, parent) ? prev.subtree : this.saveTree(nodes);
      this.progress.dirs++;
      if (prev === undefined) this.stats.dirsNew++;
      else if (prev.subtree === node.subtree) this.stats.dirsUnmodified++;
      else this.stats.dirsChanged++;
      await this.packer.maybeWriteIndex();
      return node;
    });
  }
}

function byName(a: fs.Dirent, b: fs.Dirent): number {
  return compareNames(a.name, b.name);
}

/** The path of `name` in directory `dir` ("/" included), as the walk names entries. */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** An absolute path with "/" separators, as a snapshot records a backup source. */
export function absolutePath(p: string): string {
  return path.resolve(p).split(path.sep).join('/');
}

function sameNode(a: TreeNode, b: TreeNode): boolean {
  return (
    a.type === b.type &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.mtime === b.mtime &&
    a.ctime === b.ctime &&
    a.inode === b.inode &&
    a.dev === b.dev &&
    a.links === b.links &&
    a.size === b.size &&
    a.subtree === b.subtree &&
    a.target === b.target &&
    a.rdev === b.rdev &&
    (a.content === b.content || (a.content !== undefined && b.content !== undefined && a.content.length === b.content.length && a.content.every((h, i) => h === b.content![i])))
  );
}

function sameEntries(nodes: TreeNode[], prev: Map<string, TreeNode>): boolean {
  if (nodes.length !== prev.size) return false;
  for (const n of nodes) {
    const p = prev.get(n.name);
    if (p === undefined || !sameNode(n, p)) return false;
  }
  return true;
}

export function absolutePaths(paths: readonly string[]): string[] {
  const out = paths.map(absolutePath);
  for (const p of out) {
    if (!fs.existsSync(p) && !isBrokenLink(p)) {
      throw new BulwarkError('PATH_NOT_FOUND', `backup source ${p} does not exist`, { subject: p, hint: 'check the paths given to `bulwark backup`' });
    }
  }
  return [...new Set(out)].sort();
}

function isBrokenLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
