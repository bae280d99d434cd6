// The per-job state the scheduler keeps, and the rules it applies to that state without touching
// timers or events: queue order, repository conflicts, the dependency gate, which dependents are
// due, catch-up, the retry delay and outcome normalisation. Kept apart from the Scheduler class so
// the rules read on their own.
import { isBulwarkError } from '../errors.js';
import type { TimerHandle } from './scheduler-clock.js';
import { DEFAULT_PRIORITY, type CompiledJob, type LastRunStore, type RetryPolicy, type RunOutcome, type RunReason, type WaitCause } from './scheduler-config.js';

/** A run waiting to start. Each job has at most one; later triggers coalesce into it. */
export interface QueuedRun {
  seq: number;
  reason: RunReason;
  scheduledFor: Date;
  attempt: number;
  /** Clock time of the trigger; orders runs of equal priority. */
  triggeredAt: number;
  /** The latest scheduled occurrence this run stands for, recorded in the store when it starts. */
  slot: Date | undefined;
  /** Subject to the dependency gate (scheduled runs of jobs that depend on others). */
  gated: boolean;
  waitingFor: WaitCause | undefined;
  announced: boolean;
  lockTimer: TimerHandle | undefined;
}

export interface ActiveRun {
  reason: RunReason;
  scheduledFor: Date;
  attempt: number;
  gated: boolean;
  startedAt: number;
  controller: AbortController;
  done: Promise<void>;
}

export interface PendingRetry {
  timer: TimerHandle;
  at: Date;
  reason: RunReason;
  scheduledFor: Date;
  attempt: number;
}

export interface JobState {
  job: CompiledJob;
  /** Dropped by a reload while a run was still going; forgotten when that run ends. */
  removed: boolean;
  timer: TimerHandle | undefined;
  nextRun: Date | undefined;
  running: ActiveRun | undefined;
  queued: QueuedRun | undefined;
  retry: PendingRetry | undefined;
  lastRun: Date | undefined;
  lastOutcome: RunOutcome | undefined;
  consecutiveFailures: number;
  /** Dependencies that succeeded since this job's last run started (for dependency-triggered jobs). */
  depsSucceeded: Set<string>;
}

export function newJobState(job: CompiledJob): JobState {
  return {
    job,
    removed: false,
    timer: undefined,
    nextRun: undefined,
    running: undefined,
    queued: undefined,
    retry: undefined,
    lastRun: undefined,
    lastOutcome: undefined,
    consecutiveFailures: 0,
    depsSucceeded: new Set(),
  };
}

export interface JobStatus {
  name: string;
  running: boolean;
  queued: boolean;
  nextRun: Date | undefined;
  retryAt: Date | undefined;
  /** When the latest run started. */
  lastRun: Date | undefined;
  lastOutcome: RunOutcome | undefined;
  /** Failed attempts (and skips for a failed dependency or a lock timeout) since the last success. */
  consecutiveFailures: number;
}

export function statusOf(name: string, st: JobState): JobStatus {
  return {
    name,
    running: st.running !== undefined,
    queued: st.queued !== undefined,
    nextRun: st.nextRun,
    retryAt: st.retry?.at,
    lastRun: st.lastRun,
    lastOutcome: st.lastOutcome,
    consecutiveFailures: st.consecutiveFailures,
  };
}

/** The state a job keeps across a reload: its history and runs, with the new spec. */
export function refreshState(st: JobState | undefined, job: CompiledJob): JobState {
  if (st === undefined) return newJobState(job);
  st.job = job;
  st.removed = false;
  const deps = job.spec.dependsOn ?? [];
  for (const d of [...st.depsSucceeded]) if (!deps.includes(d)) st.depsSucceeded.delete(d);
  return st;
}

/** Queued runs in start order: priority (lower first), then trigger time, then arrival. */
export function queueOrder(states: Iterable<JobState>): Array<{ st: JobState; q: QueuedRun }> {
  const out: Array<{ st: JobState; q: QueuedRun }> = [];
  for (const st of states) if (st.queued !== undefined) out.push({ st, q: st.queued });
  const prio = (st: JobState): number => st.job.spec.priority ?? DEFAULT_PRIORITY;
  return out.sort((a, b) => prio(a.st) - prio(b.st) || a.q.triggeredAt - b.q.triggeredAt || a.q.seq - b.q.seq);
}

/**
 * Whether `st` may not take its repositories now. Runs sharing a repository coexist unless one of
 * them is exclusive. `reserved` holds repositories promised to an exclusive run queued ahead, so
 * a stream of shared runs cannot starve it.
 */
export function repositoryConflict(st: JobState, running: Iterable<JobState>, reserved: ReadonlySet<string>): boolean {
  const mine = st.job.spec.repositories ?? [];
  if (mine.length === 0) return false;
  if (mine.some((r) => reserved.has(r))) return true;
  const exclusive = st.job.spec.exclusiveRepositories === true;
  for (const other of running) {
    if (other === st || other.running === undefined) continue;
    if (!exclusive && other.job.spec.exclusiveRepositories !== true) continue;
    if ((other.job.spec.repositories ?? []).some((r) => mine.includes(r))) return true;
  }
  return false;
}

/** Full jitter: uniform in [0, min(maxDelayMs, initialDelayMs * 2^(attempt-1))). */
export function retryDelayMs(policy: RetryPolicy, failedAttempt: number, random: () => number): number {
  const cap = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (failedAttempt - 1));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.min(Math.floor(r * cap), Math.max(0, Math.ceil(cap) - 1));
}

/** What a run's promise settled to, as an outcome; a throw is a failure, INTERNAL unless coded. */
export function outcomeOf(result: PromiseSettledResult<RunOutcome>): RunOutcome {
  if (result.status === 'fulfilled') {
    const o = result.value;
    if (o !== null && typeof o === 'object' && typeof o.ok === 'boolean') return o;
    return { ok: false, error: { code: 'INTERNAL', message: 'the job runner returned no outcome' } };
  }
  const err: unknown = result.reason;
  if (isBulwarkError(err)) return { ok: false, error: { code: err.code, message: err.message } };
  return { ok: false, error: { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) } };
}

export type Gate = 'open' | 'wait' | { failed: string; outcome: RunOutcome };

/** 'wait' while a dependency is running, queued or awaiting a retry; else the first failed one, or 'open'. */
export function dependencyGate(st: JobState, states: ReadonlyMap<string, JobState>): Gate {
  const deps = (st.job.spec.dependsOn ?? []).map((d) => [d, states.get(d)] as const);
  for (const [, dep] of deps) {
    if (dep !== undefined && (dep.running !== undefined || dep.queued !== undefined || dep.retry !== undefined)) return 'wait';
  }
  for (const [name, dep] of deps) {
    if (dep?.lastOutcome !== undefined && !dep.lastOutcome.ok) return { failed: name, outcome: dep.lastOutcome };
  }
  return 'open';
}

/**
 * Notes a success of `name` with the dependency-only jobs (no schedule) that depend on it, and
 * returns those whose dependencies have now all succeeded since their own last run started.
 */
export function readyDependents(name: string, states: Iterable<JobState>): JobState[] {
  const ready: JobState[] = [];
  for (const st of states) {
    const deps = st.job.spec.dependsOn ?? [];
    if (st.removed || st.job.schedule !== undefined || !deps.includes(name)) continue;
    st.depsSucceeded.add(name);
    if (deps.every((d) => st.depsSucceeded.has(d))) ready.push(st);
  }
  return ready;
}

/** Jobs with catchUp whose latest occurrence up to `now` is later than the last one started. */
export async function dueCatchUps(states: ReadonlyMap<string, JobState>, store: LastRunStore, now: number): Promise<Array<[JobState, Date]>> {
  const out: Array<[JobState, Date]> = [];
  for (const [name, st] of states) {
    const schedule = st.job.schedule;
    if (schedule === undefined || st.job.spec.catchUp !== true) continue;
    // No record means the job is new, not that it missed anything.
    const last = await store.lastScheduled(name);
    const due = schedule.previous(new Date(now));
    if (last !== undefined && due !== undefined && last.getTime() < due.getTime()) out.push([st, due]);
  }
  return out;
}

export function latest(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a.getTime() >= b.getTime() ? a : b;
}
