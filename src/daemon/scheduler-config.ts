// The scheduler's vocabulary (job specs, run contexts and outcomes, events, the last-run store)
// and the validation of a job list. Validation happens before a list is used, at construction and
// at reload, so a bad config never half-replaces a good one.
import { BulwarkError } from '../errors.js';
import { parseSchedule, type Schedule } from './cron.js';

export interface RetryPolicy {
  /** Retries after the first attempt; 0 disables retrying. */
  max: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface JobSpec {
  name: string;
  /** Cron expression (5 or 6 fields, or @daily etc.); none: the job runs on dependencies or by hand. */
  schedule?: string;
  /** IANA time zone of the schedule; the process zone when omitted. */
  timezone?: string;
  dependsOn?: string[];
  repositories?: string[];
  /** Lower runs first when runs are queued. */
  priority?: number;
  retries?: RetryPolicy;
  /** At start, run once if the latest due occurrence was missed while the daemon was down. */
  catchUp?: boolean;
  /** How long a run may wait for a repository held by a conflicting run (default 1 h). */
  lockWaitMs?: number;
  /** The run needs its repositories to itself (prune, for instance). */
  exclusiveRepositories?: boolean;
}

export type RunReason = 'schedule' | 'catch-up' | 'retry' | 'dependency' | 'manual';

export interface RunContext {
  scheduledFor: Date;
  attempt: number;
  signal: AbortSignal;
  reason: RunReason;
}

export interface RunOutcome {
  ok: boolean;
  error?: { code: string; message: string };
}

/**
 * Where the daemon remembers the last scheduled occurrence it started, across restarts. Either
 * method may be asynchronous: start() awaits the reads; a failed write is reported as a
 * 'store-failed' event and does not stop the run.
 */
export interface LastRunStore {
  lastScheduled(job: string): Date | undefined | Promise<Date | undefined>;
  recordScheduled(job: string, at: Date): void | Promise<void>;
}

export class MemoryLastRunStore implements LastRunStore {
  private readonly map = new Map<string, Date>();

  constructor(initial: Record<string, Date> = {}) {
    for (const [job, at] of Object.entries(initial)) this.map.set(job, at);
  }

  lastScheduled(job: string): Date | undefined {
    return this.map.get(job);
  }

  recordScheduled(job: string, at: Date): void {
    this.map.set(job, at);
  }
}

/** Why a queued run has not started yet. */
export type WaitCause = 'same-job' | 'concurrency' | 'repository' | 'dependency';

interface RunFields {
  job: string;
  reason: RunReason;
  scheduledFor: Date;
  attempt: number;
}

// `time` is the scheduler clock's reading when the event happened.
export type SchedulerEvent =
  | { type: 'scheduled'; time: Date; job: string; next: Date }
  | ({ type: 'queued'; time: Date; waitingFor: WaitCause } & RunFields)
  | ({ type: 'coalesced'; time: Date; into: RunReason } & RunFields)
  | ({ type: 'started'; time: Date } & RunFields)
  | ({ type: 'finished'; time: Date; outcome: RunOutcome; durationMs: number } & RunFields)
  | ({ type: 'retry-scheduled'; time: Date; retryAt: Date; delayMs: number; error: RunOutcome['error'] } & RunFields)
  | ({ type: 'skipped'; time: Date; outcome: RunOutcome } & RunFields)
  | { type: 'store-failed'; time: Date; job: string; error: { code: string; message: string } };

export const DEFAULT_PRIORITY = 100;
export const DEFAULT_LOCK_WAIT_MS = 3_600_000;
export const DEFAULT_CONCURRENCY = 2;

export interface CompiledJob {
  spec: JobSpec;
  schedule: Schedule | undefined;
}

/** Checks a job list; throws CONFIG_INVALID naming the first fault. */
export function compileJobs(jobs: readonly JobSpec[]): Map<string, CompiledJob> {
  const out = new Map<string, CompiledJob>();
  for (const spec of jobs) {
    if (typeof spec.name !== 'string' || spec.name.trim() === '') throw invalid('a job has no name', '');
    if (out.has(spec.name)) throw invalid(`job '${spec.name}' is defined twice`, spec.name);
    checkNumbers(spec);
    const schedule = spec.schedule === undefined ? undefined : parseSchedule(spec.schedule, spec.timezone);
    if (schedule === undefined && spec.timezone !== undefined) parseSchedule('@daily', spec.timezone);
    out.set(spec.name, { spec, schedule });
  }
  checkDependencies(out);
  return out;
}

function checkNumbers(spec: JobSpec): void {
  const bad = (what: string): never => {
    throw invalid(`job '${spec.name}': ${what}`, spec.name);
  };
  if (spec.priority !== undefined && !Number.isFinite(spec.priority)) bad('priority must be a finite number');
  if (spec.lockWaitMs !== undefined && !(spec.lockWaitMs >= 0 && Number.isFinite(spec.lockWaitMs))) {
    bad('lockWaitMs must be a non-negative number');
  }
  const r = spec.retries;
  if (r !== undefined) {
    if (!Number.isInteger(r.max) || r.max < 0) bad('retries.max must be a non-negative integer');
    if (!(r.initialDelayMs >= 0 && Number.isFinite(r.initialDelayMs))) bad('retries.initialDelayMs must be >= 0');
    if (!(r.maxDelayMs >= 0 && Number.isFinite(r.maxDelayMs))) bad('retries.maxDelayMs must be >= 0');
  }
}

function checkDependencies(jobs: Map<string, CompiledJob>): void {
  for (const { spec } of jobs.values()) {
    const unknown = (spec.dependsOn ?? []).filter((d) => !jobs.has(d));
    if (unknown.length > 0) {
      throw invalid(`job '${spec.name}' depends on unknown job(s) ${unknown.map((u) => `'${u}'`).join(', ')}`, spec.name);
    }
  }
  const cycle = findCycle(jobs);
  if (cycle !== undefined) throw invalid(`dependency cycle: ${cycle.join(' -> ')}`, cycle[0] ?? '');
}

/** A dependency cycle as a path that returns to its start, e.g. [a, b, a]; depth-first, colouring. */
function findCycle(jobs: Map<string, CompiledJob>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'open') return [...path.slice(path.indexOf(name)), name];
    state.set(name, 'open');
    path.push(name);
    for (const dep of jobs.get(name)?.spec.dependsOn ?? []) {
      const found = visit(dep);
      if (found !== undefined) return found;
    }
    path.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of jobs.keys()) {
    const found = visit(name);
    if (found !== undefined) return found;
  }
  return undefined;
}

function invalid(message: string, subject: string): BulwarkError {
  return new BulwarkError('CONFIG_INVALID', message, subject === '' ? {} : { subject });
}
