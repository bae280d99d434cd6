// Running the database client tools (pg_dump, pg_restore, psql, mariadb-dump, mariadb...). Secrets
// reach them only through the environment or a private options file, never argv, so they do not
// show in process lists. Children get a minimal environment: PATH, locale, HOME, plus what the
// caller adds. Their stderr is kept (the last 64 KiB) so that a failure can say what the tool said.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BulwarkError, type ErrorCode } from '../errors.js';
import { registerTempDir, releaseTempDir } from './temp-dirs.js';

const STDERR_KEEP = 64 * 1024;

export interface ToolOptions {
  /** Extra environment variables (secrets go here). */
  env?: Record<string, string>;
  /** Text or a byte stream for the child's stdin; the child's stdin is closed at its end. */
  input?: string | AsyncIterable<Uint8Array>;
  /** A file descriptor for the child's stdout (a capture pipe), or 'capture' to collect it as text. */
  stdout?: number | 'capture' | 'ignore';
  /** What the tool is doing, for error messages ("pg_dump of database test"). */
  what: string;
  /** The error code when the tool exits non-zero. */
  failCode?: ErrorCode;
  /** Classifies stderr into a more precise error code (bad password, unreachable server...). */
  classify?: (stderr: string) => ErrorCode | undefined;
  /** Hint for TOOL_MISSING. */
  install?: string;
  /** Called with the running child (lets callers kill it when the consumer side fails). */
  onSpawn?: (child: ChildProcess) => void;
  /** Kills the child (its whole process group with `processGroup`) when aborted. */
  signal?: AbortSignal;
  /** Run the child in its own process group, so a kill also reaches what it started (hooks). */
  processGroup?: boolean;
}

export interface ToolResult {
  stdout: string;
  stderr: string;
}

/** Kills a child, or its whole process group; then SIGKILL if it is still there after 2 s. */
export function killChild(child: ChildProcess, group: boolean, sig: NodeJS.Signals): void {
  const send = (s: NodeJS.Signals): void => {
    try {
      if (group && child.pid !== undefined) process.kill(-child.pid, s);
      else child.kill(s);
    } catch {
      // already gone
    }
  };
  send(sig);
  const t = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) send('SIGKILL');
    // A group member may still hold our stdio open: stop waiting for it.
    child.stdout?.destroy();
    child.stderr?.destroy();
  }, 2000);
  t.unref();
}

/** The environment every tool gets: enough to find binaries and read text, nothing secret. */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin' };
  for (const k of ['HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR']) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

/** Runs a tool to completion; rejects with a BulwarkError carrying the tail of its stderr. */
export function runTool(cmd: string, args: readonly string[], opts: ToolOptions): Promise<ToolResult> {
  return new Promise<ToolResult>((resolve, reject) => {
    const stdoutMode = opts.stdout ?? 'ignore';
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, {
        env: { ...baseEnv(), ...opts.env },
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', stdoutMode === 'capture' ? 'pipe' : stdoutMode, 'pipe'],
        detached: opts.processGroup === true,
      });
    } catch (err) {
      reject(spawnError(cmd, err, opts));
      return;
    }
    opts.onSpawn?.(child);
    const kill = (): void => killChild(child, opts.processGroup === true, 'SIGTERM');
    if (opts.signal?.aborted === true) kill();
    opts.signal?.addEventListener('abort', kill, { once: true });
    let stderr = '';
    let out = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => {
      stderr += s;
      if (stderr.length > 2 * STDERR_KEEP) stderr = stderr.slice(-STDERR_KEEP);
    });
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (s: string) => {
      out += s;
    });
    let inputError: unknown;
    if (opts.input !== undefined && child.stdin !== null) {
      const stdin = child.stdin;
      // A child that exits early closes its stdin: EPIPE is then not the interesting error.
      stdin.on('error', () => undefined);
      const src = typeof opts.input === 'string' ? [Buffer.from(opts.input)] : opts.input;
      pipeline(src, stdin).catch((err: unknown) => {
        inputError = err;
        if (!isPipeClosed(err)) child.kill('SIGTERM');
      });
    }
    let spawnFailed: unknown;
    child.on('error', (err) => {
      spawnFailed = err;
    });
    child.on('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', kill);
      if (spawnFailed !== undefined) {
        reject(spawnError(cmd, spawnFailed, opts));
        return;
      }
      const tail = stderr.slice(-STDERR_KEEP).trim();
      // A child may stop reading its input once it has what it needs (pg_restore skips trailing bytes).
      if (code === 0 && (inputError === undefined || isPipeClosed(inputError))) {
        resolve({ stdout: out, stderr: tail });
        return;
      }
      if (code === 0 && inputError !== undefined) {
        reject(inputError instanceof BulwarkError ? inputError : new BulwarkError(opts.failCode ?? 'DUMP_FAILED', `${opts.what}: feeding input failed: ${errMsg(inputError)}`, { cause: inputError }));
        return;
      }
      if (inputError instanceof BulwarkError) {
        reject(inputError);
        return;
      }
      const how = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
      const codeFor = opts.classify?.(tail) ?? opts.failCode ?? 'DUMP_FAILED';
      const hint = hintFor(codeFor);
      reject(
        new BulwarkError(codeFor, `${opts.what} failed: ${path.basename(cmd)} ${how}${tail !== '' ? `: ${lastLines(tail, 12)}` : ''}`, {
          subject: opts.what,
          retryable: codeFor === 'DB_CONNECT',
          ...(hint !== undefined ? { hint } : {}),
        }),
      );
    });
  });
}

function hintFor(code: ErrorCode): string | undefined {
  switch (code) {
    case 'DB_AUTH':
      return 'check the user and password (password from the URL, the engine\'s usual environment variable or password file)';
    case 'DB_CONNECT':
      return 'check host and port, and that the server is running and reachable';
    case 'DB_NOT_FOUND':
      return 'list the server\'s databases, or check --database';
    default:
      return undefined;
  }
}

function isPipeClosed(err: unknown): boolean {
  const c = (err as { code?: unknown }).code;
  return c === 'EPIPE' || c === 'ERR_STREAM_PREMATURE_CLOSE' || c === 'ERR_STREAM_DESTROYED';
}

function spawnError(cmd: string, err: unknown, opts: ToolOptions): BulwarkError {
  if ((err as { code?: unknown }).code === 'ENOENT') {
    return new BulwarkError('TOOL_MISSING', `${cmd} is not installed (needed for ${opts.what})`, {
      subject: cmd,
      hint: opts.install ?? `install ${cmd} and make sure it is on PATH`,
    });
  }
  return new BulwarkError(opts.failCode ?? 'DUMP_FAILED', `${opts.what}: cannot start ${cmd}: ${errMsg(err)}`, { subject: cmd, cause: err });
}

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function lastLines(s: string, n: number): string {
  return s.split('\n').slice(-n).join('\n');
}

/** The first tool of `names` found on PATH (e.g. mariadb-dump before mysqldump), or undefined. */
export function findTool(names: readonly string[]): string | undefined {
  const dirs = (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  for (const n of names) {
    for (const d of dirs) {
      const p = path.join(d, n);
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return p;
      } catch {
        // next
      }
    }
  }
  return undefined;
}

/**
 * A private directory (0700) for options files that hold secrets; removed by `dispose`. The files
 * in it are created 0600 with O_EXCL, so no other user can read or swap them.
 */
export class SecretDir {
  readonly dir: string;
  constructor() {
    this.dir = registerTempDir(fs.mkdtempSync(path.join(tmpdir(), 'bulwark-secret-')));
    fs.chmodSync(this.dir, 0o700);
  }

  write(name: string, text: string): string {
    const p = path.join(this.dir, name);
    const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      fs.writeSync(fd, text);
    } finally {
      fs.closeSync(fd);
    }
    return p;
  }

  dispose(): void {
    releaseTempDir(this.dir);
  }
}

/** Writes an async byte stream to a blocking file descriptor (a capture pipe) without closing it. */
export async function writeToFd(src: AsyncIterable<Uint8Array>, fd: number, signal?: AbortSignal): Promise<void> {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writeAll(fd, chunk).then(() => cb(), cb);
    },
  });
  await pipeline(src, sink, ...(signal !== undefined ? [{ signal }] : []));
}

async function writeAll(fd: number, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await new Promise<{ bytesWritten: number }>((res, rej) =>
      fs.write(fd, buf, off, buf.length - off, null, (err, n) => (err !== null ? rej(err) : res({ bytesWritten: n }))),
    );
    off += bytesWritten;
  }
}
