// Point-in-time RDB snapshots taken the way a replica gets one: PSYNC ? -1 forces a full resync
// and the server streams a consistent RDB (forked at one instant) without blocking its clients
// and without any file on our side. `REPLCONF rdb-only 1` (Redis 7.0+) tells the server to stop
// after the RDB instead of feeding us the replication stream.
//
// After +FULLRESYNC the server sends "\n" keep-alives while it produces the RDB, then either
// "$<len>\r\n" + len bytes (disk-based) or "$EOF:<40-byte mark>\r\n" + bytes + the same mark
// (diskless). We do not announce `capa eof` by default: with it the server waits
// repl-diskless-sync-delay (5 s by default) for more replicas before it starts.
import * as net from 'node:net';
import { Readable } from 'node:stream';
import { BulwarkError, sysCode } from '../../errors.js';
import { encodeCommand, RespClient, RespError, type ConnectOptions } from './resp.js';
import { describeTarget, type RedisTarget } from './url.js';

export interface RdbStreamOptions {
  /** Connect + AUTH limit (ms); default 10 s. */
  connectTimeoutMs?: number;
  /** Fail when the server sends nothing (not even a keep-alive) for this long (ms); default 60 s. */
  idleTimeoutMs?: number;
  /** Announce `REPLCONF capa eof` so the server may stream diskless (waits repl-diskless-sync-delay). */
  capaEof?: boolean;
  /** Bytes buffered in the returned stream before the socket is paused; default 1 MiB. */
  highWaterMark?: number;
}

export interface RdbStream {
  stream: Readable;
  replId: string;
  offset: number;
  serverVersion: string;
  /** Known for disk-based transfers only. */
  rdbSize?: number;
}

const MARK_LEN = 40;

function dumpFailed(where: string, message: string, extra: { retryable?: boolean; cause?: unknown } = {}): BulwarkError {
  return new BulwarkError('DUMP_FAILED', `RDB transfer from Redis at ${where}: ${message}`, {
    subject: where,
    retryable: extra.retryable ?? true,
    ...(extra.cause !== undefined ? { cause: extra.cause } : {}),
  });
}

export async function openRdbStream(target: RedisTarget, opts: RdbStreamOptions = {}): Promise<RdbStream> {
  const where = describeTarget(target);
  const connectOpts: ConnectOptions = { errorCode: 'DUMP_FAILED', selectDb: false };
  if (opts.connectTimeoutMs !== undefined) connectOpts.timeoutMs = opts.connectTimeoutMs;
  const client = await RespClient.connect(target, connectOpts);
  let socket: net.Socket;
  let rest: Buffer;
  let serverVersion: string;
  // A server that accepts commands but never answers must not hang the backup.
  const idleMs = opts.idleTimeoutMs ?? 60_000;
  const timer = setTimeout(() => client.abort(dumpFailed(where, `no reply for ${idleMs} ms`)), idleMs);
  try {
    // A user allowed PSYNC but not INFO still gets a backup, without the version.
    const info = await client.call(['INFO', 'server']);
    serverVersion = Buffer.isBuffer(info) ? (/redis_version:([^\r\n]+)/.exec(info.toString())?.[1] ?? 'unknown') : 'unknown';
    // Older servers reject rdb-only; they then follow the RDB with the replication stream, which
    // we never read because the stream ends (and the socket closes) after the RDB bytes.
    const r = await client.call(['REPLCONF', 'rdb-only', '1']);
    if (r instanceof RespError && ['NOAUTH', 'NOPERM'].includes(r.prefix)) throw client.replyError('REPLCONF', r);
    if (opts.capaEof) await client.command(['REPLCONF', 'capa', 'eof']);
    ({ socket, rest } = client.detach());
  } catch (err) {
    await client.close();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  socket.write(encodeCommand(['PSYNC', '?', '-1']));
  return readPreamble(socket, rest, where, serverVersion, opts);
}

/** Reads +FULLRESYNC and the bulk header, then hands the socket to a Readable for the body. */
function readPreamble(
  socket: net.Socket,
  first: Buffer,
  where: string,
  serverVersion: string,
  opts: RdbStreamOptions,
): Promise<RdbStream> {
  const idleMs = opts.idleTimeoutMs ?? 60_000;
  socket.setTimeout(idleMs);
  return new Promise<RdbStream>((resolve, reject) => {
    let buf = first;
    let replId = '';
    let offset = 0;
    let settled = false;
    const fail = (err: BulwarkError): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error): void =>
      fail(dumpFailed(where, `connection lost before the RDB started: ${sysCode(err) ?? err.message}`, { cause: err }));
    const onClose = (): void => fail(dumpFailed(where, 'connection closed before the RDB started'));
    const onTimeout = (): void => fail(dumpFailed(where, `no data for ${idleMs} ms while waiting for the RDB`));
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      step();
    };
    const step = (): void => {
      for (;;) {
        // Keep-alives are bare "\n" bytes between the reply and the payload header.
        let i = 0;
        while (i < buf.length && buf[i] === 0x0a) i++;
        buf = buf.subarray(i);
        const nl = buf.indexOf(0x0a);
        if (nl < 0) {
          if (buf.length > 4096) fail(dumpFailed(where, 'unexpected data instead of a replication reply'));
          return;
        }
        const line = buf.toString('latin1', 0, nl).replace(/\r$/, '');
        buf = buf.subarray(nl + 1);
        if (replId === '') {
          const m = /^\+FULLRESYNC ([0-9a-zA-Z]+) (\d+)$/.exec(line);
          if (m !== null) {
            replId = m[1]!;
            offset = Number(m[2]);
            continue;
          }
          if (/^-(NOPERM|NOAUTH)/.test(line)) {
            return fail(
              new BulwarkError('DB_AUTH', `Redis at ${where} refused PSYNC: ${line.slice(1)}`, {
                subject: where,
                hint: 'the user needs permission for PSYNC and REPLCONF (e.g. ACL +psync +replconf)',
              }),
            );
          }
          return fail(dumpFailed(where, `the server refused a full resync: ${line.replace(/^[-+]/, '')}`));
        }
        if (!line.startsWith('$')) return fail(dumpFailed(where, `unexpected reply ${JSON.stringify(line.slice(0, 80))}`));
        let framing: { size: number } | { mark: Buffer };
        if (line.startsWith('$EOF:')) {
          const mark = Buffer.from(line.slice(5), 'latin1');
          if (mark.length !== MARK_LEN) return fail(dumpFailed(where, 'bad EOF mark in the RDB header'));
          framing = { mark };
        } else {
          const size = Number(line.slice(1));
          if (!Number.isSafeInteger(size) || size < 0) return fail(dumpFailed(where, `bad RDB size ${line}`));
          framing = { size };
        }
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        socket.off('timeout', onTimeout);
        settled = true;
        const out: RdbStream = { stream: bodyStream(socket, buf, where, framing, opts), replId, offset, serverVersion };
        if ('size' in framing) out.rdbSize = framing.size;
        resolve(out);
        return;
      }
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('timeout', onTimeout);
    step();
  });
}

/** The RDB bytes as a Readable that pauses the socket while the consumer is behind. */
function bodyStream(
  socket: net.Socket,
  first: Buffer,
  where: string,
  framing: { size: number } | { mark: Buffer },
  opts: RdbStreamOptions,
): Readable {
  let received = 0;
  let finished = false;
  let tail = Buffer.alloc(0); // mark mode: the last bytes, which may turn out to be the mark
  const stream = new Readable({
    highWaterMark: opts.highWaterMark ?? 1024 * 1024,
    read() {
      socket.resume();
    },
    destroy(err, cb) {
      if (!socket.destroyed) socket.destroy();
      cb(err);
    },
  });
  const emit = (b: Buffer): void => {
    if (b.length === 0) return;
    received += b.length;
    if (!stream.push(b)) socket.pause();
  };
  const finish = (): void => {
    finished = true;
    stream.push(null);
    socket.destroy();
  };
  const feed = (chunk: Buffer): void => {
    if (finished || chunk.length === 0) return;
    if ('size' in framing) {
      const take = chunk.subarray(0, framing.size - received);
      emit(take);
      if (received === framing.size) finish();
      return;
    }
    const data = tail.length === 0 ? chunk : Buffer.concat([tail, chunk]);
    if (data.length >= MARK_LEN && data.subarray(data.length - MARK_LEN).equals(framing.mark)) {
      emit(data.subarray(0, data.length - MARK_LEN));
      finish();
      return;
    }
    const keep = Math.min(MARK_LEN, data.length);
    emit(data.subarray(0, data.length - keep));
    tail = Buffer.from(data.subarray(data.length - keep));
  };
  const lost = (why: string, cause?: unknown): void => {
    if (finished || stream.destroyed) return;
    finished = true;
    const of = 'size' in framing ? ` of ${framing.size}` : '';
    stream.destroy(dumpFailed(where, `${why} after ${received}${of} RDB bytes; the RDB is incomplete`, { cause }));
  };
  socket.on('data', feed);
  socket.on('error', (err) => lost(`connection error (${sysCode(err) ?? err.message})`, err));
  socket.on('close', () => lost('connection closed'));
  // A paused socket is idle by our choice; only a server that goes quiet while we read is an error.
  socket.on('timeout', () => {
    if (!socket.isPaused()) {
      lost(`no data for ${opts.idleTimeoutMs ?? 60_000} ms`);
      socket.destroy();
    }
  });
  if ('size' in framing && framing.size === 0) finish();
  else feed(first);
  return stream;
}
