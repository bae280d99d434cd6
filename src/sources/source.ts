// The source-plugin interface for databases. An engine turns a server URL into a list of streams
// to capture (one per database, plus server-wide globals) and knows how to load a snapshot of its
// own back into a server. Engines sit above the snapshot layer: they produce `StreamItem`s for
// `runStreamBackup` and read files back through `RestoreInput`; they never touch packs or storage.
import type { StreamItem, StreamItemResult } from '../backup/stream-backup.js';
import type { Snapshot, SourceInfo } from '../snapshot/snapshot.js';

export interface DbBackupOptions {
  /** Databases to dump; empty means the one named in the URL, else all. */
  databases: string[];
  excludeTables: string[];
  schemaOnly: boolean;
}

export interface BackupPlan {
  items: StreamItem[];
  /** The snapshot's paths (the redacted URL) and tags (engine, database names). */
  paths: string[];
  tags: string[];
  /** Builds the snapshot's source description once sizes are known. */
  describe(results: StreamItemResult[]): SourceInfo;
  /** What will be dumped, for `--dry-run` and reports. */
  databases: string[];
}

export interface DbRestoreOptions {
  to: string;
  database?: string;
  as?: string;
  table?: string;
  schemaOnly: boolean;
  clean: boolean;
  jobs?: number;
  noOwner: boolean;
  noGlobals: boolean;
  dryRun: boolean;
  /** Redis: write the RDB file here instead of loading it into a server. */
  toFile?: string;
}

/** Access to the files of the snapshot being restored. */
export interface RestoreInput {
  snapshot: Snapshot;
  source: SourceInfo;
  /** The content of one file of the snapshot root, streamed from the repository. */
  read(file: string): AsyncIterable<Buffer>;
}

export interface RestoreStep {
  action: string;
  database?: string;
  target?: string;
  detail?: string;
}

export interface RestoreReport {
  engine: string;
  target: string;
  dryRun: boolean;
  steps: RestoreStep[];
  warnings: string[];
  /** Engine-specific results (keys loaded, tables restored...). */
  details?: Record<string, unknown>;
}

export interface DbEngine {
  readonly engine: string;
  /** URL schemes this engine answers to, with the colon: "postgresql:". */
  readonly schemes: readonly string[];
  /** The URL with any password removed, for messages, snapshots and reports. */
  redact(url: string): string;
  prepareBackup(url: string, opts: DbBackupOptions): Promise<BackupPlan>;
  restore(input: RestoreInput, opts: DbRestoreOptions): Promise<RestoreReport>;
}

/** A database name as a file name in the snapshot root (names may hold '/', spaces, anything). */
export function safeFileName(name: string): string {
  return encodeURIComponent(name).replace(/^\./, '%2E');
}
