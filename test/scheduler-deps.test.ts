// Scheduler dependencies and catch-up on a FakeClock: success triggers dependency-only jobs (all
// dependencies must have succeeded since the job's own last run), failure blocks them; scheduled
// dependents wait for dependencies in flight and are skipped with DEPENDENCY_FAILED after a
// failure; bad graphs are refused; a missed occurrence runs once at start, only when enabled.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../src/errors.js';
import { MemoryLastRunStore, type JobSpec, type LastRunStore } from '../src/daemon/scheduler-config.js';
import { SchedulerHarness, type HarnessOptions } from '../src/daemon/scheduler-testkit.js';
import { Scheduler } from '../src/daemon/scheduler.js';

const T0 = Date.parse('2025-01-01T00:00:00Z');
const at = (s: number): string => new Date(T0 + s * 1000).toISOString();
const fail = { ok: false, error: { code: 'STORAGE_IO', message: 'scripted failure' } };

async function started(opts: Omit<HarnessOptions, 'start'> & { start?: number }): Promise<SchedulerHarness> {
  const h = new SchedulerHarness({ start: T0, ...opts });
  await h.scheduler.start();
  return h;
}

describe('dependency-triggered jobs', () => {
  const chain: JobSpec[] = [
    { name: 'backup', schedule: '0 * * * * *' },
    { name: 'check', dependsOn: ['backup'] },
    { name: 'report', dependsOn: ['check'] },
  ];

  it('runs a chain after each success', async () => {
    const h = await started({ jobs: chain });
    await h.clock.advanceAsync(130_000);
    assert.deepEqual(h.order(), ['backup', 'check', 'report', 'backup', 'check', 'report']);
    assert.deepEqual(h.starts('check'), [at(61), at(121)]);
    assert.deepEqual(h.starts('report'), [at(62), at(122)]);
    assert.ok(h.runs.filter((r) => r.job !== 'backup').every((r) => r.reason === 'dependency'));
  });

  it('a failure does not trigger dependents', async () => {
    const h = await started({ jobs: chain, outcomes: { backup: [fail], check: [fail] } });
    await h.clock.advanceAsync(190_000);
    assert.deepEqual(h.order(), ['backup', 'backup', 'check', 'backup', 'check', 'report']);
  });

  it('with several dependencies, waits until each has succeeded since its own last run', async () => {
    const h = await started({ jobs: [{ name: 'a' }, { name: 'b' }, { name: 'both', dependsOn: ['a', 'b'] }] });
    const step = async (name: string): Promise<void> => {
      h.scheduler.runNow(name);
      await h.clock.advanceAsync(5000);
    };
    await step('a');
    await step('a');
    assert.equal(h.starts('both').length, 0);
    await step('b');
    assert.equal(h.starts('both').length, 1);
    await step('a');
    assert.equal(h.starts('both').length, 1, 'a alone is not enough after both ran');
    await step('b');
    assert.equal(h.starts('both').length, 2);
  });
});

describe('scheduled jobs with dependencies', () => {
  const jobs: JobSpec[] = [
    { name: 'backup', schedule: '0 * * * * *' },
    { name: 'verify', schedule: '30 * * * * *', dependsOn: ['backup'] },
  ];

  it('wait while a dependency is running', async () => {
    const h = await started({ jobs, durations: { backup: 45_000 } });
    await h.clock.advanceAsync(120_000);
    assert.equal(h.ofType('queued', 'verify')[0]?.waitingFor, 'dependency');
    assert.deepEqual(h.starts('verify'), [at(30), at(105)], 'a dependency that never ran does not block');
  });

  it('are skipped with DEPENDENCY_FAILED after a failed dependency, and run after a success', async () => {
    const store = new MemoryLastRunStore();
    const h = await started({ jobs, store, outcomes: { backup: [fail] } });
    await h.clock.advanceAsync(91_000);
    assert.deepEqual(h.order(), ['verify', 'backup']);
    const skipped = h.ofType('skipped', 'verify');
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0]?.time.toISOString(), at(90));
    assert.equal(skipped[0]?.outcome.error?.code, 'DEPENDENCY_FAILED');
    assert.match(skipped[0]?.outcome.error?.message ?? '', /'backup' failed/);
    const st = () => h.scheduler.status().find((s) => s.name === 'verify');
    assert.equal(st()?.lastOutcome?.error?.code, 'DEPENDENCY_FAILED');
    assert.equal(st()?.consecutiveFailures, 1);
    assert.equal(store.lastScheduled('verify')?.toISOString(), at(90), 'the skipped occurrence counts as handled');
    await h.clock.advanceAsync(60_000);
    assert.deepEqual(h.starts('verify'), [at(30), at(150)]);
    assert.equal(st()?.consecutiveFailures, 0);
  });

  it('wait while a dependency awaits a retry, and run once the retry succeeds', async () => {
    const retrying: JobSpec[] = [{ ...jobs[0]!, retries: { max: 2, initialDelayMs: 60_000, maxDelayMs: 60_000 } }, jobs[1]!];
    const h = await started({ jobs: retrying, random: () => 0.5, outcomes: { backup: [fail] } });
    await h.clock.advanceAsync(100_000);
    assert.deepEqual(h.starts('backup'), [at(60), at(91)]);
    assert.deepEqual(h.starts('verify'), [at(30), at(92)], 'verify at 90 waited for the retry');
    assert.equal(h.ofType('skipped', 'verify').length, 0);
  });

  it('a manual run ignores the dependency gate', async () => {
    const h = await started({ jobs, outcomes: { backup: [fail] } });
    await h.clock.advanceAsync(62_000);
    h.scheduler.runNow('verify');
    await h.clock.advanceAsync(5000);
    assert.deepEqual(h.starts('verify'), [at(30), at(62)]);
  });
});

describe('dependency validation', () => {
  const make = (jobs: JobSpec[]) => () => new Scheduler({ jobs, run: () => Promise.resolve({ ok: true }) });
  const invalid = (pattern: RegExp) => (e: unknown) => isBulwarkError(e, 'CONFIG_INVALID') && pattern.test(e.message);

  it('refuses cycles, naming them', () => {
    assert.throws(make([{ name: 'a', dependsOn: ['b'] }, { name: 'b', dependsOn: ['a'] }]), invalid(/a -> b -> a/));
    assert.throws(make([{ name: 'x' }, { name: 'a', dependsOn: ['x', 'c'] }, { name: 'b', dependsOn: ['a'] }, { name: 'c', dependsOn: ['b'] }]), invalid(/a -> c -> b -> a/));
    assert.throws(make([{ name: 'self', dependsOn: ['self'] }]), invalid(/self -> self/));
  });

  it('refuses unknown dependencies, duplicate names and bad schedules, naming them', () => {
    assert.throws(make([{ name: 'a', dependsOn: ['ghost'] }]), invalid(/'a' depends on unknown job\(s\) 'ghost'/));
    assert.throws(make([{ name: 'a' }, { name: 'a' }]), invalid(/'a' is defined twice/));
    assert.throws(make([{ name: 'a', schedule: '0 61 * * *' }]), invalid(/'0 61 \* \* \*'/));
    assert.throws(make([{ name: 'a', schedule: '@daily', timezone: 'Mars/Olympus' }]), invalid(/Mars\/Olympus/));
  });
});

describe('catch-up', () => {
  const start = Date.parse('2025-01-08T12:00:00Z');
  const nightly = (catchUp: boolean): JobSpec => ({ name: 'nightly', schedule: '0 2 * * *', timezone: 'UTC', catchUp });

  it('runs a missed occurrence once at start, not once per missed slot', async () => {
    const store = new MemoryLastRunStore({ nightly: new Date('2025-01-05T02:00:00Z') });
    const h = await started({ start, jobs: [nightly(true)], store });
    await h.clock.advanceAsync(1000);
    assert.equal(h.runs.length, 1);
    assert.equal(h.runs[0]?.reason, 'catch-up');
    assert.equal(h.runs[0]?.scheduledFor.toISOString(), '2025-01-08T02:00:00.000Z');
    assert.equal(h.runs[0]?.startedAt, start);
    assert.equal(store.lastScheduled('nightly')?.toISOString(), '2025-01-08T02:00:00.000Z');
    await h.clock.advanceToAsync(Date.parse('2025-01-09T02:00:00Z'));
    assert.deepEqual(h.starts('nightly'), ['2025-01-08T12:00:00.000Z', '2025-01-09T02:00:00.000Z']);
    assert.equal(store.lastScheduled('nightly')?.toISOString(), '2025-01-09T02:00:00.000Z', 'a scheduled start is recorded');
  });

  it('does nothing when disabled, up to date, or without a record', async () => {
    const cases: Array<[boolean, LastRunStore]> = [
      [false, new MemoryLastRunStore({ nightly: new Date('2025-01-05T02:00:00Z') })],
      [true, new MemoryLastRunStore({ nightly: new Date('2025-01-08T02:00:00Z') })],
      [true, new MemoryLastRunStore()],
    ];
    for (const [catchUp, store] of cases) {
      const h = await started({ start, jobs: [nightly(catchUp)], store });
      await h.clock.advanceAsync(13 * 3_600_000);
      assert.deepEqual(h.starts('nightly'), [], `catchUp=${String(catchUp)}`);
    }
  });

  it('reads an asynchronous store', async () => {
    const store: LastRunStore = {
      lastScheduled: () => Promise.resolve(new Date('2025-01-07T02:00:00Z')),
      recordScheduled: () => Promise.reject(new Error('catalog locked')),
    };
    const h = await started({ start, jobs: [nightly(true)], store });
    await h.clock.advanceAsync(1000);
    assert.deepEqual(h.runs.map((r) => r.reason), ['catch-up']);
    assert.equal(h.ofType('store-failed')[0]?.error.message, 'catalog locked');
  });
});
