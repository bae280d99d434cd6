// Snapshot documents (snapshots/<id>): the root of one backup. A snapshot is written last, after
// every pack and index file it needs, so a snapshot that exists is always complete.
import { BulwarkError, isBulwarkError } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import { getJSON, putJSON } from '../repo/objects.js';
import { mapLimit } from '../concurrency.js';

export interface SnapshotSummary {
  backupStart: string;
  backupEnd: string;
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirsNew: number;
  dirsChanged: number;
  dirsUnmodified: number;
  dataBlobs: number;
  treeBlobs: number;
  dataAdded: number;
  dataAddedPacked: number;
  totalFilesProcessed: number;
  totalBytesProcessed: number;
  errors: number;
}

/**
 * What a stream snapshot (database dump, command output) was taken from. Files are the snapshot
 * root's entries; everything here is descriptive, for listing and for picking a restore method.
 */
export interface SourceInfo {
  /** Engine or source kind: postgresql, mysql, redis, command, stdin. */
  engine: string;
  /** Where it came from, with any password removed. */
  url?: string;
  serverVersion?: string;
  items: SourceItem[];
  /** Engine-specific facts (replication offset, flags used for the dump, warnings). */
  details?: Record<string, unknown>;
}

export interface SourceItem {
  /** File name in the snapshot root. */
  file: string;
  /** database (one database's dump), globals (roles, users), rdb, stdout. */
  kind: string;
  /** Database name, for kind database. */
  database?: string;
  /** Dump format: pg_dump-custom, sql, rdb, raw. */
  format: string;
  size: number;
  meta?: Record<string, unknown>;
}

export interface SnapshotDoc {
  time: string;
  host: string;
  username: string;
  paths: string[];
  tags: string[];
  tree: string;
  parent?: string;
  excludes?: string[];
  programVersion: string;
  /** For a snapshot copied from another repository: the ID it has there. */
  original?: string;
  source?: SourceInfo;
  summary?: SnapshotSummary;
}

export interface Snapshot extends SnapshotDoc {
  id: string;
}

export async function saveSnapshot(repo: Repository, doc: SnapshotDoc): Promise<string> {
  return putJSON(repo.storage, repo.keys.enc, 'snapshots', doc);
}

export async function loadSnapshot(repo: Repository, id: string): Promise<Snapshot> {
  const doc = (await getJSON(repo.storage, repo.keys.enc, 'snapshots', id)) as SnapshotDoc;
  return { ...doc, id };
}

/**
 * All readable snapshots, oldest first. A damaged snapshot document must not hide the others (nor
 * block new backups): it is left out and, if `damaged` is given, reported there.
 */
export async function listSnapshots(repo: Repository, damaged?: BulwarkError[]): Promise<Snapshot[]> {
  const names: string[] = [];
  for await (const o of repo.storage.list('snapshots')) names.push(o.name);
  const out: Snapshot[] = [];
  await mapLimit(names, 16, async (name) => {
    try {
      out.push(await loadSnapshot(repo, name));
    } catch (err) {
      if (!isBulwarkError(err, 'SNAPSHOT_CORRUPT')) throw err;
      damaged?.push(err);
    }
  });
  return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
}

export interface SnapshotFilter {
  host?: string;
  paths?: string[];
  tags?: string[];
}

export function matches(s: Snapshot, f: SnapshotFilter): boolean {
  if (f.host !== undefined && s.host !== f.host) return false;
  if (f.paths !== undefined && f.paths.length > 0 && !sameSet(s.paths, f.paths)) return false;
  if (f.tags !== undefined && f.tags.length > 0 && !f.tags.every((t) => s.tags.includes(t))) return false;
  return true;
}

function sameSet(a: string[], b: string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Resolves "latest", a full ID, or a unique ID prefix. */
export async function findSnapshot(repo: Repository, ref: string, filter: SnapshotFilter = {}): Promise<Snapshot> {
  if (ref === 'latest') {
    const all = (await listSnapshots(repo)).filter((s) => matches(s, filter));
    const last = all[all.length - 1];
    if (last === undefined) {
      throw new BulwarkError('SNAPSHOT_NOT_FOUND', 'the repository has no snapshots (matching the filter)', {
        subject: 'latest',
        hint: 'run `bulwark backup` first; `bulwark snapshots` lists what exists',
      });
    }
    return last;
  }
  if (!/^[0-9a-f]{1,64}$/.test(ref)) {
    throw new BulwarkError('SNAPSHOT_NOT_FOUND', `${JSON.stringify(ref)} is not a snapshot ID, ID prefix or "latest"`, { subject: ref });
  }
  const hits: string[] = [];
  for await (const o of repo.storage.list('snapshots')) if (o.name.startsWith(ref)) hits.push(o.name);
  if (hits.length === 0) {
    throw new BulwarkError('SNAPSHOT_NOT_FOUND', `no snapshot matches ${ref}`, { subject: ref, hint: '`bulwark snapshots` lists snapshot IDs' });
  }
  if (hits.length > 1) {
    throw new BulwarkError('SNAPSHOT_AMBIGUOUS', `${hits.length} snapshots start with ${ref}`, { subject: ref, hint: 'give more characters of the ID' });
  }
  return loadSnapshot(repo, hits[0]!);
}
