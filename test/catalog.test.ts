// The run catalog on both dialects: the same statements against an SQLite file and a PostgreSQL
// database on the local server.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { Catalog } from '../src/catalog/catalog.js';
import { rmrf, tmpdir } from './helpers.js';

const PGDB = `bw_catalog_${randomBytes(4).toString('hex')}`;
const dir = tmpdir('bulwark-catalog-');
function psql(sql: string): void {
  const r = spawnSync('psql', ['-X', '-q', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-c', sql], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}

after(() => {
  psql(`DROP DATABASE IF EXISTS ${PGDB}`);
  rmrf(dir);
});

for (const dialect of ['sqlite', 'postgresql'] as const) {
  describe(`catalog on ${dialect}`, () => {
    test('runs, outcomes, last success, failure counts, interrupted runs, scheduler state', async () => {
      let url: string;
      if (dialect === 'sqlite') url = `sqlite:${path.join(dir, 'sub', 'catalog.db')}`;
      else {
        psql(`CREATE DATABASE ${PGDB}`);
        url = `postgresql://postgres@127.0.0.1:5432/${PGDB}`;
      }
      const c = await Catalog.open(url);
      const base = { job: 'pg', source: 'pg-main', repository: 'local', trigger: 'schedule', attempt: 1 };
      const a = await c.startRun({ ...base, startedAt: 1000, scheduledFor: 1000 });
      await c.endRun(a, { status: 'success', endedAt: 2000, bytesRead: 5e9, bytesAdded: 123, bytesStored: 45, files: 3, snapshotId: 'abc', warnings: ['w1'], details: { tags: ['x'] } });
      const b = await c.startRun({ ...base, startedAt: 3000 });
      await c.endRun(b, { status: 'failed', endedAt: 3500, errorCode: 'DB_CONNECT', errorMessage: 'refused' });
      const d = await c.startRun({ ...base, trigger: 'retry', attempt: 2, startedAt: 4000 });
      await c.endRun(d, { status: 'failed', endedAt: 4100, errorCode: 'DB_CONNECT', errorMessage: 'refused' });
      // A run left behind by a process that is gone.
      const e = await c.startRun({ ...base, repository: 'offsite', startedAt: 5000 });
      const runs = await c.runs({ job: 'pg' });
      assert.deepEqual(runs.map((r) => r.id), [e, d, b, a]);
      const first = runs.find((r) => r.id === a)!;
      assert.equal(first.bytesRead, 5e9);
      assert.deepEqual(first.warnings, ['w1']);
      assert.deepEqual(first.details, { tags: ['x'] });
      assert.equal(first.snapshotId, 'abc');
      assert.deepEqual([...(await c.lastSuccess('pg')).entries()], [['local', 2000]]);
      assert.deepEqual(await c.failureCounts('pg', 3200), { consecutive: 2, recent: 1 });
      // Our own pid counts as alive only for other processes: here every 'running' row is ours, so
      // pretend the process died by reporting nothing alive.
      assert.equal(await c.failInterrupted(9000, () => false), 1);
      const gone = await c.run(e);
      assert.equal(gone?.status, 'interrupted');
      assert.equal(gone?.errorCode, 'INTERRUPTED');
      assert.equal(await c.lastScheduled('pg'), undefined);
      await c.recordScheduled('pg', 7000);
      await c.recordScheduled('pg', 8000);
      assert.equal(await c.lastScheduled('pg'), 8000);
      assert.deepEqual([...(await c.allLastScheduled()).entries()], [['pg', 8000]]);
      assert.equal((await c.runs({ status: 'failed' })).length, 2);
      await c.close();
      // Reopening keeps everything (the schema statements are idempotent).
      const again = await Catalog.open(url);
      assert.equal((await again.runs()).length, 4);
      await again.close();
    });
  });
}
