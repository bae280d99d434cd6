// bulwark db backup|restore|ls: database dumps streamed into the repository, and loaded back.
import { runStreamBackup } from '../../backup/stream-backup.js';
import { BulwarkError } from '../../errors.js';
import { Lock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import { fileContent } from '../../restore/file-stream.js';
import { findSnapshot, type Snapshot, type SourceInfo } from '../../snapshot/snapshot.js';
import { engineByName, engineForUrl } from '../../sources/engines.js';
import type { DbRestoreOptions, RestoreInput } from '../../sources/source.js';
import { loadTree } from '../../tree/tree-reader.js';
import { flag, str, strs, type Command, type Values } from '../command.js';
import { formatBytes, type Context } from '../context.js';

const USAGE = [
  'bulwark db backup URL [--database NAME...] [--exclude-table T...] [--schema-only] [--tag T] [--host H] [--dry-run]',
  '       bulwark db restore SNAPSHOT (--to URL | --to-file PATH) [--database NAME] [--as NEWNAME] [--table T] [--schema-only] [--clean] [--jobs N] [--no-owner] [--no-globals] [--dry-run]',
  '       bulwark db ls SNAPSHOT',
].join('\n');

export const db: Command = {
  name: 'db',
  usage: USAGE,
  options: {
    database: { type: 'string', multiple: true, short: 'd' },
    'exclude-table': { type: 'string', multiple: true },
    'schema-only': { type: 'boolean' },
    tag: { type: 'string', multiple: true },
    host: { type: 'string' },
    to: { type: 'string' },
    'to-file': { type: 'string' },
    as: { type: 'string' },
    table: { type: 'string' },
    clean: { type: 'boolean' },
    jobs: { type: 'string', short: 'j' },
    'no-owner': { type: 'boolean' },
    'no-globals': { type: 'boolean' },
    'dry-run': { type: 'boolean', short: 'n' },
  },
  async run(ctx, args, values) {
    const [sub, target] = args;
    if (args.length !== 2 || !['backup', 'restore', 'ls'].includes(sub ?? '')) {
      throw new BulwarkError('USAGE', args.length === 0 ? 'db needs a subcommand' : `db ${sub ?? ''}: wrong arguments`, { hint: USAGE });
    }
    if (sub === 'backup') return backup(ctx, target!, values);
    if (sub === 'restore') return restore(ctx, target!, values);
    return ls(ctx, target!);
  },
};

async function backup(ctx: Context, url: string, values: Values): Promise<number> {
  const engine = engineForUrl(url);
  const dryRun = flag(values, 'dry-run');
  // Asking the server what to dump and opening the repository (key derivation) overlap.
  const opening = dryRun ? undefined : ctx.openRepo();
  opening?.catch(() => undefined);
  const plan = await engine.prepareBackup(url, {
    databases: strs(values, 'database'),
    excludeTables: strs(values, 'exclude-table'),
    schemaOnly: flag(values, 'schema-only'),
  });
  const tags = [...plan.tags, ...strs(values, 'tag').flatMap((t) => t.split(',')).filter((t) => t !== '')];
  if (opening === undefined) {
    ctx.result({ dryRun: true, engine: engine.engine, url: plan.paths[0], databases: plan.databases, files: plan.items.map((i) => i.name), tags }, () =>
      [`would back up ${engine.engine} ${plan.paths[0]}`, `databases: ${plan.databases.join(', ')}`, `files: ${plan.items.map((i) => i.name).join(', ')}`].join('\n'),
    );
    return 0;
  }
  const repo = await opening;
  const host = str(values, 'host');
  const result = await runStreamBackup(repo, {
    items: plan.items,
    paths: plan.paths,
    tags,
    ...(host !== undefined ? { host } : {}),
    source: plan.describe,
    onItem: (name, size) => ctx.progress(`${name}: ${formatBytes(size)}`),
  });
  const s = result.snapshot.summary!;
  ctx.result({ id: result.id, snapshot: result.snapshot }, () =>
    [
      ...result.items.map((i) => `${i.name.padEnd(32)} ${formatBytes(i.size)}`),
      `Added:       ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedPacked)} stored) of ${formatBytes(s.totalBytesProcessed)} dumped`,
      `snapshot ${result.id.slice(0, 8)} saved`,
    ].join('\n'),
  );
  return 0;
}

function sourceOf(snap: Snapshot): SourceInfo {
  if (snap.source === undefined || engineByName(snap.source.engine) === undefined) {
    throw new BulwarkError('NOT_A_DB_SNAPSHOT', `snapshot ${snap.id.slice(0, 8)} is not a database snapshot`, {
      subject: snap.id,
      hint: 'use `bulwark restore` for file snapshots; `bulwark snapshots --tag ENGINE` lists database snapshots',
    });
  }
  return snap.source;
}

async function restore(ctx: Context, ref: string, values: Values): Promise<number> {
  const to = str(values, 'to');
  const toFile = str(values, 'to-file');
  if ((to === undefined) === (toFile === undefined)) throw new BulwarkError('USAGE', 'db restore needs exactly one of --to URL or --to-file PATH', { hint: USAGE });
  const jobsRaw = str(values, 'jobs');
  const jobs = jobsRaw === undefined ? undefined : Number(jobsRaw);
  if (jobs !== undefined && (!Number.isInteger(jobs) || jobs < 1 || jobs > 64)) throw new BulwarkError('USAGE', `--jobs must be a whole number from 1 to 64, not ${jobsRaw}`, { subject: '--jobs' });
  const repo = await ctx.openRepo();
  const snap = await findSnapshot(repo, ref);
  const source = sourceOf(snap);
  const engine = engineByName(source.engine)!;
  if (to !== undefined && engineForUrl(to).engine !== engine.engine) {
    throw new BulwarkError('USAGE', `snapshot ${snap.id.slice(0, 8)} is a ${engine.engine} backup and cannot be restored to ${engineForUrl(to).engine}`, { subject: '--to' });
  }
  const opts: DbRestoreOptions = {
    to: to ?? '',
    schemaOnly: flag(values, 'schema-only'),
    clean: flag(values, 'clean'),
    noOwner: flag(values, 'no-owner'),
    noGlobals: flag(values, 'no-globals'),
    dryRun: flag(values, 'dry-run'),
  };
  const database = strs(values, 'database');
  if (database.length > 1) throw new BulwarkError('USAGE', 'db restore takes one --database (or none for all)', { subject: '--database' });
  if (database[0] !== undefined) opts.database = database[0];
  const as = str(values, 'as');
  if (as !== undefined) opts.as = as;
  const table = str(values, 'table');
  if (table !== undefined) opts.table = table;
  if (jobs !== undefined) opts.jobs = jobs;
  if (toFile !== undefined) opts.toFile = toFile;

  const lock = await Lock.acquire(repo, 'shared', 'restore');
  try {
    await repo.loadIndex();
    const input = await restoreInput(repo, snap, source);
    const report = await engine.restore(input, opts);
    lock.assertHeld();
    for (const w of report.warnings) ctx.warn(w);
    ctx.result({ snapshot: snap.id, ...report }, () =>
      [
        ...report.steps.map((s) => `${opts.dryRun ? 'would ' : ''}${s.action}${s.database !== undefined ? ` ${s.database}` : ''}${s.target !== undefined && s.target !== s.database ? ` -> ${s.target}` : ''}${s.detail !== undefined ? `: ${s.detail}` : ''}`),
        opts.dryRun ? 'dry run: nothing was changed' : `restored snapshot ${snap.id.slice(0, 8)} to ${report.target}`,
      ].join('\n'),
    );
    return 0;
  } finally {
    await lock.release();
  }
}

async function restoreInput(repo: Repository, snap: Snapshot, source: SourceInfo): Promise<RestoreInput> {
  const nodes = await loadTree(repo, snap.tree);
  return {
    snapshot: snap,
    source,
    read(file: string) {
      const node = nodes.find((n) => n.name === file && n.type === 'file');
      if (node === undefined) {
        throw new BulwarkError('PATH_NOT_FOUND', `snapshot ${snap.id.slice(0, 8)} has no file ${file}`, { subject: file, hint: 'the snapshot is damaged; run `bulwark check`' });
      }
      return fileContent(repo, node);
    },
  };
}

async function ls(ctx: Context, ref: string): Promise<number> {
  const repo = await ctx.openRepo();
  const snap = await findSnapshot(repo, ref);
  const source = sourceOf(snap);
  ctx.result({ id: snap.id, time: snap.time, host: snap.host, tags: snap.tags, ...source }, () =>
    [
      `snapshot ${snap.id.slice(0, 8)} of ${source.engine} ${source.url ?? ''}${source.serverVersion !== undefined ? ` (server ${source.serverVersion})` : ''}, ${snap.time}`,
      ...source.items.map((i) => `  ${(i.database ?? i.kind).padEnd(24)} ${i.format.padEnd(16)} ${formatBytes(i.size).padStart(12)}  ${i.file}`),
    ].join('\n'),
  );
  return 0;
}
