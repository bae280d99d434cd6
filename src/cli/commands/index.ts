// The command table: one module per command.
import type { Command } from '../command.js';
import { backup } from './backup.js';
import { check } from './check.js';
import { config } from './config.js';
import { copy } from './copy.js';
import { daemon } from './daemon.js';
import { db } from './db.js';
import { diff } from './diff.js';
import { dump } from './dump.js';
import { forget } from './forget.js';
import { init } from './init.js';
import { key } from './key.js';
import { ls } from './ls.js';
import { prune } from './prune.js';
import { restore } from './restore.js';
import { run } from './run.js';
import { runs } from './runs.js';
import { snapshots } from './snapshots.js';
import { stats } from './stats.js';
import { status } from './status.js';

export const commands: Command[] = [init, backup, snapshots, ls, diff, stats, restore, dump, forget, prune, check, key, copy, db, config, daemon, run, status, runs];
