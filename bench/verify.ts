// Checks that a restore reproduced the backed-up tree: full content
// comparison with `diff -rq`, plus entry types, sizes, modes and mtimes.
import { existsSync } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { failure, run } from "./exec.js";

export interface Verification {
  readonly ok: boolean;
  /** Where inside the restore target the tree was found. */
  readonly restoredRoot?: string;
  readonly entries: number;
  readonly missing: number;
  readonly extra: number;
  /** Entries whose type, size or mode differ. */
  readonly changed: number;
  /** Entries (not directories) whose mtime differs by a second or more. */
  readonly mtimeDiffers: number;
  readonly contentDiffers: boolean;
  readonly detail: string;
}

/**
 * Tools restore either the full original path under the target (restic,
 * borg) or just the tree; look for both.
 */
export function findRestoredRoot(target: string, backedUp: string): string | undefined {
  const candidates = [join(target, backedUp), join(target, backedUp.split("/").at(-1) ?? ""), target];
  return candidates.find((c) => existsSync(join(c, "Makefile")));
}

/** Compares the tree restored from a backup of `backedUp` against `source`, its content. */
export async function verifyRestore(source: string, backedUp: string, target: string, log: string): Promise<Verification> {
  const root = findRestoredRoot(target, backedUp);
  if (root === undefined) {
    return { ok: false, entries: 0, missing: 0, extra: 0, changed: 0, mtimeDiffers: 0, contentDiffers: true, detail: `no restored tree found under ${target}` };
  }
  const [want, got] = await Promise.all([entries(source), entries(root)]);
  let missing = 0;
  let changed = 0;
  let mtimeDiffers = 0;
  for (const [rel, w] of want) {
    const g = got.get(rel);
    if (g === undefined) missing++;
    else if (g.kind !== w.kind || g.size !== w.size || g.mode !== w.mode) changed++;
    else if (w.kind !== "d" && Math.abs(g.mtimeMs - w.mtimeMs) >= 1000) mtimeDiffers++;
  }
  const extra = [...got.keys()].filter((k) => !want.has(k)).length;
  const diff = await run("diff", ["-rq", "--no-dereference", source, root], { log });
  const contentDiffers = diff.code !== 0;
  const ok = !contentDiffers && missing === 0 && extra === 0 && changed === 0;
  const detail = [
    `${want.size} entries`,
    missing ? `${missing} missing` : "",
    extra ? `${extra} extra` : "",
    changed ? `${changed} type/size/mode differ` : "",
    mtimeDiffers ? `${mtimeDiffers} mtime differ` : "",
    contentDiffers ? `diff -rq: ${failure(diff)} (see ${log})` : "content identical",
  ]
    .filter((s) => s !== "")
    .join(", ");
  return { ok, restoredRoot: relative(target, root) || ".", entries: want.size, missing, extra, changed, mtimeDiffers, contentDiffers, detail };
}

interface Entry {
  readonly kind: "f" | "d" | "l" | "o";
  readonly size: number;
  readonly mode: number;
  readonly mtimeMs: number;
}

async function entries(root: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const stack = [root];
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    for (const name of await readdir(dir)) {
      const p = join(dir, name);
      const st = await lstat(p);
      const kind = st.isFile() ? "f" : st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : "o";
      if (kind === "d") stack.push(p);
      out.set(relative(root, p), { kind, size: kind === "f" ? st.size : 0, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs });
    }
  }
  return out;
}
