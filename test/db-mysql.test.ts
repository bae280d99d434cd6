// MariaDB backups against the real server on 127.0.0.1:3306: InnoDB tables with utf8mb4 text and
// blobs, triggers, routines and events in; table checksums and definitions compared after a
// restore into another database; credentials in a private options file, never argv.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jsonError, rmrf, runCli, runOk, tmpdir } from './helpers.js';

const RUN = randomBytes(4).toString('hex');
const SRC = `bw_src_${RUN}`;
const USER = `bw_user_${RUN}`;
const PW = `pw-${RUN}-x"y\\z`;
const URL_ROOT = 'mysql://root@127.0.0.1:3306';
const created: string[] = [SRC];

function sql(q: string, db?: string): string {
  const r = spawnSync('mariadb', ['-h', '127.0.0.1', '-u', 'root', '-N', '-B', '--default-character-set=utf8mb4', ...(db !== undefined ? [db] : [])], { input: q, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mariadb: ${r.stderr}`);
  return r.stdout.trim();
}

const SETUP = `
CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) CHARACTER SET utf8mb4 NOT NULL, note TEXT, photo BLOB, balance DECIMAL(12,2), updated DATETIME(6)) ENGINE=InnoDB;
CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer INT, total DECIMAL(12,2), FOREIGN KEY (customer) REFERENCES customers(id)) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100)) ENGINE=InnoDB;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE PROCEDURE add_order(IN c INT, IN t DECIMAL(12,2)) INSERT INTO orders (customer, total) VALUES (c, t);
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;
INSERT INTO customers (name, note, photo, balance, updated)
  SELECT CONCAT('客户 ', seq, ' 😀 héllo'), REPEAT(CONCAT('note ', seq, ' '), seq % 40), UNHEX(CONCAT(MD5(seq), SHA1(seq), '00FF00')), seq / 7, '2026-01-01 12:00:00.123456' + INTERVAL seq SECOND
  FROM seq_1_to_3000;
CALL add_order(1, 10.50); CALL add_order(2, 99.99);
INSERT INTO orders (customer, total) SELECT 1 + seq % 3000, seq / 3 FROM seq_1_to_20000;
`;

function fingerprint(db: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of ['customers', 'orders', 'audit']) {
    out[t] = sql(`SELECT COUNT(*) FROM ${t}; CHECKSUM TABLE ${t};`, db).replace(/\S+\.(\S+)\t/, '$1 ');
  }
  out['triggers'] = sql(`SELECT GROUP_CONCAT(TRIGGER_NAME, ':', ACTION_STATEMENT ORDER BY TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()`, db);
  out['routines'] = sql(`SELECT GROUP_CONCAT(ROUTINE_NAME, ':', ROUTINE_TYPE ORDER BY ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()`, db);
  out['events'] = sql(`SELECT GROUP_CONCAT(EVENT_NAME, ':', STATUS ORDER BY EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()`, db);
  out['function'] = sql(`SELECT twice(21)`, db);
  out['charset'] = sql(`SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()`, db);
  out['emoji'] = sql(`SELECT HEX(name) FROM customers WHERE id = 7`, db);
  return out;
}

describe('MariaDB backup and restore', () => {
  let dir: string;
  let env: Record<string, string>;
  let expected: Record<string, string>;
  let snap: string;

  before(() => {
    dir = tmpdir('bulwark-my-');
    env = { BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'my-test-pw' };
    sql(`CREATE DATABASE ${SRC} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    sql(SETUP, SRC);
    sql(`CREATE USER '${USER}'@'127.0.0.1' IDENTIFIED BY '${PW.replace(/\\/g, '\\\\')}'; GRANT ALL ON \`${SRC}\`.* TO '${USER}'@'127.0.0.1'; GRANT ALL ON \`bw\\_%\`.* TO '${USER}'@'127.0.0.1'; GRANT SELECT ON mysql.proc TO '${USER}'@'127.0.0.1';`);
    expected = fingerprint(SRC);
    assert.match(expected['orders']!, /^20002/);
    assert.match(expected['audit']!, /^20002/);
  });

  after(() => {
    for (const d of created) sql(`DROP DATABASE IF EXISTS \`${d}\``);
    sql(`DROP USER IF EXISTS '${USER}'@'127.0.0.1'`);
    rmrf(dir);
  });

  test('backup with a password (options file, not argv), restore into another database, compare', async () => {
    await runOk(['init'], env);
    const url = `mysql://${USER}:${encodeURIComponent(PW)}@127.0.0.1:3306`;
    const r = await runOk(['db', 'backup', url, '--database', SRC, '--json'], env);
    const out = JSON.parse(r.stdout) as { id: string; snapshot: { tags: string[]; source: { engine: string; serverVersion: string; items: Array<{ kind: string; database?: string; format: string; size: number }>; details: { flavor: string } } } };
    snap = out.id;
    assert.ok(!r.stdout.includes(PW), 'password stored in the snapshot');
    assert.equal(out.snapshot.source.engine, 'mysql');
    assert.equal(out.snapshot.source.details.flavor, 'mariadb');
    assert.match(out.snapshot.source.serverVersion, /MariaDB/);
    assert.deepEqual(out.snapshot.tags, ['mysql', `db:${SRC}`]);
    const item = out.snapshot.source.items.find((i) => i.kind === 'database');
    assert.equal(item?.database, SRC);
    assert.ok((item?.size ?? 0) > 500_000);

    const dst = `bw_dst_${RUN}`;
    created.push(dst);
    // Restores run as an administrator: the dump's triggers keep their DEFINER (root).
    await runOk(['db', 'restore', snap, '--to', URL_ROOT, '--database', SRC, '--as', dst], env);
    assert.deepEqual(fingerprint(dst), expected);

    // Into an existing database: refused, then replaced with --clean.
    const again = await runCli(['db', 'restore', snap, '--to', URL_ROOT, '--database', SRC, '--as', dst, '--json'], env);
    assert.equal(jsonError(again).code, 'DB_EXISTS');
    sql(`DELETE FROM audit; UPDATE customers SET name = 'x' WHERE id < 5`, dst);
    await runOk(['db', 'restore', snap, '--to', URL_ROOT, '--database', SRC, '--as', dst, '--clean'], env);
    assert.deepEqual(fingerprint(dst), expected);
  });

  test('dry run changes nothing; PostgreSQL-only options are refused', async () => {
    const dry = `bw_dry_${RUN}`;
    const r = await runOk(['db', 'restore', snap, '--to', URL_ROOT, '--database', SRC, '--as', dry, '--dry-run', '--json'], env);
    assert.deepEqual((JSON.parse(r.stdout) as { steps: Array<{ action: string }> }).steps.map((s) => s.action), ['create-database', 'load-sql']);
    assert.equal(sql(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${dry}'`), '0');
    const t = await runCli(['db', 'restore', snap, '--to', URL_ROOT, '--table', 'orders', '--json'], env);
    assert.equal(jsonError(t).code, 'USAGE');
  });

  test('wrong password is DB_AUTH; a killed dump leaves no snapshot', async () => {
    const bad = await runCli(['db', 'backup', `mysql://${USER}:nope@127.0.0.1:3306`, '--json'], env);
    assert.equal(bad.code, 1);
    assert.equal(jsonError(bad).code, 'DB_AUTH');

    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    const log = path.join(dir, 'argv.log');
    fs.writeFileSync(path.join(bin, 'mariadb-dump'), `#!/bin/sh\necho "$@" >> ${log}\n/usr/bin/mariadb-dump "$@" | head -c 200000\nkill -9 $$\n`, { mode: 0o755 });
    const before = (JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[]).length;
    const r = await runCli(['db', 'backup', `mysql://${USER}:${encodeURIComponent(PW)}@127.0.0.1:3306`, '--database', SRC, '--json'], { ...env, PATH: `${bin}:${process.env['PATH']}` });
    assert.equal(r.code, 1);
    assert.equal(jsonError(r).code, 'DUMP_FAILED');
    assert.ok(!fs.readFileSync(log, 'utf8').includes(`pw-${RUN}`), 'password in argv');
    assert.match(fs.readFileSync(log, 'utf8'), /--defaults-extra-file=\S+client\.cnf --single-transaction --routines --triggers --events/);
    assert.equal((JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[]).length, before);
    const unknown = await runCli(['db', 'backup', URL_ROOT, '--database', `nope_${RUN}`, '--json'], env);
    assert.equal(jsonError(unknown).code, 'DB_NOT_FOUND');
    const down = await runCli(['db', 'backup', 'mysql://root@127.0.0.1:1', '--json'], env);
    assert.equal(jsonError(down).code, 'DB_CONNECT');
  });

  test('all databases: system schemas skipped, users and grants dumped as globals', async () => {
    const r = await runOk(['db', 'backup', URL_ROOT, '--json'], env);
    const items = (JSON.parse(r.stdout) as { snapshot: { source: { items: Array<{ kind: string; database?: string; file: string }> } } }).snapshot.source.items;
    const names = items.filter((i) => i.kind === 'database').map((i) => i.database);
    assert.ok(names.includes(SRC));
    for (const sys of ['mysql', 'information_schema', 'performance_schema', 'sys']) assert.ok(!names.includes(sys), `${sys} dumped`);
    const g = items.find((i) => i.kind === 'globals');
    assert.ok(g !== undefined);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    const text = (await runOk(['dump', id, g.file], env)).stdout;
    assert.match(text, new RegExp(`CREATE USER IF NOT EXISTS \`${USER}\`@\`127.0.0.1\``));
  });
});
