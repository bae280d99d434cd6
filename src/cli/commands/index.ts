// The command table: one module per command, each loaded only when it runs (loading all of them
// and their dependencies would cost every invocation tens of milliseconds). Name and summary live
// here, so `bulwark help` lists the commands without loading any.
import type { Command } from '../command.js';

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export const commands: CommandEntry[] = [
  { name: 'init', summary: 'create a new repository', load: async () => (await import('./init.js')).init },
  { name: 'backup', summary: 'create a snapshot of files and directories', load: async () => (await import('./backup.js')).backup },
  { name: 'snapshots', summary: 'list snapshots', load: async () => (await import('./snapshots.js')).snapshots },
  { name: 'ls', summary: 'list files in a snapshot', load: async () => (await import('./ls.js')).ls },
  { name: 'diff', summary: 'show differences between two snapshots', load: async () => (await import('./diff.js')).diff },
  { name: 'stats', summary: 'show sizes, deduplication and compression', load: async () => (await import('./stats.js')).stats },
  { name: 'restore', summary: 'restore a snapshot', load: async () => (await import('./restore.js')).restore },
  { name: 'dump', summary: 'write a file from a snapshot to stdout', load: async () => (await import('./dump.js')).dump },
  { name: 'forget', summary: 'remove snapshots by ID or by a retention policy', load: async () => (await import('./forget.js')).forget },
  { name: 'prune', summary: 'remove data that no snapshot needs', load: async () => (await import('./prune.js')).prune },
  { name: 'check', summary: 'check the repository for errors', load: async () => (await import('./check.js')).check },
  { name: 'key', summary: 'manage repository keys (passwords)', load: async () => (await import('./key.js')).key },
  { name: 'copy', summary: 'copy snapshots from another repository', load: async () => (await import('./copy.js')).copy },
  { name: 'db', summary: 'back up and restore databases (PostgreSQL, MySQL/MariaDB, Redis)', load: async () => (await import('./db.js')).db },
  { name: 'config', summary: 'check the config file or show it with defaults applied', load: async () => (await import('./config.js')).config },
  { name: 'daemon', summary: 'run the scheduled jobs of the config file (SIGHUP reloads, SIGTERM stops)', load: async () => (await import('./daemon.js')).daemon },
  { name: 'run', summary: 'run one job of the config now', load: async () => (await import('./run.js')).run },
  { name: 'status', summary: 'show each job\'s last success against its RPO, next run and failures', load: async () => (await import('./status.js')).status },
  { name: 'runs', summary: 'list the history of job runs', load: async () => (await import('./runs.js')).runs },
];
