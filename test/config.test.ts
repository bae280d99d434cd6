// The config file: a full valid config with every kind of source, defaults filled in, ${ENV}
// interpolation, and invalid files refused with every problem named (field, bad value, suggestion).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_TIERS, parseConfig, redactConfig } from '../src/config/config.js';
import { parseDurationMs } from '../src/config/durations.js';
import { isBulwarkError } from '../src/errors.js';
import { jsonError, runCli, runOk, tmpdir } from './helpers.js';

const GOOD = `
version: 1
repositories:
  local: { url: ./repo, password: "\${REPO_PW}" }
  offsite: { url: /mnt/offsite, password-file: ./pw }
sources:
  pg: { type: postgresql, url: "postgresql://backup:\${PG_PW}@db:5432/app", databases: [app], exclude-tables: [audit.log] }
  etc: { type: files, paths: [/etc, ./conf], exclude: ["*.bak"] }
  dump: { type: command, command: "echo hi", filename: hi.txt }
  cache: { type: redis, url: "redis://:\${REDIS_PW:-none}@cache:6379" }
defaults:
  timezone: Europe/Berlin
jobs:
  pg: { source: pg, repositories: [local, offsite], schedule: "0 */6 * * *", tier: critical, retention: { keep-within: 7d } }
  etc: { source: etc, repository: local, depends-on: [pg], hooks: { before: "sync", on-failure: { command: [logger, failed], timeout: 10s } } }
  dump: { source: dump, repository: local, schedule: "*/10 * * * * *", retention: false, retries: { max: 5, delay: 1s, max-delay: 1m } }
  cache: { source: cache, repository: local, tier: archive, catch-up: false }
tiers:
  critical: { rpo: 15m }
daemon: { concurrency: 3, lock-wait: 10m }
`;

describe('config', () => {
  test('a complete config: defaults, interpolation, tiers, hooks, resolved paths', () => {
    const cfg = parseConfig(GOOD, '/etc/bulwark/bulwark.yaml', { REPO_PW: 'secret-1', PG_PW: 'pg-secret' });
    assert.equal(cfg.repositories['local']?.url, '/etc/bulwark/repo');
    assert.equal(cfg.repositories['local']?.password, 'secret-1');
    assert.equal(cfg.repositories['offsite']?.passwordFile, '/etc/bulwark/pw');
    const pg = cfg.sources['pg'];
    assert.ok(pg?.type === 'postgresql' && pg.url === 'postgresql://backup:pg-secret@db:5432/app');
    assert.deepEqual(pg.excludeTables, ['audit.log']);
    const etc = cfg.sources['etc'];
    assert.ok(etc?.type === 'files');
    assert.deepEqual(etc.paths, ['/etc', '/etc/bulwark/conf']);
    assert.deepEqual(cfg.sources['dump'], { name: 'dump', type: 'command', command: ['sh', '-c', 'echo hi'], filename: 'hi.txt' });
    const cache = cfg.sources['cache'];
    assert.ok(cache?.type === 'redis' && cache.url === 'redis://:none@cache:6379');
    const j = cfg.jobs['pg']!;
    assert.equal(j.rpoMs, 15 * 60_000, 'tier override');
    assert.equal(j.rtoMs, DEFAULT_TIERS.critical.rtoMs);
    assert.equal(j.timezone, 'Europe/Berlin');
    assert.deepEqual(j.retention, { within: '7d' });
    assert.deepEqual(cfg.jobs['etc']?.retention, { daily: 30, weekly: 12, monthly: 12, yearly: 7 }, 'GFS by default');
    assert.equal(cfg.jobs['etc']?.schedule, undefined, 'runs after its dependency');
    assert.equal(cfg.jobs['etc']?.tier, 'normal');
    assert.deepEqual(cfg.jobs['etc']?.hooks.before, [{ command: ['sh', '-c', 'sync'], timeoutMs: 300_000 }]);
    assert.deepEqual(cfg.jobs['etc']?.hooks.onFailure, [{ command: ['logger', 'failed'], timeoutMs: 10_000 }]);
    assert.equal(cfg.jobs['dump']?.retention, null);
    assert.deepEqual(cfg.jobs['dump']?.retries, { max: 5, initialDelayMs: 1000, maxDelayMs: 60_000 });
    assert.equal(cfg.jobs['cache']?.schedule, DEFAULT_TIERS.archive.schedule);
    assert.equal(cfg.jobs['cache']?.catchUp, false);
    assert.equal(cfg.daemon.concurrency, 3);
    assert.equal(cfg.daemon.lockWaitMs, 600_000);
    assert.equal(cfg.daemon.catalog, 'sqlite:/etc/bulwark/.bulwark/catalog.db');
    assert.ok(Object.isFrozen(cfg.jobs['pg']), 'config is frozen');
    const shown = JSON.stringify(redactConfig(cfg));
    assert.ok(!shown.includes('secret-1') && !shown.includes('pg-secret'), shown);
    assert.match(shown, /backup:\*\*\*@db/);
  });

  const bad: Array<[string, string, RegExp[]]> = [
    ['unknown keys with suggestions', 'repositories: { a: { url: /r, pasword: x } }\nsources: {}\njobs: {}\nschedul: 1\n', [/repositories\.a\.pasword: unknown key \(did you mean "password"\?\)/, /^ {2}schedul: unknown key/m]],
    ['bad values named with the value', 'repositories: { a: { url: /r, password: x } }\nsources: { s: { type: file, paths: [/] } }\njobs: { j: { source: s, repository: a, tier: crit, retries: { max: -1 } } }\n', [/sources\.s\.type: must be one of .* got "file" \(did you mean "files"\?\)/, /jobs\.j\.tier: must be one of critical, important, normal, archive, got "crit"/, /jobs\.j\.retries\.max: must be a whole number from 0 to 100, got -1/]],
    ['dangling references and cycles', 'repositories: { a: { url: /r, password: x } }\nsources: { s: { type: files, paths: [/] } }\njobs:\n  j: { source: t, repository: b, depends-on: [k] }\n  k: { source: s, repository: a, depends-on: [j] }\n', [/jobs\.j\.source: names no source: "t"/, /jobs\.j\.repositories: names no repository: "b"/, /dependency cycle: j -> k -> j/]],
    ['schedules, time zones, durations, env', 'repositories: { a: { url: /r, password: "${NOPE_NOT_SET}" } }\nsources: { s: { type: files, paths: [/] } }\njobs: { j: { source: s, repository: a, schedule: "61 * * * *", timezone: Mars/Olympus } }\ntiers: { critical: { rpo: soon } }\n', [/NOPE_NOT_SET, which is not set/, /jobs\.j\.schedule: is not a valid cron schedule/, /jobs\.j\.timezone: is not a known time zone: "Mars\/Olympus"/, /tiers\.critical\.rpo: must be a duration/]],
    ['keys that do not fit the source type; missing password', 'repositories: { a: { url: /r } }\nsources: { s: { type: redis, url: "redis://x", paths: [/] } }\njobs: { j: { source: s, repository: a } }\n', [/sources\.s\.paths: does not apply to a source of type redis/, /repositories\.a: needs password/]],
  ];
  for (const [name, text, expect] of bad) {
    test(`refused: ${name}`, () => {
      try {
        parseConfig(text, 'bad.yaml', {});
        assert.fail('accepted an invalid config');
      } catch (err) {
        assert.ok(isBulwarkError(err, 'CONFIG_INVALID'), String(err));
        for (const re of expect) assert.match(err.message, re);
      }
    });
  }

  test('durations', () => {
    assert.equal(parseDurationMs('1h30m'), 5_400_000);
    assert.equal(parseDurationMs('2d'), 172_800_000);
    assert.throws(() => parseDurationMs('5 minutes'));
  });

  test('CLI: config validate lists every problem; show redacts secrets', async () => {
    const dir = tmpdir('bulwark-config-');
    const file = path.join(dir, 'bulwark.yaml');
    fs.writeFileSync(file, GOOD);
    const ok = await runOk(['config', 'validate', '--config', file, '--json'], { REPO_PW: 'secret-1', PG_PW: 'pg-secret' });
    assert.deepEqual((JSON.parse(ok.stdout) as { jobs: string[] }).jobs, ['pg', 'etc', 'dump', 'cache']);
    const shown = await runOk(['config', 'show', '--json'], { BULWARK_CONFIG: file, REPO_PW: 'secret-1', PG_PW: 'pg-secret' });
    assert.ok(!shown.stdout.includes('secret-1') && !shown.stdout.includes('pg-secret'));
    const missing = await runCli(['config', 'validate', '--config', file, '--json'], {});
    assert.equal(missing.code, 1);
    const e = jsonError(missing);
    assert.equal(e.code, 'CONFIG_INVALID');
    assert.match(e.message, /REPO_PW, which is not set/);
    assert.match(e.message, /PG_PW, which is not set/);
    const example = await runOk(['config', 'validate', '--config', path.join(process.cwd(), 'examples', 'aquastream.yaml')], { BULWARK_PASSWORD: 'pw-local-x1', BULWARK_ARCHIVE_PASSWORD: 'pw-archive-x2', PG_PASSWORD: 'pw-pg-x3' });
    assert.match(example.stdout, /postgres-6h: postgres -> local, schedule "0 \*\/6 \* \* \*" \(Europe\/Moscow\), tier critical/);
  });

  test('secrets from the environment never reach snapshots, reports, the catalog or config errors', async () => {
    const dir = tmpdir('bulwark-secret-cfg-');
    const file = path.join(dir, 'bulwark.yaml');
    const token = 'tok-ab/cd@ef-9f8e7d';
    fs.writeFileSync(
      file,
      `repositories:
  r: { url: ./repo, password: "\${REPO_PASSWORD}" }
sources:
  c: { type: command, command: "echo \${API_TOKEN} | wc -c", filename: n.txt }
jobs:
  c: { source: c, repository: r, retention: false, hooks: { after: "false \${API_TOKEN}" } }
`,
    );
    const env = { REPO_PASSWORD: 'repo-secret-pw', API_TOKEN: token };
    await runOk(['init'], { BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'repo-secret-pw' });
    const run = await runOk(['run', 'c', '--config', file, '--json'], env);
    assert.ok(!run.stdout.includes(token));
    const snaps = await runOk(['snapshots', '--json'], { BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'repo-secret-pw' });
    assert.ok(!snaps.stdout.includes(token), 'token stored in the snapshot');
    const runs = await runOk(['runs', '--config', file, '--json'], env);
    assert.ok(!runs.stdout.includes(token), 'token in the catalog');
    const rows = JSON.parse(runs.stdout) as Array<{ status: string; warnings: string[] }>;
    assert.equal(rows[0]?.status, 'success', 'an after-hook failure is a warning on a saved snapshot');
    assert.match(rows[0]?.warnings[0] ?? '', /after hook/);
    const reports = fs.readdirSync(path.join(dir, '.bulwark', 'reports', 'c'));
    for (const f of reports) assert.ok(!fs.readFileSync(path.join(dir, '.bulwark', 'reports', 'c', f), 'utf8').includes(token), `token in report ${f}`);
    try {
      parseConfig('repositories: { r: { url: /r, password: x } }\nsources: { s: { type: files, paths: [/], schema-only: "${DB_PASSWORD}" } }\njobs: {}\n', 'x.yaml', { DB_PASSWORD: 'hunter2-secret' });
      assert.fail('accepted');
    } catch (err) {
      assert.ok(isBulwarkError(err, 'CONFIG_INVALID'));
      assert.ok(!err.message.includes('hunter2-secret'), err.message);
    }
  });

  test('forget --policy-from-config applies each job\'s policy to that job\'s snapshots', async () => {
    const dir = tmpdir('bulwark-pfc-');
    const file = path.join(dir, 'bulwark.yaml');
    fs.mkdirSync(path.join(dir, 'src'));
    fs.writeFileSync(path.join(dir, 'src', 'f'), 'x');
    fs.writeFileSync(
      file,
      `repositories: { r: { url: ./repo, password: pfc-password } }
sources: { s: { type: files, paths: [./src] } }
jobs:
  a: { source: s, repository: r, retention: { keep-last: 1 } }
  b: { source: s, repository: r, retention: false }
  c: { source: s, repository: r }
`,
    );
    const env = { BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'pfc-password' };
    await runOk(['init'], env);
    for (const tag of ['job:a', 'job:a', 'job:a', 'job:b', 'job:b', 'job:c']) await runOk(['backup', path.join(dir, 'src'), '--tag', tag], env);
    const dry = JSON.parse((await runOk(['forget', '--policy-from-config', '--config', file, '--dry-run', '--json'], env)).stdout) as { jobs: Array<{ job: string; removed: string[]; kept: number }> };
    assert.deepEqual(dry.jobs.map((j) => [j.job, j.removed.length, j.kept]), [['a', 2, 1], ['c', 0, 1]]);
    assert.equal((JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[]).length, 6);
    await runOk(['forget', '--policy-from-config', '--config', file, '--prune'], env);
    const left = JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as Array<{ tags: string[] }>;
    assert.deepEqual(left.map((x) => x.tags[0]).sort(), ['job:a', 'job:b', 'job:b', 'job:c']);
    assert.equal(jsonError(await runCli(['forget', '--policy-from-config', '--keep-last', '1', '--config', file, '--json'], env)).code, 'USAGE');
    await runOk(['check'], env);
  });
});
