// A scheduler wired to a FakeClock and a scripted job runner, for tests of the scheduler and of
// code built on it. Each run takes a fixed fake duration per job and ends with the next outcome
// scripted for that job (success when the script is exhausted); an aborted run ends at once.
import { BulwarkError } from '../errors.js';
import { FakeClock } from './scheduler-clock.js';
import type { JobSpec, LastRunStore, RunContext, RunOutcome, RunReason, SchedulerEvent } from './scheduler-config.js';
import { Scheduler } from './scheduler.js';

/** A scripted result: an outcome, or an error the runner throws. */
export type ScriptedResult = RunOutcome | Error;

export interface RunRecord {
  job: string;
  reason: RunReason;
  attempt: number;
  scheduledFor: Date;
  startedAt: number;
  endedAt: number | undefined;
  aborted: boolean;
}

export interface HarnessOptions {
  start: Date | number;
  jobs: JobSpec[];
  concurrency?: number;
  store?: LastRunStore;
  random?: () => number;
  /** Fake run time per job in ms (default 1000). */
  durations?: Record<string, number>;
  outcomes?: Record<string, ScriptedResult[]>;
  /** Runs that ignore their abort signal and end only when their time is up. */
  ignoreAbort?: boolean;
}

export class SchedulerHarness {
  readonly clock: FakeClock;
  readonly events: SchedulerEvent[] = [];
  readonly runs: RunRecord[] = [];
  readonly scheduler: Scheduler;
  private readonly durations: Record<string, number>;
  private readonly outcomes: Record<string, ScriptedResult[]>;
  private readonly ignoreAbort: boolean;

  constructor(opts: HarnessOptions) {
    this.clock = new FakeClock(opts.start);
    this.durations = opts.durations ?? {};
    this.outcomes = opts.outcomes ?? {};
    this.ignoreAbort = opts.ignoreAbort ?? false;
    this.scheduler = new Scheduler({
      jobs: opts.jobs,
      run: (job, ctx) => this.run(job, ctx),
      clock: this.clock,
      onEvent: (e) => this.events.push(e),
      ...(opts.concurrency === undefined ? {} : { concurrency: opts.concurrency }),
      ...(opts.store === undefined ? {} : { store: opts.store }),
      ...(opts.random === undefined ? {} : { random: opts.random }),
    });
  }

  /** Start times (ISO) of the runs of `job`, in order. */
  starts(job: string): string[] {
    return this.runs.filter((r) => r.job === job).map((r) => new Date(r.startedAt).toISOString());
  }

  /** Job names in the order their runs started. */
  order(): string[] {
    return this.runs.map((r) => r.job);
  }

  ofType<T extends SchedulerEvent['type']>(type: T, job?: string): Array<Extract<SchedulerEvent, { type: T }>> {
    return this.events.filter((e): e is Extract<SchedulerEvent, { type: T }> => e.type === type && (job === undefined || e.job === job));
  }

  /** Most runs of one job that were going at the same instant. */
  maxOverlap(job?: string): number {
    const rs = this.runs.filter((r) => job === undefined || r.job === job);
    let best = 0;
    for (const r of rs) {
      const at = r.startedAt;
      best = Math.max(best, rs.filter((o) => o.startedAt <= at && (o.endedAt === undefined || o.endedAt > at)).length);
    }
    return best;
  }

  private run(job: JobSpec, ctx: RunContext): Promise<RunOutcome> {
    const record: RunRecord = {
      job: job.name,
      reason: ctx.reason,
      attempt: ctx.attempt,
      scheduledFor: ctx.scheduledFor,
      startedAt: this.clock.now(),
      endedAt: undefined,
      aborted: false,
    };
    this.runs.push(record);
    const scripted = this.outcomes[job.name]?.shift() ?? { ok: true };
    return new Promise<RunOutcome>((resolve, reject) => {
      const end = (): void => {
        record.endedAt = this.clock.now();
        if (scripted instanceof Error) reject(scripted);
        else resolve(scripted);
      };
      const timer = this.clock.setTimeout(end, this.durations[job.name] ?? 1000);
      if (this.ignoreAbort) return;
      ctx.signal.addEventListener('abort', () => {
        this.clock.clearTimeout(timer);
        record.endedAt = this.clock.now();
        record.aborted = true;
        reject(new BulwarkError('INTERRUPTED', `run of '${job.name}' aborted`));
      });
    });
  }
}
