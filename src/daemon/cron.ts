// Cron schedules for the daemon: validation and occurrence arithmetic on top of croner. Accepted
// forms are 5-field cron (minute precision), 6-field cron (leading seconds field) and the
// nicknames @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly. Year fields and
// one-off ISO dates are refused: a backup schedule repeats.
//
// Occurrences are computed in the job's IANA time zone (the process zone when none is given).
// DST follows croner (Vixie cron rules): a fixed-time job (one value in each of second, minute and
// hour, e.g. `30 2 * * *`) whose time falls into a spring-forward gap runs at the first valid time
// after the gap on that day (02:30 in Europe/Berlin on 2025-03-30 runs at 03:00 CEST), and a time
// repeated by a fall-back runs once, at its first pass. Interval jobs (wildcards, steps, ranges or
// lists in those fields, e.g. `0 */15 * * * *`) skip times in a gap and run on both passes of a
// repeated hour, so they keep their rhythm in real time.
import type { Cron } from 'croner';
import type * as Croner from 'croner';
import { lazy } from '../lazy.js';

const croner = lazy<typeof Croner>('croner');
import { BulwarkError } from '../errors.js';

export interface Schedule {
  readonly expression: string;
  readonly timezone: string | undefined;
  /** The first occurrence strictly after `after`, or undefined if there is none. */
  next(after: Date): Date | undefined;
  /** The latest occurrence at or before `before`, or undefined if there is none. */
  previous(before: Date): Date | undefined;
}

const NICKNAMES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

// A 5- or 6-field pattern without a year field repeats at least every 28 years (the calendar
// cycle), so looking back further than this finds nothing new.
const MAX_LOOKBACK_MS = 29 * 366 * 86_400_000;
// A fixed reference for the "does this ever occur" check keeps validation independent of the clock.
const REFERENCE = new Date(Date.UTC(2000, 0, 1));

/** Validates a schedule (and its time zone); throws CONFIG_INVALID naming the bad expression. */
export function parseSchedule(expr: string, timezone?: string): Schedule {
  const expression = expr.trim();
  if (timezone !== undefined) checkTimezone(timezone);
  const cron = compile(expression, timezone);
  if (cron.nextRun(REFERENCE) === null) {
    throw invalid(expression, 'it never occurs');
  }
  return {
    expression,
    timezone,
    next: (after) => nextOf(cron, after),
    previous: (before) => previousOf(cron, before),
  };
}

/** The first occurrence of `expr` strictly after `after`. */
export function nextRun(expr: string, after: Date, timezone?: string): Date | undefined {
  return parseSchedule(expr, timezone).next(after);
}

/** The latest occurrence of `expr` at or before `before`. */
export function previousRun(expr: string, before: Date, timezone?: string): Date | undefined {
  return parseSchedule(expr, timezone).previous(before);
}

function compile(expression: string, timezone: string | undefined): Cron {
  if (expression.startsWith('@')) {
    if (!NICKNAMES.has(expression.toLowerCase())) {
      throw invalid(expression, `unknown nickname; use one of ${[...NICKNAMES].join(', ')}`);
    }
  } else {
    const fields = expression.split(/\s+/).filter((f) => f !== '').length;
    if (fields !== 5 && fields !== 6) {
      throw invalid(expression, `it has ${fields} fields; use 5 (minute precision) or 6 (with seconds)`);
    }
  }
  let cron: Cron;
  try {
    cron = new (croner().Cron)(expression, timezone === undefined ? { mode: '5-or-6-parts' } : { mode: '5-or-6-parts', timezone });
  } catch (err) {
    throw invalid(expression, err instanceof Error ? err.message : String(err), err);
  }
  if (cron.getOnce() !== null) throw invalid(expression, 'a one-off date is not a schedule');
  return cron;
}

function nextOf(cron: Cron, after: Date): Date | undefined {
  return cron.nextRun(after) ?? undefined;
}

// croner can search backwards, but its backward walk may treat a repeated DST hour differently
// from the forward walk the scheduler fires by. So its answer is only a hint, accepted when the
// forward walk agrees (it reaches the hint and steps past `before` next). Otherwise we step forward
// from an earlier point, doubling the window until it holds an occurrence.
function previousOf(cron: Cron, before: Date): Date | undefined {
  const end = before.getTime();
  const hint = cron.previousRuns(1, new Date(end + 1))[0];
  if (hint !== undefined && isLastForward(cron, hint, end)) return hint;
  for (let window = 1000; window <= MAX_LOOKBACK_MS * 2; window *= 2) {
    let found = nextOf(cron, new Date(end - window - 1));
    if (found === undefined || found.getTime() > end) continue;
    for (;;) {
      const following = nextOf(cron, found);
      if (following === undefined || following.getTime() > end) return found;
      found = following;
    }
  }
  return undefined;
}

function isLastForward(cron: Cron, at: Date, end: number): boolean {
  if (at.getTime() > end || nextOf(cron, new Date(at.getTime() - 1))?.getTime() !== at.getTime()) return false;
  const following = nextOf(cron, at);
  return following === undefined || following.getTime() > end;
}

function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch (err) {
    throw new BulwarkError('CONFIG_INVALID', `unknown time zone '${timezone}'`, {
      subject: timezone,
      hint: 'use an IANA time zone name such as Europe/Berlin or America/New_York',
      cause: err,
    });
  }
}

function invalid(expression: string, why: string, cause?: unknown): BulwarkError {
  return new BulwarkError('CONFIG_INVALID', `invalid schedule '${expression}': ${why}`, {
    subject: expression,
    hint: "use 5-field cron ('30 2 * * *'), 6-field cron with seconds ('0 30 2 * * *') or a nickname such as @daily",
    ...(cause === undefined ? {} : { cause }),
  });
}
