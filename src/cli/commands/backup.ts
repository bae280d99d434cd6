// bulwark backup: archive paths (or stdin) into a new snapshot.
import { readExcludeFile } from '../../backup/exclude.js';
import { runBackup } from '../../backup/backup.js';
import { BulwarkError } from '../../errors.js';
import { flag, str, strs, type Command } from '../command.js';
import { formatBytes } from '../context.js';
import { Exit } from '../exit-codes.js';

export const backup: Command = {
  name: 'backup',
  usage: 'bulwark backup PATH... [--exclude PATTERN] [--exclude-file FILE] [--tag T] [--host H] [--parent ID | --force] [--stdin --stdin-filename NAME]',
  summary: 'create a snapshot of files and directories',
  options: {
    exclude: { type: 'string', multiple: true, short: 'e' },
    'exclude-file': { type: 'string', multiple: true },
    tag: { type: 'string', multiple: true },
    host: { type: 'string' },
    parent: { type: 'string' },
    force: { type: 'boolean' },
    stdin: { type: 'boolean' },
    'stdin-filename': { type: 'string' },
    threads: { type: 'string' },
  },
  async run(ctx, args, values) {
    const stdin = flag(values, 'stdin');
    if (!stdin && args.length === 0) throw new BulwarkError('USAGE', 'backup needs at least one PATH (or --stdin)', { hint: this.usage });
    if (stdin && args.length > 0) throw new BulwarkError('USAGE', '--stdin takes no PATH arguments', { hint: this.usage });
    const excludes = [...strs(values, 'exclude'), ...strs(values, 'exclude-file').flatMap(readExcludeFile)];
    const tags = strs(values, 'tag').flatMap((t) => t.split(',')).filter((t) => t !== '');
    const repo = await ctx.openRepo();
    const host = str(values, 'host');
    const parent = flag(values, 'force') ? null : str(values, 'parent');
    const threads = Number(str(values, 'threads'));
    const result = await runBackup(repo, {
      paths: args,
      excludes,
      tags,
      ...(host !== undefined ? { host } : {}),
      ...(parent !== undefined ? { parent } : {}),
      ...(Number.isInteger(threads) && threads > 0 ? { threads } : {}),
      ...(stdin ? { stdin: { stream: process.stdin, filename: str(values, 'stdin-filename') ?? 'stdin' } } : {}),
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
  },
};
