// forget and prune on real repositories: snapshots of an evolving tree share chunks; after forget +
// prune the repository must shrink, check --read-data clean, and every kept snapshot restore
// bit-identically. Prune is also failed and SIGKILLed at several points (each followed by check,
// restores and a successful re-run), and run beside a slow backup whose snapshot must survive.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBackup } from '../src/backup/backup.js';
import { checkRepository } from '../src/check/checker.js';
import { isBulwarkError } from '../src/errors.js';
import { parseMaxUnused, runPrune, type PruneResult } from '../src/repo/prune.js';
import { restoreSnapshot } from '../src/restore/restorer.js';
import { runForget } from '../src/snapshot/forget.js';
import { loadSnapshot } from '../src/snapshot/snapshot.js';
import { LocalStorage } from '../src/storage/local.js';
import { FaultyStorage } from '../src/storage/testkit/faulty.js';
import {
  assertSameTree,
  checkCli,
  cli,
  cliOk,
  describeRun,
  digestTree,
  DIST_SRC,
  initRepo,
  listNames,
  makeTmp,
  makeVariedTree,
  openRepo,
  PASSWORD,
  removeDir,
  sleep,
  totalSize,
} from './fault-helpers.js';
import { compareTrees } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * 1024;
const SMALL = { packSize: 1 * MiB, chunker: { min: 16 * KiB, avg: 64 * KiB, max: 256 * KiB } };

/** Step 1 creates the tree; later steps delete, add and change files (so snapshots share most chunks). */
function evolve(src: string, step: number): void {
  const p = (rel: string): string => path.join(src, rel);
  switch (step) {
    case 1:
      makeVariedTree(src);
      break;
    case 2:
      fs.rmSync(p('random/r3.bin'));
      fs.mkdirSync(p('new'), { recursive: true });
      fs.writeFileSync(p('new/n2.bin'), randomBytes(1500 * KiB));
      fs.appendFileSync(p('text/big.txt'), 'appended in step 2\n'.repeat(1000));
      break;
    case 3: {
      fs.rmSync(p('random/r0.bin'));
      const fd = fs.openSync(p('dup/a.bin'), 'r+');
      fs.writeSync(fd, randomBytes(100 * KiB), 0, 100 * KiB, 200 * KiB);
      fs.closeSync(fd);
      fs.writeFileSync(p('new/n3.bin'), randomBytes(800 * KiB));
      break;
    }
    default:
      fs.rmSync(p('new/n2.bin'));
      fs.writeFileSync(p('many/f00.dat'), randomBytes(50 * KiB));
  }
}

async function dataFiles(repo: string): Promise<string[]> {
  return (await listNames(new LocalStorage(repo), 'data')).map((o) => o.name);
}

describe('forget and prune through the CLI', () => {
  let base = '';
  let repo = '';
  let src = '';
  const ids: string[] = [];
  const copies: string[] = [];

  before(async () => {
    base = makeTmp('prune-cli');
    repo = path.join(base, 'repo');
    src = path.join(base, 'src');
    await initRepo(repo, SMALL);
    for (let step = 1; step <= 4; step++) {
      evolve(src, step);
      const r = await cliOk(['--json', 'backup', src], repo);
      ids.push((JSON.parse(r.stdout) as { id: string }).id);
      const copy = path.join(base, `copy-${step}`);
      execFileSync('cp', ['-a', src, copy]);
      copies.push(copy);
      await sleep(20); // distinct snapshot times
    }
  });

  after(() => {
    if (base !== '') removeDir(base);
  });

  it('forget without a policy removes nothing and says so', async () => {
    const r = await cliOk(['forget'], repo);
    assert.match(r.stderr, /no policy was specified, no snapshots will be removed/);
    assert.equal((await listNames(new LocalStorage(repo), 'snapshots')).length, 4);
  });

  it('forget --dry-run shows each kept snapshot with its reasons and each removed one, and removes nothing', async () => {
    const before = await listNames(new LocalStorage(repo), 'snapshots');
    const r = await cliOk(['--json', 'forget', '--keep-last', '2', '--keep-daily', '1', '--dry-run'], repo);
    const out = JSON.parse(r.stdout) as { dryRun: boolean; groups: Array<{ key: string; keep: Array<{ id: string; reasons: string[] }>; remove: Array<{ id: string }> }>; removed: string[] };
    assert.equal(out.dryRun, true);
    assert.equal(out.groups.length, 1);
    const g = out.groups[0]!;
    assert.match(g.key, /^host=\S+ paths=\[.*src\]$/);
    assert.deepEqual(
      g.keep.map((k) => [k.id, k.reasons]),
      [
        [ids[3], ['last snapshot', 'daily snapshot']],
        [ids[2], ['last snapshot']],
      ],
    );
    assert.deepEqual(g.remove.map((s) => s.id).sort(), [ids[0], ids[1]].sort());
    assert.deepEqual(await listNames(new LocalStorage(repo), 'snapshots'), before, 'a dry run removes nothing');
    const text = await cliOk(['forget', '--keep-last', '2', '--dry-run'], repo);
    assert.match(text.stdout, /keep 2 snapshot\(s\):[\s\S]*last snapshot[\s\S]*remove 2 snapshot\(s\)/);
    assert.match(text.stdout, /dry run, nothing changed/);
  });

  let dataBefore = 0;
  it('forget --keep-last 2 removes the two oldest snapshot documents; prune --dry-run plans and changes nothing', async () => {
    const r = await cliOk(['--json', 'forget', '--keep-last', '2'], repo);
    const out = JSON.parse(r.stdout) as { removed: string[] };
    assert.deepEqual(out.removed.sort(), [ids[0], ids[1]].sort());
    assert.deepEqual((await listNames(new LocalStorage(repo), 'snapshots')).map((o) => o.name).sort(), [ids[2], ids[3]].sort());

    dataBefore = await totalSize(new LocalStorage(repo), 'data');
    const packsBefore = await dataFiles(repo);
    const indexBefore = await listNames(new LocalStorage(repo), 'index');
    const dry = JSON.parse((await cliOk(['--json', 'prune', '--dry-run', '--max-unused', '0%'], repo)).stdout) as PruneResult;
    assert.equal(dry.dryRun, true);
    assert.ok(dry.toDelete.length > 0, 'packs only the forgotten snapshots used are planned for deletion');
    assert.ok(dry.toRepack.length > 0, 'partly used packs are planned for repacking');
    assert.ok(dry.bytes.freed > 3 * MiB, `planned to free ${dry.bytes.freed} bytes`);
    assert.deepEqual(await dataFiles(repo), packsBefore);
    assert.deepEqual(await listNames(new LocalStorage(repo), 'index'), indexBefore);
    const unlimited = JSON.parse((await cliOk(['--json', 'prune', '--dry-run', '--max-unused', 'unlimited'], repo)).stdout) as PruneResult;
    assert.ok(unlimited.toRepack.every((p) => p.type === 'tree'), '--max-unused unlimited repacks tree packs only');
    assert.ok(unlimited.toRepack.length > 0, 'tree packs with garbage are always repacked');
    const text = await cliOk(['prune', '--dry-run'], repo);
    assert.match(text.stdout, /would delete \d+ pack\(s\)/);
  });

  it('prune --max-unused 0% shrinks the repository; check --read-data is clean; kept snapshots restore bit-identically', async (t) => {
    const r = await cliOk(['--json', 'prune', '--max-unused', '0%'], repo);
    const out = JSON.parse(r.stdout) as PruneResult;
    const dataAfter = await totalSize(new LocalStorage(repo), 'data');
    t.diagnostic(`repository data: ${dataBefore} bytes before prune, ${dataAfter} after (${out.toDelete.length} packs deleted, ${out.toRepack.length} repacked into ${out.packs.written})`);
    assert.ok(dataAfter < dataBefore - 3 * MiB, `data went from ${dataBefore} to ${dataAfter} bytes`);
    assert.equal(out.bytes.after, dataAfter);
    assert.equal(out.bytes.unusedAfter, 0);
    assert.ok(out.packs.repacked > 0 && out.packs.written > 0);

    const { run, result } = await checkCli(repo, '--read-data');
    assert.equal(run.code, 0, describeRun(['check', '--read-data'], run));
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.warnings, []);
    assert.equal(result.snapshots, 2);

    for (const i of [2, 3]) {
      const target = path.join(base, `restore-${i}`);
      await cliOk(['--json', 'restore', ids[i]!, '--target', target], repo);
      compareTrees(copies[i]!, path.join(target, src));
      removeDir(target);
    }
  });

  it('a second prune finds nothing to do', async () => {
    const out = JSON.parse((await cliOk(['--json', 'prune', '--max-unused', '0%'], repo)).stdout) as PruneResult;
    assert.deepEqual([out.toDelete.length, out.toRepack.length, out.unindexed.length, out.bytes.freed], [0, 0, 0, 0]);
    assert.equal(out.blobs.unused, 0);
  });

  it('forget ID --prune removes that snapshot and its data at once', async () => {
    const before = await totalSize(new LocalStorage(repo), 'data');
    const r = await cliOk(['--json', 'forget', ids[2]!.slice(0, 10), '--prune', '--max-unused', '0%'], repo);
    const out = JSON.parse(r.stdout) as { removed: string[]; prune: PruneResult };
    assert.deepEqual(out.removed, [ids[2]]);
    assert.ok(out.prune.bytes.freed > 0, 'n2.bin, only in the removed snapshot, is gone');
    assert.ok((await totalSize(new LocalStorage(repo), 'data')) < before);
    const { result } = await checkCli(repo, '--read-data');
    assert.deepEqual(result.errors, []);
    assert.equal(result.snapshots, 1);
    const target = path.join(base, 'restore-last');
    await cliOk(['--json', 'restore', ids[3]!, '--target', target], repo);
    compareTrees(copies[3]!, path.join(target, src));
    removeDir(target);
  });

  it('bad flags are usage errors', async () => {
    for (const args of [
      ['forget', '--keep-daily', 'x'],
      ['forget', '--keep-within', '3w'],
      ['forget', '--group-by', 'user'],
      ['prune', '--max-unused', 'lots'],
      ['forget', ids[3]!, '--keep-last', '1'],
    ]) {
      const r = await cli(['--json', ...args], repo);
      assert.equal(r.code, 2, describeRun(args, r));
    }
  });
});

describe('parseMaxUnused', () => {
  it('accepts percentages, sizes and unlimited, like restic', () => {
    assert.deepEqual(parseMaxUnused('5%'), { kind: 'percent', value: 5 });
    assert.deepEqual(parseMaxUnused('unlimited'), { kind: 'unlimited' });
    assert.deepEqual(parseMaxUnused('10M'), { kind: 'bytes', value: 10 * MiB });
    assert.deepEqual(parseMaxUnused('2g'), { kind: 'bytes', value: 2 * 1024 * MiB });
    assert.deepEqual(parseMaxUnused('1234'), { kind: 'bytes', value: 1234 });
    assert.throws(() => parseMaxUnused('5 percent'), /max-unused/);
    assert.throws(() => parseMaxUnused('150%'), /max-unused/);
  });
});

/** A repository with three snapshots of an evolving tree, the oldest forgotten (garbage to prune). */
async function makeTemplate(dir: string): Promise<{ repo: string; src: string; kept: Array<{ id: string; digest: Map<string, string> }> }> {
  const repo = path.join(dir, 'template');
  const src = path.join(dir, 'src');
  const r = await initRepo(repo, SMALL);
  const kept: Array<{ id: string; digest: Map<string, string> }> = [];
  for (let step = 1; step <= 3; step++) {
    evolve(src, step);
    const b = await runBackup(r, { paths: [src], threads: 2 });
    kept.push({ id: b.id, digest: digestTree(src) });
    await sleep(20);
  }
  const f = await runForget(await openRepo(repo), { last: 2 });
  assert.equal(f.removed.length, 1);
  kept.shift();
  return { repo, src, kept };
}

describe('prune interrupted part-way', () => {
  let base = '';
  let template = { repo: '', src: '', kept: [] as Array<{ id: string; digest: Map<string, string> }> };
  let n = 0;

  before(async () => {
    base = makeTmp('prune-kill');
    template = await makeTemplate(base);
  });

  after(() => {
    if (base !== '') removeDir(base);
  });

  function freshCopy(): string {
    const dir = path.join(base, `case-${++n}`);
    execFileSync('cp', ['-a', template.repo, dir]);
    return dir;
  }

  async function assertHealthy(root: string, what: string, readData = false): Promise<void> {
    const repo = await openRepo(root);
    const res = await checkRepository(repo, { readData });
    assert.deepEqual(res.errors, [], `${what}: check errors`);
    for (const w of res.warnings) assert.equal(w.code, 'PACK_UNINDEXED', `${what}: only unindexed-pack warnings: ${JSON.stringify(w)}`);
    assert.equal(res.snapshots, template.kept.length, `${what}: kept snapshots`);
    for (const k of template.kept) {
      const target = path.join(base, `restore-${n}-${k.id.slice(0, 6)}`);
      const r = await restoreSnapshot(repo, await loadSnapshot(repo, k.id), { target, threads: 2 });
      assert.deepEqual(r.errors, [], `${what}: restore errors`);
      assertSameTree(k.digest, path.join(target, template.src), `${what}: snapshot ${k.id.slice(0, 8)}`);
      removeDir(target);
    }
  }

  /** After an interrupted run: healthy; then a re-run completes, shrinks the repository and leaves no warnings. */
  async function assertRecovers(root: string, what: string, templateBytes: number): Promise<void> {
    await assertHealthy(root, `${what}, after the interruption`);
    const r = await runPrune(await openRepo(root), { maxUnused: { kind: 'percent', value: 0 } });
    assert.equal(r.dryRun, false);
    const res = await checkRepository(await openRepo(root), { readData: true });
    assert.deepEqual(res.errors, [], `${what}: re-run`);
    assert.deepEqual(res.warnings, [], `${what}: the re-run removed every leftover`);
    await assertHealthy(root, `${what}, after the re-run`);
    const after = await totalSize(new LocalStorage(root), 'data');
    assert.ok(after < templateBytes - MiB, `${what}: ${templateBytes} -> ${after} bytes`);
    assert.deepEqual(await listNames(new LocalStorage(root), 'locks'), [], `${what}: no lock left`);
  }

  const faults: Array<{ name: string; arm: (f: FaultyStorage) => void }> = [
    {
      name: 'the 2nd pack written while repacking fails',
      arm: (f) => {
        let k = 0;
        f.failWhen('write', (c) => c.kind === 'data' && ++k === 2, { retryable: false });
      },
    },
    {
      name: 'a simulated crash after 10 KiB of writes (while repacking)',
      arm: (f) => f.crashAfterBytes(10 * KiB),
    },
    {
      name: 'writing the new index fails (after repacking)',
      arm: (f) => {
        let k = 0;
        f.failWhen('write', (c) => c.kind === 'index' && ++k === 2, { retryable: false });
      },
    },
    {
      name: 'the 2nd delete of an old index file fails',
      arm: (f) => {
        let k = 0;
        f.failWhen('delete', (c) => c.kind === 'index' && ++k === 2, { retryable: false });
      },
    },
    {
      name: 'the 3rd pack delete fails',
      arm: (f) => {
        let k = 0;
        f.failWhen('delete', (c) => c.kind === 'data' && ++k === 3, { retryable: false });
      },
    },
  ];

  for (const fault of faults) {
    it(`${fault.name}: the kept snapshots stay whole, and a re-run completes`, async () => {
      const root = freshCopy();
      const bytes = await totalSize(new LocalStorage(root), 'data');
      const faulty = new FaultyStorage(new LocalStorage(root));
      fault.arm(faulty);
      let failed: unknown;
      try {
        await runPrune(await openRepo(faulty), { maxUnused: { kind: 'percent', value: 0 } });
      } catch (err) {
        failed = err;
      }
      assert.ok(isBulwarkError(failed), `prune should have failed: ${String(failed)}`);
      await assertRecovers(root, fault.name, bytes);
    });
  }

  /** Runs prune in a child process that SIGKILLs itself at the `nth` storage call matching kind/method. */
  async function killedPrune(root: string, method: 'delete' | 'write', kind: string, nth: number): Promise<void> {
    const script = path.join(base, `kill-${n}.mjs`);
    fs.writeFileSync(
      script,
      `import { LocalStorage } from ${JSON.stringify(path.join(DIST_SRC, 'storage/local.js'))};
import { FaultyStorage } from ${JSON.stringify(path.join(DIST_SRC, 'storage/testkit/faulty.js'))};
import { Repository } from ${JSON.stringify(path.join(DIST_SRC, 'repo/repository.js'))};
import { runPrune } from ${JSON.stringify(path.join(DIST_SRC, 'repo/prune.js'))};
const f = new FaultyStorage(new LocalStorage(process.argv[2]));
let k = 0;
f.failWhen(${JSON.stringify(method)}, (c) => { if (c.kind === ${JSON.stringify(kind)} && ++k === ${nth}) process.kill(process.pid, 'SIGKILL'); return false; });
const repo = await Repository.open(f, process.env.PW);
await runPrune(repo, { maxUnused: { kind: 'percent', value: 0 } });
`,
    );
    const child = spawn(process.execPath, [script, root], { env: { ...process.env, PW: PASSWORD }, stdio: 'ignore' });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_c, s) => resolve(s)));
    assert.equal(signal, 'SIGKILL', 'the prune process was killed at the chosen point');
  }

  for (const point of [
    { name: 'SIGKILL before the repacked packs are indexed', method: 'write' as const, kind: 'index', nth: 1 },
    { name: 'SIGKILL at the first index delete (new index written, old ones all present)', method: 'delete' as const, kind: 'index', nth: 1 },
    { name: 'SIGKILL at the 2nd pack delete (old index files gone)', method: 'delete' as const, kind: 'data', nth: 2 },
  ]) {
    it(`${point.name}: check clean, kept snapshots restore, a re-run completes`, async () => {
      const root = freshCopy();
      const bytes = await totalSize(new LocalStorage(root), 'data');
      await killedPrune(root, point.method, point.kind, point.nth);
      await assertRecovers(root, point.name, bytes);
    });
  }
});

describe('prune refusing, racing another prune, and leftovers of killed backups', () => {
  let base = '';
  let template = { repo: '', src: '', kept: [] as Array<{ id: string; digest: Map<string, string> }> };
  let n = 0;

  before(async () => {
    base = makeTmp('prune-misc');
    template = await makeTemplate(base);
  });

  after(() => {
    if (base !== '') removeDir(base);
  });

  function freshCopy(): string {
    const dir = path.join(base, `case-${++n}`);
    execFileSync('cp', ['-a', template.repo, dir]);
    return dir;
  }

  async function restoresAll(root: string, what: string): Promise<void> {
    const repo = await openRepo(root);
    for (const k of template.kept) {
      const target = path.join(base, `restore-${n}-${k.id.slice(0, 6)}`);
      const r = await restoreSnapshot(repo, await loadSnapshot(repo, k.id), { target, threads: 2 });
      assert.deepEqual(r.errors, [], what);
      assertSameTree(k.digest, path.join(target, template.src), `${what}: snapshot ${k.id.slice(0, 8)}`);
      removeDir(target);
    }
  }

  it('a damaged snapshot document makes prune refuse (PRUNE_UNSAFE) before anything is deleted', async () => {
    const root = freshCopy();
    const snaps = await listNames(new LocalStorage(root), 'snapshots');
    const file = path.join(root, 'snapshots', snaps[0]!.name);
    fs.chmodSync(file, 0o600);
    fs.writeFileSync(file, randomBytes(200));
    const packs = await dataFiles(root);
    const index = await listNames(new LocalStorage(root), 'index');
    await assert.rejects(runPrune(await openRepo(root), { maxUnused: { kind: 'percent', value: 0 } }), (err: unknown) => isBulwarkError(err, 'PRUNE_UNSAFE'));
    assert.deepEqual(await dataFiles(root), packs);
    assert.deepEqual(await listNames(new LocalStorage(root), 'index'), index);
  });

  it('an append-only repository opened without its token: prune and forget refuse before writing anything', async () => {
    const root = path.join(base, `append-only-${++n}`);
    const src = path.join(base, 'ao-src');
    makeVariedTree(src);
    const r = await initRepo(root, { ...SMALL, deleteToken: 'token' });
    const s1 = await runBackup(r, { paths: [src], threads: 2 });
    fs.rmSync(path.join(src, 'random'), { recursive: true });
    await runBackup(await openRepo(root), { paths: [src], threads: 2 });
    const repo = await openRepo(root);
    assert.equal(repo.appendOnly, true);
    const packs = await dataFiles(root);
    const index = await listNames(new LocalStorage(root), 'index');
    await assert.rejects(runForget(repo, {}, { ids: [s1.id] }), (err: unknown) => isBulwarkError(err, 'APPEND_ONLY'));
    await assert.rejects(runPrune(repo, { maxUnused: { kind: 'percent', value: 0 } }), (err: unknown) => isBulwarkError(err, 'APPEND_ONLY'));
    assert.equal((await runForget(repo, { last: 1 }, { dryRun: true })).removed.length, 1, 'a dry run still plans');
    assert.deepEqual(await dataFiles(root), packs);
    assert.deepEqual(await listNames(new LocalStorage(root), 'index'), index);
    assert.equal((await listNames(new LocalStorage(root), 'snapshots')).length, 2);
  });

  it('packs left unindexed by a killed backup are deleted; nothing else a snapshot needs is', async () => {
    const root = freshCopy();
    // A backup whose index write fails leaves its packs unindexed (what a kill leaves behind).
    const extra = path.join(base, 'extra');
    fs.mkdirSync(extra, { recursive: true });
    fs.writeFileSync(path.join(extra, 'x.bin'), randomBytes(2 * MiB));
    const faulty = new FaultyStorage(new LocalStorage(root)).failWhen('write', (c) => c.kind === 'index', { retryable: false });
    await assert.rejects(runBackup(await openRepo(faulty), { paths: [extra], threads: 2 }));
    const warned = (await checkRepository(await openRepo(root), {})).warnings.filter((w) => w.code === 'PACK_UNINDEXED').length;
    assert.ok(warned > 0, 'the failed backup left unindexed packs');
    const r = await runPrune(await openRepo(root), { maxUnused: { kind: 'percent', value: 0 } });
    assert.equal(r.packs.unindexedDeleted, warned);
    const res = await checkRepository(await openRepo(root), { readData: true });
    assert.deepEqual(res.errors, []);
    assert.deepEqual(res.warnings, []);
    await restoresAll(root, 'after deleting leftovers');
  });

  it('two prunes racing: one completes, the other stops with REPO_CHANGED before deleting; the repository stays whole', { timeout: 120_000 }, async () => {
    const root = freshCopy();
    let bAtExclusive!: () => void;
    const reached = new Promise<void>((r) => (bAtExclusive = r));
    let b: Promise<PruneResult> | undefined;
    const opts = { maxUnused: { kind: 'percent' as const, value: 0 }, lockWaitMs: 60_000 };
    const a = runPrune(await openRepo(root), {
      ...opts,
      beforeExclusive: async () => {
        // B runs its whole first phase while A holds its shared lock, from the same old index.
        b = runPrune(await openRepo(root), { ...opts, beforeExclusive: async () => bAtExclusive() });
        await reached;
      },
    });
    const results = await Promise.allSettled([a, (async () => {
      await reached;
      return b!;
    })()]);
    const ok = results.filter((x) => x.status === 'fulfilled');
    const failed = results.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
    assert.equal(ok.length, 1, JSON.stringify(results.map((x) => (x.status === 'rejected' ? String(x.reason) : 'ok'))));
    assert.ok(isBulwarkError(failed[0]!.reason, 'REPO_CHANGED'), String(failed[0]!.reason));
    const res = await checkRepository(await openRepo(root), { readData: true });
    assert.deepEqual(res.errors, []);
    assert.deepEqual(res.warnings, []);
    await restoresAll(root, 'after the race');
    // B planned from A's repacked packs too (A's phase-1 index was there); whichever lost, a re-run
    // completes and a further one finds nothing left to do.
    await runPrune(await openRepo(root), { maxUnused: { kind: 'percent', value: 0 } });
    const third = await runPrune(await openRepo(root), { maxUnused: { kind: 'percent', value: 0 } });
    assert.deepEqual([third.toDelete.length, third.toRepack.length, third.blobs.duplicates], [0, 0, 0]);
    await restoresAll(root, 'after cleaning up duplicates');
  });
});

describe('prune beside a running backup', () => {
  let base = '';
  before(() => {
    base = makeTmp('prune-conc');
  });
  after(() => {
    if (base !== '') removeDir(base);
  });

  it('a slow backup that dedups against garbage finishes first; its snapshot stays intact', { timeout: 120_000 }, async () => {
    const root = path.join(base, 'repo');
    const srcA = path.join(base, 'a');
    const srcB = path.join(base, 'b');
    makeVariedTree(srcA);
    makeVariedTree(srcB);
    const r = await initRepo(root, SMALL);
    const s1 = await runBackup(r, { paths: [srcA], threads: 2 });
    const s2 = await runBackup(await openRepo(root), { paths: [srcB], threads: 2 });
    await runForget(await openRepo(root), {}, { ids: [s1.id] });
    // The same files again plus new data, through storage that is slow to write packs: the backup
    // dedups srcA's chunks against packs that prune, starting meanwhile, plans to delete.
    fs.writeFileSync(path.join(srcA, 'extra.bin'), randomBytes(3 * MiB));
    fs.rmSync(path.join(srcA, 'random/r3.bin')); // garbage once s1 is forgotten
    const digestA = digestTree(srcA);
    const slow = new FaultyStorage(new LocalStorage(root)).delay('write', 250, (c) => c.kind === 'data' || c.kind === 'snapshots');
    const backup = runBackup(await openRepo(slow), { paths: [srcA], threads: 2 });
    for (let i = 0; (await listNames(new LocalStorage(root), 'locks')).length === 0; i++) {
      assert.ok(i < 500, 'the backup took its lock');
      await sleep(10);
    }
    const prune = runPrune(await openRepo(root), { maxUnused: { kind: 'percent', value: 0 }, lockWaitMs: 60_000 });
    const [b, p] = await Promise.all([backup, prune]);
    assert.equal(p.newSnapshots, 1, 'the backup finished while prune waited for the exclusive lock');
    assert.ok(p.packs.keptForNewSnapshots > 0, 'packs the new snapshot needs were taken off the deletion plan');
    assert.ok(p.toDelete.length + p.toRepack.length > 0, 'prune still removed garbage');
    const res = await checkRepository(await openRepo(root), { readData: true });
    assert.deepEqual(res.errors, []);
    assert.equal(res.snapshots, 2);
    const repo = await openRepo(root);
    for (const [id, digest, src] of [
      [b.id, digestA, srcA],
      [s2.id, digestTree(srcB), srcB],
    ] as const) {
      const target = path.join(base, `restore-${id.slice(0, 6)}`);
      const rr = await restoreSnapshot(repo, await loadSnapshot(repo, id), { target, threads: 2 });
      assert.deepEqual(rr.errors, []);
      assertSameTree(digest, path.join(target, src), `snapshot ${id.slice(0, 8)}`);
    }
  });
});
