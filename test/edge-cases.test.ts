// Edge cases around key rotation, symlinked source paths, interrupted init and restoring into a
// target that already holds symlinks.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { Repository, REPO_VERSION } from '../src/repo/repository.js';
import { LocalStorage } from '../src/storage/local.js';
import { jsonError, rmrf, runCli, runOk, tmpdir } from './helpers.js';

const dirs: string[] = [];
const scratch = (): string => {
  const d = tmpdir('bulwark-edge-');
  dirs.push(d);
  return d;
};
after(() => dirs.forEach(rmrf));

describe('edge cases', () => {
  it('key passwd with --password-file takes the new password from BULWARK_NEW_PASSWORD, not the old file', async () => {
    const d = scratch();
    const pwFile = path.join(d, 'old');
    fs.writeFileSync(pwFile, 'old-secret\n', { mode: 0o600 });
    const repo = path.join(d, 'repo');
    await runOk(['--password-file', pwFile, 'init'], { BULWARK_REPO: repo });
    await runOk(['--password-file', pwFile, 'key', 'passwd'], { BULWARK_REPO: repo, BULWARK_NEW_PASSWORD: 'new-secret' });
    const withNew = await runCli(['snapshots', '--json'], { BULWARK_REPO: repo, BULWARK_PASSWORD: 'new-secret' });
    assert.equal(withNew.code, 0, withNew.stderr);
    const withOld = await runCli(['--json', '--password-file', pwFile, 'snapshots'], { BULWARK_REPO: repo });
    assert.equal(withOld.code, 12);
    assert.equal(jsonError(withOld).code, 'WRONG_PASSWORD');
  });

  it('a path below a symlinked directory is backed up and restores', async () => {
    const d = scratch();
    fs.mkdirSync(path.join(d, 'real', 'data'), { recursive: true });
    fs.writeFileSync(path.join(d, 'real', 'data', 'f.txt'), 'through a link');
    fs.symlinkSync(path.join(d, 'real'), path.join(d, 'link'));
    const env = { BULWARK_REPO: path.join(d, 'repo'), BULWARK_PASSWORD: 'pw' };
    await runOk(['init'], env);
    await runOk(['backup', path.join(d, 'link', 'data')], env);
    const target = path.join(d, 'out');
    await runOk(['restore', 'latest', '--target', target], env);
    assert.equal(fs.readFileSync(path.join(target, d, 'link', 'data', 'f.txt'), 'utf8'), 'through a link');
    const check = await runCli(['check', '--json'], env);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });

  it('an init killed before its config leaves an orphan key that does not break the next init', async () => {
    const d = scratch();
    const storage = new LocalStorage(path.join(d, 'repo'));
    const kdf = { N: 1024, r: 8, p: 1 };
    await Repository.init(storage, 'pw', { kdf });
    // Simulate the kill: the config never made it, only the key slot.
    const configFile = path.join(d, 'repo', 'config');
    fs.chmodSync(configFile, 0o600);
    fs.rmSync(configFile);
    for (let i = 0; i < 4; i++) {
      const fresh = new LocalStorage(path.join(d, 'repo'));
      if (i === 0) await Repository.init(fresh, 'pw', { kdf });
      const repo = await Repository.open(fresh, 'pw');
      assert.equal(repo.config.version, REPO_VERSION);
    }
    assert.equal(fs.readdirSync(path.join(d, 'repo', 'keys')).length, 2, 'the orphan and the live key');
  });

  it('restore replaces symlinks in the target instead of writing through them', async () => {
    const d = scratch();
    fs.mkdirSync(path.join(d, 'src', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(d, 'src', 'file.txt'), 'restored content');
    fs.writeFileSync(path.join(d, 'src', 'sub', 'inner.txt'), 'inner');
    const env = { BULWARK_REPO: path.join(d, 'repo'), BULWARK_PASSWORD: 'pw' };
    await runOk(['init'], env);
    await runOk(['backup', path.join(d, 'src')], env);
    const target = path.join(d, 'out');
    const victim = path.join(d, 'victim.txt');
    const victimDir = path.join(d, 'victim-dir');
    fs.writeFileSync(victim, 'must stay');
    fs.mkdirSync(victimDir);
    const base = path.join(target, d, 'src');
    fs.mkdirSync(base, { recursive: true });
    fs.symlinkSync(victim, path.join(base, 'file.txt'));
    fs.symlinkSync(victimDir, path.join(base, 'sub'));
    await runOk(['restore', 'latest', '--target', target], env);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'must stay');
    assert.deepEqual(fs.readdirSync(victimDir), []);
    assert.equal(fs.readFileSync(path.join(base, 'file.txt'), 'utf8'), 'restored content');
    assert.ok(fs.lstatSync(path.join(base, 'sub')).isDirectory());
    assert.equal(fs.readFileSync(path.join(base, 'sub', 'inner.txt'), 'utf8'), 'inner');
  });

  it('restore into a target below a regular file fails with a clear code', async () => {
    const d = scratch();
    fs.mkdirSync(path.join(d, 'src'));
    fs.writeFileSync(path.join(d, 'src', 'a'), 'a');
    fs.writeFileSync(path.join(d, 'plainfile'), 'x');
    const env = { BULWARK_REPO: path.join(d, 'repo'), BULWARK_PASSWORD: 'pw' };
    await runOk(['init'], env);
    await runOk(['backup', path.join(d, 'src')], env);
    const r = await runCli(['--json', 'restore', 'latest', '--target', path.join(d, 'plainfile', 'x')], env);
    assert.equal(r.code, 1);
    assert.equal(jsonError(r).code, 'PATH_NOT_FOUND');
    assert.ok(jsonError(r).message.includes('plainfile'));
  });
});

describe('heap mode (BULWARK_HEAP)', () => {
  it('is lean for local repositories, fast when a repository is remote, and can be set', async () => {
    const { heapMode } = await import('../src/cli/heap-mode.js');
    assert.equal(heapMode(['backup', '/data', '--repo', '/mnt/repo'], {}), 'lean');
    assert.equal(heapMode(['restore', 'latest', '--repo', 's3:http://127.0.0.1:9000/b/r'], {}), 'fast');
    assert.equal(heapMode(['restore', 'latest', '--repo=s3:bucket/r'], {}), 'fast');
    assert.equal(heapMode(['copy', '--from-repo', '/a', '--to-repo', 's3:bucket/b'], {}), 'fast');
    assert.equal(heapMode(['snapshots'], { BULWARK_REPO: 's3:bucket/x' }), 'fast');
    assert.equal(heapMode(['snapshots'], { BULWARK_REPO: 's3:bucket/x', BULWARK_HEAP: 'lean' }), 'lean');
    assert.equal(heapMode(['backup', '/d'], { BULWARK_HEAP: 'fast' }), 'fast');
    assert.throws(() => heapMode([], { BULWARK_HEAP: 'huge' }), (e: Error & { code?: string }) => e.code === 'USAGE' && /BULWARK_HEAP/.test(e.message));
    const r = await runCli(['snapshots', '--json'], { BULWARK_HEAP: 'huge', BULWARK_REPO: '/nonexistent', BULWARK_PASSWORD: 'x' });
    assert.equal(jsonError(r).code, 'USAGE');
  });

  it('lean sets 20 % heap growth when the young generation was capped at start, else --optimize-for-size', async () => {
    const { heapFlags } = await import('../src/cli/heap-mode.js');
    assert.deepEqual(heapFlags('lean', ['--max-semi-space-size=4']), ['--heap-growing-percent=20']);
    assert.deepEqual(heapFlags('lean', ['--max_semi_space_size=2']), ['--heap-growing-percent=20']);
    assert.deepEqual(heapFlags('lean', []), ['--optimize-for-size']);
    assert.deepEqual(heapFlags('lean', ['--max-semi-space-size-x=4']), ['--optimize-for-size']);
    // A large young generation is no cap: lean keeps --optimize-for-size then.
    assert.deepEqual(heapFlags('lean', ['--max-semi-space-size=64']), ['--optimize-for-size']);
    assert.deepEqual(heapFlags('fast', ['--max-semi-space-size=4']), []);
    assert.deepEqual(heapFlags('fast', []), []);
  });
});
