// The pre-walk lists and lstat's the source trees ahead of the archiver. Opening the repository
// spends about a third of a second deriving the key (scrypt, on a thread-pool thread) while the
// main thread has nothing to do, and during the backup the main thread waits whenever the chunk
// workers are behind: the pre-walk fills both with the walk's own work. It goes depth first in the
// archiver's order, in slices of a few milliseconds (so the repository's and the archiver's work on
// this thread is never held up long), and keeps each directory's listing as names and one packed
// array of lstat numbers (no object per entry). The archiver takes a directory's listing when it
// gets there, and lists and stats live wherever the pre-walk has not been. Memory stays bounded: the
// pre-walk pauses while it holds `maxHeld` entries not yet taken (100,000 by default, about 13 MB),
// and resumes as the archiver takes them. Where the archiver gets to a directory first, the
// pre-walk skips what it passed.
//
// Using a stat taken earlier (up to the bound's worth of entries ahead of the archiver) is no
// different from using one taken at the moment the archiver passes: a backup is not an atomic
// picture of a live filesystem either way, and the next backup sees what changed since. The bound
// is checked between directories, so one huge directory is listed whole and may exceed it.
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

/**
 * Listings' stats are cut from slabs of this many numbers (1 MiB) instead of one array per
 * directory: thousands of small arrays are as many malloc'd blocks, whose freed space the process
 * keeps, while a slab is one mapping that is returned whole once its listings are taken.
 */
const SLAB_FIELDS = 128 * 1024;

export class Prewalk {
  private readonly cache = new Map<string, Listing>();
  /** Directories still to list, the next one last; `queued` holds the same names. */
  private readonly stack: string[];
  private readonly queued: Set<string>;
  private entries = 0;
  /** Entries of listings made and not yet taken. */
  private heldEntries = 0;
  private stopped = false;
  private timer: NodeJS.Immediate | undefined;
  private slab = new Float64Array(0);
  private slabUsed = 0;

  /** `roots` are absolute paths; those that are not directories are left to the archiver. */
  constructor(
    roots: readonly string[],
    private readonly excluder: Excluder,
    private readonly maxHeld = 100_000,
  ) {
    this.stack = [...new Set(roots)]
      .filter((r) => {
        try {
          return fs.lstatSync(r).isDirectory();
        } catch {
          return false;
        }
      })
      .reverse();
    this.queued = new Set(this.stack);
  }

  /** Starts walking in the background (slices on this thread's event loop). */
  start(): this {
    this.schedule();
    return this;
  }

  /** Stops walking; listings already made stay available to `take`. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearImmediate(this.timer);
    this.timer = undefined;
  }

  /** Entries listed so far. */
  get listed(): number {
    return this.entries;
  }

  /** True while the walk is not running: stopped, complete, or paused at its bound. */
  get finished(): boolean {
    return this.timer === undefined && !this.canRun();
  }

  /** Listings made and not yet taken. */
  get held(): number {
    return this.cache.size;
  }

  /**
   * The listing of `dir` if the pre-walk made one; each is handed out once. Without one, a
   * directory the pre-walk was still to list has been reached by the archiver, which lists it and
   * what lies below itself: the pre-walk drops it and whatever it had queued before it.
   */
  take(dir: string): Listing | undefined {
    const l = this.cache.get(dir);
    if (l !== undefined) {
      this.cache.delete(dir);
      this.heldEntries -= l.names.length;
      this.schedule();
    } else if (this.queued.has(dir)) {
      while (this.stack.length > 0) {
        const next = this.stack.pop()!;
        this.queued.delete(next);
        if (next === dir) break;
      }
    }
    return l;
  }

  private canRun(): boolean {
    return !this.stopped && this.stack.length > 0 && this.heldEntries < this.maxHeld;
  }

  private schedule(): void {
    if (this.timer === undefined && this.canRun()) this.timer = setImmediate(() => this.slice());
  }

  private slice(): void {
    this.timer = undefined;
    const end = performance.now() + SLICE_MS;
    while (this.canRun()) {
      const dir = this.stack.pop()!;
      this.queued.delete(dir);
      this.list(dir);
      if (performance.now() >= end) break;
    }
    this.schedule();
  }

  /** A zeroed array for `n` entries' stats, cut from the current slab (a big listing gets its own). */
  private statsFor(n: number): Float64Array {
    const size = n * STAT_FIELDS;
    if (size > SLAB_FIELDS / 4) return new Float64Array(size);
    if (this.slabUsed + size > this.slab.length) {
      this.slab = new Float64Array(SLAB_FIELDS);
      this.slabUsed = 0;
    }
    const out = this.slab.subarray(this.slabUsed, this.slabUsed + size);
    this.slabUsed += size;
    return out;
  }

  private list(dir: string): void {
    let names: string[];
    try {
      names = fs.readdirSync(dir).sort(compareNames);
    } catch {
      return; // the archiver lists it again and reports the error
    }
    if (!this.excluder.empty) names = names.filter((n) => !this.excluder.excluded(childPath(dir, n)));
    const stats = this.statsFor(names.length);
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
    this.heldEntries += names.length;
    for (let i = subdirs.length - 1; i >= 0; i--) {
      this.stack.push(subdirs[i]!);
      this.queued.add(subdirs[i]!);
    }
  }
}

/**
 * The absolute form of backup source paths, as the archiver names them (see absolutePaths),
 * without those inside another one (walking the outer one lists them).
 */
export function prewalkRoots(paths: readonly string[]): string[] {
  const all = [...new Set(paths.map(absolutePath))].sort(byComponents);
  return all.filter((p) => !all.some((q) => q !== p && (q === '/' || p.startsWith(`${q}/`))));
}

/**
 * The archiver's order of source paths: it walks "/" down one name at a time, so "/srv/app/x"
 * comes before "/srv/app-data" ("app" before "app-data"), which a plain string sort reverses.
 */
function byComponents(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = compareNames(x[i]!, y[i]!);
    if (c !== 0) return c;
  }
  return x.length - y.length;
}
