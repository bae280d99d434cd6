// Helpers for the fault tests (corruption, crash, locks): temp directories, running the CLI, making
// varied source trees, comparing trees, and looking inside a local repository (packs, blobs of files).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Repository, type InitOptions } from '../src/repo/repository.js';
import type { Snapshot } from '../src/snapshot/snapshot.js';
import { LocalStorage } from '../src/storage/local.js';
import type { Storage } from '../src/storage/storage.js';
import { walkTree } from '../src/tree/tree-reader.js';
import { jsonError } from './helpers.js';

export const FH_CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
/** dist/src, for child scripts that import the library. */
export const DIST_SRC = fileURLToPath(new URL('../src/', import.meta.url));
export const PASSWORD = 'correct horse battery staple';
export const CHEAP_KDF = { N: 1024, r: 8, p: 1 };

export function makeTmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `bulwark-${prefix}-`));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export function cliEnv(repo: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BULWARK_') && !k.startsWith('NODE_TEST')) env[k] = v;
  return { ...env, BULWARK_KDF_N: '1024', BULWARK_REPO: repo, BULWARK_PASSWORD: PASSWORD, ...extra };
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts the CLI; `done` resolves when it exits. */
export function startCli(args: readonly string[], repo: string, extra: Record<string, string> = {}): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [FH_CLI, ...args], { env: cliEnv(repo, extra), stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
  return { child, done };
}

export function cli(args: readonly string[], repo: string, extra: Record<string, string> = {}): Promise<Run> {
  return startCli(args, repo, extra).done;
}

export function describeRun(args: readonly string[], r: Run): string {
  return `bulwark ${args.join(' ')} -> ${String(r.code)}${r.signal !== null ? ` (${r.signal})` : ''}\nstdout: ${r.stdout.slice(0, 3000)}\nstderr: ${r.stderr.slice(0, 3000)}`;
}

export async function cliOk(args: readonly string[], repo: string, extra: Record<string, string> = {}): Promise<Run> {
  const r = await cli(args, repo, extra);
  assert.equal(r.code, 0, describeRun(args, r));
  return r;
}

export interface JsonError {
  code: string;
  message: string;
  subject?: string;
}

/** The `{"error": ...}` line a --json run writes to stderr. */
export function errorOf(r: Run): JsonError {
  return jsonError(r);
}

export interface CheckJson {
  ok: boolean;
  errors: Array<{ code: string; subject: string; message: string }>;
  warnings: Array<{ code: string; subject: string; message: string }>;
  snapshots: number;
  packs: number;
  packsRead: number;
  bytesRead: number;
}

export async function checkCli(repo: string, ...flags: string[]): Promise<{ run: Run; result: CheckJson }> {
  const args = ['--json', 'check', ...flags];
  const run = await cli(args, repo);
  let result: CheckJson;
  try {
    result = JSON.parse(run.stdout) as CheckJson;
  } catch {
    assert.fail(`check printed no JSON result: ${describeRun(args, run)}`);
  }
  return { run, result };
}

export function localStorage(root: string): LocalStorage {
  return new LocalStorage(root);
}

export async function initRepo(root: string, opts: InitOptions = {}): Promise<Repository> {
  return Repository.init(new LocalStorage(root), PASSWORD, { kdf: CHEAP_KDF, ...opts });
}

export async function openRepo(root: string | Storage): Promise<Repository> {
  return Repository.open(typeof root === 'string' ? new LocalStorage(root) : root, PASSWORD);
}

export async function listNames(storage: Storage, kind: 'data' | 'index' | 'snapshots' | 'locks'): Promise<Array<{ name: string; size: number }>> {
  const out: Array<{ name: string; size: number }> = [];
  for await (const o of storage.list(kind)) out.push(o);
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

export async function totalSize(storage: Storage, kind: 'data' | 'index'): Promise<number> {
  let n = 0;
  for (const o of await listNames(storage, kind)) n += o.size;
  return n;
}

/** Makes a tree of varied files in `dir`: random, compressible text, zero runs, tiny and empty files, nested dirs. */
export function makeVariedTree(dir: string, scale = 1): number {
  let bytes = 0;
  const write = (rel: string, data: Buffer): void => {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
    bytes += data.length;
  };
  const tag = randomBytes(8).toString('hex');
  const sizes = [700_000, 300_000, 90_000, 3_000_000].map((s) => Math.round(s * scale));
  sizes.forEach((s, i) => write(`random/r${i}.bin`, randomBytes(s)));
  const line = (i: number): string => `${tag} line ${i}: the quick brown fox jumps over the lazy dog ${(i * 7919) % 1000}\n`;
  let text = '';
  for (let i = 0; text.length < 600_000 * scale; i++) text += line(i);
  write('text/big.txt', Buffer.from(text));
  write('text/nested/deeper/small.txt', Buffer.from(`${tag} small\n`));
  const zeros = Buffer.alloc(Math.round(400_000 * scale));
  randomBytes(64).copy(zeros, 100_000);
  write('zero/mostly-zero.bin', zeros);
  for (let i = 0; i < 20; i++) write(`many/f${String(i).padStart(2, '0')}.dat`, randomBytes(1000 + i * 3000));
  write('empty', Buffer.alloc(0));
  // Two files sharing most content (dedup inside one snapshot).
  const shared = randomBytes(Math.round(500_000 * scale));
  write('dup/a.bin', shared);
  write('dup/b.bin', Buffer.concat([shared, Buffer.from(tag)]));
  return bytes;
}

/** relative path -> sha256 of every regular file, plus "dir" markers for directories. */
export function digestTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        out.set(r, 'dir');
        walk(r);
      } else if (e.isFile()) {
        out.set(r, createHash('sha256').update(fs.readFileSync(path.join(dir, r))).digest('hex'));
      } else {
        out.set(r, 'other');
      }
    }
  };
  walk('');
  return out;
}

/** Where a restore of absolute source path `src` lands under `target` (the snapshot keeps full paths). */
export function restoredPath(target: string, src: string): string {
  return path.join(target, src);
}

export function assertSameTree(expected: Map<string, string>, actualDir: string, what: string): void {
  const actual = digestTree(actualDir);
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: file list differs`);
  for (const [k, v] of expected) assert.equal(actual.get(k), v, `${what}: ${k} differs`);
}

/** Absolute snapshot path of every regular file -> its blob IDs (hex). */
export async function fileBlobs(repo: Repository, snap: Snapshot): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  await walkTree(repo, snap.tree, '/', (p, n) => {
    if (n.type === 'file') out.set(p, n.content ?? []);
  });
  return out;
}

/** Every tree blob ID reachable from a snapshot. */
export async function treeBlobs(repo: Repository, snap: Snapshot): Promise<Set<string>> {
  const out = new Set<string>([snap.tree]);
  await walkTree(repo, snap.tree, '/', (_p, n) => {
    if (n.type === 'dir' && n.subtree !== undefined) out.add(n.subtree);
  });
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
