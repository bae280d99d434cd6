// Redis through the CLI: `db backup redis://` against a throwaway server full of every data type,
// `db restore --to redis://` into an empty one compared key by key, `--to-file` loaded by a real
// server, and the failures (wrong password, a stream cut off mid-RDB) that must leave no snapshot.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jsonError, rmrf, runCli, runOk, tmpdir } from './helpers.js';
import { freePort } from './pg-cluster.js';

interface Server {
  port: number;
  proc: ChildProcess;
  cli(...args: string[]): string;
}

async function startRedis(dir: string, extra: string[] = []): Promise<Server> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], { stdio: 'ignore' });
  const pw = extra.includes('--requirepass') ? extra[extra.indexOf('--requirepass') + 1] : undefined;
  const cli = (...args: string[]): string => {
    const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', env: { ...process.env, ...(pw !== undefined ? { REDISCLI_AUTH: pw } : {}) } });
    return r.stdout.trim();
  };
  for (let i = 0; i < 100 && cli('PING') !== 'PONG'; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(cli('PING'), 'PONG');
  return { port, proc, cli };
}

function populate(s: Server): void {
  const cmds = [
    'SET plain hello',
    'SET number 12345',
    `SET long ${'abcdefghij'.repeat(300)}`,
    'SET withttl soon EX 3600',
    'HSET small f1 v1 f2 v2',
    'RPUSH list a b c d',
    'SADD intset 1 2 3 4',
    'SADD strset x y z',
    'ZADD zs 1 one 2.5 two 3 three',
    'XADD stream 1-1 k v',
    'XADD stream 2-1 k2 v2',
    'XGROUP CREATE stream grp 0',
    'XREADGROUP GROUP grp c1 COUNT 1 STREAMS stream >',
  ];
  for (const c of cmds) s.cli(...c.split(' '));
  s.cli('-n', '3', 'SET', 'in-db-3', 'yes');
  s.cli('-n', '3', 'HSET', 'h3', 'a', '1');
  s.cli('-n', '3', 'PEXPIRE', 'in-db-3', '7200000');
  // Big values: hashtable, quicklist, skiplist encodings.
  const big: string[] = ['HSET', 'bighash'];
  for (let i = 0; i < 1500; i++) big.push(`field${i}`, `value-${i}-${'x'.repeat(i % 30)}`);
  s.cli(...big);
  const zs: string[] = ['ZADD', 'bigzset'];
  for (let i = 0; i < 1500; i++) zs.push(String(i * 1.5), `member${i}`);
  s.cli(...zs);
  const ls: string[] = ['RPUSH', 'biglist'];
  for (let i = 0; i < 3000; i++) ls.push(`item-${i}`);
  s.cli(...ls);
}

function keysOf(s: Server, db: number): string[] {
  return s.cli('-n', String(db), '--scan').split('\n').filter((k) => k !== '').sort();
}

/** Every key of db 0 and 3: type, DUMP bytes (encoding-independent content check), TTL presence. */
function snapshotOf(s: Server): Record<string, string> {
  const out: Record<string, string> = {};
  for (const db of [0, 3]) {
    for (const k of keysOf(s, db)) {
      const t = s.cli('-n', String(db), 'TYPE', k);
      let content: string;
      if (t === 'string') content = s.cli('-n', String(db), 'GET', k);
      else if (t === 'hash') content = s.cli('-n', String(db), 'HGETALL', k).split('\n').reduce<string[]>((a, x, i, arr) => (i % 2 === 0 ? [...a, `${x}=${arr[i + 1]}`] : a), []).sort().join(',');
      else if (t === 'list') content = s.cli('-n', String(db), 'LRANGE', k, '0', '-1');
      else if (t === 'set') content = s.cli('-n', String(db), 'SMEMBERS', k).split('\n').sort().join(',');
      else if (t === 'zset') content = s.cli('-n', String(db), 'ZRANGE', k, '0', '-1', 'WITHSCORES');
      else content = s.cli('-n', String(db), 'XRANGE', k, '-', '+') + '|' + s.cli('-n', String(db), 'XINFO', 'GROUPS', k).replace(/\d{10,}/g, '');
      const ttl = Number(s.cli('-n', String(db), 'TTL', k));
      out[`${db}/${k}`] = `${t}:${content}:ttl=${ttl > 0 ? 'yes' : String(ttl)}`;
    }
  }
  return out;
}

describe('Redis backup and restore through the CLI', () => {
  let dir: string;
  let env: Record<string, string>;
  let src: Server;
  let dst: Server;
  const servers: Server[] = [];
  let expected: Record<string, string>;

  before(async () => {
    dir = tmpdir('bulwark-redis-');
    env = { BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'redis-test' };
    fs.mkdirSync(path.join(dir, 'src'));
    fs.mkdirSync(path.join(dir, 'dst'));
    src = await startRedis(path.join(dir, 'src'), ['--requirepass', 'src-secret']);
    dst = await startRedis(path.join(dir, 'dst'));
    servers.push(src, dst);
    populate(src);
    expected = snapshotOf(src);
    assert.ok(Object.keys(expected).length >= 15, `only ${Object.keys(expected).length} keys`);
    await runOk(['init'], env);
  });

  after(() => {
    for (const s of servers) s.proc.kill('SIGKILL');
    rmrf(dir);
  });

  test('backup, restore into an empty server, compare every key', async () => {
    const r = await runOk(['db', 'backup', `redis://:src-secret@127.0.0.1:${src.port}`, '--json'], env);
    const out = JSON.parse(r.stdout) as { id: string; snapshot: { tags: string[]; paths: string[]; source: { engine: string; serverVersion: string; details: { replicationId: string; replicationOffset: number; keyspaceAtStart: Record<string, number> } } } };
    assert.ok(!r.stdout.includes('src-secret'), 'password stored');
    assert.deepEqual(out.snapshot.tags, ['redis']);
    assert.equal(out.snapshot.source.engine, 'redis');
    assert.match(out.snapshot.source.serverVersion, /^7\./);
    assert.match(out.snapshot.source.details.replicationId, /^[0-9a-f]{40}$/);
    assert.equal(typeof out.snapshot.source.details.replicationOffset, 'number');
    assert.equal(out.snapshot.source.details.keyspaceAtStart['3'], 2);

    const restored = await runOk(['db', 'restore', out.id, '--to', `redis://127.0.0.1:${dst.port}`, '--json'], env);
    const rep = JSON.parse(restored.stdout) as { details: { keys: number; verified: boolean; perDb: Record<string, number> } };
    assert.equal(rep.details.verified, true);
    assert.equal(rep.details.keys, Object.keys(expected).length);
    assert.deepEqual(snapshotOf(dst), expected);

    // A second restore collides with existing keys unless --clean flushes first.
    const again = await runCli(['db', 'restore', out.id, '--to', `redis://127.0.0.1:${dst.port}`, '--json'], env);
    assert.equal(again.code, 1);
    assert.equal(jsonError(again).code, 'RESTORE_FAILED');
    dst.cli('SET', 'stray', 'key');
    await runOk(['db', 'restore', out.id, '--to', `redis://127.0.0.1:${dst.port}`, '--clean'], env);
    assert.deepEqual(snapshotOf(dst), expected);
  });

  test('--to-file writes an RDB that a real server starts from', async () => {
    const fileDir = path.join(dir, 'fromfile');
    fs.mkdirSync(fileDir);
    await runOk(['db', 'restore', 'latest', '--to-file', path.join(fileDir, 'dump.rdb')], env);
    assert.equal(fs.statSync(path.join(fileDir, 'dump.rdb')).mode & 0o777, 0o600);
    const port = await freePort();
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', fileDir, '--dbfilename', 'dump.rdb', '--appendonly', 'no'], { stdio: 'ignore' });
    const loaded: Server = { port, proc, cli: (...a) => spawnSync('redis-cli', ['-p', String(port), ...a], { encoding: 'utf8' }).stdout.trim() };
    servers.push(loaded);
    for (let i = 0; i < 100 && loaded.cli('PING') !== 'PONG'; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(snapshotOf(loaded), expected);
  });

  test('wrong password, unreachable server, and an RDB cut off mid-stream: errors, no snapshot', async () => {
    const count = async (): Promise<number> => (JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[]).length;
    const n = await count();
    const bad = await runCli(['db', 'backup', `redis://:wrong@127.0.0.1:${src.port}`, '--json'], env);
    assert.equal(jsonError(bad).code, 'DB_AUTH');
    assert.ok(!bad.stderr.includes('wrong@'), 'password echoed');
    const down = await runCli(['db', 'backup', 'redis://127.0.0.1:1', '--json'], env);
    assert.equal(jsonError(down).code, 'DB_CONNECT');

    // A fake primary that announces a 10 MB RDB, sends 64 KiB of it, and hangs up.
    const fake = net.createServer((sock) => {
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        for (;;) {
          const m = /^\*(\d+)\r\n/.exec(buf);
          if (m === null) return;
          const parts: string[] = [];
          let pos = m[0].length;
          for (let i = 0; i < Number(m[1]); i++) {
            const l = /^\$(\d+)\r\n/.exec(buf.slice(pos));
            if (l === null || buf.length < pos + l[0].length + Number(l[1]) + 2) return;
            parts.push(buf.slice(pos + l[0].length, pos + l[0].length + Number(l[1])));
            pos += l[0].length + Number(l[1]) + 2;
          }
          buf = buf.slice(pos);
          const cmd = parts[0]!.toUpperCase();
          if (cmd === 'INFO') {
            const body = parts[1] === 'keyspace' ? '# Keyspace\r\ndb0:keys=1,expires=0\r\n' : '# Server\r\nredis_version:7.0.15\r\n';
            sock.write(`$${body.length}\r\n${body}\r\n`);
          } else if (cmd === 'PSYNC') {
            sock.write('+FULLRESYNC 0123456789012345678901234567890123456789 77\r\n');
            sock.write('$10000000\r\n');
            sock.write(Buffer.concat([Buffer.from('REDIS0010'), Buffer.alloc(65536, 7)]));
            setTimeout(() => sock.destroy(), 50);
          } else sock.write('+OK\r\n');
        }
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const port = (fake.address() as net.AddressInfo).port;
    try {
      const cut = await runCli(['db', 'backup', `redis://127.0.0.1:${port}`, '--json'], env);
      assert.equal(cut.code, 1, cut.stdout);
      assert.equal(jsonError(cut).code, 'DUMP_FAILED');
    } finally {
      fake.close();
    }
    assert.equal(await count(), n);
    await runOk(['check', '--read-data'], env);
  });
});
