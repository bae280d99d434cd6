// bulwark backup: archive paths (or stdin) into a new snapshot.
import { Excluder, readExcludeFile } from '../../backup/exclude.js';
import { Prewalk, prewalkRoots } from '../../backup/prewalk.js';
import { runBackup } from '../../backup/backup.js';
import { runStreamBackup } from '../../backup/stream-backup.js';
import { BulwarkError } from '../../errors.js';
import { commandItem, readableItem } from '../../sources/command.js';
import { flag, str, strs, type Command, type Values } from '../command.js';
import { formatBytes, type Context } from '../context.js';
import { Exit } from '../exit-codes.js';

export const backup: Command = {
  name: 'backup',
  usage:
    'bulwark backup PATH... [--exclude PATTERN] [--exclude-file FILE] [--tag T] [--host H] [--parent ID | --force]\n' +
    '       bulwark backup --stdin [--stdin-filename NAME] [--tag T] [--host H]\n' +
    '       bulwark backup --stdin-from-command [--stdin-filename NAME] [--tag T] [--host H] -- COMMAND [ARGS...]',
  options: {
    exclude: { type: 'string', multiple: true, short: 'e' },
    'exclude-file': { type: 'string', multiple: true },
    tag: { type: 'string', multiple: true },
    host: { type: 'string' },
    parent: { type: 'string' },
    force: { type: 'boolean' },
    stdin: { type: 'boolean' },
    'stdin-filename': { type: 'string' },
    'stdin-from-command': { type: 'boolean' },
    threads: { type: 'string' },
  },
  async run(ctx, args, values) {
    const stdin = flag(values, 'stdin');
    const fromCommand = flag(values, 'stdin-from-command');
    if (stdin && fromCommand) throw new BulwarkError('USAGE', '--stdin and --stdin-from-command exclude each other', { hint: this.usage });
    if (fromCommand && args.length === 0) throw new BulwarkError('USAGE', '--stdin-from-command needs a COMMAND after --', { hint: this.usage });
    if (!stdin && args.length === 0) throw new BulwarkError('USAGE', 'backup needs at least one PATH (or --stdin)', { hint: this.usage });
    if (stdin && args.length > 0) throw new BulwarkError('USAGE', '--stdin takes no PATH arguments', { hint: this.usage });
    const tags = strs(values, 'tag').flatMap((t) => t.split(',')).filter((t) => t !== '');
    const host = str(values, 'host');
    if (stdin || fromCommand) return streamBackup(ctx, values, tags, host, fromCommand ? args : undefined);
    const excludes = [...strs(values, 'exclude'), ...strs(values, 'exclude-file').flatMap(readExcludeFile)];
    // List and stat the sources while the repository opens (its key derivation leaves this thread idle).
    const prewalk = new Prewalk(prewalkRoots(args), new Excluder(excludes)).start();
    try {
      return await fileBackup(ctx, values, args, excludes, tags, host, prewalk);
    } finally {
      prewalk.stop();
    }
  },
};

/** A backup of files and directories. */
async function fileBackup(ctx: Context, values: Values, args: string[], excludes: string[], tags: string[], host: string | undefined, prewalk: Prewalk): Promise<number> {
  const repo = await ctx.openRepo();
  const parent = flag(values, 'force') ? null : str(values, 'parent');
  const threads = Number(str(values, 'threads'));
  const result = await runBackup(repo, {
    paths: args,
    excludes,
    tags,
    ...(host !== undefined ? { host } : {}),
    ...(parent !== undefined ? { parent } : {}),
    ...(Number.isInteger(threads) && threads > 0 ? { threads } : {}),
    prewalk,
    onProgress: (p) => ctx.progress(`${p.files} files, ${p.dirs} dirs, ${formatBytes(p.bytes)}, ${p.errors} errors  ${p.current}`),
  });
  for (const w of result.warnings) ctx.warn(`${w.path}: ${w.message}`);
  const s = result.snapshot.summary!;
  ctx.result({ id: result.id, snapshot: result.snapshot, warnings: result.warnings, recoveredPacks: result.recoveredPacks }, () =>
    [
      `Files:       ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnmodified} unmodified`,
      `Dirs:        ${s.dirsNew} new, ${s.dirsChanged} changed, ${s.dirsUnmodified} unmodified`,
      `Added:       ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedPacked)} stored)`,
      `Processed:   ${s.totalFilesProcessed} files, ${formatBytes(s.totalBytesProcessed)}`,
      ...(result.recoveredPacks > 0 ? [`Recovered:   ${result.recoveredPacks} pack(s) left by an interrupted backup`] : []),
      `snapshot ${result.id.slice(0, 8)} saved${result.warnings.length > 0 ? `, but ${result.warnings.length} file(s) could not be read` : ''}`,
    ].join('\n'),
  );
  return result.warnings.length > 0 ? Exit.PARTIAL : Exit.OK;
}

/** --stdin and --stdin-from-command: one stream as one file at the snapshot root. */
async function streamBackup(ctx: Context, values: Values, tags: string[], host: string | undefined, command: string[] | undefined): Promise<number> {
  const filename = str(values, 'stdin-filename') ?? 'stdin';
  const item = command !== undefined ? commandItem(filename, command) : readableItem(filename, process.stdin);
  const repo = await ctx.openRepo();
  const result = await runStreamBackup(repo, {
    items: [item],
    paths: [`/${filename.replace(/^\/+/, '')}`],
    tags,
    ...(host !== undefined ? { host } : {}),
    source: (items) => ({
      engine: command !== undefined ? 'command' : 'stdin',
      items: items.map((i) => ({ file: i.name, kind: 'stdout', format: 'raw', size: i.size, meta: i.meta })),
    }),
  });
  const s = result.snapshot.summary!;
  ctx.result({ id: result.id, snapshot: result.snapshot, warnings: [], recoveredPacks: 0 }, () =>
    [`Added:       ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedPacked)} stored)`, `Processed:   1 file, ${formatBytes(s.totalBytesProcessed)}`, `snapshot ${result.id.slice(0, 8)} saved`].join('\n'),
  );
  return Exit.OK;
}
