// Shared helpers for the CLI-level tests: temp directories, running the bulwark binary, building a
// rich source tree and comparing two trees (type, bytes, mode, mtime, links, owners).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Repository } from '../src/repo/repository.js';
import { typeOf } from '../src/tree/node.js';
import { resolvePath } from '../src/tree/tree-reader.js';

/** dist/src/cli/main.js, next to this file's compiled location (dist/test/helpers.js). */
export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export const isRoot = process.getuid?.() === 0;

/** A fresh directory under os.tmpdir(); remove it with rmrf(). */
export function tmpdir(prefix = 'bulwark-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * For a test file: a function that makes a fresh temp directory (see `tmpdir`) each call, all of
 * them removed once the file's tests are done. Call it at the top level of the file.
 */
export function tempRoots(prefix: string): () => string {
  const roots: string[] = [];
  after(() => {
    for (const r of roots) rmrf(r);
  });
  return () => {
    const r = tmpdir(prefix);
    roots.push(r);
    return r;
  };
}

/**
 * The tree ID a snapshot (root tree `root`) records for directory `dir`. Compare this rather than
 * root trees: the directories above `dir` (such as /tmp) change times whenever a temp directory is
 * made beside it, by this test or another.
 */
export async function dirTree(repo: Repository, root: string, dir: string): Promise<string> {
  const { node } = await resolvePath(repo, root, dir);
  assert.ok(node.type === 'dir' && node.subtree !== undefined, `${dir} is a directory in the snapshot`);
  return node.subtree;
}

export function rmrf(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    // Without root, read-only or mode-000 directories block removal: open them up and retry.
    const open = (p: string): void => {
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        return;
      }
      if (!st.isDirectory()) return;
      try {
        fs.chmodSync(p, 0o700);
        for (const n of fs.readdirSync(p)) open(path.join(p, n));
      } catch {
        // not ours; rmSync will report it
      }
    };
    open(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Raw stdout bytes (for `dump`). */
  stdoutBuf: Buffer;
}

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  input?: string | Buffer;
  /** Run the child as another user (root only). */
  uid?: number;
  gid?: number;
  cwd?: string;
  /** Called with the child's pid right after it is spawned. */
  onSpawn?: (pid: number) => void | Promise<void>;
  timeoutMs?: number;
}

/**
 * Runs the bulwark CLI. The environment is this process's minus every BULWARK_* variable, plus
 * BULWARK_KDF_N=1024, plus `env` (passwords go here, never in `args`).
 */
export function runCli(args: readonly string[], env: Record<string, string | undefined> = {}, opts: RunOptions = {}): Promise<CliResult> {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BULWARK_') && !k.startsWith('NODE_TEST')) childEnv[k] = v;
  childEnv['BULWARK_KDF_N'] = '1024';
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  // Secrets are passed through the environment only.
  for (const secret of [env['BULWARK_PASSWORD'], env['BULWARK_NEW_PASSWORD']]) {
    if (secret !== undefined && secret !== '') {
      assert.ok(!args.some((a) => a.includes(secret)), 'test bug: a password was put on the command line');
    }
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: childEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => {}); // the child may exit without reading stdin
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBuf = Buffer.concat(out);
      resolve({ code: code ?? (signal !== null ? 128 + (os.constants.signals[signal] ?? 0) : -1), stdout: stdoutBuf.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBuf });
    });
    const feed = async (): Promise<void> => {
      if (opts.onSpawn !== undefined && child.pid !== undefined) await opts.onSpawn(child.pid);
      if (opts.input !== undefined) child.stdin.end(opts.input);
      else child.stdin.end();
    };
    feed().catch((e: unknown) => {
      child.kill('SIGKILL');
      reject(e);
    });
  });
}

/** Runs the CLI and asserts exit code 0; returns the result. */
export async function runOk(args: readonly string[], env: Record<string, string | undefined>, opts: RunOptions = {}): Promise<CliResult> {
  const r = await runCli(args, env, opts);
  assert.equal(r.code, 0, `bulwark ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`);
  return r;
}

/** Parses `{"error":{...}}` from the stderr of a --json run. */
export function jsonError(r: Pick<CliResult, 'stderr'>): { code: string; message: string; subject?: string; hint?: string; retryable: boolean } {
  const line = r.stderr.trim().split('\n').pop() ?? '';
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    assert.fail(`stderr is not a JSON error: ${r.stderr}`);
  }
  const e = (v as { error?: unknown }).error;
  assert.ok(typeof e === 'object' && e !== null, `no "error" object in ${line}`);
  return e as { code: string; message: string; subject?: string; hint?: string; retryable: boolean };
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Writes `size` random bytes in 1 MiB pieces. */
export function writeRandomFile(file: string, size: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(1 << 20, size - done);
      fs.writeSync(fd, randomBytes(n));
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

export const SPARSE_SIZE = 64 * 1024 * 1024;

export interface TreeOptions {
  /** Include the ~20 MB and 40 MB random files and the 64 MiB sparse file (default true). */
  big?: boolean;
  /** Include a FIFO (default true). */
  fifo?: boolean;
  /** As root: chown some entries to other ids and create a character device (default true). */
  owners?: boolean;
}

/** What makeTree created, as paths relative to the tree's root. */
export interface TreeInfo {
  files: string[];
  dirs: string[];
  symlinks: string[];
  fifos: string[];
  devices: string[];
  /** Bytes of regular file content, each inode counted once. */
  bytes: number;
}

function setTime(p: string, sec: number): void {
  fs.lutimesSync(p, sec, sec);
}

/**
 * Creates a rich tree in `dir` (which must exist): files of many sizes, nested and empty
 * directories, relative/absolute/dangling symlinks, a hard-link pair, unusual modes and names,
 * a sparse file, a FIFO, and (as root) entries owned by other users and a device node. Every entry
 * gets a fixed mtime with sub-millisecond digits; directory times are set last.
 */
export function makeTree(dir: string, opts: TreeOptions = {}): TreeInfo {
  const big = opts.big ?? true;
  const info: TreeInfo = { files: [], dirs: [], symlinks: [], fifos: [], devices: [], bytes: 0 };
  const p = (rel: string): string => path.join(dir, rel);
  const mkdir = (rel: string, mode = 0o755): void => {
    fs.mkdirSync(p(rel), { recursive: true });
    fs.chmodSync(p(rel), mode);
    info.dirs.push(rel);
  };
  const file = (rel: string, data: Uint8Array | string, mode = 0o644): void => {
    fs.writeFileSync(p(rel), data);
    fs.chmodSync(p(rel), mode);
    info.files.push(rel);
    info.bytes += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  };
  let t = 1_600_000_000.123456; // fixed times with sub-millisecond parts
  const tick = (): number => (t += 3600.001234);

  mkdir('nested');
  mkdir('nested/deep');
  mkdir('nested/deep/deeper');
  mkdir('empty');
  mkdir('private', 0o700);
  mkdir('sticky', 0o1777);
  mkdir('ro-dir');
  file('empty.txt', '');
  file('one-byte', 'x');
  file('small.txt', 'hello, bulwark\n');
  file('100k.bin', randomBytes(100 * 1024));
  file('compressible.txt', 'all work and no play makes jack a dull boy\n'.repeat(5000));
  file('nested/a.txt', 'file a\n');
  file('nested/deep/b.log', 'a log line\n'.repeat(100));
  file('nested/deep/deeper/c.bin', randomBytes(3000));
  file('private/secret', 'only the owner reads this\n', 0o600);
  file('run.sh', '#!/bin/sh\necho hi\n', 0o755);
  file('readonly.txt', 'read only\n', 0o444);
  file('with space.txt', 'spaces\n');
  file('ünïcødé-日本語.txt', 'unicode name\n');
  file('-leading-dash', 'dash\n');
  file('weird #$%&()[]{}!;\'=.txt', 'punctuation\n');
  file('ro-dir/inside.txt', 'in a read-only directory\n', 0o400);
  fs.chmodSync(p('ro-dir'), 0o555);
  // Hard links: a pair within one directory and across directories.
  file('hl-first', 'hard linked content\n');
  fs.linkSync(p('hl-first'), p('nested/hl-second'));
  info.files.push('nested/hl-second');
  // Symlinks: relative, absolute, dangling, to a directory.
  fs.symlinkSync('small.txt', p('link-rel'));
  fs.symlinkSync(p('nested/a.txt'), p('link-abs'));
  fs.symlinkSync('does/not/exist', p('link-dangling'));
  fs.symlinkSync('../nested', p('nested/deep/link-dir'));
  info.symlinks.push('link-rel', 'link-abs', 'link-dangling', 'nested/deep/link-dir');
  if (big) {
    mkdir('big');
    writeRandomFile(p('big/random-20m.bin'), 20 * 1000 * 1000 + 12345);
    writeRandomFile(p('big/random-40m.bin'), 40 * 1024 * 1024 + 7);
    info.files.push('big/random-20m.bin', 'big/random-40m.bin');
    info.bytes += 20 * 1000 * 1000 + 12345 + 40 * 1024 * 1024 + 7;
    // Sparse: 64 MiB of holes with a few bytes in the middle.
    const fd = fs.openSync(p('big/sparse.img'), 'w');
    fs.ftruncateSync(fd, SPARSE_SIZE);
    fs.writeSync(fd, Buffer.from('in the middle of nowhere'), 0, 24, SPARSE_SIZE / 2 + 1234);
    fs.closeSync(fd);
    info.files.push('big/sparse.img');
    info.bytes += SPARSE_SIZE;
  }
  if (opts.fifo ?? true) {
    execFileSync('mkfifo', ['-m', '0640', p('nested/pipe')]);
    info.fifos.push('nested/pipe');
  }
  if (isRoot && (opts.owners ?? true)) {
    mkdir('owned', 0o750);
    file('owned/by-other', 'owned by 1234:5678\n', 0o640);
    fs.chownSync(p('owned/by-other'), 1234, 5678);
    fs.chownSync(p('owned'), 4321, 8765);
    fs.symlinkSync('by-other', p('owned/link-other'));
    fs.lchownSync(p('owned/link-other'), 2222, 3333);
    info.symlinks.push('owned/link-other');
    try {
      execFileSync('mknod', ['-m', '0600', p('owned/null-dev'), 'c', '1', '3'], { stdio: 'ignore' });
      info.devices.push('owned/null-dev');
    } catch {
      // no CAP_MKNOD in this container: leave the device out
    }
  }
  // Times: files first, then directories deepest first (creating entries changes a dir's mtime).
  for (const rel of [...info.files, ...info.symlinks, ...info.fifos, ...info.devices]) setTime(p(rel), tick());
  for (const rel of [...info.dirs].sort((a, b) => b.split('/').length - a.split('/').length)) setTime(p(rel), tick());
  setTime(dir, tick());
  return info;
}

interface Entry {
  rel: string;
  st: fs.BigIntStats;
}

function walk(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const visit = (rel: string): void => {
    const abs = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(abs, { bigint: true });
    out.set(rel, { rel, st });
    if (st.isDirectory()) for (const name of fs.readdirSync(abs).sort()) visit(rel === '' ? name : `${rel}/${name}`);
  };
  visit('');
  return out;
}

const kind = typeOf;

function sameBytes(a: string, b: string): boolean {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.allocUnsafe(1 << 20);
    const bb = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; ; ) {
      const na = fs.readSync(fa, ba, 0, ba.length, pos);
      const nb = fs.readSync(fb, bb, 0, bb.length, pos);
      if (na !== nb) return false;
      if (na === 0) return true;
      if (!ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      pos += na;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

export interface CompareOptions {
  /** Compare the roots' own mode/mtime/owner too (default true). */
  rootMeta?: boolean;
  /** Compare uid/gid (default true). */
  owners?: boolean;
}

/** Hard-link groups: sets of relative paths sharing an inode (only inodes with more than one path). */
function linkGroups(entries: Map<string, Entry>): string[][] {
  const byIno = new Map<string, string[]>();
  for (const e of entries.values()) {
    if (e.st.isDirectory()) continue;
    const key = `${e.st.dev}:${e.st.ino}`;
    byIno.set(key, [...(byIno.get(key) ?? []), e.rel]);
  }
  return [...byIno.values()]
    .filter((g) => g.length > 1)
    .map((g) => g.sort())
    .sort((x, y) => (x[0]! < y[0]! ? -1 : 1));
}

/**
 * Asserts that trees `a` (expected) and `b` (actual) are identical: same entries, types, bytes,
 * permission bits (incl. sticky), mtimes (within 1 ms), symlink targets, device numbers, hard-link
 * groups and link counts, and uid/gid.
 */
export function compareTrees(a: string, b: string, opts: CompareOptions = {}): void {
  const ea = walk(a);
  const eb = walk(b);
  assert.deepEqual([...eb.keys()].sort(), [...ea.keys()].sort(), `entries of ${b} differ from ${a}`);
  const problems: string[] = [];
  for (const [rel, { st: sa }] of ea) {
    const sb = eb.get(rel)!.st;
    const name = rel === '' ? '(root)' : rel;
    const ka = kind(sa);
    const kb = kind(sb);
    if (ka !== kb) {
      problems.push(`${name}: type ${kb}, expected ${ka}`);
      continue;
    }
    if (rel === '' && opts.rootMeta === false) continue;
    if (ka !== 'symlink' && (sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) {
      problems.push(`${name}: mode ${(sb.mode & 0o7777n).toString(8)}, expected ${(sa.mode & 0o7777n).toString(8)}`);
    }
    const dt = sa.mtimeNs > sb.mtimeNs ? sa.mtimeNs - sb.mtimeNs : sb.mtimeNs - sa.mtimeNs;
    if (dt >= 1_000_000n) problems.push(`${name}: mtime ${sb.mtimeNs}ns, expected ${sa.mtimeNs}ns`);
    if ((opts.owners ?? true) && (sa.uid !== sb.uid || sa.gid !== sb.gid)) {
      problems.push(`${name}: owner ${sb.uid}:${sb.gid}, expected ${sa.uid}:${sa.gid}`);
    }
    if (ka === 'file') {
      if (sa.size !== sb.size) problems.push(`${name}: size ${sb.size}, expected ${sa.size}`);
      else if (!sameBytes(path.join(a, rel), path.join(b, rel))) problems.push(`${name}: content differs`);
      if (sa.nlink !== sb.nlink) problems.push(`${name}: ${sb.nlink} links, expected ${sa.nlink}`);
    }
    if (ka === 'symlink') {
      const ta = fs.readlinkSync(path.join(a, rel));
      const tb = fs.readlinkSync(path.join(b, rel));
      if (ta !== tb) problems.push(`${name}: symlink target ${JSON.stringify(tb)}, expected ${JSON.stringify(ta)}`);
    }
    if ((ka === 'chardev' || ka === 'blockdev') && sa.rdev !== sb.rdev) problems.push(`${name}: rdev ${sb.rdev}, expected ${sa.rdev}`);
  }
  assert.deepEqual(problems, [], `trees differ:\n${problems.join('\n')}`);
  assert.deepEqual(linkGroups(eb), linkGroups(ea), 'hard-link structure differs');
}
