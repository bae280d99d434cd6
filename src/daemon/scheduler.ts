// The scheduling core of `bulwark daemon`: decides when each job runs and hands runs to an
// injected `run` function; it knows nothing of backups, config files or the catalog. Time comes
// from an injected Clock, so tests drive it with a FakeClock.
//
// Every trigger (a schedule occurrence, a catch-up at start, a retry, a dependency's success, a
// manual request) becomes a queued run, at most one per job; a trigger for a job that already has
// one coalesces into it. The dispatcher (`pump`) starts queued runs in priority order while slots
// are free, skipping those that must wait: their job is running, a repository is held by a
// conflicting run, or (for scheduled runs of dependent jobs) a dependency is still in flight.
// Waiting is never an error, except that a repository wait is bounded by lockWaitMs.
import { BulwarkError } from '../errors.js';
import { systemClock, type Clock } from './scheduler-clock.js';
import { compileJobs, DEFAULT_CONCURRENCY, DEFAULT_LOCK_WAIT_MS, MemoryLastRunStore } from './scheduler-config.js';
import type { JobSpec, LastRunStore, RunContext, RunOutcome, RunReason, SchedulerEvent, WaitCause } from './scheduler-config.js';
import { dependencyGate, dueCatchUps, latest, newJobState, outcomeOf, queueOrder, readyDependents } from './scheduler-queue.js';
import { refreshState, repositoryConflict, retryDelayMs, statusOf } from './scheduler-queue.js';
import type { ActiveRun, JobState, JobStatus, QueuedRun } from './scheduler-queue.js';

// The whole public surface, from one module.
export { FakeClock, settle, systemClock, type Clock, type TimerHandle } from './scheduler-clock.js';
export { DEFAULT_CONCURRENCY, DEFAULT_LOCK_WAIT_MS, DEFAULT_PRIORITY, MemoryLastRunStore } from './scheduler-config.js';
export type { JobSpec, LastRunStore, RetryPolicy, RunContext, RunOutcome, RunReason, SchedulerEvent, WaitCause } from './scheduler-config.js';
export type { JobStatus } from './scheduler-queue.js';

export interface SchedulerOptions {
  jobs: JobSpec[];
  run: (job: JobSpec, ctx: RunContext) => Promise<RunOutcome>;
  clock?: Clock;
  concurrency?: number;
  store?: LastRunStore;
  onEvent?: (e: SchedulerEvent) => void;
  /** Source of retry jitter, uniform in [0, 1). */
  random?: () => number;
}

interface Trigger {
  reason: RunReason;
  scheduledFor: Date;
  attempt: number;
  slot: Date | undefined;
  gated: boolean;
}

// Schedule timers wake at least daily and re-check the wall clock, so a clock step (NTP, a
// suspended host) delays an occurrence by at most this much.
const MAX_TIMER_MS = 86_400_000;

type Phase = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

export class Scheduler {
  private readonly clock: Clock;
  private readonly runJob: SchedulerOptions['run'];
  private readonly concurrency: number;
  private readonly store: LastRunStore;
  private readonly onEvent: (e: SchedulerEvent) => void;
  private readonly random: () => number;
  private states = new Map<string, JobState>();
  private phase: Phase = 'idle';
  private seq = 0;
  private pumping = false;
  private pumpAgain = false;

  constructor(opts: SchedulerOptions) {
    const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new BulwarkError('CONFIG_INVALID', `concurrency must be a whole number >= 1 (got ${String(concurrency)})`);
    }
    this.concurrency = concurrency;
    this.clock = opts.clock ?? systemClock;
    this.runJob = opts.run;
    this.store = opts.store ?? new MemoryLastRunStore();
    this.onEvent = opts.onEvent ?? (() => {});
    this.random = opts.random ?? Math.random;
    for (const [name, job] of compileJobs(opts.jobs)) this.states.set(name, newJobState(job));
  }

  /** Arms the schedules and runs catch-ups. Resolves once the last-run store has been read. */
  async start(): Promise<void> {
    if (this.phase !== 'idle') throw new BulwarkError('USAGE', `the scheduler cannot start: it is ${this.phase}`);
    this.phase = 'starting';
    const catchUps = await dueCatchUps(this.states, this.store, this.clock.now());
    if (this.phase !== 'starting') return;
    this.phase = 'running';
    for (const st of this.states.values()) this.arm(st);
    for (const [st, due] of catchUps) this.trigger(st, { reason: 'catch-up', scheduledFor: due, attempt: 1, slot: due, gated: true });
  }

  /** Starts nothing more, drops queued runs, aborts running ones and waits for them to settle. */
  async stop(): Promise<void> {
    if (this.phase === 'stopped' || this.phase === 'stopping') return this.settled();
    this.phase = 'stopping';
    const reason = new BulwarkError('INTERRUPTED', 'the scheduler is stopping');
    for (const st of this.states.values()) {
      this.disarm(st);
      this.dropQueued(st, 'the scheduler stopped before the run could start');
      st.running?.controller.abort(reason);
    }
    await this.settled();
    this.phase = 'stopped';
  }

  /** Replaces the job list. Running runs go on; timers are re-armed, queued runs of removed jobs dropped. */
  reload(jobs: JobSpec[]): void {
    const compiled = compileJobs(jobs);
    const next = new Map<string, JobState>();
    for (const [name, job] of compiled) next.set(name, refreshState(this.states.get(name), job));
    for (const [name, st] of this.states) {
      if (compiled.has(name)) continue;
      st.removed = true;
      this.disarm(st);
      this.dropQueued(st, 'the job was removed from the configuration');
      if (st.running !== undefined) next.set(name, st);
    }
    this.states = next;
    if (this.phase !== 'running') return;
    for (const st of this.states.values()) if (!st.removed) this.arm(st);
    this.pump();
  }

  /** Queues a manual run (it skips the dependency gate); coalesces if one is already queued. */
  runNow(name: string): void {
    const st = this.states.get(name);
    if (st === undefined || st.removed) throw new BulwarkError('JOB_NOT_FOUND', `no job named '${name}'`, { subject: name });
    if (this.phase !== 'running') throw new BulwarkError('USAGE', `cannot run '${name}': the scheduler is ${this.phase}`);
    const now = new Date(this.clock.now());
    this.trigger(st, { reason: 'manual', scheduledFor: now, attempt: 1, slot: undefined, gated: false });
  }

  status(): JobStatus[] {
    return [...this.states.entries()].filter(([, st]) => !st.removed).map(([name, st]) => statusOf(name, st));
  }

  // --- schedule timers ---

  /** Arms the timer for the job's next occurrence, computed from the clock's current reading. */
  private arm(st: JobState): void {
    if (st.timer !== undefined) this.clock.clearTimeout(st.timer);
    st.timer = undefined;
    st.nextRun = undefined;
    const schedule = st.job.schedule;
    if (schedule === undefined || this.phase !== 'running' || st.removed) return;
    const next = schedule.next(new Date(this.clock.now()));
    if (next === undefined) return;
    st.nextRun = next;
    this.emit({ type: 'scheduled', time: this.time(), job: st.job.spec.name, next });
    this.armUntil(st, next);
  }

  private armUntil(st: JobState, due: Date): void {
    const delay = Math.min(Math.max(0, due.getTime() - this.clock.now()), MAX_TIMER_MS);
    st.timer = this.clock.setTimeout(() => this.onTimer(st, due), delay);
  }

  private onTimer(st: JobState, due: Date): void {
    st.timer = undefined;
    if (this.clock.now() < due.getTime()) return this.armUntil(st, due);
    // Re-arm from the clock before triggering, so a late wake-up skips the occurrences it slept
    // through (the run it triggers covers them) and timers never drift.
    this.arm(st);
    this.trigger(st, { reason: 'schedule', scheduledFor: due, attempt: 1, slot: due, gated: true });
  }

  private disarm(st: JobState): void {
    if (st.timer !== undefined) this.clock.clearTimeout(st.timer);
    if (st.retry !== undefined) this.clock.clearTimeout(st.retry.timer);
    st.timer = undefined;
    st.retry = undefined;
    st.nextRun = undefined;
  }

  // --- triggers and the queue ---

  private trigger(st: JobState, t: Trigger): void {
    if (this.phase !== 'running' || st.removed) return;
    const name = st.job.spec.name;
    if (st.retry !== undefined && t.reason !== 'retry') {
      // A fresh run takes the place of a pending retry.
      const r = st.retry;
      this.clock.clearTimeout(r.timer);
      st.retry = undefined;
      this.emit({ type: 'coalesced', time: this.time(), job: name, reason: 'retry', scheduledFor: r.scheduledFor, attempt: r.attempt, into: t.reason });
    }
    const q = st.queued;
    if (q !== undefined) return this.coalesce(st, q, t);
    const entry: QueuedRun = { seq: this.seq++, ...t, triggeredAt: this.clock.now(), waitingFor: undefined, announced: false, lockTimer: undefined };
    st.queued = entry;
    this.pump();
    if (st.queued === entry && !entry.announced) this.announce(st, entry);
  }

  private coalesce(st: JobState, q: QueuedRun, t: Trigger): void {
    const name = st.job.spec.name;
    const slot = latest(q.slot, t.slot);
    if (q.reason === 'retry' && t.reason !== 'retry') {
      this.emit({ type: 'coalesced', time: this.time(), job: name, reason: q.reason, scheduledFor: q.scheduledFor, attempt: q.attempt, into: t.reason });
      Object.assign(q, { reason: t.reason, scheduledFor: t.scheduledFor, attempt: 1, gated: t.gated });
    } else {
      this.emit({ type: 'coalesced', time: this.time(), job: name, reason: t.reason, scheduledFor: t.scheduledFor, attempt: t.attempt, into: q.reason });
    }
    q.slot = slot;
  }

  private announce(st: JobState, q: QueuedRun): void {
    q.announced = true;
    const { reason, scheduledFor, attempt } = q;
    this.emit({ type: 'queued', time: this.time(), job: st.job.spec.name, reason, scheduledFor, attempt, waitingFor: q.waitingFor ?? 'concurrency' });
  }

  /** Starts whatever may start, in queue order; re-entrant calls are folded into the running one. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.pumpOnce();
      } while (this.pumpAgain && this.phase === 'running');
    } finally {
      this.pumping = false;
    }
  }

  private pumpOnce(): void {
    const reserved = new Set<string>();
    for (const { st, q } of queueOrder(this.states.values())) {
      if (this.phase !== 'running') return;
      if (st.queued !== q) continue;
      const cause = this.blocker(st, q, reserved);
      if (cause === 'start') this.startRun(st, q);
      else if (cause !== 'skipped') this.wait(st, q, cause, reserved);
    }
  }

  /** What keeps a queued run from starting now; 'skipped' when it was dropped for a failed dependency. */
  private blocker(st: JobState, q: QueuedRun, reserved: ReadonlySet<string>): WaitCause | 'start' | 'skipped' {
    if (st.running !== undefined) return 'same-job';
    if (q.gated) {
      const gate = dependencyGate(st, this.states);
      if (gate === 'wait') return 'dependency';
      if (gate !== 'open') {
        this.skipForDependency(st, q, gate);
        return 'skipped';
      }
    }
    if (repositoryConflict(st, this.states.values(), reserved)) return 'repository';
    if (this.runningCount() >= this.concurrency) return 'concurrency';
    return 'start';
  }

  private wait(st: JobState, q: QueuedRun, cause: WaitCause, reserved: Set<string>): void {
    q.waitingFor = cause;
    if (cause !== 'repository') {
      if (q.lockTimer !== undefined) this.clock.clearTimeout(q.lockTimer);
      q.lockTimer = undefined;
      return;
    }
    if (st.job.spec.exclusiveRepositories === true) for (const r of st.job.spec.repositories ?? []) reserved.add(r);
    if (q.lockTimer === undefined) {
      const waitMs = st.job.spec.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
      q.lockTimer = this.clock.setTimeout(() => this.lockTimeout(st, q, waitMs), waitMs);
    }
  }

  private runningCount(): number {
    let n = 0;
    for (const st of this.states.values()) if (st.running !== undefined) n++;
    return n;
  }

  // --- dependencies ---

  private skipForDependency(st: JobState, q: QueuedRun, gate: { failed: string; outcome: RunOutcome }): void {
    this.unqueue(st, q);
    // The occurrence was dealt with (by not running), so a restart does not catch it up.
    if (q.slot !== undefined) this.record(st.job.spec.name, q.slot);
    const why = gate.outcome.error === undefined ? '' : ` (${gate.outcome.error.code}: ${gate.outcome.error.message})`;
    const message = `job '${st.job.spec.name}' did not run: its dependency '${gate.failed}' failed${why}`;
    this.fail(st, q, { ok: false, error: { code: 'DEPENDENCY_FAILED', message } });
  }

  /** After a success, triggers the dependency-only jobs that are now due. */
  private notifyDependents(name: string): void {
    for (const st of readyDependents(name, this.states.values())) {
      this.trigger(st, { reason: 'dependency', scheduledFor: this.time(), attempt: 1, slot: undefined, gated: false });
    }
  }

  // --- runs ---

  private startRun(st: JobState, q: QueuedRun): void {
    this.unqueue(st, q);
    const spec = st.job.spec;
    if (q.slot !== undefined) this.record(spec.name, q.slot);
    st.depsSucceeded.clear();
    const startedAt = this.clock.now();
    st.lastRun = new Date(startedAt);
    const controller = new AbortController();
    const run: ActiveRun = { reason: q.reason, scheduledFor: q.scheduledFor, attempt: q.attempt, gated: q.gated, startedAt, controller, done: Promise.resolve() };
    st.running = run;
    this.emit({ type: 'started', time: this.time(), job: spec.name, reason: q.reason, scheduledFor: q.scheduledFor, attempt: q.attempt });
    let result: Promise<RunOutcome>;
    try {
      result = this.runJob(spec, { scheduledFor: q.scheduledFor, attempt: q.attempt, signal: controller.signal, reason: q.reason });
    } catch (err) {
      result = Promise.reject(err);
    }
    run.done = Promise.allSettled([result]).then(([settled]) => this.finish(st, run, outcomeOf(settled!)));
  }

  private finish(st: JobState, run: ActiveRun, outcome: RunOutcome): void {
    st.running = undefined;
    this.noteOutcome(st, outcome);
    const { reason, scheduledFor, attempt } = run;
    const durationMs = this.clock.now() - run.startedAt;
    this.emit({ type: 'finished', time: this.time(), job: st.job.spec.name, reason, scheduledFor, attempt, outcome, durationMs });
    if (st.removed) {
      if (this.states.get(st.job.spec.name) === st) this.states.delete(st.job.spec.name);
    } else if (this.phase === 'running') {
      if (outcome.ok) this.notifyDependents(st.job.spec.name);
      else this.scheduleRetry(st, run, outcome);
    }
    if (this.phase === 'running') this.pump();
  }

  /** Records a run that failed without running (lock timeout, failed dependency). */
  private fail(st: JobState, q: QueuedRun, outcome: RunOutcome): void {
    this.noteOutcome(st, outcome);
    const { reason, scheduledFor, attempt } = q;
    this.emit({ type: 'skipped', time: this.time(), job: st.job.spec.name, reason, scheduledFor, attempt, outcome });
  }

  private lockTimeout(st: JobState, q: QueuedRun, waitMs: number): void {
    q.lockTimer = undefined;
    if (st.queued !== q || this.phase !== 'running') return;
    this.unqueue(st, q);
    const repos = (st.job.spec.repositories ?? []).join(', ');
    const message = `job '${st.job.spec.name}' waited ${waitMs} ms for repositories ${repos} held by conflicting runs`;
    const outcome: RunOutcome = { ok: false, error: { code: 'LOCK_CONFLICT', message } };
    this.fail(st, q, outcome);
    this.scheduleRetry(st, q, outcome);
    this.pump();
  }

  private scheduleRetry(st: JobState, run: { reason: RunReason; scheduledFor: Date; attempt: number; gated: boolean }, outcome: RunOutcome): void {
    const policy = st.job.spec.retries;
    // A follow-up run already queued is the next attempt; a retry on top would run twice.
    if (policy === undefined || run.attempt > policy.max || st.queued !== undefined) return;
    const delayMs = retryDelayMs(policy, run.attempt, this.random);
    const at = new Date(this.clock.now() + delayMs);
    const next = { reason: run.reason, scheduledFor: run.scheduledFor, attempt: run.attempt + 1 };
    const timer = this.clock.setTimeout(() => {
      st.retry = undefined;
      this.trigger(st, { reason: 'retry', scheduledFor: next.scheduledFor, attempt: next.attempt, slot: undefined, gated: run.gated });
    }, delayMs);
    st.retry = { timer, at, ...next };
    const name = st.job.spec.name;
    this.emit({ type: 'retry-scheduled', time: this.time(), job: name, reason: 'retry', scheduledFor: next.scheduledFor, attempt: next.attempt, retryAt: at, delayMs, error: outcome.error });
  }

  // --- bookkeeping ---

  private noteOutcome(st: JobState, outcome: RunOutcome): void {
    st.lastOutcome = outcome;
    st.consecutiveFailures = outcome.ok ? 0 : st.consecutiveFailures + 1;
  }

  private unqueue(st: JobState, q: QueuedRun): void {
    if (q.lockTimer !== undefined) this.clock.clearTimeout(q.lockTimer);
    q.lockTimer = undefined;
    if (st.queued === q) st.queued = undefined;
  }

  /** Drops a queued run that will never start (stop, job removed); not counted as the job's failure. */
  private dropQueued(st: JobState, message: string): void {
    const q = st.queued;
    if (q === undefined) return;
    this.unqueue(st, q);
    const { reason, scheduledFor, attempt } = q;
    const outcome: RunOutcome = { ok: false, error: { code: 'INTERRUPTED', message } };
    this.emit({ type: 'skipped', time: this.time(), job: st.job.spec.name, reason, scheduledFor, attempt, outcome });
  }

  private record(job: string, at: Date): void {
    try {
      const pending = this.store.recordScheduled(job, at);
      if (pending instanceof Promise) pending.catch((err: unknown) => this.storeFailed(job, err));
    } catch (err) {
      this.storeFailed(job, err);
    }
  }

  private storeFailed(job: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.emit({ type: 'store-failed', time: this.time(), job, error: { code: err instanceof BulwarkError ? err.code : 'INTERNAL', message } });
  }

  private async settled(): Promise<void> {
    await Promise.all([...this.states.values()].map((st) => st.running?.done));
  }

  private time(): Date {
    return new Date(this.clock.now());
  }

  // A listener that throws must not break scheduling; events are advisory.
  private emit(e: SchedulerEvent): void {
    try {
      this.onEvent(e);
    } catch {
      /* ignored: see above */
    }
  }
}
