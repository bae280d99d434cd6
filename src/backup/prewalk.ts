// The pre-walk lists and lstat's the source trees while the repository opens. Opening spends about
// a third of a second deriving the key (scrypt, on a thread-pool thread) while the main thread has
// nothing to do; an unchanged re-backup is mostly that walk, so doing its first part then takes it
// off the critical path. The pre-walk goes depth first in the archiver's order, in slices of a few
// milliseconds (so the repository's own work on this thread is never held up), stops when told or
// once it holds `maxEntries` entries (bounded memory), and keeps each directory's listing as names
// and one packed array of lstat numbers (no object per entry). The archiver takes a directory's
// listing when it gets there, and lists and stats live wherever the pre-walk did not reach.
//
// Using a stat taken a little earlier is no different from using one taken at the moment the
// archiver passes: a backup is not an atomic picture of a live filesystem either way.
import * as fs from 'node:fs';
import { STAT_FIELDS, compareNames, packStat } from '../tree/node.js';
import { absolutePath, childPath } from './archiver.js';
import type { Excluder } from './exclude.js';

/** One directory's listing: names in archiver order, and per name its packed lstat (NaN mode: stat again). */
export interface Listing {
  names: string[];
  stats: Float64Array;
}

/** How long one slice of the pre-walk runs before it yields to the event loop. */
const SLICE_MS = 4;

export class Prewalk {
  private readonly cache = new Map<string, Listing>();
  /** Directories still to list, the next one last. */
  private readonly stack: string[];
  private entries = 0;
  private stopped = false;
  private timer: NodeJS.Immediate | undefined;

  /** `roots` are absolute paths; those that are not directories are left to the archiver. */
  constructor(
    roots: readonly string[],
    private readonly excluder: Excluder,
    private readonly maxEntries = 40_000,
  ) {
    this.stack = roots
      .filter((r) => {
        try {
          return fs.lstatSync(r).isDirectory();
        } catch {
          return false;
        }
      })
      .reverse();
  }

  /** Starts walking in the background (slices on this thread's event loop). */
  start(): this {
    if (!this.stopped && this.stack.length > 0) this.timer = setImmediate(() => this.slice());
    return this;
  }

  /** Stops walking; listings already made stay available to `take`. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearImmediate(this.timer);
    this.timer = undefined;
  }

  /** Entries listed so far (what the cache holds at most, too). */
  get listed(): number {
    return this.entries;
  }

  /** True once the walk has ended: stopped, complete, or at its bound. */
  get finished(): boolean {
    return this.stopped || this.stack.length === 0 || this.entries >= this.maxEntries;
  }

  /** Listings made and not yet taken. */
  get held(): number {
    return this.cache.size;
  }

  /** The listing of `dir` if the pre-walk made one; each is handed out once. */
  take(dir: string): Listing | undefined {
    const l = this.cache.get(dir);
    if (l !== undefined) this.cache.delete(dir);
    return l;
  }

  private slice(): void {
    this.timer = undefined;
    const end = performance.now() + SLICE_MS;
    while (!this.stopped && this.stack.length > 0 && this.entries < this.maxEntries) {
      this.list(this.stack.pop()!);
      if (performance.now() >= end) {
        this.timer = setImmediate(() => this.slice());
        return;
      }
    }
  }

  private list(dir: string): void {
    let names: string[];
    try {
      names = fs.readdirSync(dir).sort(compareNames);
    } catch {
      return; // the archiver lists it again and reports the error
    }
    if (!this.excluder.empty) names = names.filter((n) => !this.excluder.excluded(childPath(dir, n)));
    const stats = new Float64Array(names.length * STAT_FIELDS);
    const subdirs: string[] = [];
    for (let i = 0; i < names.length; i++) {
      const child = childPath(dir, names[i]!);
      try {
        const st = fs.lstatSync(child);
        packStat(st, stats, i * STAT_FIELDS);
        // Several hard links: the archiver stats it again for the exact (BigInt) inode.
        if (st.nlink > 1 && !st.isDirectory()) stats[i * STAT_FIELDS] = NaN;
        if (st.isDirectory()) subdirs.push(child);
      } catch {
        stats[i * STAT_FIELDS] = NaN;
      }
    }
    this.cache.set(dir, { names, stats });
    this.entries += names.length;
    for (let i = subdirs.length - 1; i >= 0; i--) this.stack.push(subdirs[i]!);
  }
}

/**
 * The absolute form of backup source paths, as the archiver names them (see absolutePaths),
 * without those inside another one (walking the outer one lists them).
 */
export function prewalkRoots(paths: readonly string[]): string[] {
  const all = [...new Set(paths.map(absolutePath))].sort();
  return all.filter((p) => !all.some((q) => q !== p && (q === '/' || p.startsWith(`${q}/`))));
}
