// Repository check. Structure first: every index file opens, every indexed pack exists, every
// snapshot opens, every tree decodes and every blob a tree names is indexed. With read-data, every
// selected pack is read in full: its name must equal the hash of its bytes, its trailer must agree
// with the index, and each blob must authenticate, decompress and hash to its ID. Every finding names
// the object at fault; checking goes on after a finding so one run lists all damage.
import { randomInt } from 'node:crypto';
import { sha256 } from '../crypto/keys.js';
import { BulwarkError, isBulwarkError } from '../errors.js';
import { decodeTrailer, type PackDescriptor } from '../pack/formats.js';
import { Lock } from '../repo/lock.js';
import { mapLimit } from '../concurrency.js';
import type { Repository } from '../repo/repository.js';
import { loadSnapshot } from '../snapshot/snapshot.js';
import { decodeTree } from '../tree/node.js';

export interface Finding {
  code: string;
  subject: string;
  message: string;
}

export interface CheckOptions {
  readData?: boolean;
  /** Fraction (0..1] of packs to read in full. */
  subset?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface CheckResult {
  errors: Finding[];
  warnings: Finding[];
  snapshots: number;
  trees: number;
  blobs: number;
  packs: number;
  packsRead: number;
  bytesRead: number;
}

export async function checkRepository(repo: Repository, opts: CheckOptions = {}): Promise<CheckResult> {
  const lock = await Lock.acquire(repo, 'shared', 'check');
  try {
    return await check(repo, opts);
  } finally {
    await lock.release();
  }
}

function finding(err: unknown, subject: string): Finding {
  if (isBulwarkError(err)) return { code: err.code, subject: err.subject ?? subject, message: err.message };
  return { code: 'INTERNAL', subject, message: err instanceof Error ? err.message : String(err) };
}

async function check(repo: Repository, opts: CheckOptions): Promise<CheckResult> {
  const r: CheckResult = { errors: [], warnings: [], snapshots: 0, trees: 0, blobs: 0, packs: 0, packsRead: 0, bytesRead: 0 };
  // Snapshots are listed first: a backup finishing while we check writes its index before its
  // snapshot, so every snapshot listed now has its index files in the listing below.
  const snapNames: string[] = [];
  for await (const o of repo.storage.list('snapshots')) snapNames.push(o.name);
  // 1. Index files.
  const indexed = new Map<string, PackDescriptor>();
  const indexNames: string[] = [];
  for await (const o of repo.storage.list('index')) indexNames.push(o.name);
  await mapLimit(indexNames, 8, async (name) => {
    try {
      const idx = await repo.readIndexFile(name);
      repo.addToIndex(idx.packs);
      repo.indexFiles.add(name);
      for (const p of idx.packs) indexed.set(Buffer.from(p.id).toString('hex'), p);
    } catch (err) {
      r.errors.push(finding(err, `index/${name}`));
    }
  });
  // 2. Packs: indexed ones must exist with a plausible size; unindexed ones are leftovers.
  const sizes = new Map<string, number>();
  for await (const o of repo.storage.list('data')) sizes.set(o.name, o.size);
  for (const [name, p] of indexed) {
    const size = sizes.get(name);
    const need = p.blobs.reduce((m, b) => Math.max(m, b.offset + b.stored), 0);
    if (size === undefined) r.errors.push({ code: 'OBJECT_NOT_FOUND', subject: `data/${name}`, message: `pack ${name} is in the index but missing from storage` });
    else if (size < need + 4) r.errors.push({ code: 'PACK_CORRUPT', subject: `data/${name}`, message: `pack ${name} is ${size} bytes, shorter than its ${need} bytes of blobs` });
  }
  for (const name of sizes.keys()) {
    if (!indexed.has(name)) {
      r.warnings.push({ code: 'PACK_UNINDEXED', subject: `data/${name}`, message: `pack ${name} is not in any index (left by an interrupted backup; the next backup indexes it)` });
    }
  }
  r.packs = indexed.size;
  r.blobs = repo.index.count;
  // 3. Snapshots and trees.
  const seenTrees = new Set<string>();
  for (const name of snapNames) {
    try {
      const s = await loadSnapshot(repo, name);
      r.snapshots++;
      await checkTree(repo, s.tree, `snapshot ${name.slice(0, 8)}:/`, seenTrees, r);
    } catch (err) {
      r.errors.push(finding(err, `snapshots/${name}`));
    }
  }
  r.trees = seenTrees.size;
  // 4. Data.
  if (opts.readData === true || opts.subset !== undefined) {
    let names = [...indexed.keys()].filter((n) => sizes.has(n));
    if (opts.subset !== undefined && opts.subset < 1) names = sample(names, Math.max(1, Math.ceil(names.length * opts.subset)));
    let done = 0;
    await mapLimit(names, 2, async (name) => {
      await readPack(repo, name, indexed.get(name)!, r);
      opts.onProgress?.(++done, names.length);
    });
  }
  return r;
}

async function checkTree(repo: Repository, id: string, where: string, seen: Set<string>, r: CheckResult): Promise<void> {
  if (seen.has(id)) return;
  seen.add(id);
  let nodes;
  try {
    nodes = decodeTree(await repo.readTreeBlob(Buffer.from(id, 'hex')), id);
  } catch (err) {
    r.errors.push(finding(err, `tree ${id} (${where})`));
    return;
  }
  for (const n of nodes) {
    const path = `${where}${where.endsWith('/') ? '' : '/'}${n.name}`;
    if (n.type === 'dir') {
      if (n.subtree === undefined) r.errors.push({ code: 'TREE_CORRUPT', subject: `tree ${id}`, message: `${path}: directory without subtree` });
      else await checkTree(repo, n.subtree, path, seen, r);
    } else if (n.type === 'file') {
      for (const h of n.content ?? []) {
        if (!repo.index.has(Buffer.from(h, 'hex'))) {
          r.errors.push({ code: 'BLOB_MISSING', subject: `blob ${h}`, message: `${path}: data blob ${h} is not in the index` });
        }
      }
    }
  }
}

async function readPack(repo: Repository, name: string, desc: PackDescriptor, r: CheckResult): Promise<void> {
  const subject = `data/${name}`;
  let bytes: Buffer;
  try {
    bytes = await repo.storage.read({ kind: 'data', name });
  } catch (err) {
    r.errors.push(finding(err, subject));
    return;
  }
  r.packsRead++;
  r.bytesRead += bytes.length;
  if (sha256(bytes).toString('hex') !== name) {
    r.errors.push({ code: 'PACK_CORRUPT', subject, message: `pack ${name}: content does not match its name (the file was altered)` });
  }
  try {
    const len = bytes.readUInt32LE(bytes.length - 4);
    if (len + 4 > bytes.length) throw new Error('bad trailer length');
    const t = decodeTrailer(repo.keys.enc, bytes.subarray(bytes.length - 4 - len, bytes.length - 4));
    const same =
      t.blobs.length === desc.blobs.length &&
      t.blobs.every((b, i) => {
        const d = desc.blobs[i]!;
        return b.offset === d.offset && b.stored === d.stored && Buffer.from(b.id).equals(Buffer.from(d.id));
      });
    if (!same) r.errors.push({ code: 'PACK_CORRUPT', subject, message: `pack ${name}: trailer disagrees with the index` });
  } catch (err) {
    r.errors.push({ code: 'PACK_CORRUPT', subject, message: `pack ${name}: trailer is damaged (${err instanceof Error ? err.message : String(err)})` });
  }
  const codec = repo.newCodec();
  for (const b of desc.blobs) {
    try {
      if (b.offset + b.stored > bytes.length) throw new BulwarkError('PACK_CORRUPT', `pack ${name}: blob ${Buffer.from(b.id).toString('hex')} extends past the end`, { subject });
      repo.decodeBlob(bytes.subarray(b.offset, b.offset + b.stored), b.id, name, b.offset, codec);
    } catch (err) {
      r.errors.push(finding(err, subject));
    }
  }
}

function sample<T>(items: T[], n: number): T[] {
  const a = [...items];
  for (let i = 0; i < n && i < a.length; i++) {
    const j = i + randomInt(a.length - i);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, n);
}
