// Retention policies with restic's `forget` semantics (see docs/design.md, "Retention"): snapshots
// are grouped (host + paths by default), each group is walked newest first, and a snapshot is kept
// when it opens a new period (hour, day, ISO week, month, year, in local time) of a bucket that still
// has counts left, is within a duration of the group's newest snapshot, or carries a kept tag. When a
// bucket still has counts left at the oldest snapshot of the group, that snapshot is kept as well.
import { BulwarkError } from '../errors.js';
import type { Snapshot } from './snapshot.js';

export interface RetentionPolicy {
  /** Counts: 0 or absent = not used, -1 = unlimited. */
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Keep everything newer than the group's newest snapshot minus this duration ("2y5m7d3h"). */
  within?: string;
  /** Keep snapshots that have every tag of one of these lists ("a" or "a,b"). */
  tags?: string[];
}

/** The grandfather-father-son default used by configuration files. */
export const DEFAULT_GFS_POLICY: Readonly<RetentionPolicy> = Object.freeze({ daily: 30, weekly: 12, monthly: 12, yearly: 7 });

export type GroupField = 'host' | 'paths' | 'tags';

export interface ApplyOptions {
  /** Fields that define a group (default host and paths, like restic's `--group-by host,paths`). */
  groupBy?: readonly GroupField[];
  /** "Now" for ignoring future snapshots when finding the newest (default: the current time). */
  now?: Date;
}

export interface Duration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

export interface KeptSnapshot {
  snapshot: Snapshot;
  reasons: string[];
}

export interface PolicyGroup {
  /** Display key, e.g. `host=web1 paths=[/srv]`. */
  key: string;
  host?: string;
  paths?: string[];
  tags?: string[];
  /** Newest first. */
  keep: KeptSnapshot[];
  /** Newest first. */
  remove: Snapshot[];
}

export interface PolicyResult {
  groups: PolicyGroup[];
}

/** Parses restic's duration syntax: a sequence of <number><unit> with units y, m (months), d, h. */
export function parseDuration(s: string): Duration {
  const d: Duration = { years: 0, months: 0, days: 0, hours: 0 };
  const text = s.trim();
  if (text === '') throw durationError(s);
  const re = /(\d+)([ymdh])/gy;
  let pos = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const n = Number(m[1]);
    switch (m[2]) {
      case 'y':
        d.years += n;
        break;
      case 'm':
        d.months += n;
        break;
      case 'd':
        d.days += n;
        break;
      default:
        d.hours += n;
    }
    pos = re.lastIndex;
  }
  if (pos !== text.length) throw durationError(s);
  return d;
}

function durationError(s: string): BulwarkError {
  return new BulwarkError('USAGE', `invalid duration ${JSON.stringify(s)}`, { subject: s, hint: 'use numbers with units y, m, d, h, e.g. 30d or 2y5m7d3h' });
}

export function formatDuration(d: Duration): string {
  let s = '';
  if (d.years !== 0) s += `${d.years}y`;
  if (d.months !== 0) s += `${d.months}m`;
  if (d.days !== 0) s += `${d.days}d`;
  if (d.hours !== 0) s += `${d.hours}h`;
  return s;
}

function isZero(d: Duration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0;
}

/** True if the policy keeps nothing by itself (restic refuses to act on it). */
export function policyIsEmpty(p: RetentionPolicy): boolean {
  const counts = [p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly];
  if (counts.some((c) => c !== undefined && c !== 0)) return false;
  if (p.tags !== undefined && p.tags.length > 0) return false;
  if (p.within !== undefined && !isZero(parseDuration(p.within))) return false;
  return true;
}

/** ISO-8601 week-numbering year and week of a local date. */
export function isoWeek(d: Date): { year: number; week: number } {
  // The Thursday of this date's week decides the year; weeks start on Monday.
  const t = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const dow = (t.getDay() + 6) % 7; // Monday 0 .. Sunday 6
  t.setDate(t.getDate() - dow + 3);
  const year = t.getFullYear();
  const jan4 = new Date(year, 0, 4);
  const jan4dow = (jan4.getDay() + 6) % 7;
  const week1Thursday = new Date(year, 0, 4 - jan4dow + 3);
  const week = 1 + Math.round((t.getTime() - week1Thursday.getTime()) / (7 * 86_400_000));
  return { year, week };
}

type Bucker = (d: Date, nr: number) => number;
const always: Bucker = (_d, nr) => nr;
const ymdh: Bucker = (d) => d.getFullYear() * 1_000_000 + (d.getMonth() + 1) * 10_000 + d.getDate() * 100 + d.getHours();
const ymd: Bucker = (d) => d.getFullYear() * 10_000 + (d.getMonth() + 1) * 100 + d.getDate();
const yw: Bucker = (d) => {
  const w = isoWeek(d);
  return w.year * 100 + w.week;
};
const ym: Bucker = (d) => d.getFullYear() * 100 + (d.getMonth() + 1);
const y: Bucker = (d) => d.getFullYear();

function checkCount(name: string, v: number | undefined): number {
  if (v === undefined) return 0;
  if (!Number.isInteger(v) || v < -1) {
    throw new BulwarkError('USAGE', `keep-${name} must be a whole number >= 0, or -1 for unlimited (got ${String(v)})`, { subject: `keep-${name}` });
  }
  return v;
}

function sameTags(s: Snapshot, list: string[]): boolean {
  return list.every((t) => s.tags.includes(t));
}

function tagLists(p: RetentionPolicy): string[][] {
  return (p.tags ?? []).map((t) => t.split(',').map((x) => x.trim()).filter((x) => x !== '')).filter((l) => l.length > 0);
}

/** Applies the policy to one group of snapshots (any order). Returns kept and removed, newest first. */
export function applyToGroup(list: readonly Snapshot[], p: RetentionPolicy, now: Date = new Date()): { keep: KeptSnapshot[]; remove: Snapshot[] } {
  const sorted = [...list].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  if (policyIsEmpty(p)) return { keep: sorted.map((snapshot) => ({ snapshot, reasons: ['policy is empty'] })), remove: [] };
  if (sorted.length === 0) return { keep: [], remove: [] };
  const buckets = [
    { count: checkCount('last', p.last), bucker: always, last: -1, reason: 'last snapshot' },
    { count: checkCount('hourly', p.hourly), bucker: ymdh, last: -1, reason: 'hourly snapshot' },
    { count: checkCount('daily', p.daily), bucker: ymd, last: -1, reason: 'daily snapshot' },
    { count: checkCount('weekly', p.weekly), bucker: yw, last: -1, reason: 'weekly snapshot' },
    { count: checkCount('monthly', p.monthly), bucker: ym, last: -1, reason: 'monthly snapshot' },
    { count: checkCount('yearly', p.yearly), bucker: y, last: -1, reason: 'yearly snapshot' },
  ];
  const within = p.within !== undefined ? parseDuration(p.within) : undefined;
  const lists = tagLists(p);
  // The newest snapshot that is not in the future.
  let latest = -Infinity;
  for (const s of sorted) {
    const t = Date.parse(s.time);
    if (t > latest && t < now.getTime()) latest = t;
  }
  let cutoff = -Infinity;
  if (within !== undefined && !isZero(within) && Number.isFinite(latest)) {
    const l = new Date(latest);
    const c = new Date(l.getFullYear() - within.years, l.getMonth() - within.months, l.getDate() - within.days, l.getHours(), l.getMinutes(), l.getSeconds(), l.getMilliseconds());
    cutoff = c.getTime() - within.hours * 3_600_000;
  }
  const keep: KeptSnapshot[] = [];
  const remove: Snapshot[] = [];
  sorted.forEach((cur, nr) => {
    const time = new Date(Date.parse(cur.time));
    const reasons: string[] = [];
    for (const l of lists) if (sameTags(cur, l)) reasons.push(`has tag ${l.join(',')}`);
    if (within !== undefined && !isZero(within) && time.getTime() > cutoff) reasons.push(`within ${formatDuration(within)}`);
    for (const b of buckets) {
      if (b.count > 0 || b.count === -1) {
        const val = b.bucker(time, nr);
        const oldest = nr === sorted.length - 1;
        if (val !== b.last || oldest) {
          reasons.push(val === b.last && oldest ? `oldest ${b.reason}` : b.reason);
          b.last = val;
          if (b.count > 0) b.count--;
        }
      }
    }
    if (reasons.length > 0) keep.push({ snapshot: cur, reasons });
    else remove.push(cur);
  });
  return { keep, remove };
}

function groupKey(s: Snapshot, by: readonly GroupField[]): { key: string; host?: string; paths?: string[]; tags?: string[] } {
  const out: { key: string; host?: string; paths?: string[]; tags?: string[] } = { key: '' };
  const parts: string[] = [];
  if (by.includes('host')) {
    out.host = s.host;
    parts.push(`host=${s.host}`);
  }
  if (by.includes('paths')) {
    out.paths = [...s.paths].sort();
    parts.push(`paths=[${out.paths.join(' ')}]`);
  }
  if (by.includes('tags')) {
    out.tags = [...s.tags].sort();
    parts.push(`tags=[${out.tags.join(',')}]`);
  }
  out.key = parts.length > 0 ? parts.join(' ') : 'all';
  return out;
}

/**
 * Groups the snapshots and applies the policy to each group. Groups come in order of their newest
 * snapshot's key (stable, sorted by key); snapshots inside a group newest first.
 */
export function applyPolicy(snapshots: readonly Snapshot[], policy: RetentionPolicy, opts: ApplyOptions = {}): PolicyResult {
  const by = opts.groupBy ?? ['host', 'paths'];
  const groups = new Map<string, { meta: ReturnType<typeof groupKey>; list: Snapshot[] }>();
  for (const s of snapshots) {
    const meta = groupKey(s, by);
    let g = groups.get(meta.key);
    if (g === undefined) {
      g = { meta, list: [] };
      groups.set(meta.key, g);
    }
    g.list.push(s);
  }
  const now = opts.now ?? new Date();
  const out: PolicyGroup[] = [];
  for (const key of [...groups.keys()].sort()) {
    const g = groups.get(key)!;
    const r = applyToGroup(g.list, policy, now);
    const { key: k, ...meta } = g.meta;
    out.push({ key: k, ...meta, keep: r.keep, remove: r.remove });
  }
  return { groups: out };
}

export function parseGroupBy(s: string): GroupField[] {
  if (s.trim() === '') return [];
  const fields = s.split(',').map((f) => f.trim());
  for (const f of fields) {
    if (f !== 'host' && f !== 'paths' && f !== 'tags') {
      throw new BulwarkError('USAGE', `--group-by: unknown field ${JSON.stringify(f)}`, { subject: s, hint: 'use host, paths and/or tags, comma-separated' });
    }
  }
  return fields as GroupField[];
}
