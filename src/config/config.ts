// The config file (bulwark.yaml): repositories, sources, jobs, tiers, retention, hooks and daemon
// settings. It is read once, `${ENV}` references are expanded, the whole document is checked
// against one schema (unknown keys refused with a suggestion, every problem listed), cross
// references are resolved (a job's source and repositories exist, dependencies exist and do not
// form a cycle, schedules and time zones parse), defaults are filled in, and the result is frozen.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Croner from 'croner';
import type * as Yaml from 'yaml';
import { BulwarkError } from '../errors.js';
import { bool, int, list, mapOf, obj, str, strList, type Check, type Problem } from './schema.js';
import { formatDuration, parseDurationMs } from './durations.js';
import { lazy } from '../lazy.js';
import { redactUrl } from '../redact.js';
import { DEFAULT_GFS_POLICY, type RetentionPolicy } from '../snapshot/retention.js';

const yaml = lazy<typeof Yaml>('yaml');
const croner = lazy<typeof Croner>('croner');

export type TierName = 'critical' | 'important' | 'normal' | 'archive';

export interface Tier {
  rpoMs: number;
  rtoMs: number;
  schedule: string;
  priority: number;
}

/** The seeds' targets: critical RPO 5 min / RTO 30 min, important 30 min / 2 h, normal 4 h / 8 h. */
export const DEFAULT_TIERS: Readonly<Record<TierName, Tier>> = {
  critical: { rpoMs: 5 * 60_000, rtoMs: 30 * 60_000, schedule: '*/5 * * * *', priority: 0 },
  important: { rpoMs: 30 * 60_000, rtoMs: 2 * 3_600_000, schedule: '*/30 * * * *', priority: 1 },
  normal: { rpoMs: 4 * 3_600_000, rtoMs: 8 * 3_600_000, schedule: '0 */4 * * *', priority: 2 },
  archive: { rpoMs: 8 * 86_400_000, rtoMs: 48 * 3_600_000, schedule: '0 3 * * 0', priority: 3 },
};

export type { RetentionPolicy };

/** Grandfather-father-son: 30 daily, 12 weekly, 12 monthly, 7 yearly. */
export const DEFAULT_RETENTION: Readonly<RetentionPolicy> = DEFAULT_GFS_POLICY;

export interface RepositoryConfig {
  name: string;
  url: string;
  password?: string;
  passwordFile?: string;
  /** For append-only repositories: the token that allows forget and prune. */
  deleteTokenFile?: string;
}

export type SourceConfig =
  | { name: string; type: 'files'; paths: string[]; exclude: string[] }
  | { name: string; type: 'postgresql' | 'mysql' | 'redis'; url: string; databases: string[]; excludeTables: string[]; schemaOnly: boolean }
  | { name: string; type: 'command'; command: string[]; filename: string };

export interface Hook {
  command: string[];
  timeoutMs: number;
}

export interface JobConfig {
  name: string;
  source: string;
  repositories: string[];
  schedule?: string;
  timezone?: string;
  tier: TierName;
  rpoMs: number;
  rtoMs: number;
  priority: number;
  retention: RetentionPolicy | null;
  tags: string[];
  dependsOn: string[];
  retries: { max: number; initialDelayMs: number; maxDelayMs: number };
  catchUp: boolean;
  hooks: { before: Hook[]; after: Hook[]; onFailure: Hook[] };
}

export interface DaemonConfig {
  concurrency: number;
  catalog: string;
  reports: string;
  lockWaitMs: number;
  stopGraceMs: number;
  prune: { schedule: string; timezone?: string; maxUnused: string } | null;
}

export interface Config {
  file: string;
  /** Values substituted from secret-looking variables (not enumerable: never printed). */
  readonly secrets?: readonly string[];
  repositories: Record<string, RepositoryConfig>;
  sources: Record<string, SourceConfig>;
  jobs: Record<string, JobConfig>;
  tiers: Record<TierName, Tier>;
  daemon: DaemonConfig;
}

const duration = str({ pattern: /^(\d+(\.\d+)?\s*(ms|s|m|h|d|w|y)\s*)+$/, what: 'a duration such as 30s, 5m, 2h, 7d' });
const command: Check = (v, p, problems) => (typeof v === 'string' ? str()(v, p, problems) : strList()(v, p, problems));
const hook = (v: unknown, p: string, problems: Problem[]): unknown =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? obj({ command: { check: command, required: true }, timeout: duration })(v, p, problems) : command(v, p, problems);
const hooks = (v: unknown, p: string, problems: Problem[]): unknown => list(hook)(Array.isArray(v) && (v.length === 0 || typeof v[0] !== 'string') ? v : [v], p, problems);
const retention = obj({
  'keep-last': int({ min: -1 }),
  'keep-hourly': int({ min: -1 }),
  'keep-daily': int({ min: -1 }),
  'keep-weekly': int({ min: -1 }),
  'keep-monthly': int({ min: -1 }),
  'keep-yearly': int({ min: -1 }),
  // restic's format: y, m (months), d, h, e.g. 2y5m7d3h.
  'keep-within': str({ pattern: /^(\d+[ymdh])+$/, what: 'a duration in restic\'s form, such as 7d, 1y6m, 2y5m7d3h (m = months)' }),
  'keep-tag': strList(),
});
const TIER_NAMES = ['critical', 'important', 'normal', 'archive'] as const;
const SOURCE_TYPES = ['files', 'postgresql', 'mysql', 'redis', 'command'] as const;

const schema = obj({
  version: int({ min: 1, max: 1 }),
  repositories: { check: mapOf(obj({ url: { check: str(), required: true }, password: str(), 'password-file': str(), 'delete-token-file': str() })), required: true },
  sources: {
    check: mapOf(
      obj({
        type: { check: str({ oneOf: SOURCE_TYPES }), required: true },
        paths: strList(),
        exclude: strList(),
        url: str(),
        databases: strList(),
        'exclude-tables': strList(),
        'schema-only': bool,
        command,
        filename: str(),
      }),
    ),
    required: true,
  },
  jobs: {
    check: mapOf(
      obj({
        source: { check: str(), required: true },
        repository: str(),
        repositories: strList(),
        schedule: str(),
        timezone: str(),
        tier: str({ oneOf: TIER_NAMES }),
        retention: (v, p, problems) => (v === false ? false : retention(v, p, problems)),
        tags: strList(),
        'depends-on': strList(),
        retries: obj({ max: int({ min: 0, max: 100 }), delay: duration, 'max-delay': duration }),
        'catch-up': bool,
        hooks: obj({ before: hooks, after: hooks, 'on-failure': hooks }),
      }),
    ),
    required: true,
  },
  tiers: mapOf(obj({ rpo: duration, rto: duration, schedule: str() })),
  defaults: obj({ retention, tier: str({ oneOf: TIER_NAMES }), timezone: str(), 'catch-up': bool }),
  daemon: obj({
    concurrency: int({ min: 1, max: 64 }),
    catalog: str(),
    reports: str(),
    'lock-wait': duration,
    'stop-grace': duration,
    prune: (v, p, problems) => (v === false ? false : obj({ schedule: str(), timezone: str(), 'max-unused': str() })(v, p, problems)),
  }),
});

const SECRET_NAME = /PASS|PWD|SECRET|TOKEN|KEY|AUTH|CRED|PRIVATE/i;

/**
 * Expands ${NAME} (and ${NAME:-default}) from `env` in every string; `$${` is a literal `${`.
 * Values of variables whose names look secret (…PASSWORD, …TOKEN, …KEY) are collected in `secrets`
 * so that messages, reports and records can mask them.
 */
export function interpolate(v: unknown, env: NodeJS.ProcessEnv, p: string, problems: Problem[], secrets: Set<string> = new Set()): unknown {
  if (typeof v === 'string') {
    return v.replace(/\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}/g, (whole, esc: string, name: string, _d: string | undefined, def: string | undefined) => {
      if (esc === '$') return whole.slice(1);
      const val = env[name];
      if (val !== undefined) {
        if (SECRET_NAME.test(name) && val.length >= 3) secrets.add(val);
        return val;
      }
      if (def !== undefined) return def;
      problems.push({ path: p, message: `refers to the environment variable ${name}, which is not set` });
      return whole;
    });
  }
  if (Array.isArray(v)) return v.map((x, i) => interpolate(x, env, `${p}[${i}]`, problems, secrets));
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolate(x, env, p === '' ? k : `${p}.${k}`, problems, secrets)]));
  }
  return v;
}

export function configError(file: string, problems: Problem[]): BulwarkError {
  const lines = problems.map((pr) => `  ${pr.path}: ${pr.message}`);
  return new BulwarkError('CONFIG_INVALID', `${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${lines.join('\n')}`, {
    subject: file,
    hint: 'fix the fields listed above; `bulwark config validate` checks the file without running anything',
  });
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new BulwarkError('CONFIG_INVALID', `cannot read config file ${file}: ${(err as Error).message}`, { subject: file, hint: 'pass --config FILE or set BULWARK_CONFIG' });
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let doc: unknown;
  try {
    doc = yaml().parse(text, { prettyErrors: true });
  } catch (err) {
    throw new BulwarkError('CONFIG_INVALID', `${file} is not valid YAML: ${(err as Error).message}`, { subject: file });
  }
  const problems: Problem[] = [];
  const secrets = new Set<string>();
  const expanded = interpolate(doc ?? {}, env, '', problems, secrets);
  const fail = (): BulwarkError => configError(file, problems.map((pr) => ({ path: pr.path, message: scrub([...secrets], pr.message) })));
  const raw = schema(expanded, '', problems) as Record<string, unknown> | undefined;
  if (raw === undefined) throw fail();
  // Cross-references are checked even when fields failed above, so one run lists every problem.
  const cfg = build(raw, file, problems);
  if (problems.length > 0) throw fail();
  Object.defineProperty(cfg, 'secrets', { value: [...secrets].sort((a, b) => b.length - a.length), enumerable: false });
  return deepFreeze(cfg);
}

type Raw = Record<string, unknown>;
const rec = (v: unknown): Raw => (v ?? {}) as Raw;
const strs = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : []);

function toCommand(v: unknown): string[] {
  return typeof v === 'string' ? ['sh', '-c', v] : strs(v);
}

function toHooks(v: unknown): Hook[] {
  return (Array.isArray(v) ? v : []).map((h: unknown) => {
    if (typeof h === 'object' && h !== null && !Array.isArray(h)) {
      const o = h as Raw;
      return { command: toCommand(o['command']), timeoutMs: typeof o['timeout'] === 'string' ? parseDurationMs(o['timeout']) : 300_000 };
    }
    return { command: toCommand(h), timeoutMs: 300_000 };
  });
}

export function toPolicy(v: unknown): RetentionPolicy {
  const r = rec(v);
  const p: RetentionPolicy = {};
  const map: Array<[string, keyof RetentionPolicy]> = [['keep-last', 'last'], ['keep-hourly', 'hourly'], ['keep-daily', 'daily'], ['keep-weekly', 'weekly'], ['keep-monthly', 'monthly'], ['keep-yearly', 'yearly']];
  for (const [k, f] of map) if (typeof r[k] === 'number') (p as Record<string, number>)[f] = r[k];
  if (typeof r['keep-within'] === 'string') p.within = r['keep-within'];
  if (Array.isArray(r['keep-tag'])) p.tags = r['keep-tag'] as string[];
  return p;
}

function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function validSchedule(expr: string, tz: string | undefined, p: string, problems: Problem[]): void {
  try {
    new (croner().Cron)(expr, { paused: true, ...(tz !== undefined ? { timezone: tz } : {}) });
  } catch (err) {
    problems.push({ path: p, message: `is not a valid cron schedule (${(err as Error).message}): ${JSON.stringify(expr)}; use 5 fields (min hour day month weekday), 6 with seconds first, or @daily/@hourly` });
  }
}

function build(raw: Raw, file: string, problems: Problem[]): Config {
  const base = path.dirname(path.resolve(file));
  const abs = (p: string): string => (p.includes('://') || p.includes(':') && /^[a-z0-9]+:/.test(p) ? p : path.resolve(base, p));
  const repositories: Record<string, RepositoryConfig> = {};
  for (const [name, r] of Object.entries(rec(raw['repositories']))) {
    const o = rec(r);
    const repo: RepositoryConfig = { name, url: abs(String(o['url'])) };
    if (typeof o['password'] === 'string') repo.password = o['password'];
    if (typeof o['password-file'] === 'string') repo.passwordFile = abs(o['password-file']);
    if (typeof o['delete-token-file'] === 'string') repo.deleteTokenFile = abs(o['delete-token-file']);
    if (repo.password === undefined && repo.passwordFile === undefined) problems.push({ path: `repositories.${name}`, message: 'needs password (e.g. ${BULWARK_PASSWORD}) or password-file' });
    repositories[name] = repo;
  }
  const sources: Record<string, SourceConfig> = {};
  for (const [name, s] of Object.entries(rec(raw['sources']))) {
    const o = rec(s);
    const type = String(o['type']);
    const p = `sources.${name}`;
    const allowed: Record<string, string[]> = {
      files: ['type', 'paths', 'exclude'],
      command: ['type', 'command', 'filename'],
      postgresql: ['type', 'url', 'databases', 'exclude-tables', 'schema-only'],
      mysql: ['type', 'url', 'databases', 'exclude-tables', 'schema-only'],
      redis: ['type', 'url'],
    };
    if (allowed[type] === undefined) continue;
    for (const k of Object.keys(o)) if (!(allowed[type] ?? []).includes(k)) problems.push({ path: `${p}.${k}`, message: `does not apply to a source of type ${type} (its keys: ${(allowed[type] ?? []).join(', ')})` });
    if (type === 'files') {
      if (strs(o['paths']).length === 0) problems.push({ path: `${p}.paths`, message: 'is required for a files source' });
      sources[name] = { name, type, paths: strs(o['paths']).map(abs), exclude: strs(o['exclude']) };
    } else if (type === 'command') {
      if (toCommand(o['command']).length === 0) problems.push({ path: `${p}.command`, message: 'is required for a command source' });
      sources[name] = { name, type, command: toCommand(o['command']), filename: typeof o['filename'] === 'string' ? o['filename'] : `${name}.out` };
    } else if (type === 'postgresql' || type === 'mysql' || type === 'redis') {
      const url = o['url'];
      if (typeof url !== 'string') problems.push({ path: `${p}.url`, message: `is required for a ${type} source` });
      else if (!url.startsWith(type === 'mysql' ? 'm' : type === 'postgresql' ? 'postgres' : 'redis')) problems.push({ path: `${p}.url`, message: `must be a ${type} URL (${type === 'mysql' ? 'mysql://' : type === 'postgresql' ? 'postgresql://' : 'redis://'}...)` });
      sources[name] = { name, type, url: typeof url === 'string' ? url : '', databases: strs(o['databases']), excludeTables: strs(o['exclude-tables']), schemaOnly: o['schema-only'] === true };
    }
  }
  const tiers = Object.fromEntries(Object.entries(DEFAULT_TIERS).map(([k, t]) => [k, { ...t }])) as Record<TierName, Tier>;
  for (const [name, t] of Object.entries(rec(raw['tiers']))) {
    if (!(TIER_NAMES as readonly string[]).includes(name)) {
      problems.push({ path: `tiers.${name}`, message: `unknown tier; tiers are ${TIER_NAMES.join(', ')}` });
      continue;
    }
    const o = rec(t);
    const tier = tiers[name as TierName];
    if (typeof o['rpo'] === 'string') tier.rpoMs = parseDurationMs(o['rpo']);
    if (typeof o['rto'] === 'string') tier.rtoMs = parseDurationMs(o['rto']);
    if (typeof o['schedule'] === 'string') {
      validSchedule(o['schedule'], undefined, `tiers.${name}.schedule`, problems);
      tier.schedule = o['schedule'];
    }
  }
  const defaults = rec(raw['defaults']);
  const defaultTz = typeof defaults['timezone'] === 'string' ? defaults['timezone'] : undefined;
  if (defaultTz !== undefined && !validTimezone(defaultTz)) problems.push({ path: 'defaults.timezone', message: `is not a known time zone: ${JSON.stringify(defaultTz)} (use an IANA name such as Europe/Moscow)` });
  const defaultRetention = defaults['retention'] !== undefined ? toPolicy(defaults['retention']) : { ...DEFAULT_RETENTION };
  const jobs: Record<string, JobConfig> = {};
  for (const [name, j] of Object.entries(rec(raw['jobs']))) {
    const o = rec(j);
    const p = `jobs.${name}`;
    const source = String(o['source']);
    if (sources[source] === undefined && rec(raw['sources'])[source] === undefined) problems.push({ path: `${p}.source`, message: `names no source: ${JSON.stringify(source)} (sources: ${Object.keys(sources).join(', ') || 'none'})` });
    const repos = [...(typeof o['repository'] === 'string' ? [o['repository']] : []), ...strs(o['repositories'])];
    if (repos.length === 0) problems.push({ path: `${p}.repositories`, message: 'is required: name at least one repository' });
    for (const r of repos) if (repositories[r] === undefined) problems.push({ path: `${p}.repositories`, message: `names no repository: ${JSON.stringify(r)} (repositories: ${Object.keys(repositories).join(', ')})` });
    const tierName = (typeof o['tier'] === 'string' ? o['tier'] : typeof defaults['tier'] === 'string' ? defaults['tier'] : 'normal') as TierName;
    const tier = tiers[tierName];
    const dependsOn = strs(o['depends-on']);
    const tz = typeof o['timezone'] === 'string' ? o['timezone'] : defaultTz;
    if (tz !== undefined && !validTimezone(tz)) problems.push({ path: `${p}.timezone`, message: `is not a known time zone: ${JSON.stringify(tz)} (use an IANA name such as Europe/Moscow)` });
    // A job that runs after others needs no schedule of its own; any other job gets its tier's.
    const schedule = typeof o['schedule'] === 'string' ? o['schedule'] : dependsOn.length > 0 ? undefined : tier.schedule;
    if (schedule !== undefined && typeof o['schedule'] === 'string') validSchedule(schedule, tz !== undefined && validTimezone(tz) ? tz : undefined, `${p}.schedule`, problems);
    const retries = rec(o['retries']);
    const hooksRaw = rec(o['hooks']);
    const job: JobConfig = {
      name,
      source,
      repositories: repos,
      tier: tierName,
      rpoMs: tier.rpoMs,
      rtoMs: tier.rtoMs,
      priority: tier.priority,
      retention: o['retention'] === false ? null : o['retention'] !== undefined ? toPolicy(o['retention']) : defaultRetention,
      tags: strs(o['tags']),
      dependsOn,
      retries: {
        max: typeof retries['max'] === 'number' ? retries['max'] : 2,
        initialDelayMs: typeof retries['delay'] === 'string' ? parseDurationMs(retries['delay']) : 30_000,
        maxDelayMs: typeof retries['max-delay'] === 'string' ? parseDurationMs(retries['max-delay']) : 600_000,
      },
      catchUp: typeof o['catch-up'] === 'boolean' ? o['catch-up'] : defaults['catch-up'] !== false,
      hooks: { before: toHooks(hooksRaw['before']), after: toHooks(hooksRaw['after']), onFailure: toHooks(hooksRaw['on-failure']) },
    };
    if (schedule !== undefined) job.schedule = schedule;
    if (tz !== undefined) job.timezone = tz;
    jobs[name] = job;
  }
  for (const job of Object.values(jobs)) {
    for (const d of job.dependsOn) if (jobs[d] === undefined) problems.push({ path: `jobs.${job.name}.depends-on`, message: `names no job: ${JSON.stringify(d)}` });
  }
  const cycle = findCycle(jobs);
  if (cycle !== undefined) problems.push({ path: `jobs.${cycle[0]}.depends-on`, message: `dependency cycle: ${cycle.join(' -> ')}` });
  const d = rec(raw['daemon']);
  const stateDir = path.join(base, '.bulwark');
  const pruneRaw = d['prune'];
  let prune: DaemonConfig['prune'] = { schedule: '0 4 1 * *', maxUnused: '5%' };
  if (pruneRaw === false) prune = null;
  else if (pruneRaw !== undefined) {
    const po = rec(pruneRaw);
    prune = { schedule: typeof po['schedule'] === 'string' ? po['schedule'] : prune.schedule, maxUnused: typeof po['max-unused'] === 'string' ? po['max-unused'] : '5%' };
    if (typeof po['timezone'] === 'string') prune.timezone = po['timezone'];
    validSchedule(prune.schedule, prune.timezone, 'daemon.prune.schedule', problems);
  }
  const catalog = typeof d['catalog'] === 'string' ? d['catalog'] : `sqlite:${path.join(stateDir, 'catalog.db')}`;
  const daemon: DaemonConfig = {
    concurrency: typeof d['concurrency'] === 'number' ? d['concurrency'] : 2,
    catalog: catalog.startsWith('sqlite:') ? `sqlite:${abs(catalog.slice('sqlite:'.length))}` : catalog,
    reports: typeof d['reports'] === 'string' ? abs(d['reports']) : path.join(stateDir, 'reports'),
    lockWaitMs: typeof d['lock-wait'] === 'string' ? parseDurationMs(d['lock-wait']) : 3_600_000,
    stopGraceMs: typeof d['stop-grace'] === 'string' ? parseDurationMs(d['stop-grace']) : 60_000,
    prune,
  };
  if (!/^(sqlite:|postgres(ql)?:\/\/)/.test(daemon.catalog)) problems.push({ path: 'daemon.catalog', message: `must be sqlite:PATH or postgresql://..., got ${JSON.stringify(daemon.catalog)}` });
  return { file: path.resolve(file), repositories, sources, jobs, tiers, daemon };
}

function findCycle(jobs: Record<string, JobConfig>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done' || jobs[n] === undefined) return undefined;
    if (state.get(n) === 'visiting') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'visiting');
    stack.push(n);
    for (const d of jobs[n]!.dependsOn) {
      const c = visit(d);
      if (c !== undefined) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const n of Object.keys(jobs)) {
    const c = visit(n);
    if (c !== undefined) return c;
  }
  return undefined;
}

/** Masks every known secret value in a text (longest first, so no part of one is left). */
export function scrub(secrets: readonly string[], text: string): string {
  let out = text;
  for (const s of secrets) if (s !== '') out = out.split(s).join('***');
  return out;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** The config for display: passwords and URL credentials replaced by "***". */
export function redactConfig(cfg: Config): unknown {
  const hideUrl = (u: string): string => redactUrl(u, '***');
  const out = JSON.parse(JSON.stringify(cfg)) as Record<string, Record<string, Record<string, unknown>>>;
  for (const r of Object.values(out['repositories'] ?? {})) if (r['password'] !== undefined) r['password'] = '***';
  for (const s of Object.values(out['sources'] ?? {})) if (typeof s['url'] === 'string') s['url'] = hideUrl(s['url']);
  const d = out['daemon'] as unknown as Record<string, unknown>;
  if (typeof d['catalog'] === 'string') d['catalog'] = hideUrl(d['catalog']);
  for (const j of Object.values(out['jobs'] ?? {})) {
    j['rpo'] = formatDuration(j['rpoMs'] as number);
    j['rto'] = formatDuration(j['rtoMs'] as number);
  }
  return out;
}
