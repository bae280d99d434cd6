// A minimal RESP2 client over node:net: connect and authenticate, run commands, pipeline many
// commands with a bounded number in flight (restores send a million RESTOREs without waiting for
// each reply), and hand the raw socket over for the replication handshake in sync.ts.
//
// The password is only ever written to the socket; every message built here uses host:port, and
// server replies to AUTH are scrubbed of it in case an old server echoes its arguments.
import * as net from 'node:net';
import { BulwarkError, sysCode, type ErrorCode } from '../../errors.js';
import { INCOMPLETE, Outbox, RespError, RespParser, type RespArg, type RespValue } from './resp-codec.js';
import { describeTarget, type RedisTarget } from './url.js';

export { encodeCommand, RespError, RespParser, type RespArg, type RespValue } from './resp-codec.js';

export interface ConnectOptions {
  /** Limit for TCP connect + AUTH + SELECT; default 10 s. */
  timeoutMs?: number;
  /** Code for error replies turned into exceptions by command(); default DUMP_FAILED. */
  errorCode?: ErrorCode;
  /** SELECT target.db after connecting (default true when the URL names a db). */
  selectDb?: boolean;
}

function sizeOf(args: readonly RespArg[]): number {
  let n = 16;
  for (const a of args) n += (Buffer.isBuffer(a) ? a.length : String(a).length) + 16;
  return n;
}

interface Waiter {
  resolve: (v: RespValue) => void;
  reject: (e: unknown) => void;
}

export class RespClient {
  readonly where: string;
  private readonly parser = new RespParser();
  private readonly pending: Waiter[] = [];
  private pendingHead = 0;
  private readonly outbox = new Outbox();
  private flushScheduled = false;
  private failure: BulwarkError | undefined;
  private closed = false;

  private constructor(
    private readonly socket: net.Socket,
    target: RedisTarget,
    private readonly errorCode: ErrorCode,
  ) {
    this.where = describeTarget(target);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(this.lost(err)));
    socket.on('close', () => this.fail(this.lost()));
  }

  static async connect(target: RedisTarget, opts: ConnectOptions = {}): Promise<RespClient> {
    const where = describeTarget(target);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const socket = net.connect({ host: target.host, port: target.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        socket.destroy();
        reject(
          new BulwarkError('DB_CONNECT', `timed out after ${timeoutMs} ms connecting to Redis at ${where}`, {
            subject: where,
            retryable: true,
            hint: 'check the host, port and firewall',
          }),
        );
      }, timeoutMs);
    });
    try {
      await Promise.race([
        new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', (err) =>
            reject(
              new BulwarkError('DB_CONNECT', `cannot connect to Redis at ${where}: ${sysCode(err) ?? err.message}`, {
                subject: where,
                retryable: true,
                hint: 'check that the server is running and that host and port are right',
                cause: err,
              }),
            ),
          );
        }),
        timedOut,
      ]);
      socket.removeAllListeners('error');
      const client = new RespClient(socket, target, opts.errorCode ?? 'DUMP_FAILED');
      await Promise.race([client.handshake(target, opts.selectDb ?? true), timedOut]);
      return client;
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async handshake(target: RedisTarget, selectDb: boolean): Promise<void> {
    const authErr = (msg: string): BulwarkError => {
      const scrubbed = target.password ? msg.split(target.password).join('***') : msg;
      // Other refusals (max clients, protected mode, loading) are not about credentials.
      if (!/^(NOAUTH|WRONGPASS|NOPERM)\b/.test(scrubbed) && !/password|auth/i.test(scrubbed)) {
        return new BulwarkError('DB_CONNECT', `Redis at ${this.where} refused the connection: ${scrubbed}`, {
          subject: this.where,
          retryable: true,
        });
      }
      return new BulwarkError('DB_AUTH', `Redis at ${this.where} refused authentication: ${scrubbed}`, {
        subject: this.where,
        hint: 'check the user name and password in the URL (redis://user:password@host:port)',
      });
    };
    if (target.password !== undefined) {
      const args = target.username !== undefined ? ['AUTH', target.username, target.password] : ['AUTH', target.password];
      const r = await this.call(args);
      if (r instanceof RespError) throw authErr(r.message);
    } else {
      const r = await this.call(target.username !== undefined ? ['AUTH', target.username, ''] : ['PING']);
      if (r instanceof RespError) throw authErr(r.message);
    }
    if (selectDb && target.db !== undefined && target.db !== 0) await this.command(['SELECT', target.db]);
  }

  private lost(err?: Error): BulwarkError {
    return new BulwarkError(
      'DB_CONNECT',
      `connection to Redis at ${this.where} lost${err ? `: ${sysCode(err) ?? err.message}` : ''}`,
      { subject: this.where, retryable: true, ...(err ? { cause: err } : {}) },
    );
  }

  private fail(err: BulwarkError): void {
    this.failure ??= err;
    while (this.pendingHead < this.pending.length) {
      const w = this.pending[this.pendingHead]!;
      this.pending[this.pendingHead++] = undefined as unknown as Waiter;
      w.reject(this.failure);
    }
  }

  private onData(chunk: Buffer): void {
    this.parser.push(chunk);
    for (;;) {
      let v: RespValue | typeof INCOMPLETE;
      try {
        v = this.parser.next();
      } catch (err) {
        this.fail(err instanceof BulwarkError ? err : this.lost(err as Error));
        this.socket.destroy();
        return;
      }
      if (v === INCOMPLETE) return;
      const w = this.pending[this.pendingHead];
      if (w === undefined) continue; // unsolicited reply: nothing is waiting for it
      this.pending[this.pendingHead++] = undefined as unknown as Waiter;
      if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
        this.pending.splice(0, this.pendingHead);
        this.pendingHead = 0;
      }
      w.resolve(v);
    }
  }

  /** Sends a command; error replies resolve as RespError values. */
  call(args: readonly RespArg[]): Promise<RespValue> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(this.lost());
    return new Promise<RespValue>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.outbox.add(args);
      if (this.outbox.bytes >= 256 * 1024) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        // Commands issued before the event loop turns go out in one write.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const out = this.outbox.take();
    if (out.length === 0 || this.socket.destroyed) return;
    if (out.length === 1) this.socket.write(out[0]!);
    else {
      this.socket.cork();
      for (const b of out) this.socket.write(b);
      this.socket.uncork();
    }
  }

  /** Sends a command; error replies reject (NOAUTH/WRONGPASS/NOPERM as DB_AUTH). */
  async command(args: readonly RespArg[]): Promise<RespValue> {
    const r = await this.call(args);
    if (r instanceof RespError) throw this.replyError(String(args[0]), r);
    return r;
  }

  replyError(cmd: string, r: RespError, code: ErrorCode = this.errorCode): BulwarkError {
    const auth = ['NOAUTH', 'WRONGPASS', 'NOPERM'].includes(r.prefix);
    return new BulwarkError(auth ? 'DB_AUTH' : code, `Redis at ${this.where} rejected ${cmd.toUpperCase()}: ${r.message}`, {
      subject: this.where,
      ...(auth ? { hint: 'give credentials for a user allowed to run this command' } : {}),
    });
  }

  /** Fails every pending and future command with `err` and drops the connection. */
  abort(err: BulwarkError): void {
    this.fail(err);
    this.socket.destroy();
  }

  /** Stops RESP parsing and returns the socket plus any bytes already received, for raw protocols. */
  detach(): { socket: net.Socket; rest: Buffer } {
    if (this.pendingHead < this.pending.length) throw new BulwarkError('INTERNAL', 'detach with commands in flight');
    this.flush();
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('error');
    this.socket.removeAllListeners('close');
    this.closed = true;
    return { socket: this.socket, rest: this.parser.rest() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => this.socket.destroy(), 2000);
      this.socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      this.socket.end();
    });
  }
}

export interface PipelineLimits {
  /** Commands awaiting a reply; default 1000. */
  maxCommands?: number;
  /** Approximate request bytes awaiting a reply; default 16 MiB (one larger command may still go alone). */
  maxBytes?: number;
}

/**
 * Bounded pipelining: send() returns as soon as the command is queued and waits only while the
 * window is full. The first failure (connection loss, or an exception from an onReply callback)
 * is thrown from the next send() or from flush().
 */
export class Pipeline {
  private inFlight = 0;
  private bytes = 0;
  private error: unknown;
  private failed = false;
  private wake: (() => void) | undefined;
  private readonly maxCommands: number;
  private readonly maxBytes: number;

  constructor(
    private readonly client: RespClient,
    limits: PipelineLimits = {},
  ) {
    this.maxCommands = limits.maxCommands ?? 1000;
    this.maxBytes = limits.maxBytes ?? 16 * 1024 * 1024;
  }

  private setError(e: unknown): void {
    if (!this.failed) {
      this.failed = true;
      this.error = e;
    }
  }

  private async waitFor(ready: () => boolean): Promise<void> {
    while (!ready() && !this.failed) await new Promise<void>((r) => (this.wake = r));
    if (this.failed) throw this.error;
  }

  async send(args: readonly RespArg[], onReply?: (v: RespValue) => void): Promise<void> {
    const size = sizeOf(args);
    await this.waitFor(
      () => this.inFlight === 0 || (this.inFlight < this.maxCommands && this.bytes + size <= this.maxBytes),
    );
    this.inFlight++;
    this.bytes += size;
    this.client.call(args).then(
      (v) => {
        try {
          onReply?.(v);
        } catch (e) {
          this.setError(e);
        }
        this.done(size);
      },
      (e: unknown) => {
        this.setError(e);
        this.done(size);
      },
    );
  }

  private done(size: number): void {
    this.inFlight--;
    this.bytes -= size;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits for every reply; throws the first failure. */
  async flush(): Promise<void> {
    await this.waitFor(() => this.inFlight === 0);
  }
}
