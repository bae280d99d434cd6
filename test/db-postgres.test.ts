// PostgreSQL backups against the real server on 127.0.0.1:5432 (and a throwaway cluster with
// password authentication): rich data in, every table/large object/sequence compared after restore,
// each restore mode, failing and killed dumps, and the errors users see.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jsonError, rmrf, runCli, runOk, tmpdir } from './helpers.js';
import { startCluster } from './pg-cluster.js';

const PG = 'postgresql://postgres@127.0.0.1:5432';
const RUN = randomBytes(4).toString('hex');
const SRC = `bw_src_${RUN}`;
const ROLE = `bw_owner_${RUN}`;
const created: string[] = [];

function psql(sql: string, db = 'postgres'): string {
  const r = spawnSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-U', 'postgres', '-d', db], { input: sql, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
  return r.stdout.trim();
}

function dbName(tag: string): string {
  const n = `bw_${tag}_${RUN}`;
  created.push(n);
  return n;
}

const SETUP = `
CREATE SCHEMA app; CREATE SCHEMA audit;
CREATE TABLE app.customers (id serial PRIMARY KEY, name text NOT NULL, tags text[], profile jsonb, avatar bytea, score numeric(10,2), created timestamptz DEFAULT '2026-01-01');
INSERT INTO app.customers (name, tags, profile, avatar, score)
  SELECT 'cust ' || g || ' héllo ✓ 日本', ARRAY['t' || g % 5, 'x'], jsonb_build_object('n', g, 'nested', jsonb_build_object('a', g * 2, 'arr', jsonb_build_array(g, 'z'))),
         decode(md5(g::text) || md5((g * 7)::text), 'hex'), g / 3.0
  FROM generate_series(1, 5000) g;
CREATE TABLE audit.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer int REFERENCES app.customers(id), payload jsonb, at timestamptz);
INSERT INTO audit.events (customer, payload, at) SELECT 1 + g % 5000, jsonb_build_object('kind', 'k' || g % 7, 'v', repeat('p', g % 50)), '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 200000) g;
CREATE SEQUENCE app.invoice_seq START 1000; SELECT setval('app.invoice_seq', 4242);
CREATE VIEW app.even_customers AS SELECT id, name FROM app.customers WHERE id % 2 = 0;
CREATE FUNCTION app.double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
CREATE TABLE app.owned (k text PRIMARY KEY, v int[]); INSERT INTO app.owned VALUES ('a', '{1,2}'), ('b', '{}');
ALTER TABLE app.owned OWNER TO ${ROLE};
SELECT lo_from_bytea(0, decode(repeat('0123456789abcdef', 20000), 'hex'));
SELECT lo_from_bytea(0, convert_to('a small large object', 'UTF8'));
`;

/** Per-table content checksums plus large objects, sequence, view, function and owner facts. */
function fingerprint(db: string): Record<string, string> {
  const tables = psql(`SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_schema IN ('app', 'audit') AND table_type = 'BASE TABLE' ORDER BY 1`, db)
    .split('\n')
    .filter((t) => t !== '');
  const out: Record<string, string> = {};
  for (const t of tables) out[t] = psql(`SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM ${t} x`, db);
  out['largeobjects'] = psql(`SELECT count(*) || ':' || md5(coalesce(string_agg(md5(lo_get(oid)), ',' ORDER BY md5(lo_get(oid))), '')) FROM pg_largeobject_metadata`, db);
  out['sequence'] = psql(`SELECT last_value FROM app.invoice_seq`, db);
  out['view'] = psql(`SELECT count(*) FROM app.even_customers`, db);
  out['function'] = psql(`SELECT app.double(21)`, db);
  out['owner'] = psql(`SELECT tableowner FROM pg_tables WHERE schemaname = 'app' AND tablename = 'owned'`, db);
  return out;
}

describe('PostgreSQL backup and restore', () => {
  let dir: string;
  let env: Record<string, string>;
  let expected: Record<string, string>;
  let snap: string;

  before(() => {
    dir = tmpdir('bulwark-pg-');
    env = { BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'pg-test-pw' };
    psql(`CREATE ROLE ${ROLE} LOGIN`);
    psql(`CREATE DATABASE ${SRC}`);
    psql(SETUP, SRC);
    expected = fingerprint(SRC);
    assert.equal(expected['app.customers']?.split(':')[0], '5000');
    assert.equal(expected['largeobjects']?.split(':')[0], '2');
  });

  after(() => {
    for (const d of [SRC, ...created]) psql(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`);
    psql(`DROP ROLE IF EXISTS ${ROLE}`);
    rmrf(dir);
  });

  test('backup one database: snapshot carries engine, version, databases, sizes', async () => {
    await runOk(['init'], env);
    const r = await runOk(['db', 'backup', PG, '--database', SRC, '--json'], env);
    const out = JSON.parse(r.stdout) as { id: string; snapshot: { tags: string[]; paths: string[]; source: { engine: string; serverVersion: string; items: Array<{ file: string; kind: string; database?: string; format: string; size: number }> } } };
    snap = out.id;
    const src = out.snapshot.source;
    assert.equal(src.engine, 'postgresql');
    assert.match(src.serverVersion, /^15\./);
    assert.deepEqual(out.snapshot.tags, ['postgresql', `db:${SRC}`]);
    assert.deepEqual(out.snapshot.paths, [`${PG}`]);
    const dbItem = src.items.find((i) => i.kind === 'database');
    assert.equal(dbItem?.database, SRC);
    assert.equal(dbItem?.format, 'pg_dump-custom');
    assert.ok((dbItem?.size ?? 0) > 1_000_000, `dump size ${dbItem?.size}`);
    assert.ok(src.items.some((i) => i.kind === 'globals' && i.size > 0));
    // db ls shows the same, and the dump is a real custom-format archive pg_restore can list.
    const ls = JSON.parse((await runOk(['db', 'ls', snap, '--json'], env)).stdout) as { engine: string; items: unknown[] };
    assert.equal(ls.engine, 'postgresql');
    assert.equal(ls.items.length, 2);
    const dump = await runOk(['dump', snap, dbItem!.file], env);
    assert.equal(dump.stdoutBuf.length, dbItem!.size);
    const list = spawnSync('pg_restore', ['-l'], { input: dump.stdoutBuf, encoding: 'utf8' });
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /TABLE DATA app customers/);
    assert.match(list.stdout, /BLOBS|LARGE OBJECT/);
  });

  test('restore under another name: every table, large object, sequence, view, function, owner', async () => {
    const dst = dbName('dst');
    await runOk(['db', 'restore', snap, '--to', PG, '--database', SRC, '--as', dst], env);
    assert.deepEqual(fingerprint(dst), expected);
  });

  test('existing database: refused without --clean, replaced with it', async () => {
    const dst = created[0]!;
    const r = await runCli(['db', 'restore', snap, '--to', PG, '--database', SRC, '--as', dst, '--json'], env);
    assert.equal(r.code, 1);
    const e = jsonError(r);
    assert.equal(e.code, 'DB_EXISTS');
    assert.equal(e.subject, dst);
    psql(`DELETE FROM audit.events WHERE id % 2 = 0; UPDATE app.customers SET name = 'changed' WHERE id < 10`, dst);
    assert.notDeepEqual(fingerprint(dst), expected);
    await runOk(['db', 'restore', snap, '--to', PG, '--database', SRC, '--as', dst, '--clean'], env);
    assert.deepEqual(fingerprint(dst), expected);
  });

  test('one table into an existing database', async () => {
    const dst = created[0]!;
    psql(`DROP TABLE audit.events`, dst);
    await runOk(['db', 'restore', snap, '--to', PG, '--database', SRC, '--as', dst, '--table', 'audit.events'], env);
    assert.deepEqual(fingerprint(dst), expected);
  });

  test('schema only, parallel jobs, dry run', async () => {
    const schema = dbName('schema');
    await runOk(['db', 'restore', snap, '--to', PG, '--database', SRC, '--as', schema, '--schema-only'], env);
    assert.equal(psql(`SELECT count(*) FROM app.customers`, schema), '0');
    assert.equal(psql(`SELECT app.double(4)`, schema), '8');

    const par = dbName('par');
    await runOk(['db', 'restore', snap, '--to', PG, '--database', SRC, '--as', par, '--jobs', '2'], env);
    assert.deepEqual(fingerprint(par), expected);

    const dry = dbName('dry');
    const r = await runOk(['db', 'restore', snap, '--to', PG, '--database', SRC, '--as', dry, '--dry-run', '--json'], env);
    const plan = JSON.parse(r.stdout) as { dryRun: boolean; steps: Array<{ action: string; target?: string }> };
    assert.equal(plan.dryRun, true);
    assert.deepEqual(plan.steps.map((s) => s.action), ['create-database', 'pg_restore']);
    assert.equal(psql(`SELECT count(*) FROM pg_database WHERE datname = '${dry}'`), '0');
  });

  test('--exclude-table and --schema-only backups', async () => {
    const r = await runOk(['db', 'backup', PG, '--database', SRC, '--exclude-table', 'audit.events', '--json'], env);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    const dst = dbName('excl');
    await runOk(['db', 'restore', id, '--to', PG, '--database', SRC, '--as', dst], env);
    assert.equal(psql(`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'audit' AND table_name = 'events'`, dst), '0');
    assert.equal(psql(`SELECT count(*) FROM app.customers`, dst), '5000');

    const s = await runOk(['db', 'backup', PG, '--database', SRC, '--schema-only', '--json'], env);
    const sid = (JSON.parse(s.stdout) as { id: string; snapshot: { source: { items: Array<{ kind: string; size: number }> } } });
    assert.ok(sid.snapshot.source.items.find((i) => i.kind === 'database')!.size < 100_000);
  });

  test('a second dump of unchanged data adds almost nothing (deduplicated)', async () => {
    const r = await runOk(['db', 'backup', PG, '--database', SRC, '--json'], env);
    const s = (JSON.parse(r.stdout) as { snapshot: { summary: { dataAdded: number; totalBytesProcessed: number } } }).snapshot.summary;
    assert.ok(s.totalBytesProcessed > 10_000_000, `dump of ${s.totalBytesProcessed} bytes`);
    assert.ok(s.dataAdded < s.totalBytesProcessed / 4, `added ${s.dataAdded} of ${s.totalBytesProcessed}`);
  });

  test('a dump killed halfway leaves no snapshot; secrets stay out of argv', async () => {
    const before = (JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[]).length;
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    const argvLog = path.join(dir, 'argv.log');
    // A pg_dump that records how it was called, streams part of a real dump, then dies by SIGKILL.
    fs.writeFileSync(
      path.join(bin, 'pg_dump'),
      `#!/bin/sh\necho "$@" >> ${argvLog}\necho "PGPASSWORD=\${PGPASSWORD:-unset}" >> ${argvLog}\n/usr/bin/pg_dump "$@" | head -c 300000\nkill -9 $$\n`,
      { mode: 0o755 },
    );
    const r = await runCli(['db', 'backup', `postgresql://postgres:s3cret-${RUN}@127.0.0.1:5432`, '--database', SRC, '--json'], { ...env, PATH: `${bin}:${process.env['PATH']}` });
    assert.equal(r.code, 1);
    const e = jsonError(r);
    assert.equal(e.code, 'DUMP_FAILED');
    assert.match(e.message, /SIGKILL/);
    assert.ok(!r.stderr.includes(`s3cret-${RUN}`), 'password leaked into the error');
    const log = fs.readFileSync(argvLog, 'utf8');
    assert.ok(!log.split('\n')[0]!.includes(`s3cret-${RUN}`), 'password leaked into argv');
    assert.match(log, new RegExp(`PGPASSWORD=s3cret-${RUN}`));
    const snaps = JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[];
    assert.equal(snaps.length, before, 'a failed dump must not produce a snapshot');
    await runOk(['check', '--read-data'], env);
  });

  test('unknown database, unreachable server, missing tool: stable codes', async () => {
    let r = await runCli(['db', 'backup', PG, '--database', `nope_${RUN}`, '--json'], env);
    assert.equal(jsonError(r).code, 'DB_NOT_FOUND');
    assert.equal(jsonError(r).subject, `nope_${RUN}`);
    r = await runCli(['db', 'backup', 'postgresql://postgres@127.0.0.1:1', '--json'], env);
    assert.equal(jsonError(r).code, 'DB_CONNECT');
    r = await runCli(['db', 'backup', PG, '--json'], { ...env, PATH: '/nonexistent' });
    assert.equal(jsonError(r).code, 'TOOL_MISSING');
    r = await runCli(['db', 'backup', 'oracle://x', '--json'], env);
    assert.equal(jsonError(r).code, 'DB_URL_INVALID');
    r = await runCli(['db', 'restore', snap, '--to', 'mysql://root@127.0.0.1', '--json'], env);
    assert.equal(jsonError(r).code, 'USAGE');
  });
});

describe('PostgreSQL with password authentication (own cluster)', () => {
  test('wrong password is DB_AUTH without echoing it; the right one backs up and restores', async () => {
    const pw = `pw-${randomBytes(6).toString('hex')}`;
    const cluster = await startCluster(pw);
    const dir = tmpdir('bulwark-pgauth-');
    const env = { BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'x' };
    try {
      cluster.psql(`CREATE DATABASE shop; `);
      cluster.psql(`CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;`, 'shop');
      await runOk(['init'], env);
      const bad = await runCli(['db', 'backup', `postgresql://postgres:wrong-${pw}@127.0.0.1:${cluster.port}/shop`, '--json'], env);
      assert.equal(bad.code, 1);
      const e = jsonError(bad);
      assert.equal(e.code, 'DB_AUTH');
      assert.ok(!bad.stderr.includes(pw), 'password echoed in the error');
      const good = await runOk(['db', 'backup', `postgresql://postgres:${encodeURIComponent(pw)}@127.0.0.1:${cluster.port}/shop`, '--json'], env);
      const id = (JSON.parse(good.stdout) as { id: string }).id;
      assert.ok(!good.stdout.includes(pw), 'password stored in the snapshot');
      await runOk(['db', 'restore', id, '--to', `postgresql://postgres:${encodeURIComponent(pw)}@127.0.0.1:${cluster.port}`, '--database', 'shop', '--as', 'shop2'], env);
      assert.equal(cluster.psql(`SELECT count(*) || md5(string_agg(v, ',' ORDER BY id)) FROM t`, 'shop2'), cluster.psql(`SELECT count(*) || md5(string_agg(v, ',' ORDER BY id)) FROM t`, 'shop'));
      // The server going away in the middle of a dump fails the run without a snapshot.
      cluster.psql(`CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 20) AS v FROM generate_series(1, 300000) g;`, 'shop');
      const url = `postgresql://postgres:${encodeURIComponent(pw)}@127.0.0.1:${cluster.port}/shop`;
      const killer = setInterval(() => {
        try {
          cluster.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND query ILIKE 'COPY%big%'`);
        } catch {
          // the server is busy; try again
        }
      }, 20);
      const cut = await runCli(['db', 'backup', url, '--json'], env);
      clearInterval(killer);
      assert.equal(cut.code, 1, cut.stdout);
      assert.ok(['DUMP_FAILED', 'DB_CONNECT'].includes(jsonError(cut).code), jsonError(cut).code);
      const snaps = JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[];
      assert.equal(snaps.length, 1);

      // Whole server into a fresh cluster: roles first, then every database with its owner.
      cluster.psql(`DROP TABLE big; CREATE ROLE app_owner LOGIN PASSWORD 'ownerpw'; CREATE DATABASE crm OWNER app_owner;`, 'shop');
      cluster.psql(`CREATE TABLE contacts (id int PRIMARY KEY, email text); INSERT INTO contacts SELECT g, 'u' || g || '@example.org' FROM generate_series(1, 500) g; ALTER TABLE contacts OWNER TO app_owner;`, 'crm');
      cluster.psql(`CREATE TABLE notes (n text); INSERT INTO notes VALUES ('in the postgres db');`, 'postgres');
      const all = await runOk(['db', 'backup', `postgresql://postgres:${encodeURIComponent(pw)}@127.0.0.1:${cluster.port}`, '--json'], env);
      const allId = (JSON.parse(all.stdout) as { id: string }).id;
      const fresh = await startCluster(pw);
      try {
        await runOk(['db', 'restore', allId, '--to', `postgresql://postgres:${encodeURIComponent(pw)}@127.0.0.1:${fresh.port}`], env);
        assert.equal(fresh.psql(`SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_owner'`), 't');
        assert.equal(fresh.psql(`SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'crm'`), 'app_owner');
        assert.equal(fresh.psql(`SELECT count(*) || ':' || pg_get_userbyid(relowner) FROM contacts, pg_class WHERE relname = 'contacts' GROUP BY relowner`, 'crm'), '500:app_owner');
        assert.equal(fresh.psql(`SELECT n FROM notes`, 'postgres'), 'in the postgres db');
        assert.equal(fresh.psql(`SELECT count(*) FROM t`, 'shop'), '1000');
      } finally {
        fresh.stop();
      }
    } finally {
      cluster.stop();
      rmrf(dir);
    }
  });
});

describe('PostgreSQL client tools', () => {
  test('pg_wrapper is bypassed for the newest installed client; PGCLUSTER leaves the choice to it', async () => {
    const { pgTool } = await import('../src/sources/postgres.js');
    const onPath = spawnSync('sh', ['-c', 'readlink -f "$(command -v pg_dump)"'], { encoding: 'utf8' }).stdout.trim();
    const versions = fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)) : [];
    const saved = process.env['PGCLUSTER'];
    try {
      delete process.env['PGCLUSTER'];
      if (path.basename(onPath) === 'pg_wrapper' && versions.length > 0) {
        const newest = versions.sort((a, b) => Number(b) - Number(a))[0]!;
        assert.equal(pgTool('pg_dump'), `/usr/lib/postgresql/${newest}/bin/pg_dump`);
      } else {
        assert.equal(pgTool('pg_dump'), 'pg_dump', 'anything but the wrapper is used as found on PATH');
      }
      process.env['PGCLUSTER'] = '15/main';
      assert.equal(pgTool('pg_dump'), 'pg_dump');
    } finally {
      if (saved === undefined) delete process.env['PGCLUSTER'];
      else process.env['PGCLUSTER'] = saved;
    }
  });
});
