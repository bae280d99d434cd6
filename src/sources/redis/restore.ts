// Loading an RDB into a live Redis: every key becomes one RESTORE (with its absolute expiry), sent
// pipelined with a bounded window so a million keys need no million round trips, and afterwards
// DBSIZE per database is checked against what was sent. Also the plain alternative: writing the
// RDB to a file for a server to load at start-up.
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BulwarkError, sysCode } from '../../errors.js';
import { parseRdb, type RdbEntry } from './rdb.js';
import { Pipeline, RespClient, RespError, type PipelineLimits, type RespValue } from './resp.js';
import type { RedisTarget } from './url.js';

export interface RestoreRdbOptions {
  /** Overwrite keys that already exist (RESTORE ... REPLACE). */
  replace?: boolean;
  /** FLUSHALL the target first. */
  flush?: boolean;
  /** Parse and count only; the target is not contacted. */
  dryRun?: boolean;
  /** Clock for deciding which keys already expired (Unix ms); default Date.now. */
  now?: () => number;
  /** Also load the Redis 7 function libraries stored in the RDB (FUNCTION LOAD); default true. */
  functions?: boolean;
  pipeline?: PipelineLimits;
  connectTimeoutMs?: number;
  onProgress?: (p: { keys: number; expiredSkipped: number }) => void;
}

export interface RestoreRdbResult {
  keys: number;
  expiredSkipped: number;
  perDb: Record<string, number>;
  verified: boolean;
  functions: number;
  /** Why verification failed, one line per database. */
  mismatches: string[];
}

/** A key for messages: printable ASCII as is, other bytes as \xNN, at most 80 characters. */
export function printableKey(key: Buffer): string {
  let s = '';
  for (const b of key) {
    s += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
    if (s.length > 80) return `${s.slice(0, 80)}...`;
  }
  return s;
}

export async function restoreRdb(
  source: AsyncIterable<Uint8Array>,
  target: RedisTarget,
  opts: RestoreRdbOptions = {},
): Promise<RestoreRdbResult> {
  const now = opts.now ?? Date.now;
  const loadFunctions = opts.functions ?? true;
  const res: RestoreRdbResult = { keys: 0, expiredSkipped: 0, perDb: {}, verified: false, functions: 0, mismatches: [] };
  const functions: Buffer[] = [];
  const onFunction = (code: Buffer): void => void functions.push(code);
  // Expiry times of restored keys per db, to allow for keys that lapse during the restore.
  const expiries = new Map<number, number[]>();
  const count = (e: RdbEntry): void => {
    res.keys++;
    res.perDb[String(e.db)] = (res.perDb[String(e.db)] ?? 0) + 1;
    if (e.expireAtMs !== undefined) {
      let list = expiries.get(e.db);
      if (list === undefined) expiries.set(e.db, (list = []));
      list.push(e.expireAtMs);
    }
    if (opts.onProgress && res.keys % 10_000 === 0) opts.onProgress({ keys: res.keys, expiredSkipped: res.expiredSkipped });
  };

  if (opts.dryRun) {
    for await (const e of parseRdb(source, { onFunction })) {
      if (e.expireAtMs !== undefined && e.expireAtMs <= now()) res.expiredSkipped++;
      else count(e);
    }
    res.functions = functions.length;
    return res;
  }

  const client = await RespClient.connect(target, {
    errorCode: 'RESTORE_FAILED',
    selectDb: false,
    ...(opts.connectTimeoutMs !== undefined ? { timeoutMs: opts.connectTimeoutMs } : {}),
  });
  try {
    if (opts.flush) await client.command(['FLUSHALL']);
    const pipe = new Pipeline(client, opts.pipeline);
    let db = -1;
    const selectReply = (n: number) => (v: RespValue) => {
      if (v instanceof RespError) {
        throw new BulwarkError('RESTORE_FAILED', `Redis at ${client.where} cannot select database ${n}: ${v.message}`, {
          subject: client.where,
          hint: 'the target needs at least as many databases as the source (the "databases" setting)',
        });
      }
    };
    const flushFunctions = async (): Promise<void> => {
      if (!loadFunctions || functions.length === 0) return;
      // Functions are stored before the keys; load them as they appear, ahead of any RESTORE.
      // FLUSHALL keeps functions, so an emptied target may still hold the same libraries.
      const replaceLib = opts.replace || opts.flush;
      for (const code of functions.splice(0)) {
        await pipe.send(replaceLib ? ['FUNCTION', 'LOAD', 'REPLACE', code] : ['FUNCTION', 'LOAD', code], (v) => {
          if (v instanceof RespError) {
            throw new BulwarkError('RESTORE_FAILED', `Redis at ${client.where} rejected a function library: ${v.message}`, {
              subject: client.where,
              hint: /already exists/.test(v.message) ? 'pass --replace to overwrite it' : 'see the server log',
            });
          }
          res.functions++;
        });
      }
    };
    for await (const e of parseRdb(source, { onFunction })) {
      await flushFunctions();
      if (e.expireAtMs !== undefined && e.expireAtMs <= now()) {
        res.expiredSkipped++;
        continue;
      }
      if (e.db !== db) {
        db = e.db;
        await pipe.send(['SELECT', db], selectReply(db));
      }
      const args = ['RESTORE', e.key, e.expireAtMs ?? 0, e.payload];
      if (opts.replace) args.push('REPLACE');
      args.push('ABSTTL');
      await pipe.send(args, (v) => {
        if (v instanceof RespError) throw restoreError(client, e.key, v);
      });
      count(e);
    }
    await flushFunctions();
    await pipe.flush();
    await verify(client, res, expiries, opts.flush ?? false, now);
    return res;
  } finally {
    await client.close();
  }
}

function restoreError(client: RespClient, key: Buffer, v: RespError): BulwarkError {
  const k = printableKey(key);
  if (v.prefix === 'BUSYKEY') {
    return new BulwarkError('RESTORE_FAILED', `key "${k}" already exists in Redis at ${client.where}`, {
      subject: k,
      hint: 'restore into an empty server, or pass --replace (overwrite) or --flush (empty it first)',
    });
  }
  if (['NOAUTH', 'NOPERM', 'WRONGPASS'].includes(v.prefix)) return client.replyError('RESTORE', v);
  const hint =
    v.prefix === 'MOVED' || v.prefix === 'ASK'
      ? 'the target is a Redis Cluster node; restore into a standalone server'
      : /payload version|Bad data format/i.test(v.message)
        ? 'the target Redis is older than the source, or lacks a module the data needs'
        : 'see the server log';
  return new BulwarkError('RESTORE_FAILED', `Redis at ${client.where} rejected key "${k}": ${v.message}`, {
    subject: k,
    hint,
  });
}

async function verify(
  client: RespClient,
  res: RestoreRdbResult,
  expiries: Map<number, number[]>,
  flushed: boolean,
  now: () => number,
): Promise<void> {
  for (const [dbName, restored] of Object.entries(res.perDb)) {
    const db = Number(dbName);
    await client.command(['SELECT', db]);
    const size = Number(await client.command(['DBSIZE']));
    const t = now();
    const lapsed = (expiries.get(db) ?? []).filter((at) => at <= t).length;
    if (size < restored - lapsed) {
      res.mismatches.push(`db ${db}: ${size} keys after restoring ${restored}`);
    } else if (flushed && size > restored) {
      res.mismatches.push(`db ${db}: ${size} keys after emptying it and restoring ${restored}`);
    }
  }
  res.verified = res.mismatches.length === 0;
}

/** Writes the RDB bytes to `file` atomically (temp file, fsync, rename; mode 0600). Returns the size. */
export async function writeRdbFile(source: AsyncIterable<Uint8Array>, file: string): Promise<number> {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  let bytes = 0;
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, 'wx', 0o600);
    for await (const chunk of source) {
      await fh.write(chunk);
      bytes += chunk.byteLength;
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, file);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    if (err instanceof BulwarkError) throw err;
    const c = sysCode(err);
    throw new BulwarkError(c === 'ENOSPC' ? 'DISK_FULL' : 'RESTORE_FAILED', `cannot write ${file}: ${c ?? String(err)}`, {
      subject: file,
      cause: err,
    });
  }
  // Make the rename durable; not every filesystem allows fsync on a directory.
  const dh = await fsp.open(dir, 'r').catch(() => undefined);
  await dh?.sync().catch(() => undefined);
  await dh?.close();
  return bytes;
}
