// Retention policy (restic `forget` semantics) as a table of hand-computed cases.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { applyPolicy, isoWeek, parseDuration, policyIsEmpty, type RetentionPolicy, type ApplyOptions, DEFAULT_GFS_POLICY } from '../src/snapshot/retention.js';
import type { Snapshot } from '../src/snapshot/snapshot.js';

const savedTz = process.env['TZ'];
process.env['TZ'] = 'UTC';
after(() => {
  if (savedTz === undefined) delete process.env['TZ'];
  else process.env['TZ'] = savedTz;
});

function snap(id: string, time: string, extra: Partial<Snapshot> = {}): Snapshot {
  return { id, time: new Date(time).toISOString(), host: 'h', username: 'u', paths: ['/p'], tags: [], tree: '00', programVersion: 'test', ...extra };
}

interface Case {
  name: string;
  snaps: Snapshot[];
  policy: RetentionPolicy;
  opts?: ApplyOptions;
  tz?: string;
  /** Kept snapshot id -> reasons, newest first. */
  keep: Array<[string, string[]]>;
  remove: string[];
}

const NOW = new Date('2030-01-01T00:00:00Z');

const cases: Case[] = [
  {
    name: 'keep-daily 3: newest of each day, three days',
    snaps: [
      snap('a', '2024-01-05T10:00:00Z'),
      snap('b', '2024-01-05T08:00:00Z'),
      snap('c', '2024-01-04T23:00:00Z'),
      snap('d', '2024-01-03T12:00:00Z'),
      snap('e', '2024-01-02T12:00:00Z'),
      snap('f', '2024-01-01T12:00:00Z'),
    ],
    policy: { daily: 3 },
    keep: [
      ['a', ['daily snapshot']],
      ['c', ['daily snapshot']],
      ['d', ['daily snapshot']],
    ],
    remove: ['b', 'e', 'f'],
  },
  {
    name: 'keep-daily with counts left: the oldest snapshot is kept too',
    snaps: [snap('a', '2024-01-05T10:00:00Z'), snap('b', '2024-01-04T12:00:00Z'), snap('c', '2024-01-04T08:00:00Z')],
    policy: { daily: 5 },
    keep: [
      ['a', ['daily snapshot']],
      ['b', ['daily snapshot']],
      ['c', ['oldest daily snapshot']],
    ],
    remove: [],
  },
  {
    name: 'keep-weekly 3 across the year end (ISO weeks: 2020-W53 spans into January 2021)',
    snaps: [
      snap('a', '2021-01-04T09:00:00Z'), // Mon, 2021-W01
      snap('b', '2021-01-03T09:00:00Z'), // Sun, 2020-W53
      snap('c', '2020-12-31T09:00:00Z'), // Thu, 2020-W53
      snap('d', '2020-12-28T09:00:00Z'), // Mon, 2020-W53
      snap('e', '2020-12-27T09:00:00Z'), // Sun, 2020-W52
      snap('h', '2020-01-02T09:00:00Z'), // Thu, 2020-W01
      snap('f', '2019-12-30T09:00:00Z'), // Mon, 2020-W01
      snap('g', '2019-12-29T09:00:00Z'), // Sun, 2019-W52
    ],
    policy: { weekly: 3 },
    keep: [
      ['a', ['weekly snapshot']],
      ['b', ['weekly snapshot']],
      ['e', ['weekly snapshot']],
    ],
    remove: ['c', 'd', 'h', 'f', 'g'],
  },
  {
    name: 'keep-weekly -1 (unlimited): one per ISO week, 2019-12-30 shares 2020-W01 with 2020-01-02',
    snaps: [
      snap('a', '2021-01-04T09:00:00Z'),
      snap('b', '2021-01-03T09:00:00Z'),
      snap('c', '2020-12-31T09:00:00Z'),
      snap('e', '2020-12-27T09:00:00Z'),
      snap('h', '2020-01-02T09:00:00Z'),
      snap('f', '2019-12-30T09:00:00Z'),
      snap('g', '2019-12-29T09:00:00Z'),
    ],
    policy: { weekly: -1 },
    keep: [
      ['a', ['weekly snapshot']],
      ['b', ['weekly snapshot']],
      ['e', ['weekly snapshot']],
      ['h', ['weekly snapshot']],
      ['g', ['weekly snapshot']],
    ],
    remove: ['c', 'f'],
  },
  {
    name: 'keep-monthly 2 and keep-yearly 2: month and year boundaries, reasons combined per bucket',
    snaps: [
      snap('a', '2024-03-15T00:00:00Z'),
      snap('b', '2024-03-01T00:00:00Z'),
      snap('c', '2024-02-10T00:00:00Z'),
      snap('d', '2023-12-31T23:59:59Z'),
      snap('e', '2023-06-01T00:00:00Z'),
      snap('f', '2022-01-01T00:00:00Z'),
    ],
    policy: { monthly: 2, yearly: 2 },
    keep: [
      ['a', ['monthly snapshot', 'yearly snapshot']],
      ['c', ['monthly snapshot']],
      ['d', ['yearly snapshot']],
    ],
    remove: ['b', 'e', 'f'],
  },
  {
    name: 'keep-hourly 2: hour boundaries',
    snaps: [snap('a', '2024-01-01T10:59:00Z'), snap('b', '2024-01-01T10:00:00Z'), snap('c', '2024-01-01T09:59:59Z'), snap('d', '2024-01-01T08:00:00Z')],
    policy: { hourly: 2 },
    keep: [
      ['a', ['hourly snapshot']],
      ['c', ['hourly snapshot']],
    ],
    remove: ['b', 'd'],
  },
  {
    name: 'keep-last 5 with only 3 snapshots keeps all three',
    snaps: [snap('a', '2024-01-03T00:00:00Z'), snap('b', '2024-01-02T00:00:00Z'), snap('c', '2024-01-01T00:00:00Z')],
    policy: { last: 5 },
    keep: [
      ['a', ['last snapshot']],
      ['b', ['last snapshot']],
      ['c', ['last snapshot']],
    ],
    remove: [],
  },
  {
    name: 'keep-last 2 and keep-daily 1: several reasons on one snapshot',
    snaps: [snap('a', '2024-01-03T05:00:00Z'), snap('b', '2024-01-03T04:00:00Z'), snap('c', '2024-01-02T00:00:00Z')],
    policy: { last: 2, daily: 1 },
    keep: [
      ['a', ['last snapshot', 'daily snapshot']],
      ['b', ['last snapshot']],
    ],
    remove: ['c'],
  },
  {
    name: 'keep-last -1 keeps everything',
    snaps: [snap('a', '2024-01-03T00:00:00Z'), snap('b', '2024-01-03T00:00:00Z'), snap('c', '2020-01-01T00:00:00Z')],
    policy: { last: -1 },
    keep: [
      ['a', ['last snapshot']],
      ['b', ['last snapshot']],
      ['c', ['last snapshot']],
    ],
    remove: [],
  },
  {
    name: 'keep-within 30d: relative to the newest snapshot (not now), strictly newer than the cutoff; future snapshots ignored for "newest"',
    snaps: [
      snap('x', '2099-01-01T00:00:00Z'),
      snap('a', '2024-03-31T12:00:00Z'),
      snap('b', '2024-03-15T00:00:00Z'),
      snap('c', '2024-03-01T13:00:00Z'),
      snap('d', '2024-03-01T12:00:00Z'),
      snap('e', '2024-02-01T00:00:00Z'),
    ],
    policy: { within: '30d' },
    keep: [
      ['x', ['within 30d']],
      ['a', ['within 30d']],
      ['b', ['within 30d']],
      ['c', ['within 30d']],
    ],
    remove: ['d', 'e'],
  },
  {
    name: 'keep-within 1m: calendar months like Go AddDate (March 31 minus a month is March 2)',
    snaps: [snap('a', '2024-03-31T12:00:00Z'), snap('b', '2024-03-02T13:00:00Z'), snap('c', '2024-03-01T12:00:00Z')],
    policy: { within: '1m' },
    keep: [
      ['a', ['within 1m']],
      ['b', ['within 1m']],
    ],
    remove: ['c'],
  },
  {
    name: 'keep-within 1y2d3h combined units',
    snaps: [snap('a', '2024-03-10T12:00:00Z'), snap('b', '2023-03-08T09:00:01Z'), snap('c', '2023-03-08T09:00:00Z')],
    policy: { within: '1y2d3h' },
    keep: [
      ['a', ['within 1y2d3h']],
      ['b', ['within 1y2d3h']],
    ],
    remove: ['c'],
  },
  {
    name: 'keep-tag: tagged snapshots kept whatever their age; tag lists need every tag',
    snaps: [
      snap('a', '2024-01-05T00:00:00Z'),
      snap('b', '2024-01-04T00:00:00Z', { tags: ['keep'] }),
      snap('c', '2024-01-03T00:00:00Z', { tags: ['x'] }),
      snap('d', '2020-01-01T00:00:00Z', { tags: ['x', 'y'] }),
    ],
    policy: { last: 1, tags: ['keep', 'x,y'] },
    keep: [
      ['a', ['last snapshot']],
      ['b', ['has tag keep']],
      ['d', ['has tag x,y']],
    ],
    remove: ['c'],
  },
  {
    name: 'daily buckets are local time (TZ=America/New_York)',
    tz: 'America/New_York',
    snaps: [
      snap('a', '2024-01-02T03:00:00Z'), // Jan 1, 22:00 local
      snap('b', '2024-01-02T01:00:00Z'), // Jan 1, 20:00 local
      snap('c', '2024-01-01T12:00:00Z'), // Jan 1, 07:00 local
      snap('d', '2024-01-01T10:00:00Z'), // Jan 1, 05:00 local
    ],
    policy: { daily: 2 },
    keep: [
      ['a', ['daily snapshot']],
      ['d', ['oldest daily snapshot']],
    ],
    remove: ['b', 'c'],
  },
  {
    name: 'the same snapshots in UTC fall on two days',
    snaps: [snap('a', '2024-01-02T03:00:00Z'), snap('b', '2024-01-02T01:00:00Z'), snap('c', '2024-01-01T12:00:00Z'), snap('d', '2024-01-01T10:00:00Z')],
    policy: { daily: 2 },
    keep: [
      ['a', ['daily snapshot']],
      ['c', ['daily snapshot']],
    ],
    remove: ['b', 'd'],
  },
];

describe('retention policy table', () => {
  for (const c of cases) {
    it(c.name, () => {
      const tz = process.env['TZ'];
      if (c.tz !== undefined) process.env['TZ'] = c.tz;
      try {
        const r = applyPolicy(c.snaps, c.policy, { now: NOW, ...c.opts });
        assert.equal(r.groups.length, 1);
        const g = r.groups[0]!;
        assert.deepEqual(
          g.keep.map((k) => [k.snapshot.id, k.reasons]),
          c.keep,
        );
        assert.deepEqual(
          g.remove.map((s) => s.id),
          c.remove,
        );
      } finally {
        process.env['TZ'] = tz;
      }
    });
  }
});

describe('retention grouping', () => {
  const snaps = [
    snap('h1p-new', '2024-01-05T00:00:00Z', { host: 'h1', paths: ['/a', '/b'] }),
    snap('h1p-old', '2024-01-04T00:00:00Z', { host: 'h1', paths: ['/b', '/a'] }),
    snap('h2p-new', '2024-01-03T00:00:00Z', { host: 'h2', paths: ['/a', '/b'] }),
    snap('h2p-old', '2024-01-02T00:00:00Z', { host: 'h2', paths: ['/a', '/b'], tags: ['t'] }),
    snap('h1q', '2024-01-01T00:00:00Z', { host: 'h1', paths: ['/q'] }),
  ];

  it('groups by host and paths by default (path order does not matter); the policy applies per group', () => {
    const r = applyPolicy(snaps, { last: 1 }, { now: NOW });
    const view = r.groups.map((g) => ({ key: g.key, keep: g.keep.map((k) => k.snapshot.id), remove: g.remove.map((s) => s.id) }));
    assert.deepEqual(view, [
      { key: 'host=h1 paths=[/a /b]', keep: ['h1p-new'], remove: ['h1p-old'] },
      { key: 'host=h1 paths=[/q]', keep: ['h1q'], remove: [] },
      { key: 'host=h2 paths=[/a /b]', keep: ['h2p-new'], remove: ['h2p-old'] },
    ]);
  });

  it('--group-by host puts all paths of a host together; tags can split groups', () => {
    const byHost = applyPolicy(snaps, { last: 1 }, { now: NOW, groupBy: ['host'] });
    assert.deepEqual(
      byHost.groups.map((g) => [g.key, g.keep.map((k) => k.snapshot.id), g.remove.map((s) => s.id)]),
      [
        ['host=h1', ['h1p-new'], ['h1p-old', 'h1q']],
        ['host=h2', ['h2p-new'], ['h2p-old']],
      ],
    );
    const byTags = applyPolicy(snaps, { last: 1 }, { now: NOW, groupBy: ['host', 'tags'] });
    assert.deepEqual(
      byTags.groups.map((g) => [g.key, g.keep.map((k) => k.snapshot.id)]),
      [
        ['host=h1 tags=[]', ['h1p-new']],
        ['host=h2 tags=[]', ['h2p-new']],
        ['host=h2 tags=[t]', ['h2p-old']],
      ],
    );
  });
});

describe('retention helpers', () => {
  it('parseDuration reads restic durations and rejects anything else', () => {
    assert.deepEqual(parseDuration('2y5m7d3h'), { years: 2, months: 5, days: 7, hours: 3 });
    assert.deepEqual(parseDuration('30d'), { years: 0, months: 0, days: 30, hours: 0 });
    for (const bad of ['', '30', 'd30', '1w', '3h 2d', '-1d']) assert.throws(() => parseDuration(bad), /invalid duration/, bad);
  });

  it('ISO weeks at year ends', () => {
    assert.deepEqual(isoWeek(new Date(2021, 0, 3)), { year: 2020, week: 53 });
    assert.deepEqual(isoWeek(new Date(2021, 0, 4)), { year: 2021, week: 1 });
    assert.deepEqual(isoWeek(new Date(2019, 11, 30)), { year: 2020, week: 1 });
    assert.deepEqual(isoWeek(new Date(2019, 11, 29)), { year: 2019, week: 52 });
    assert.deepEqual(isoWeek(new Date(2026, 0, 1)), { year: 2026, week: 1 });
    assert.deepEqual(isoWeek(new Date(2027, 0, 1)), { year: 2026, week: 53 });
  });

  it('empty policies are recognised; the GFS default is daily 30, weekly 12, monthly 12, yearly 7', () => {
    assert.equal(policyIsEmpty({}), true);
    assert.equal(policyIsEmpty({ daily: 0, within: '0d', tags: [] }), true);
    assert.equal(policyIsEmpty({ last: -1 }), false);
    assert.equal(policyIsEmpty({ tags: ['x'] }), false);
    assert.deepEqual({ ...DEFAULT_GFS_POLICY }, { daily: 30, weekly: 12, monthly: 12, yearly: 7 });
    assert.throws(() => applyPolicy([snap('a', '2024-01-01T00:00:00Z')], { daily: -2 }), /keep-daily/);
  });
});
