// Redis source: URL parsing, the RESP client's error mapping, RDB snapshots over the replication
// protocol (disk-based and diskless), the streaming RDB parser (checked against DUMP from a real
// server, and against truncated or damaged input), and RESTORE-based loading into a second server.
// Runs two private redis-server processes on free loopback ports; never touches port 6379.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { BulwarkError } from '../src/errors.js';
import { crc64 } from '../src/sources/redis/crc64.js';
import { countRdbKeys, parseRdb, type RdbEntry } from '../src/sources/redis/rdb.js';
import { Pipeline, RespClient, type RespValue } from '../src/sources/redis/resp.js';
import { restoreRdb, writeRdbFile } from '../src/sources/redis/restore.js';
import { openRdbStream } from '../src/sources/redis/sync.js';
import { parseRedisUrl, redactRedisUrl, type RedisTarget } from '../src/sources/redis/url.js';
import { rmrf, tmpdir } from './helpers.js';

const SRC_PASSWORD = 'src-Pa55-9f1e';
const USER = 'backup';
const USER_PASSWORD = 'bk-Pa55-77aa';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface Server {
  port: number;
  dir: string;
  proc: ChildProcess;
}
const servers: Server[] = [];

async function startRedis(extra: string[] = [], password?: string): Promise<Server> {
  const dir = tmpdir('bulwark-redis-');
  const port = await freePort();
  const args = ['--save', '', '--appendonly', 'no', '--dir', dir, '--port', String(port), '--bind', '127.0.0.1'];
  const proc = spawn('redis-server', [...args, ...extra], { stdio: 'ignore' });
  const s = { port, dir, proc };
  servers.push(s);
  for (let i = 0; i < 100; i++) {
    try {
      const c = await RespClient.connect({ host: '127.0.0.1', port, ...(password ? { password } : {}) }, { timeoutMs: 1000 });
      await c.close();
      return s;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`redis-server on port ${port} did not start`);
}

after(async () => {
  for (const s of servers) {
    s.proc.kill('SIGKILL');
    rmrf(s.dir);
  }
});

const str = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString() : String(v));

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** Feeds a buffer in odd-sized chunks, so items straddle chunk boundaries. */
async function* chunked(b: Buffer, size = 4093): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function parseAll(src: AsyncIterable<Uint8Array>): Promise<RdbEntry[]> {
  const out: RdbEntry[] = [];
  for await (const e of parseRdb(src)) out.push(e);
  return out;
}

async function keysOf(c: RespClient, db: number): Promise<Buffer[]> {
  await c.command(['SELECT', db]);
  return (await c.command(['KEYS', '*'])) as Buffer[];
}

/** A key's value in a comparable form, whatever its encoding. */
async function contents(c: RespClient, k: Buffer): Promise<unknown> {
  const type = str(await c.command(['TYPE', k]));
  const sorted = (v: RespValue): string[] => (v as Buffer[]).map((x) => x.toString('hex')).sort();
  switch (type) {
    case 'string':
      return c.command(['GET', k]);
    case 'list':
      return c.command(['LRANGE', k, 0, -1]);
    case 'set':
      return sorted(await c.command(['SMEMBERS', k]));
    case 'zset':
      return c.command(['ZRANGE', k, 0, -1, 'WITHSCORES']);
    case 'hash': {
      const flat = (await c.command(['HGETALL', k])) as Buffer[];
      const pairs: string[] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push(`${flat[i]!.toString('hex')}=${flat[i + 1]!.toString('hex')}`);
      return pairs.sort();
    }
    case 'stream':
      return c.command(['XINFO', 'STREAM', k, 'FULL']);
    default:
      throw new Error(`unexpected type ${type}`);
  }
}

const DBS = [0, 3];
const FUNCTION_CODE = "#!lua name=bulwarklib\nredis.register_function('bw_echo', function(keys, args) return args[1] end)";
const MANY = 20_000;
let src: RedisTarget;
let dst: RedisTarget;
let ttlKeys = 0;
let totalKeys = 0;
let rdbBytes: Buffer;

async function populate(c: RespClient): Promise<void> {
  const pipe = new Pipeline(c, { maxCommands: 500 });
  const send = (args: Array<string | Buffer | number>): Promise<void> =>
    pipe.send(args, (v) => assert.ok(!(v instanceof Object && 'prefix' in v), `${String(args[0])}: ${String(v)}`));
  for (const db of DBS) {
    await send(['SELECT', db]);
    const p = `d${db}:`;
    await send(['SET', `${p}str:short`, 'hello']);
    await send(['SET', `${p}str:int`, '1234567']);
    await send(['SET', `${p}str:neg`, '-42']);
    await send(['SET', `${p}str:random`, randomBytes(10_000).toString('base64')]);
    await send(['SET', `${p}str:lzf`, 'abcdefgh'.repeat(200) + 'tail']);
    await send(['SET', Buffer.from([0, 1, 0xff, 0xfe, 0x0a, db]), randomBytes(300)]);
    await send(['SET', `${p}42`, 'integer-looking key']);
    await send(['HSET', `${p}hash:small`, 'a', '1', 'b', 'two', 'c', '3.5']);
    const hbig: string[] = [];
    for (let i = 0; i < 1500; i++) hbig.push(`field-${i}`, `value-${i}-${'x'.repeat(i % 50)}`);
    await send(['HSET', `${p}hash:big`, ...hbig]);
    await send(['RPUSH', `${p}list:small`, 'a', 'b', 'c', '123']);
    const lbig: string[] = [];
    for (let i = 0; i < 5000; i++) lbig.push(`item-${i}`);
    await send(['RPUSH', `${p}list:big`, ...lbig]);
    await send(['RPUSH', `${p}list:plain`, 'small', 'y'.repeat(20_000), 'small2']);
    await send(['SADD', `${p}set:int`, '1', '2', '3', '-7', '100000']);
    await send(['SADD', `${p}set:small`, 'apple', 'banana', 'cherry']);
    const sbig: string[] = [];
    for (let i = 0; i < 2000; i++) sbig.push(`member-${i}`);
    await send(['SADD', `${p}set:big`, ...sbig]);
    await send(['ZADD', `${p}zset:small`, '1', 'one', '2.5', 'two-and-a-half', '-inf', 'minus']);
    const zbig: string[] = [];
    for (let i = 0; i < 1500; i++) zbig.push(String(i / 7), `zm-${i}`);
    await send(['ZADD', `${p}zset:big`, ...zbig, 'inf', 'top']);
    await send(['PSETEX', `${p}ttl:hour`, 3_600_000, 'expires in an hour']);
    await send(['SET', `${p}ttl:day`, 'x', 'EX', 86_400]);
    await send(['HSET', `${p}ttl:hash`, 'f', 'v']);
    await send(['PEXPIRE', `${p}ttl:hash`, 7_200_000]);
    ttlKeys += 3;
  }
  await send(['SELECT', 0]);
  // Larger than the parser's read-ahead, so they are parsed across several refills.
  const huge: string[] = [];
  for (let i = 0; i < 40_000; i++) huge.push(`huge-member-${i}`);
  await send(['SADD', 'set:huge', ...huge]);
  await send(['SET', 'str:huge', randomBytes(600_000)]);
  await send(['FUNCTION', 'LOAD', FUNCTION_CODE]);
  for (let i = 1; i <= 12; i++) await send(['XADD', 'stream', `${i}-0`, 'n', String(i), 'payload', 'p'.repeat(i * 3)]);
  await send(['XDEL', 'stream', '5-0']);
  await send(['XGROUP', 'CREATE', 'stream', 'g1', '0']);
  await send(['XGROUP', 'CREATE', 'stream', 'g2', '$']);
  await send(['XREADGROUP', 'GROUP', 'g1', 'alice', 'COUNT', '3', 'STREAMS', 'stream', '>']);
  await send(['XREADGROUP', 'GROUP', 'g1', 'bob', 'COUNT', '2', 'STREAMS', 'stream', '>']);
  await send(['XACK', 'stream', 'g1', '2-0']);
  for (let i = 0; i < MANY; i++) await send(['SET', `many:${i}`, `v${i}`]);
  await pipe.flush();
  totalKeys = 0;
  for (const db of DBS) {
    await c.command(['SELECT', db]);
    totalKeys += Number(await c.command(['DBSIZE']));
  }
  await c.command(['SELECT', 0]);
}

describe('redis', { timeout: 120_000 }, () => {
  before(async () => {
    const srv = await startRedis(['--requirepass', SRC_PASSWORD, '--repl-diskless-sync-delay', '0'], SRC_PASSWORD);
    const admin = await RespClient.connect({ host: '127.0.0.1', port: srv.port, password: SRC_PASSWORD });
    await admin.command(['ACL', 'SETUSER', USER, 'on', `>${USER_PASSWORD}`, '~*', '&*', '+@all']);
    await populate(admin);
    await admin.close();
    src = { host: '127.0.0.1', port: srv.port, username: USER, password: USER_PASSWORD };
    const d = await startRedis();
    dst = { host: '127.0.0.1', port: d.port };
  });

  it('parses and redacts URLs', () => {
    assert.deepEqual(parseRedisUrl('redis://u:p%40ss@db.example:6380/3'), {
      host: 'db.example',
      port: 6380,
      username: 'u',
      password: 'p@ss',
      db: 3,
    });
    assert.deepEqual(parseRedisUrl('redis://localhost'), { host: 'localhost', port: 6379 });
    assert.deepEqual(parseRedisUrl('redis://:secret@[::1]:7000/'), { host: '::1', port: 7000, password: 'secret' });
    assert.equal(redactRedisUrl('redis://u:secret@h:1/2'), 'redis://u@h:1/2');
    assert.equal(redactRedisUrl('redis://:secret@h'), 'redis://h');
    for (const bad of ['http://h', 'redis://', 'redis://:secret@h:99999', 'redis://:secret@h/x', 'rediss://:secret@h', 'nonsense']) {
      assert.throws(
        () => parseRedisUrl(bad),
        (e: unknown) => e instanceof BulwarkError && e.code === 'DB_URL_INVALID' && !e.message.includes('secret') && !String(e.subject).includes('secret'),
        bad,
      );
    }
  });

  it('computes CRC-64 as Redis does', async () => {
    assert.equal(crc64(Buffer.from('123456789')), 0xe9c6d914c4b8d9can);
    const c = await RespClient.connect(src);
    for (const key of ['d0:str:lzf', 'd0:hash:big', 'stream']) {
      const dump = (await c.command(['DUMP', key])) as Buffer;
      const stored = dump.readBigUInt64LE(dump.length - 8);
      assert.equal(crc64(dump.subarray(0, dump.length - 8)), stored, key);
    }
    await c.close();
  });

  it('streams an RDB (disk-based) whose entries equal DUMP from the server', async () => {
    const snap = await openRdbStream(src);
    assert.match(snap.serverVersion, /^\d+\.\d+\.\d+/);
    assert.match(snap.replId, /^[0-9a-f]{40}$/);
    assert.ok(snap.rdbSize !== undefined && snap.rdbSize > 100_000);
    rdbBytes = await collect(snap.stream);
    assert.equal(rdbBytes.length, snap.rdbSize);
    assert.equal(rdbBytes.subarray(0, 5).toString(), 'REDIS');
    const entries = await parseAll(chunked(rdbBytes));
    assert.equal(entries.length, totalKeys);
    const c = await RespClient.connect(src);
    const types = new Set<number>();
    let withTtl = 0;
    for (const e of entries) {
      types.add(e.type);
      await c.command(['SELECT', e.db]);
      const dump = (await c.command(['DUMP', e.key])) as Buffer;
      assert.ok(e.payload.equals(dump), `payload of ${e.key.toString()} differs from DUMP`);
      if (e.expireAtMs !== undefined) {
        withTtl++;
        const pttl = Number(await c.command(['PTTL', e.key]));
        assert.ok(Math.abs(e.expireAtMs - (Date.now() + pttl)) < 5000, `expiry of ${e.key.toString()}`);
      }
    }
    await c.close();
    assert.equal(withTtl, ttlKeys);
    // string, set (hashtable), hash, zset2, intset, listpack hash/zset, quicklist2, stream2
    for (const t of [0, 2, 4, 5, 11, 16, 17, 18, 19]) assert.ok(types.has(t), `no value of type ${t} in the RDB`);
    assert.deepEqual(new Set(entries.map((e) => e.db)), new Set(DBS));
  });

  it('streams an RDB diskless (capa eof) with the same entries', async () => {
    const snap = await openRdbStream(src, { capaEof: true });
    assert.equal(snap.rdbSize, undefined);
    const a = await parseAll(snap.stream);
    const b = await parseAll(chunked(rdbBytes));
    assert.equal(a.length, b.length);
    const key = (e: RdbEntry): string => `${e.db}/${e.key.toString('hex')}`;
    const byKey = new Map(b.map((e) => [key(e), e]));
    for (const e of a) assert.ok(byKey.get(key(e))?.payload.equals(e.payload), key(e));
  });

  it('pauses the connection while the consumer is slow', async () => {
    const snap = await openRdbStream(src, { highWaterMark: 256 * 1024 });
    await sleep(400);
    // Without backpressure the whole RDB (several MB) would sit in the stream's buffer by now.
    assert.ok(snap.stream.readableLength < 1024 * 1024, `buffered ${snap.stream.readableLength}`);
    assert.ok(rdbBytes.length > 4 * 1024 * 1024 || snap.stream.readableLength < rdbBytes.length);
    const s = await countRdbKeys(snap.stream);
    assert.equal(s.keys, totalKeys);
    assert.deepEqual(Object.keys(s.perDb).sort(), ['0', '3']);
  });

  it('restores a live snapshot into an empty server, key by key identical', async () => {
    const snap = await openRdbStream(src);
    const res = await restoreRdb(snap.stream, dst, {});
    assert.equal(res.keys, totalKeys);
    assert.equal(res.expiredSkipped, 0);
    assert.equal(res.verified, true, res.mismatches.join('; '));
    assert.equal(res.functions, 1);
    const a = await RespClient.connect(src);
    const b = await RespClient.connect(dst);
    assert.equal(str(await b.command(['FCALL', 'bw_echo', 0, 'hi'])), 'hi');
    let compared = 0;
    let dumpEqual = 0;
    for (const db of DBS) {
      const ka = await keysOf(a, db);
      const kb = await keysOf(b, db);
      assert.equal(kb.length, ka.length, `db ${db} key count`);
      assert.equal(res.perDb[String(db)], ka.length);
      // Commands issued together are pipelined by the client: compare 500 keys per round trip.
      for (let i = 0; i < ka.length; i += 500) {
        const batch = ka.slice(i, i + 500);
        const facts = (c: RespClient): Promise<RespValue[][]> =>
          Promise.all(batch.map((k) => Promise.all([c.command(['TYPE', k]), c.command(['DUMP', k]), c.command(['PTTL', k])])));
        const [fa, fb] = await Promise.all([facts(a), facts(b)]);
        for (let j = 0; j < batch.length; j++) {
          const k = batch[j]!;
          const [typeA, dumpA, ttlA] = fa[j]!;
          const [typeB, dumpB, ttlB] = fb[j]!;
          assert.equal(str(typeB!), str(typeA!), k.toString());
          if ((dumpA as Buffer).equals(dumpB as Buffer)) dumpEqual++;
          // Hash tables may iterate in another order after reloading: compare their contents.
          else assert.deepEqual(await contents(b, k), await contents(a, k), `content of ${k.toString()}`);
          const ta = Number(ttlA);
          const tb = Number(ttlB);
          if (ta === -1) assert.equal(tb, -1, k.toString());
          else assert.ok(Math.abs(ta - tb) < 3000 && tb > 0, `PTTL of ${k.toString()}: ${ta} vs ${tb}`);
          compared++;
        }
      }
    }
    assert.equal(compared, totalKeys);
    assert.ok(dumpEqual > totalKeys - 10, `only ${dumpEqual} of ${totalKeys} DUMPs identical`);
    // Element-wise, independent of the serialization.
    await a.command(['SELECT', 0]);
    await b.command(['SELECT', 0]);
    for (const k of ['d0:hash:big', 'd0:set:big', 'd0:list:plain', 'd0:zset:big', 'stream']) {
      assert.deepEqual(await contents(b, Buffer.from(k)), await contents(a, Buffer.from(k)), k);
    }
    // Pending entries: ID, consumer and delivery count (the idle time is relative to now).
    const pending = async (c: RespClient): Promise<string[]> =>
      ((await c.command(['XPENDING', 'stream', 'g1', '-', '+', '10'])) as RespValue[][]).map((p) =>
        [str(p[0]!), str(p[1]!), str(p[3]!)].join(' '),
      );
    assert.deepEqual(await pending(b), ['1-0 alice 1', '3-0 alice 1', '4-0 bob 1', '6-0 bob 1']);
    assert.deepEqual(await pending(b), await pending(a));
    await a.close();
    await b.close();
  });

  it('refuses existing keys without replace, overwrites with replace, skips expired keys', async () => {
    await assert.rejects(
      restoreRdb(chunked(rdbBytes), dst, {}),
      (e: unknown) => e instanceof BulwarkError && e.code === 'RESTORE_FAILED' && /bulwarklib.*already exists/.test(e.message),
    );
    await assert.rejects(
      restoreRdb(chunked(rdbBytes), dst, { functions: false }),
      (e: unknown) => e instanceof BulwarkError && e.code === 'RESTORE_FAILED' && /key ".+" already exists/.test(e.message),
    );
    const again = await restoreRdb(chunked(rdbBytes), dst, { replace: true });
    assert.equal(again.keys, totalKeys);
    assert.equal(again.verified, true);
    // Two days ahead, every key with a TTL has lapsed.
    const later = await restoreRdb(chunked(rdbBytes), dst, { flush: true, now: () => Date.now() + 2 * 86_400_000 });
    assert.equal(later.expiredSkipped, ttlKeys);
    assert.equal(later.keys, totalKeys - ttlKeys);
    assert.equal(later.verified, true, later.mismatches.join('; '));
    const b = await RespClient.connect(dst);
    assert.equal(Number(await b.command(['DBSIZE'])), later.perDb['0']);
    assert.equal(Number(await b.command(['EXISTS', 'd0:ttl:hour'])), 0);
    await b.close();
    const dry = await restoreRdb(chunked(rdbBytes), { host: '127.0.0.1', port: await freePort() }, { dryRun: true });
    assert.equal(dry.keys, totalKeys);
  });

  it('parses the same entries whatever the input chunking', async () => {
    const whole = await parseAll(chunked(rdbBytes, rdbBytes.length));
    const tiny = await parseAll(chunked(rdbBytes, 997));
    assert.equal(tiny.length, whole.length);
    for (let i = 0; i < whole.length; i++) {
      assert.ok(tiny[i]!.key.equals(whole[i]!.key) && tiny[i]!.payload.equals(whole[i]!.payload), whole[i]!.key.toString());
    }
    const huge = whole.find((e) => e.key.toString() === 'set:huge');
    assert.ok(huge !== undefined && huge.payload.length > 400_000);
  });

  it('parses opcodes and encodings the live server did not produce (synthetic RDB)', async () => {
    const u64 = (n: bigint): Buffer => {
      const b = Buffer.alloc(9);
      b[0] = 0x81;
      b.writeBigUInt64BE(n, 1);
      return b;
    };
    const lenStr = (t: string): Buffer => Buffer.concat([Buffer.from([t.length]), Buffer.from(t)]);
    // LZF: literal "a", then a back-reference copying 9 bytes from one back: "a" x 10.
    const lzfKey = Buffer.from([0xc3, 5, 10, 0x00, 0x61, 0xe0, 0x00, 0x00]);
    const moduleValue = Buffer.concat([
      u64(0x123456789abcdef0n), // module id (64-bit)
      Buffer.from([2, 5]), // UINT 5
      Buffer.from([5]), lenStr('abc'), // STRING
      Buffer.from([4]), Buffer.alloc(8, 1), // DOUBLE
      Buffer.from([3]), Buffer.alloc(4, 2), // FLOAT
      Buffer.from([0]), // EOF
    ]);
    const setListpack = lenStr('opaque listpack bytes');
    const body = Buffer.concat([
      Buffer.from('REDIS0011'),
      Buffer.from([0xfa]), lenStr('redis-ver'), lenStr('7.2.4'), // AUX
      Buffer.from([0xfa]), lenStr('ctime'), Buffer.from([0xc2, 1, 2, 3, 4]), // AUX, int-encoded
      Buffer.from([0xf5]), lenStr('#!lua name=x'), // FUNCTION2
      Buffer.from([0xf7]), u64(0xfedcba9876543210n), Buffer.from([2, 2, 0]), // MODULE_AUX, empty data
      Buffer.from([0xfe, 5, 0xfb, 3, 1]), // SELECTDB 5, RESIZEDB 3 1
      Buffer.from([0xfd]), Buffer.from([0x10, 0x27, 0, 0]), // EXPIRETIME 10000 s
      Buffer.from([0xf9, 7]), // FREQ
      Buffer.from([0x00]), lzfKey, Buffer.from([0xc0, 0xfe]), // string key (LZF), value int8 -2
      Buffer.from([0xf8, 0x40, 0x10]), // IDLE (14-bit length)
      Buffer.from([0x07]), lenStr('mod'), moduleValue,
      Buffer.from([0x14]), Buffer.from([0xc1, 0x39, 0x30]), setListpack, // set listpack, key int16 12345
      Buffer.from([0xff]),
    ]);
    const sum = Buffer.alloc(8);
    sum.writeBigUInt64LE(crc64(body));
    const aux: string[] = [];
    const fns: string[] = [];
    const parse = async (b: Buffer): Promise<RdbEntry[]> => {
      const out: RdbEntry[] = [];
      const opts = { onAux: (k: Buffer, v: Buffer) => aux.push(`${k}=${v}`), onFunction: (c: Buffer) => fns.push(c.toString()) };
      for await (const e of parseRdb(chunked(b, 3), opts)) out.push(e);
      return out;
    };
    const entries = await parse(Buffer.concat([body, sum]));
    assert.deepEqual(aux, ['redis-ver=7.2.4', 'ctime=67305985']);
    assert.deepEqual(fns, ['#!lua name=x']);
    assert.deepEqual(
      entries.map((e) => [e.db, e.key.toString(), e.type, e.expireAtMs]),
      [
        [5, 'a'.repeat(10), 0, 10_000_000],
        [5, 'mod', 7, undefined],
        [5, '12345', 20, undefined],
      ],
    );
    const expectPayload = (type: number, value: Buffer): Buffer => {
      const p = Buffer.concat([Buffer.from([type]), value, Buffer.from([11, 0]), Buffer.alloc(8)]);
      p.writeBigUInt64LE(crc64(p.subarray(0, p.length - 8)), p.length - 8);
      return p;
    };
    assert.ok(entries[0]!.payload.equals(expectPayload(0, Buffer.from([0xc0, 0xfe]))));
    assert.ok(entries[1]!.payload.equals(expectPayload(7, moduleValue)));
    assert.ok(entries[2]!.payload.equals(expectPayload(20, setListpack)));
    // A zero checksum means "not computed"; a wrong one is an error.
    assert.equal((await parse(Buffer.concat([body, Buffer.alloc(8)]))).length, 3);
    sum[0] = sum[0]! ^ 0xff;
    await assert.rejects(parse(Buffer.concat([body, sum])), /checksum mismatch/);
    const v12 = Buffer.concat([Buffer.from('REDIS0012'), body.subarray(9), Buffer.alloc(8)]);
    await assert.rejects(parse(v12), /unsupported RDB version 12/);
  });

  it('reports truncated or damaged RDBs with a byte offset, without hanging', async () => {
    for (const cut of [5, 9, 200, Math.floor(rdbBytes.length / 2), rdbBytes.length - 9, rdbBytes.length - 1]) {
      await assert.rejects(parseAll(chunked(rdbBytes.subarray(0, cut), 1000)), (e: unknown) => {
        assert.ok(e instanceof BulwarkError && e.code === 'RESTORE_FAILED', String(e));
        assert.match(e.message, /byte offset \d+/);
        return true;
      });
    }
    // A flipped byte inside a random string value only shows in the file checksum.
    const damaged = Buffer.from(rdbBytes);
    const c = await RespClient.connect(src);
    const value = (await c.command(['GET', 'd0:str:random'])) as Buffer;
    await c.close();
    const at = damaged.indexOf(value.subarray(100, 200));
    assert.ok(at > 0);
    damaged[at + 50] = damaged[at + 50]! ^ 0x01;
    await assert.rejects(parseAll(chunked(damaged)), /RDB checksum mismatch/);
    await assert.rejects(parseAll(chunked(Buffer.from('NOTANRDBFILE'))), /not an RDB file/);
    const badType = Buffer.from(rdbBytes.subarray(0, 9));
    await assert.rejects(parseAll(chunked(Buffer.concat([badType, Buffer.from([0x63, 1, 0x61])]))), /unsupported value type 99/);
  });

  it('maps authentication and connection failures', async () => {
    const wrong = 'wrong-Pa55-3c3c';
    for (const t of [
      { ...src, password: wrong },
      { host: src.host, port: src.port, password: wrong },
      { host: src.host, port: src.port },
    ]) {
      await assert.rejects(openRdbStream(t), (e: unknown) => {
        assert.ok(e instanceof BulwarkError && e.code === 'DB_AUTH', String(e));
        assert.ok(!e.message.includes(wrong) && !e.message.includes(USER_PASSWORD));
        return true;
      });
    }
    const port = await freePort();
    await assert.rejects(RespClient.connect({ host: '127.0.0.1', port }), (e: unknown) => {
      assert.ok(e instanceof BulwarkError && e.code === 'DB_CONNECT' && e.retryable, String(e));
      assert.ok(e.message.includes(`127.0.0.1:${port}`));
      return true;
    });
    // A server that accepts but never answers: the connect timeout applies.
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const sp = (silent.address() as net.AddressInfo).port;
    try {
      await assert.rejects(RespClient.connect({ host: '127.0.0.1', port: sp }, { timeoutMs: 300 }), { code: 'DB_CONNECT' });
    } finally {
      silent.close();
    }
  });

  for (const mode of ['size', 'eof'] as const) {
    it(`fails the stream when the connection drops mid-RDB (${mode})`, async () => {
      const mark = 'm'.repeat(40);
      const fake = net.createServer((sock) => {
        let buf = '';
        sock.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          if (buf.includes('PING')) {
            buf = '';
            sock.write('+PONG\r\n');
          } else if (buf.includes('INFO')) {
            buf = '';
            sock.write('$22\r\nredis_version:7.0.99\r\n\r\n');
          } else if (buf.includes('REPLCONF')) {
            buf = '';
            sock.write('-ERR unknown\r\n');
          } else if (buf.includes('PSYNC')) {
            const head = mode === 'size' ? '$100000\r\n' : `$EOF:${mark}\r\n`;
            sock.write(`+FULLRESYNC ${'a'.repeat(40)} 7\r\n\n\n${head}`);
            sock.end(rdbBytes.subarray(0, 5000));
          }
        });
      });
      const socks = new Set<net.Socket>();
      fake.on('connection', (s: net.Socket) => socks.add(s));
      await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
      try {
        const port = (fake.address() as net.AddressInfo).port;
        const snap = await openRdbStream({ host: '127.0.0.1', port }, { idleTimeoutMs: 5000 });
        assert.equal(snap.serverVersion, '7.0.99');
        assert.equal(snap.offset, 7);
        await assert.rejects(collect(snap.stream), (e: unknown) => {
          assert.ok(e instanceof BulwarkError && e.code === 'DUMP_FAILED', String(e));
          assert.match(e.message, /incomplete/);
          return true;
        });
      } finally {
        for (const s of socks) s.destroy();
        fake.close();
      }
    });
  }

  it('writes an RDB file atomically with mode 0600', async () => {
    const dir = tmpdir('bulwark-rdbfile-');
    try {
      const file = path.join(dir, 'dump.rdb');
      const n = await writeRdbFile(Readable.from([rdbBytes.subarray(0, 1000), rdbBytes.subarray(1000)]), file);
      assert.equal(n, rdbBytes.length);
      assert.ok(fs.readFileSync(file).equals(rdbBytes));
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(fs.readdirSync(dir), ['dump.rdb']);
    } finally {
      rmrf(dir);
    }
  });
});
