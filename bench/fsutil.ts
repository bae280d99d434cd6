// File-system helpers: sizes, tree summaries, cache warm-up.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, readdir, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { must } from "./exec.js";

export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** Apparent size in bytes of everything under `path` (`du -sb`). */
export async function duBytes(path: string): Promise<number> {
  const out = await must("du", ["-sb", path]);
  const n = Number(out.split("\t")[0]);
  if (!Number.isFinite(n)) throw new Error(`du -sb ${path}: unexpected output ${JSON.stringify(out)}`);
  return n;
}

export interface TreeSummary {
  files: number;
  dirs: number;
  symlinks: number;
  other: number;
  /** Sum of regular-file sizes. */
  bytes: number;
}

/** Counts entries under `root` (not following symlinks), excluding `root` itself. */
export async function summarize(root: string): Promise<TreeSummary> {
  const sum: TreeSummary = { files: 0, dirs: 0, symlinks: 0, other: 0, bytes: 0 };
  const stack = [root];
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, ent.name);
      if (ent.isDirectory()) {
        sum.dirs++;
        stack.push(p);
      } else if (ent.isFile()) {
        sum.files++;
        sum.bytes += (await lstat(p)).size;
      } else if (ent.isSymbolicLink()) sum.symlinks++;
      else sum.other++;
    }
  }
  return sum;
}

/**
 * Reads every byte under `path` so the page cache is equally warm for each
 * tool. GNU tar skips reading file data when its archive is /dev/null, so the
 * archive is piped here and discarded instead.
 */
export async function warm(path: string): Promise<void> {
  if (!existsSync(path)) return;
  await new Promise<void>((resolve, reject) => {
    const tar = spawn("tar", ["-cf", "-", "-C", dirname(path), basename(path)], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    tar.stdout.resume();
    tar.on("error", reject);
    tar.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`warm-up tar of ${path}: exit ${String(code)}`))));
  });
}
