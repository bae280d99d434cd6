// "Any command" sources: the stdout of a command (or Bulwark's own stdin) as one file of a
// snapshot. A command that exits non-zero or is killed fails the backup: no snapshot is written.
import type { Readable } from 'node:stream';
import type { StreamItem } from '../backup/stream-backup.js';
import { runTool, writeToFd } from './process.js';

/** A file name for the snapshot root from a user-given name ("dir/db.sql" keeps "db.sql"). */
export function streamFileName(name: string): string {
  const base = name.replace(/\/+$/, '').split('/').pop() ?? '';
  return base === '' || base === '.' || base === '..' ? 'stdin' : base;
}

/**
 * The command runs with Bulwark's environment minus its own secrets, since commands such as
 * mysqldump or pg_dump read their credentials from the environment the operator set up.
 */
export function commandItem(name: string, argv: readonly string[], display?: string): StreamItem {
  const [cmd, ...args] = argv;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('BULWARK_')) env[k] = v;
  return {
    name: streamFileName(name),
    mode: 0o644,
    produce: async (fd, signal) => {
      await runTool(cmd!, args, { env, stdout: fd, signal, processGroup: true, what: `command ${cmd}`, failCode: 'DUMP_FAILED' });
      return { command: display ?? argv.join(' ') };
    },
  };
}

export function readableItem(name: string, stream: Readable): StreamItem {
  return {
    name: streamFileName(name),
    mode: 0o644,
    produce: async (fd, signal) => {
      await writeToFd(stream, fd, signal);
    },
  };
}
