// Private temp directories (named pipes, client options files holding passwords) are removed on
// every way out: normally by their owner, and on process exit (Ctrl-C, SIGTERM, a forced daemon
// exit) by a synchronous exit handler, so no password file outlives the process.
import * as fs from 'node:fs';

const dirs = new Set<string>();
let hooked = false;

export function registerTempDir(dir: string): string {
  dirs.add(dir);
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

export function releaseTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}
