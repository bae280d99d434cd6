// A real `bulwark daemon` process: jobs every two seconds, a dependent job, retention, reports,
// `status --json` and `runs --json` read back, SIGHUP reloads (a bad config is refused and the
// running one kept), SIGTERM stops cleanly, and SIGKILL mid-run leaves no snapshot and an
// interrupted run that the next start records as failed.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, rmrf, runOk, tmpdir } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function startDaemon(config: string): Proc {
  const env: NodeJS.ProcessEnv = { ...process.env, BULWARK_KDF_N: '1024' };
  for (const k of Object.keys(env)) if (k.startsWith('NODE_TEST')) delete env[k];
  const child = spawn(process.execPath, [CLI, 'daemon', '--config', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, out: () => out, exited };
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(200);
  }
  assert.fail(`timed out waiting for ${what}`);
}

interface RunRow {
  id: string;
  job: string;
  status: string;
  snapshotId: string | null;
  trigger: string;
  errorCode: string | null;
}

describe('bulwark daemon (real process)', () => {
  let dir: string;
  let config: string;
  const env = (): Record<string, string> => ({ BULWARK_CONFIG: config });
  const repoEnv = (): Record<string, string> => ({ BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'daemon-test-pw' });
  const runs = async (): Promise<RunRow[]> => JSON.parse((await runOk(['runs', '--json', '--limit', '500'], env())).stdout) as RunRow[];
  const procs: Proc[] = [];

  const writeConfig = (jobs: string, extra = ''): void => {
    fs.writeFileSync(
      config,
      `version: 1
repositories:
  local: { url: ${JSON.stringify(path.join(dir, 'repo'))}, password: daemon-test-pw }
sources:
  files: { type: files, paths: [${JSON.stringify(path.join(dir, 'src'))}] }
  slow: { type: command, command: "head -c 100000 /dev/urandom; sleep 30", filename: slow.bin }
  missing: { type: files, paths: [${JSON.stringify(path.join(dir, 'no-such-dir'))}] }
jobs:
${jobs}
daemon: { catalog: ${JSON.stringify(`sqlite:${path.join(dir, 'catalog.db')}`)}, reports: ${JSON.stringify(path.join(dir, 'reports'))}, prune: false, stop-grace: 3s }
${extra}`,
    );
  };

  before(async () => {
    dir = tmpdir('bulwark-daemon-');
    config = path.join(dir, 'bulwark.yaml');
    fs.mkdirSync(path.join(dir, 'src'));
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(dir, 'src', `f${i}.txt`), `file ${i}\n`.repeat(100 + i));
    await runOk(['init'], repoEnv());
  });

  after(() => {
    for (const p of procs) p.child.kill('SIGKILL');
    rmrf(dir);
  });

  test('runs jobs on schedule, dependent jobs after them, retention; status and runs read back; SIGHUP; SIGTERM', async () => {
    writeConfig(`  files: { source: files, repository: local, schedule: "*/2 * * * * *", retention: { keep-last: 2 } }
  after: { source: files, repository: local, depends-on: [files], retention: false, tags: [dependent] }
  gone: { source: missing, repository: local, schedule: "*/2 * * * * *", retries: { max: 0 } }`);
    const d = startDaemon(config);
    procs.push(d);
    await waitFor('three successful runs of files', async () => (await runs()).filter((r) => r.job === 'files' && r.status === 'success').length >= 3);
    await waitFor('a dependent run', async () => (await runs()).some((r) => r.job === 'after' && r.status === 'success' && r.trigger === 'dependency'));
    // A job whose source vanished fails with a clear error; the others run on.
    await waitFor('the failing job', async () => (await runs()).some((r) => r.job === 'gone' && r.status === 'failed'));
    const gone = (await runs()).find((r) => r.job === 'gone' && r.status === 'failed')!;
    assert.equal(gone.errorCode, 'PATH_NOT_FOUND');

    const status = JSON.parse((await runOk(['status', '--json'], env())).stdout) as Array<{ job: string; lastSuccess: string | null; rpoCompliant: boolean; nextRun: string | null; consecutiveFailures: number; ageMs: number }>;
    const files = status.find((s) => s.job === 'files')!;
    assert.ok(files.lastSuccess !== null);
    assert.equal(files.rpoCompliant, true);
    assert.ok(files.ageMs < 30_000, `age ${files.ageMs}`);
    assert.ok(files.nextRun !== null && Date.parse(files.nextRun) - Date.now() <= 2500, `next run ${files.nextRun}`);
    assert.equal(files.consecutiveFailures, 0);
    assert.equal(status.find((s) => s.job === 'after')?.nextRun, null);

    // Retention after each backup: at most two snapshots of the job remain (plus one in flight).
    const snaps = JSON.parse((await runOk(['snapshots', '--json', '--tag', 'job:files'], repoEnv())).stdout) as unknown[];
    assert.ok(snaps.length >= 1 && snaps.length <= 3, `${snaps.length} snapshots of job files`);
    // A report per run, in JSON and text.
    const reports = fs.readdirSync(path.join(dir, 'reports', 'files'));
    assert.ok(reports.some((f) => f.endsWith('.json')) && reports.some((f) => f.endsWith('.txt')));
    const rep = JSON.parse(fs.readFileSync(path.join(dir, 'reports', 'files', reports.find((f) => f.endsWith('.json'))!), 'utf8')) as { status: string; job: string; snapshotId: string };
    assert.equal(rep.job, 'files');

    // SIGHUP with a bad config: refused, the daemon carries on.
    fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('jobs:', 'jobs:\n  broken: { source: nowhere, repository: local }'));
    d.child.kill('SIGHUP');
    await waitFor('the refused reload', () => d.out().includes('reload refused'));
    // SIGHUP with a good config that adds a job: it starts running.
    writeConfig(`  files: { source: files, repository: local, schedule: "*/2 * * * * *", retention: { keep-last: 2 } }
  extra: { source: files, repository: local, schedule: "*/2 * * * * *", retention: false }`);
    d.child.kill('SIGHUP');
    await waitFor('the added job to run', async () => (await runs()).some((r) => r.job === 'extra' && r.status === 'success'));

    d.child.kill('SIGTERM');
    assert.equal(await d.exited, 0);
    assert.match(d.out(), /daemon stopped|still in progress/);
    // Every run ended one way or another; the repository is intact.
    assert.ok((await runs()).every((r) => r.status !== 'running'));
    await runOk(['check'], repoEnv());
  });

  test('SIGKILL mid-run: no snapshot from that run; the next start records it as interrupted', async () => {
    writeConfig(`  slow: { source: slow, repository: local, schedule: "*/2 * * * * *", retention: false, catch-up: false }`);
    const before = (JSON.parse((await runOk(['snapshots', '--json'], repoEnv())).stdout) as unknown[]).length;
    const d = startDaemon(config);
    procs.push(d);
    let victim: RunRow | undefined;
    await waitFor('a slow run in progress', async () => {
      victim = (await runs()).find((r) => r.job === 'slow' && r.status === 'running');
      return victim !== undefined;
    });
    await sleep(500);
    d.child.kill('SIGKILL');
    await d.exited;
    assert.equal((JSON.parse((await runOk(['snapshots', '--json'], repoEnv())).stdout) as unknown[]).length, before, 'the killed run saved a snapshot');
    // Still 'running' in the catalog until a daemon starts again.
    assert.equal((await runs()).find((r) => r.id === victim!.id)?.status, 'running');
    writeConfig(`  slow: { source: slow, repository: local, schedule: "0 0 1 1 *", retention: false, catch-up: false }`);
    const again = startDaemon(config);
    procs.push(again);
    await waitFor('the restarted daemon', () => again.out().includes('daemon started'));
    const row = (await runs()).find((r) => r.id === victim!.id)!;
    assert.equal(row.status, 'interrupted');
    assert.equal(row.errorCode, 'INTERRUPTED');
    again.child.kill('SIGTERM');
    assert.equal(await again.exited, 0);
    await runOk(['check'], repoEnv());
  });
});
