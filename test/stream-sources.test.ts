// "Any command" sources: a command's stdout as one file of a snapshot, and failing commands.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jsonError, rmrf, runCli, runOk, sha256, tmpdir } from './helpers.js';

describe('backup --stdin-from-command', () => {
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    dir = tmpdir('bulwark-cmd-');
    env = { BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'cmd-pw' };
    await runOk(['init'], env);
  });
  after(() => rmrf(dir));

  test('stores the command output, bit for bit, with the command recorded', async () => {
    // 40 MiB of pseudo-random bytes from a fixed seed: several chunks, several packs.
    const cmd = ['sh', '-c', 'openssl enc -aes-128-ctr -pass pass:seed -nosalt -pbkdf2 < /dev/zero 2>/dev/null | head -c 41943040'];
    const r = await runOk(['backup', '--stdin-from-command', '--stdin-filename', 'out.bin', '--tag', 'cmd', '--json', '--', ...cmd], env);
    const snap = JSON.parse(r.stdout) as { id: string; snapshot: { paths: string[]; tags: string[]; source: { engine: string; items: Array<{ size: number; meta: { command: string } }> } } };
    assert.deepEqual(snap.snapshot.paths, ['/out.bin']);
    assert.equal(snap.snapshot.source.engine, 'command');
    assert.equal(snap.snapshot.source.items[0]?.size, 41943040);
    assert.match(snap.snapshot.source.items[0]!.meta.command, /^sh -c openssl/);
    const dumped = await runOk(['dump', snap.id, 'out.bin'], env);
    const again = await runCli(['backup', '--stdin-from-command', '--json', '--', 'true'], env);
    assert.equal(again.code, 0);
    const { execFileSync } = await import('node:child_process');
    const direct = execFileSync(cmd[0]!, cmd.slice(1), { maxBuffer: 64 << 20 });
    assert.equal(sha256(dumped.stdoutBuf), sha256(direct));
  });

  test('a failing or missing command saves no snapshot', async () => {
    const count = async (): Promise<number> => (JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[]).length;
    const n = await count();
    const r = await runCli(['backup', '--stdin-from-command', '--json', '--', 'sh', '-c', 'head -c 3000000 /dev/urandom; echo broken >&2; exit 3'], env);
    assert.equal(r.code, 1);
    const e = jsonError(r);
    assert.equal(e.code, 'DUMP_FAILED');
    assert.match(e.message, /status 3: broken/);
    const m = await runCli(['backup', '--stdin-from-command', '--json', '--', 'no-such-command-xyz'], env);
    assert.equal(jsonError(m).code, 'TOOL_MISSING');
    assert.equal(await count(), n);
    await runOk(['check', '--read-data'], env);
  });

  test('a full repository disk stops the command and reports DISK_FULL (no hang)', { skip: process.getuid?.() !== 0 ? 'needs root to mount a small tmpfs' : false }, async () => {
    const { execFileSync } = await import('node:child_process');
    const mnt = path.join(dir, 'small');
    const fs = await import('node:fs');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
    try {
      const small = { BULWARK_REPO: path.join(mnt, 'repo'), BULWARK_PASSWORD: 'small-pw' };
      await runOk(['init'], small);
      const started = Date.now();
      const r = await runCli(['backup', '--stdin-from-command', '--json', '--', 'head', '-c', '200000000', '/dev/urandom'], small, { timeoutMs: 60_000 });
      assert.equal(r.code, 1, r.stderr);
      assert.equal(jsonError(r).code, 'DISK_FULL');
      assert.ok(Date.now() - started < 30_000, 'took too long to fail');
      assert.equal((JSON.parse((await runOk(['snapshots', '--json'], small)).stdout) as unknown[]).length, 0);
      const tmp = path.join(mnt, 'repo', 'tmp');
      assert.deepEqual(fs.existsSync(tmp) ? fs.readdirSync(tmp) : [], [], 'temp pack files left behind');
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describe('stream backups with several producers', () => {
  let dir: string;
  before(() => {
    dir = tmpdir('bulwark-streams-');
  });
  after(() => rmrf(dir));

  test('capture side by side; one failing producer stops the others, saves nothing, and the next run works', async () => {
    const { Repository } = await import('../src/repo/repository.js');
    const { LocalStorage } = await import('../src/storage/local.js');
    const { runStreamBackup } = await import('../src/backup/stream-backup.js');
    const { listSnapshots } = await import('../src/snapshot/snapshot.js');
    const { runTool } = await import('../src/sources/process.js');
    const storage = new LocalStorage(path.join(dir, 'repo'));
    await Repository.init(storage, 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
    const repo = await Repository.open(storage, 'pw');
    const tool = (what: string, script: string) => ({
      name: what,
      produce: async (fd: number, signal: AbortSignal) => {
        await runTool('sh', ['-c', script], { stdout: fd, signal, what, failCode: 'DUMP_FAILED' });
      },
    });
    // An endless producer beside one that fails after a few megabytes: without the stop, the
    // endless one would keep writing into a pipe nobody reads and the run would never end.
    const started = Date.now();
    await assert.rejects(
      runStreamBackup(repo, { items: [tool('endless', 'cat /dev/zero'), tool('failing', 'head -c 3000000 /dev/urandom; exit 4')], paths: ['/x'], threads: 2 }),
      (err: Error & { code?: string }) => err.code === 'DUMP_FAILED' && /failing/.test(err.message),
    );
    assert.ok(Date.now() - started < 30_000);
    assert.equal((await listSnapshots(repo)).length, 0);
    // Three producers on two workers: all captured, each byte for byte.
    const r = await runStreamBackup(repo, {
      items: [tool('a', 'head -c 5000000 /dev/zero | tr "\\0" a'), tool('b', 'head -c 7000000 /dev/zero | tr "\\0" b'), tool('c', 'printf small')],
      paths: ['/x'],
      threads: 2,
    });
    assert.deepEqual(r.items.map((i) => [i.name, i.size]), [['a', 5000000], ['b', 7000000], ['c', 5]]);
    assert.equal((await listSnapshots(repo)).length, 1);
  });
});

describe('chunk workers and the size the walk saw', () => {
  let dir: string;
  before(() => {
    dir = tmpdir('bulwark-sizehint-');
  });
  after(() => rmrf(dir));

  test('a file is read to its end whatever size was expected (grown, shrunk, unknown)', async () => {
    const fs = await import('node:fs');
    const { createHash } = await import('node:crypto');
    const { Repository } = await import('../src/repo/repository.js');
    const { LocalStorage } = await import('../src/storage/local.js');
    const { Packer } = await import('../src/pack/packer.js');
    const { WorkerPool, idList } = await import('../src/backup/worker-pool.js');
    const storage = new LocalStorage(path.join(dir, 'repo'));
    await Repository.init(storage, 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
    const repo = await Repository.open(storage, 'pw');
    await repo.loadIndex();
    const packer = new Packer(repo);
    const pool = new WorkerPool(repo, packer, 1);
    const file = path.join(dir, 'data.bin');
    const data = (await import('node:crypto')).randomBytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(file, data);
    try {
      for (const hint of [1000, 0, data.length, 50 * 1024 * 1024, undefined]) {
        await pool.acquire();
        const r = await pool.save(hint === undefined ? { path: file } : { path: file, size: hint });
        assert.equal(r.err, undefined);
        assert.equal(r.size, data.length, `size hint ${String(hint)}`);
        assert.ok(idList(r).length >= 1, 'chunks reported');
        await pool.flush();
        await packer.flush();
        assert.ok(idList(r).every((id) => repo.index.has(id)), 'every chunk stored and indexed');
      }
      // The stored chunks put together are the file.
      await pool.acquire();
      const r = await pool.save({ path: file, size: 10 });
      const back = Buffer.concat(await Promise.all(idList(r).map((id) => repo.readBlob(id))));
      assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(data).digest('hex'));
    } finally {
      await pool.close();
    }
  });
});
