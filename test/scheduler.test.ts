// Scheduler core on a FakeClock: due runs at the right instants (seconds-level cron, no drift),
// no overlap with coalescing, repository conflicts and their wait limit, the concurrency limit and
// priority order, retries with bounded jittered backoff, stop() and reload(). Dependencies,
// catch-up and DST are in scheduler-deps.test.ts and scheduler-cron.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BulwarkError, isBulwarkError } from '../src/errors.js';
import { settle } from '../src/daemon/scheduler-clock.js';
import { SchedulerHarness, type HarnessOptions } from '../src/daemon/scheduler-testkit.js';

const T0 = Date.parse('2025-01-01T00:00:00Z');
const at = (s: number): string => new Date(T0 + s * 1000).toISOString();
const fail = (code = 'STORAGE_IO') => ({ ok: false, error: { code, message: 'scripted failure' } });

async function started(opts: Omit<HarnessOptions, 'start'>): Promise<SchedulerHarness> {
  const h = new SchedulerHarness({ start: T0, ...opts });
  await h.scheduler.start();
  return h;
}

describe('due runs', () => {
  it('fires a seconds-level schedule at each occurrence', async () => {
    const h = await started({ jobs: [{ name: 'a', schedule: '*/15 * * * * *' }] });
    assert.equal(h.scheduler.status()[0]?.nextRun?.toISOString(), at(15));
    await h.clock.advanceAsync(60_000);
    assert.deepEqual(h.starts('a'), [at(15), at(30), at(45), at(60)]);
    assert.deepEqual(h.runs.map((r) => r.scheduledFor.toISOString()), [at(15), at(30), at(45), at(60)]);
    assert.ok(h.runs.every((r) => r.reason === 'schedule' && r.attempt === 1));
    assert.deepEqual(h.ofType('scheduled', 'a').map((e) => e.next.toISOString()), [at(15), at(30), at(45), at(60), at(75)]);
  });

  it('fires 5-field schedules and nicknames at whole minutes and hours', async () => {
    const h = await started({ jobs: [{ name: 'm', schedule: '*/5 * * * *' }, { name: 'h', schedule: '@hourly' }] });
    await h.clock.advanceAsync(3_600_000);
    assert.deepEqual(h.starts('m').slice(0, 3), [at(300), at(600), at(900)]);
    assert.equal(h.starts('m').length, 12);
    assert.deepEqual(h.starts('h'), [at(3600)]);
  });

  it('does not drift: runs near their slot length leave later slots on time', async () => {
    const h = await started({ jobs: [{ name: 'a', schedule: '*/10 * * * * *' }], durations: { a: 9999 } });
    await h.clock.advanceAsync(1_000_000);
    const starts = h.runs.map((r) => r.startedAt);
    assert.equal(starts.length, 100);
    assert.ok(starts.every((t, i) => t === T0 + (i + 1) * 10_000), 'every start exactly on a 10 s boundary');
  });

  it('re-arms waits longer than a timer can hold and fires on the instant', async () => {
    const h = await started({ jobs: [{ name: 'month', schedule: '@monthly', timezone: 'UTC' }] });
    assert.ok((h.clock.nextDue() ?? Infinity) - T0 <= 86_400_000, 'no timer is armed further than a day ahead');
    await h.clock.advanceAsync(31 * 86_400_000 - 1);
    assert.equal(h.runs.length, 0);
    await h.clock.advanceAsync(1);
    await h.clock.advanceAsync(29 * 86_400_000);
    assert.deepEqual(h.starts('month'), ['2025-02-01T00:00:00.000Z', '2025-03-01T00:00:00.000Z']);
  });
});

describe('no overlap', () => {
  it('queues one follow-up while a run is going and coalesces further triggers', async () => {
    const h = await started({ jobs: [{ name: 'a', schedule: '*/10 * * * * *' }], durations: { a: 25_000 } });
    await h.clock.advanceAsync(40_000);
    assert.deepEqual(h.starts('a'), [at(10), at(35)]);
    assert.equal(h.runs[1]?.scheduledFor.toISOString(), at(20), 'the follow-up is the first queued occurrence');
    assert.equal(h.maxOverlap('a'), 1);
    const queued = h.ofType('queued', 'a');
    assert.deepEqual(queued.map((e) => [e.time.toISOString(), e.waitingFor]), [[at(20), 'same-job'], [at(40), 'same-job']]);
    assert.deepEqual(h.ofType('coalesced', 'a').map((e) => [e.time.toISOString(), e.reason, e.into]), [[at(30), 'schedule', 'schedule']]);
    assert.equal(h.scheduler.status()[0]?.queued, true);
  });

  it('runNow on a running job queues once, then coalesces', async () => {
    const h = await started({ jobs: [{ name: 'a' }], durations: { a: 5000 } });
    h.scheduler.runNow('a');
    h.scheduler.runNow('a');
    h.scheduler.runNow('a');
    await h.clock.advanceAsync(20_000);
    assert.deepEqual(h.starts('a'), [at(0), at(5)]);
    assert.equal(h.ofType('coalesced', 'a').length, 1);
    assert.throws(() => h.scheduler.runNow('nope'), (e: unknown) => isBulwarkError(e, 'JOB_NOT_FOUND'));
  });
});

describe('repository conflicts', () => {
  const jobs = [
    { name: 'b1', repositories: ['r1'] },
    { name: 'b2', repositories: ['r1'] },
    { name: 'prune', repositories: ['r1'], exclusiveRepositories: true },
    { name: 'other', repositories: ['r2'] },
  ];

  it('shared runs coexist; an exclusive run waits for them and they wait for it', async () => {
    const h = await started({ jobs, concurrency: 4, durations: { b1: 30_000, b2: 30_000, prune: 5000 } });
    h.scheduler.runNow('b1');
    h.scheduler.runNow('b2');
    await h.clock.advanceAsync(10_000);
    h.scheduler.runNow('prune');
    assert.equal(h.ofType('queued', 'prune')[0]?.waitingFor, 'repository');
    await h.clock.advanceAsync(21_000);
    h.scheduler.runNow('b1');
    h.scheduler.runNow('other');
    await h.clock.advanceAsync(10_000);
    assert.deepEqual(h.starts('b2'), [at(0)]);
    assert.deepEqual(h.starts('prune'), [at(30)]);
    assert.deepEqual(h.starts('b1'), [at(0), at(35)], 'shared run waited for the exclusive one');
    assert.deepEqual(h.starts('other'), [at(31)], 'another repository is not blocked');
    assert.equal(h.ofType('skipped').length, 0);
  });

  it('a waiting exclusive run is not overtaken by shared runs queued after it', async () => {
    const h = await started({ jobs, concurrency: 4, durations: { b1: 30_000, b2: 30_000, prune: 5000 } });
    h.scheduler.runNow('b1');
    await h.clock.advanceAsync(10_000);
    h.scheduler.runNow('prune');
    await h.clock.advanceAsync(10_000);
    h.scheduler.runNow('b2');
    await h.clock.advanceAsync(30_000);
    assert.deepEqual(h.order(), ['b1', 'prune', 'b2']);
    assert.deepEqual(h.starts('b2'), [at(35)]);
  });

  it('fails with LOCK_CONFLICT after lockWaitMs, and not before', async () => {
    const h = await started({
      jobs: [jobs[0]!, { ...jobs[2]!, lockWaitMs: 5000, retries: { max: 1, initialDelayMs: 1000, maxDelayMs: 1000 } }, { name: 'p2', repositories: ['r1'], exclusiveRepositories: true }],
      concurrency: 4,
      random: () => 0.5,
      durations: { b1: 7_200_000 },
    });
    h.scheduler.runNow('b1');
    await h.clock.advanceAsync(1000);
    h.scheduler.runNow('prune');
    h.scheduler.runNow('p2');
    await h.clock.advanceAsync(4999);
    assert.equal(h.ofType('skipped', 'prune').length, 0);
    await h.clock.advanceAsync(1);
    const skipped = h.ofType('skipped', 'prune');
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0]?.outcome.error?.code, 'LOCK_CONFLICT');
    const st = h.scheduler.status().find((s) => s.name === 'prune');
    assert.equal(st?.lastOutcome?.error?.code, 'LOCK_CONFLICT');
    assert.equal(st?.consecutiveFailures, 1);
    assert.deepEqual(h.ofType('retry-scheduled', 'prune').map((e) => e.delayMs), [500], 'a lock timeout is a failure and retried');
    await h.clock.advanceAsync(3_590_000);
    assert.equal(h.ofType('skipped', 'p2').length, 0, 'default wait is one hour');
    await h.clock.advanceAsync(10_000);
    assert.equal(h.ofType('skipped', 'p2')[0]?.outcome.error?.code, 'LOCK_CONFLICT');
    assert.equal(h.ofType('skipped', 'prune').length, 2, 'the retry waited and timed out too');
    assert.deepEqual(h.order(), ['b1'], 'neither exclusive run ran');
  });
});

describe('concurrency and priority', () => {
  const four = ['p3', 'p0', 'p2', 'p1'].map((name) => ({ name, schedule: '10 * * * * *', priority: Number(name[1]) }));

  it('runs at most `concurrency` at once (default 2)', async () => {
    const h = await started({ jobs: four, durations: { p0: 10_000, p1: 10_000, p2: 10_000, p3: 10_000 } });
    await h.clock.advanceAsync(40_000);
    assert.equal(h.runs.length, 4);
    assert.equal(h.maxOverlap(), 2);
    assert.deepEqual(h.runs.map((r) => r.startedAt - T0).sort((a, b) => a - b), [10_000, 10_000, 20_000, 20_000]);
  });

  it('starts queued runs by priority, then trigger time', async () => {
    const h = await started({ jobs: [{ name: 'blocker' }, ...four], concurrency: 1, durations: { blocker: 20_000 } });
    h.scheduler.runNow('blocker');
    await h.clock.advanceAsync(60_000);
    assert.deepEqual(h.order(), ['blocker', 'p0', 'p1', 'p2', 'p3']);

    const g = await started({ jobs: [{ name: 'blocker' }, { name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'urgent', priority: 0 }], concurrency: 1, durations: { blocker: 20_000 } });
    g.scheduler.runNow('blocker');
    for (const name of ['c', 'a', 'b', 'urgent']) {
      await g.clock.advanceAsync(1000);
      g.scheduler.runNow(name);
    }
    await g.clock.advanceAsync(60_000);
    assert.deepEqual(g.order(), ['blocker', 'urgent', 'c', 'a', 'b']);
  });
});

describe('retries', () => {
  const retries = { max: 3, initialDelayMs: 1000, maxDelayMs: 3000 };

  it('backs off exponentially with full jitter, capped, then succeeds', async () => {
    const h = await started({ jobs: [{ name: 'f', retries }], random: () => 0.5, outcomes: { f: [fail(), fail(), fail()] } });
    h.scheduler.runNow('f');
    await h.clock.advanceAsync(1000);
    assert.equal(h.scheduler.status()[0]?.retryAt?.toISOString(), at(1.5));
    await h.clock.advanceAsync(10_000);
    assert.deepEqual(h.ofType('retry-scheduled', 'f').map((e) => [e.delayMs, e.attempt]), [[500, 2], [1000, 3], [1500, 4]]);
    assert.deepEqual(h.starts('f'), [at(0), at(1.5), at(3.5), at(6)]);
    assert.deepEqual(h.runs.map((r) => `${r.reason}#${r.attempt}`), ['manual#1', 'retry#2', 'retry#3', 'retry#4']);
    const st = h.scheduler.status()[0];
    assert.equal(st?.lastOutcome?.ok, true);
    assert.equal(st?.consecutiveFailures, 0);
  });

  it('delays stay below the computed cap and reach zero', async () => {
    const high = await started({ jobs: [{ name: 'f', retries }], random: () => 0.999999, outcomes: { f: [fail(), fail(), fail(), fail()] } });
    high.scheduler.runNow('f');
    await high.clock.advanceAsync(60_000);
    assert.deepEqual(high.ofType('retry-scheduled').map((e) => e.delayMs), [999, 1999, 2999]);
    assert.equal(high.runs.length, 4, 'max 3 retries: four attempts, then it gives up');
    assert.equal(high.scheduler.status()[0]?.consecutiveFailures, 4);
    assert.equal(high.scheduler.status()[0]?.retryAt, undefined);

    const low = await started({ jobs: [{ name: 'f', retries }], random: () => 0, outcomes: { f: [fail(), fail()] } });
    low.scheduler.runNow('f');
    await low.clock.advanceAsync(60_000);
    assert.deepEqual(low.ofType('retry-scheduled').map((e) => e.delayMs), [0, 0]);
  });

  it('retries only failures; thrown errors are failures (INTERNAL unless coded)', async () => {
    const h = await started({
      jobs: [{ name: 'ok', retries }, { name: 'plain', retries: { ...retries, max: 0 } }, { name: 'coded' }],
      outcomes: { plain: [new Error('boom')], coded: [new BulwarkError('STORAGE_IO', 'disk gone')] },
    });
    for (const name of ['ok', 'plain', 'coded']) h.scheduler.runNow(name);
    await h.clock.advanceAsync(60_000);
    assert.deepEqual(h.order().sort(), ['coded', 'ok', 'plain']);
    const codes = Object.fromEntries(h.ofType('finished').map((e) => [e.job, e.outcome.error?.code ?? 'ok']));
    assert.deepEqual(codes, { ok: 'ok', plain: 'INTERNAL', coded: 'STORAGE_IO' });
    assert.equal(h.ofType('retry-scheduled').length, 0);
  });

  it('a pending retry does not block other jobs', async () => {
    const h = await started({
      jobs: [{ name: 'f', retries: { max: 1, initialDelayMs: 10_000, maxDelayMs: 10_000 } }, { name: 'g' }],
      concurrency: 1,
      random: () => 0.5,
      outcomes: { f: [fail()] },
    });
    h.scheduler.runNow('f');
    await h.clock.advanceAsync(2000);
    h.scheduler.runNow('g');
    await h.clock.advanceAsync(10_000);
    assert.deepEqual(h.starts('g'), [at(2)]);
    assert.deepEqual(h.starts('f'), [at(0), at(6)]);
  });
});

describe('retries and fresh triggers', () => {
  it('a new trigger replaces a pending retry with a fresh first attempt', async () => {
    const h = await started({ jobs: [{ name: 'f', retries: { max: 2, initialDelayMs: 20_000, maxDelayMs: 20_000 } }], random: () => 0.5, outcomes: { f: [{ ok: false, error: { code: 'STORAGE_IO', message: 'x' } }] } });
    h.scheduler.runNow('f');
    await h.clock.advanceAsync(2000);
    assert.equal(h.scheduler.status()[0]?.retryAt?.toISOString(), at(11));
    h.scheduler.runNow('f');
    await h.clock.advanceAsync(30_000);
    assert.deepEqual(h.runs.map((r) => `${r.reason}#${r.attempt}@${r.startedAt - T0}`), ['manual#1@0', 'manual#1@2000']);
    assert.deepEqual(h.ofType('coalesced', 'f').map((e) => [e.reason, e.into]), [['retry', 'manual']]);
  });
});

describe('stop', () => {
  it('aborts running runs, drops queued ones and starts nothing more', async () => {
    const h = await started({ jobs: [{ name: 'long' }, { name: 'q' }, { name: 'tick', schedule: '*/10 * * * * *' }], concurrency: 1, durations: { long: 3_600_000 } });
    h.scheduler.runNow('long');
    h.scheduler.runNow('q');
    await h.clock.advanceAsync(5000);
    let stopped = false;
    const stopping = h.scheduler.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, true, 'stop() settles without the clock moving: the run was aborted');
    await stopping;
    assert.equal(h.runs[0]?.aborted, true);
    assert.equal(h.ofType('finished', 'long')[0]?.outcome.error?.code, 'INTERRUPTED');
    assert.equal(h.ofType('skipped', 'q')[0]?.outcome.error?.code, 'INTERRUPTED');
    assert.equal(h.clock.pending(), 0, 'no timer left armed');
    await h.clock.advanceAsync(86_400_000);
    assert.deepEqual(h.order(), ['long']);
    assert.ok(h.scheduler.status().every((s) => !s.running && !s.queued && s.nextRun === undefined));
    assert.throws(() => h.scheduler.runNow('q'), (e: unknown) => isBulwarkError(e, 'USAGE'));
  });

  it('waits for a run that ignores the abort to settle', async () => {
    const h = await started({ jobs: [{ name: 'stubborn' }], durations: { stubborn: 10_000 }, ignoreAbort: true });
    h.scheduler.runNow('stubborn');
    let done = false;
    const stopping = h.scheduler.stop().then(() => (done = true));
    await h.clock.advanceAsync(9000);
    assert.equal(done, false);
    await h.clock.advanceAsync(1000);
    await stopping;
    assert.equal(done, true);
  });
});

describe('reload', () => {
  it('keeps running runs, reschedules the rest, drops removed jobs and adds new ones', async () => {
    const h = await started({
      jobs: [{ name: 'a', schedule: '*/10 * * * * *' }, { name: 'b', schedule: '*/10 * * * * *', retries: { max: 3, initialDelayMs: 1000, maxDelayMs: 1000 } }],
      durations: { a: 15_000, b: 15_000 },
      concurrency: 3,
      outcomes: { b: [{ ok: false, error: { code: 'STORAGE_IO', message: 'x' } }] },
    });
    await h.clock.advanceAsync(12_000);
    h.scheduler.reload([{ name: 'a', schedule: '*/30 * * * * *' }, { name: 'c', schedule: '*/20 * * * * *' }]);
    assert.deepEqual(h.scheduler.status().map((s) => [s.name, s.running, s.nextRun?.toISOString()]), [
      ['a', true, at(30)],
      ['c', false, at(20)],
    ]);
    await h.clock.advanceAsync(50_000);
    assert.deepEqual(h.starts('a'), [at(10), at(30), at(60)]);
    assert.deepEqual(h.starts('b'), [at(10)]);
    assert.deepEqual(h.starts('c'), [at(20), at(40), at(60)]);
    assert.ok(h.runs.every((r) => !r.aborted), 'reload aborts nothing');
    assert.equal(h.ofType('finished', 'b').length, 1, 'the removed job finished its run');
    assert.equal(h.ofType('retry-scheduled', 'b').length, 0, 'and its failure is not retried');
  });

  it('rejects a bad job list and keeps the old one', async () => {
    const h = await started({ jobs: [{ name: 'a', schedule: '*/10 * * * * *' }] });
    assert.throws(() => h.scheduler.reload([{ name: 'a', schedule: 'every day' }]), (e: unknown) => isBulwarkError(e, 'CONFIG_INVALID'));
    await h.clock.advanceAsync(20_000);
    assert.deepEqual(h.starts('a'), [at(10), at(20)]);
  });
});
