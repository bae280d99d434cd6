// The command table: one module per command.
import type { Command } from '../command.js';
import { backup } from './backup.js';
import { init } from './init.js';
import { restore } from './restore.js';
import { snapshots } from './snapshots.js';

export const commands: Command[] = [init, backup, snapshots, restore];
