// Tree blobs: one per directory, holding that directory's entries sorted by name. The encoding is
// deterministic (fixed key order, sorted nodes, no whitespace), so an unchanged directory encodes to
// the same bytes, gets the same keyed ID and is stored once.
import * as fs from 'node:fs';
import { BulwarkError } from '../errors.js';

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket';

export interface TreeNode {
  name: string;
  type: NodeType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, as a decimal string (exact; too large for a JS number). */
  mtime: string;
  ctime: string;
  inode: string;
  dev: string;
  links: number;
  size?: number;
  content?: string[];
  subtree?: string;
  target?: string;
  rdev?: number;
}

/** Milliseconds (a double with sub-millisecond fraction) to integer nanoseconds, kept to the microsecond. */
export function msToNs(ms: number): string {
  const us = Math.round(ms * 1000);
  return us === 0 ? '0' : `${us}000`;
}

/**
 * lstat() of one entry as a tree node (without content). Plain stats are used because BigInt stats
 * cost twice as much per file and the walk does one per entry; times are kept to the microsecond
 * (what utimes can restore anyway). Entries with several hard links are stat'ed again with BigInt
 * so their inode numbers, which identify hard-link groups on restore, are exact.
 */
export function statNode(p: string, name: string, follow = false): { node: TreeNode; size: number } {
  const st = follow ? fs.statSync(p) : fs.lstatSync(p);
  let exact: { inode: string; dev: string } | undefined;
  if (st.nlink > 1 && !st.isDirectory()) {
    const big = follow ? fs.statSync(p, { bigint: true }) : fs.lstatSync(p, { bigint: true });
    exact = { inode: big.ino.toString(), dev: big.dev.toString() };
  }
  packStat(st, scratch, 0);
  return statNodeFrom(name, scratch, 0, exact);
}

/**
 * Numbers per entry in a packed stat (see `packStat`, `statNodeFrom`): stats cross threads and wait
 * in the pre-walk's listings this way, without an object per entry.
 */
export const STAT_FIELDS = 10;

/** `statNode`'s packed stat, made and read at once (one node builder for every source of stats). */
const scratch = new Float64Array(STAT_FIELDS);

/**
 * Packs a stat into `out` at `at`: full mode (type bits included), uid, gid, mtimeMs, ctimeMs, ino,
 * dev, nlink, size, rdev. A NaN mode marks an entry to be stat'ed again by whoever reads it.
 */
export function packStat(st: fs.Stats, out: Float64Array, at: number): void {
  out[at] = st.mode;
  out[at + 1] = st.uid;
  out[at + 2] = st.gid;
  out[at + 3] = st.mtimeMs;
  out[at + 4] = st.ctimeMs;
  out[at + 5] = st.ino;
  out[at + 6] = st.dev;
  out[at + 7] = st.nlink;
  out[at + 8] = st.size;
  out[at + 9] = st.rdev;
}

/** The node type of a stat. */
export function typeOf(st: fs.Stats | fs.BigIntStats): NodeType {
  return typeOfMode(Number(st.mode));
}

/** The node type of a full st_mode. */
export function typeOfMode(mode: number): NodeType {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return 'fifo';
    case 0o020000:
      return 'chardev';
    case 0o060000:
      return 'blockdev';
    default:
      return 'socket';
  }
}

/**
 * What `statNode` returns, from a stat packed by `packStat` (its mode must not be NaN). `exact`
 * carries the BigInt inode and device of an entry with several links (they identify hard-link
 * groups on restore); without it, such an entry's inode may be rounded.
 */
export function statNodeFrom(name: string, st: Float64Array, at: number, exact?: { inode: string; dev: string }): { node: TreeNode; size: number } {
  const mode = st[at]!;
  const node: TreeNode = {
    name,
    type: typeOfMode(mode),
    mode: mode & 0o7777,
    uid: st[at + 1]!,
    gid: st[at + 2]!,
    mtime: msToNs(st[at + 3]!),
    ctime: msToNs(st[at + 4]!),
    inode: exact?.inode ?? String(st[at + 5]!),
    dev: exact?.dev ?? String(st[at + 6]!),
    links: st[at + 7]!,
  };
  if (node.type === 'chardev' || node.type === 'blockdev') node.rdev = st[at + 9]!;
  return { node, size: st[at + 8]! };
}

/** Canonical form: keys always in this order, absent optionals omitted. */
function canonical(n: TreeNode): TreeNode {
  const c: TreeNode = {
    name: n.name,
    type: n.type,
    mode: n.mode,
    uid: n.uid,
    gid: n.gid,
    mtime: n.mtime,
    ctime: n.ctime,
    inode: n.inode,
    dev: n.dev,
    links: n.links,
  };
  if (n.size !== undefined) c.size = n.size;
  if (n.content !== undefined) c.content = n.content;
  if (n.subtree !== undefined) c.subtree = n.subtree;
  if (n.target !== undefined) c.target = n.target;
  if (n.rdev !== undefined) c.rdev = n.rdev;
  return c;
}

/** The order of entries in a tree, and so of every walk that builds one (UTF-16 code units). */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function encodeTree(nodes: TreeNode[]): Buffer {
  const sorted = [...nodes].sort((a, b) => compareNames(a.name, b.name));
  return Buffer.from(JSON.stringify({ nodes: sorted.map(canonical) }));
}

export function decodeTree(data: Uint8Array, id: string): TreeNode[] {
  try {
    const v = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.length).toString('utf8')) as { nodes?: unknown };
    if (!Array.isArray(v.nodes)) throw new Error('no nodes');
    return v.nodes as TreeNode[];
  } catch (err) {
    throw new BulwarkError('TREE_CORRUPT', `tree ${id} cannot be decoded: ${err instanceof Error ? err.message : String(err)}`, {
      subject: `tree ${id}`,
      hint: 'run `bulwark check` to see which snapshots are affected',
    });
  }
}
