// Cron arithmetic and time: schedule validation, next/previous occurrences, DST transitions in
// Europe/Berlin and America/New_York as the scheduler fires them, and the FakeClock itself.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../src/errors.js';
import { nextRun, parseSchedule, previousRun } from '../src/daemon/cron.js';
import { FakeClock } from '../src/daemon/scheduler-clock.js';
import { SchedulerHarness } from '../src/daemon/scheduler-testkit.js';

const iso = (d: Date | undefined): string | undefined => d?.toISOString();

describe('parseSchedule', () => {
  it('accepts 5- and 6-field cron and nicknames', () => {
    for (const expr of ['30 2 * * *', '*/15 * * * * *', '0 0 3 * * MON-FRI', '@hourly', '@daily', '@midnight', '@weekly', '@monthly', '@yearly', '@annually']) {
      assert.equal(parseSchedule(expr).expression, expr);
    }
  });

  it('refuses bad expressions with CONFIG_INVALID naming them', () => {
    for (const expr of ['61 * * * *', '* * * *', '* * * * * * *', '@reboot', '@fortnightly', '2030-01-01T00:00:00', '0 0 30 2 *', '', 'every day']) {
      assert.throws(
        () => parseSchedule(expr),
        (e: unknown) => isBulwarkError(e, 'CONFIG_INVALID') && e.message.includes(`'${expr}'`),
        expr,
      );
    }
    assert.throws(() => parseSchedule('@daily', 'Europe/Atlantis'), (e: unknown) => isBulwarkError(e, 'CONFIG_INVALID') && e.message.includes('Europe/Atlantis'));
  });
});

describe('nextRun and previousRun', () => {
  const t = (s: string): Date => new Date(s);

  it('nextRun is strictly after, previousRun at or before', () => {
    assert.equal(iso(nextRun('0 * * * * *', t('2025-01-01T00:01:00Z'))), '2025-01-01T00:02:00.000Z');
    assert.equal(iso(nextRun('0 * * * * *', t('2025-01-01T00:00:59.999Z'))), '2025-01-01T00:01:00.000Z');
    assert.equal(iso(previousRun('0 * * * * *', t('2025-01-01T00:01:00Z'))), '2025-01-01T00:01:00.000Z');
    assert.equal(iso(previousRun('0 * * * * *', t('2025-01-01T00:01:00.500Z'))), '2025-01-01T00:01:00.000Z');
    assert.equal(iso(previousRun('0 * * * * *', t('2025-01-01T00:00:59.999Z'))), '2025-01-01T00:00:00.000Z');
  });

  it('previousRun finds sparse and zoned occurrences', () => {
    assert.equal(iso(previousRun('0 0 29 2 *', t('2025-06-01T00:00:00Z'), 'UTC')), '2024-02-29T00:00:00.000Z');
    assert.equal(iso(previousRun('@daily', t('2025-01-01T12:00:00Z'), 'America/New_York')), '2025-01-01T05:00:00.000Z');
  });

  it('previousRun agrees with the forward walk across DST', () => {
    // 02:30 does not exist in Berlin on 2025-03-30; the job ran at 03:00 CEST instead.
    assert.equal(iso(previousRun('30 2 * * *', t('2025-03-30T12:00:00Z'), 'Europe/Berlin')), '2025-03-30T01:00:00.000Z');
    // 02:30 happens twice on 2025-10-26; at 02:45 CET (second pass) the latest run is the first 02:30.
    assert.equal(iso(previousRun('30 2 * * *', t('2025-10-26T01:45:00Z'), 'Europe/Berlin')), '2025-10-26T00:30:00.000Z');
  });
});

describe('DST as the scheduler fires it', () => {
  async function startsBetween(schedule: string, timezone: string, from: string, to: string): Promise<string[]> {
    const h = new SchedulerHarness({ start: new Date(from), jobs: [{ name: 'j', schedule, timezone }] });
    await h.scheduler.start();
    await h.clock.advanceToAsync(new Date(to));
    await h.scheduler.stop();
    return h.starts('j');
  }

  it('Europe/Berlin spring forward: a daily 02:30 job runs once, at 03:00 CEST', async () => {
    assert.deepEqual(await startsBetween('0 30 2 * * *', 'Europe/Berlin', '2025-03-29T00:00:00Z', '2025-04-01T00:00:00Z'), [
      '2025-03-29T01:30:00.000Z',
      '2025-03-30T01:00:00.000Z',
      '2025-03-31T00:30:00.000Z',
    ]);
  });

  it('Europe/Berlin fall back: a daily 02:30 job runs once, at the first 02:30', async () => {
    assert.deepEqual(await startsBetween('0 30 2 * * *', 'Europe/Berlin', '2025-10-25T00:00:00Z', '2025-10-28T00:00:00Z'), [
      '2025-10-25T00:30:00.000Z',
      '2025-10-26T00:30:00.000Z',
      '2025-10-27T01:30:00.000Z',
    ]);
  });

  it('America/New_York spring forward and fall back', async () => {
    assert.deepEqual(await startsBetween('30 2 * * *', 'America/New_York', '2025-03-08T00:00:00Z', '2025-03-11T00:00:00Z'), [
      '2025-03-08T07:30:00.000Z',
      '2025-03-09T07:00:00.000Z',
      '2025-03-10T06:30:00.000Z',
    ]);
    assert.deepEqual(await startsBetween('30 1 * * *', 'America/New_York', '2025-11-01T00:00:00Z', '2025-11-04T00:00:00Z'), [
      '2025-11-01T05:30:00.000Z',
      '2025-11-02T05:30:00.000Z',
      '2025-11-03T06:30:00.000Z',
    ]);
  });

  it('interval jobs keep real-time rhythm: both passes of a repeated hour run', async () => {
    const starts = await startsBetween('0 30 * * * *', 'Europe/Berlin', '2025-10-25T22:00:00Z', '2025-10-26T04:00:00Z');
    assert.deepEqual(starts, ['22:30', '23:30', '00:30', '01:30', '02:30', '03:30'].map((hm, i) => `2025-10-${i < 2 ? 25 : 26}T${hm}:00.000Z`));
  });
});

describe('FakeClock', () => {
  it('fires due timers in order, ties in the order set, including timers set while advancing', () => {
    const clock = new FakeClock(1000);
    const log: string[] = [];
    clock.setTimeout(() => log.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => {
      log.push(`a@${clock.now()}`);
      clock.setTimeout(() => log.push(`nested@${clock.now()}`), 5);
      clock.setTimeout(() => log.push('too late'), 100);
    }, 10);
    clock.setTimeout(() => log.push(`b2@${clock.now()}`), 20);
    const cancelled = clock.setTimeout(() => log.push('cancelled'), 15);
    clock.clearTimeout(cancelled);
    clock.advance(50);
    assert.deepEqual(log, ['a@1010', 'nested@1015', 'b@1020', 'b2@1020']);
    assert.equal(clock.now(), 1050);
    assert.equal(clock.pending(), 1);
    assert.equal(clock.nextDue(), 1110);
  });

  it('advanceAsync lets promise chains run between timers', async () => {
    const clock = new FakeClock(0);
    const log: number[] = [];
    const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
    void (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(10);
        log.push(clock.now());
      }
    })();
    clock.advance(100);
    assert.deepEqual(log, [], 'the synchronous advance does not wait for promises');
    const c2 = new FakeClock(0);
    const log2: number[] = [];
    const sleep2 = (ms: number) => new Promise<void>((resolve) => c2.setTimeout(resolve, ms));
    void (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep2(10);
        log2.push(c2.now());
      }
    })();
    await c2.advanceAsync(100);
    assert.deepEqual(log2, [10, 20, 30]);
  });
});
