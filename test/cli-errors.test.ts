// CLI failure modes: each documented error code and exit status, password handling (env and file
// only, never echoed), unreadable source files (exit 3 with a saved snapshot), and key management.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { type CliResult, isRoot, jsonError, runCli, runOk, tempRoots } from './helpers.js';

const PASSWORD = 'pw-Sup3r$ecret-7f3a';

const newRoot = tempRoots('bulwark-err-');

/** A fresh initialised repository with one tiny snapshot. */
async function newRepo(password = PASSWORD): Promise<{ root: string; repo: string; env: Record<string, string> }> {
  const root = newRoot();
  const repo = path.join(root, 'repo');
  const env = { BULWARK_REPO: repo, BULWARK_PASSWORD: password };
  await runOk(['init'], env);
  await runOk(['backup', '--stdin', '--stdin-filename', 'hello.txt'], env, { input: 'hello\n' });
  return { root, repo, env };
}

function expectError(r: CliResult, exit: number, code: string): ReturnType<typeof jsonError> {
  assert.equal(r.code, exit, `exit status (stderr: ${r.stderr})`);
  const e = jsonError(r);
  assert.equal(e.code, code, `error code (stderr: ${r.stderr})`);
  assert.equal(typeof e.message, 'string');
  assert.equal(typeof e.retryable, 'boolean');
  return e;
}

async function keyList(env: Record<string, string>): Promise<Array<{ id: string; current: boolean }>> {
  return JSON.parse((await runOk(['key', 'list', '--json'], env)).stdout) as Array<{ id: string; current: boolean }>;
}

describe('repository and password errors', () => {
  it('a wrong password exits 12 with WRONG_PASSWORD and never prints the password', async () => {
    const { env } = await newRepo();
    const wrong = 'wrong-Pa55word-c0ffee';
    const r = await runCli(['snapshots', '--json'], { ...env, BULWARK_PASSWORD: wrong });
    expectError(r, 12, 'WRONG_PASSWORD');
    const text = await runCli(['backup', '--stdin'], { ...env, BULWARK_PASSWORD: wrong }, { input: 'x' });
    assert.equal(text.code, 12);
    assert.match(text.stderr, /error \[WRONG_PASSWORD\]/);
    for (const out of [r.stdout, r.stderr, text.stdout, text.stderr]) {
      assert.ok(!out.includes(wrong), 'the wrong password appears in the output');
      assert.ok(!out.includes(PASSWORD), 'the real password appears in the output');
    }
    // The repository is untouched: still one snapshot.
    assert.equal((JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[]).length, 1);
  });

  it('a missing repository exits 10 with REPO_NOT_FOUND', async () => {
    const root = newRoot();
    const env = { BULWARK_REPO: path.join(root, 'nothing-here'), BULWARK_PASSWORD: PASSWORD };
    for (const args of [['snapshots'], ['ls', 'latest'], ['restore', 'latest', '--target', path.join(root, 't')]]) {
      const r = await runCli([...args, '--json'], env);
      expectError(r, 10, 'REPO_NOT_FOUND');
    }
    const fromArg = await runCli(['--repo', path.join(root, 'other'), 'snapshots', '--json'], { BULWARK_PASSWORD: PASSWORD });
    expectError(fromArg, 10, 'REPO_NOT_FOUND');
    // An existing but empty directory is not a repository either.
    fs.mkdirSync(path.join(root, 'emptydir'));
    expectError(await runCli(['snapshots', '--json'], { ...env, BULWARK_REPO: path.join(root, 'emptydir') }), 10, 'REPO_NOT_FOUND');
    assert.equal(fs.existsSync(path.join(root, 'nothing-here')), false, 'opening created the repository directory');
    assert.equal(fs.existsSync(path.join(root, 't')), false);
  });

  it('init on an existing repository fails with REPO_EXISTS and leaves it intact', async () => {
    const { env } = await newRepo();
    const r = await runCli(['init', '--json'], { ...env, BULWARK_PASSWORD: 'another password' });
    expectError(r, 1, 'REPO_EXISTS');
    assert.equal((await keyList(env)).length, 1, 'init added a key to the existing repository');
    const again = await runCli(['init', '--json'], env);
    expectError(again, 1, 'REPO_EXISTS');
    assert.equal((await runOk(['dump', 'latest', 'hello.txt'], env)).stdout, 'hello\n');
  });

  it('a directory holding another tool\'s repository is REPO_FOREIGN', async () => {
    const root = newRoot();
    const repo = path.join(root, 'restic-repo');
    fs.mkdirSync(path.join(repo, 'keys'), { recursive: true });
    fs.mkdirSync(path.join(repo, 'data'));
    fs.mkdirSync(path.join(repo, 'snapshots'));
    fs.writeFileSync(path.join(repo, 'config'), randomBytes(200));
    // A restic key file: JSON, but not a Bulwark key slot.
    const resticKey = {
      created: '2024-01-01T00:00:00.000000000Z',
      username: 'root',
      hostname: 'somehost',
      kdf: 'scrypt',
      N: 32768,
      r: 8,
      p: 1,
      salt: randomBytes(64).toString('base64'),
      data: randomBytes(160).toString('base64'),
    };
    fs.writeFileSync(path.join(repo, 'keys', randomBytes(32).toString('hex')), JSON.stringify(resticKey));
    const env = { BULWARK_REPO: repo, BULWARK_PASSWORD: PASSWORD };
    const e = expectError(await runCli(['snapshots', '--json'], env), 1, 'REPO_FOREIGN');
    assert.ok(e.message.includes(repo), e.message);
    expectError(await runCli(['backup', '--stdin', '--json'], env, { input: 'x' }), 1, 'REPO_FOREIGN');
    expectError(await runCli(['init', '--json'], env), 1, 'REPO_EXISTS');
  });

  it('a Bulwark key with another repository\'s config is REPO_FOREIGN', async () => {
    const a = await newRepo();
    const b = await newRepo();
    fs.copyFileSync(path.join(b.repo, 'config'), path.join(a.repo, 'config'));
    expectError(await runCli(['snapshots', '--json'], a.env), 1, 'REPO_FOREIGN');
  });

  it('no password exits 2 with NO_PASSWORD', async () => {
    const root = newRoot();
    const repo = path.join(root, 'repo');
    expectError(await runCli(['init', '--json'], { BULWARK_REPO: repo }), 2, 'NO_PASSWORD');
    expectError(await runCli(['init', '--json'], { BULWARK_REPO: repo, BULWARK_PASSWORD: '' }), 2, 'NO_PASSWORD');
    assert.equal(fs.existsSync(path.join(repo, 'config')), false, 'init without a password created a repository');
    await runOk(['init'], { BULWARK_REPO: repo, BULWARK_PASSWORD: PASSWORD });
    expectError(await runCli(['snapshots', '--json'], { BULWARK_REPO: repo }), 2, 'NO_PASSWORD');
    // Unreadable or empty password files.
    expectError(await runCli(['--password-file', path.join(root, 'missing'), 'snapshots', '--json'], { BULWARK_REPO: repo }), 2, 'NO_PASSWORD');
    fs.writeFileSync(path.join(root, 'empty-pw'), '\n');
    expectError(await runCli(['snapshots', '--json', '--password-file', path.join(root, 'empty-pw')], { BULWARK_REPO: repo }), 2, 'NO_PASSWORD');
  });

  it('--password-file and BULWARK_PASSWORD_FILE supply the password', async () => {
    const { root, repo } = await newRepo();
    const file = path.join(root, 'pw');
    fs.writeFileSync(file, PASSWORD + '\n', { mode: 0o600 });
    const r = await runOk(['--password-file', file, 'snapshots', '--json'], { BULWARK_REPO: repo });
    assert.equal((JSON.parse(r.stdout) as unknown[]).length, 1);
    await runOk(['snapshots', '--password-file', file, '--json'], { BULWARK_REPO: repo });
    await runOk(['snapshots', '--json'], { BULWARK_REPO: repo, BULWARK_PASSWORD_FILE: file });
    // The file takes precedence over BULWARK_PASSWORD.
    await runOk(['snapshots', '--json', '--password-file', file], { BULWARK_REPO: repo, BULWARK_PASSWORD: 'not it' });
    // A file with the wrong password is WRONG_PASSWORD.
    fs.writeFileSync(path.join(root, 'bad'), 'bad password\n');
    expectError(await runCli(['snapshots', '--json', '--password-file', path.join(root, 'bad')], { BULWARK_REPO: repo }), 12, 'WRONG_PASSWORD');
  });

  it('the password is never on the command line of the child process', { skip: process.platform !== 'linux' }, async () => {
    const { env } = await newRepo();
    let cmdline = '';
    let environ = '';
    const r = await runCli(['backup', '--stdin', '--stdin-filename', 'slow.txt', '--json'], env, {
      input: 'data\n',
      onSpawn: async (pid) => {
        // Wait until the child has exec'd node with the CLI (before that /proc shows the parent).
        for (let i = 0; i < 200 && !cmdline.includes('main.js'); i++) {
          try {
            cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
            environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
          } catch {
            // not there yet
          }
          if (!cmdline.includes('main.js')) await sleep(5);
        }
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(cmdline.includes('main.js'), `could not read the child's command line: ${JSON.stringify(cmdline)}`);
    assert.ok(!cmdline.includes(PASSWORD), 'password found in the child argv');
    assert.ok(environ.includes(`BULWARK_PASSWORD=${PASSWORD}`), 'the password was expected in the environment');
    assert.ok(!r.stdout.includes(PASSWORD) && !r.stderr.includes(PASSWORD));
  });
});

describe('usage errors', () => {
  it('an unknown command or option exits 2 with USAGE', async () => {
    const root = newRoot();
    const env = { BULWARK_REPO: path.join(root, 'repo'), BULWARK_PASSWORD: PASSWORD };
    expectError(await runCli(['frobnicate', '--json'], env), 2, 'USAGE');
    expectError(await runCli(['backup', '--no-such-option', root, '--json'], env), 2, 'USAGE');
    expectError(await runCli(['snapshots', '--json', '--bogus'], env), 2, 'USAGE');
    const text = await runCli(['restore', 'latest', '--target'], env);
    assert.equal(text.code, 2);
    assert.match(text.stderr, /USAGE/);
    // Nothing was created by any of these.
    assert.equal(fs.existsSync(path.join(root, 'repo')), false);
    // An unknown key subcommand on an existing repository.
    const existing = await newRepo();
    expectError(await runCli(['key', 'frob', '--json'], existing.env), 2, 'USAGE');
  });

  it(
    'an unknown key subcommand is a usage error even where no repository exists',
    async () => {
      const root = newRoot();
      const env = { BULWARK_REPO: path.join(root, 'repo'), BULWARK_PASSWORD: PASSWORD };
      expectError(await runCli(['key', 'frob', '--json'], env), 2, 'USAGE');
      expectError(await runCli(['key', 'remove', '--json'], env), 2, 'USAGE');
    },
  );

  it('missing arguments are usage errors', async () => {
    const { env, root } = await newRepo();
    expectError(await runCli(['backup', '--json'], env), 2, 'USAGE');
    expectError(await runCli(['restore', 'latest', '--json'], env), 2, 'USAGE'); // no --target
    expectError(await runCli(['ls', '--json'], env), 2, 'USAGE');
    expectError(await runCli(['diff', 'latest', '--json'], env), 2, 'USAGE');
    expectError(await runCli(['dump', 'latest', '--json'], env), 2, 'USAGE');
    expectError(await runCli(['backup', root, '--stdin', '--json'], env), 2, 'USAGE');
    expectError(await runCli(['snapshots', '--json'], { BULWARK_PASSWORD: PASSWORD }), 2, 'USAGE'); // no repository
  });

  it('backup of a nonexistent path is PATH_NOT_FOUND and saves no snapshot', async () => {
    const { env, root } = await newRepo();
    fs.writeFileSync(path.join(root, 'exists.txt'), 'x');
    const missing = path.join(root, 'does-not-exist');
    const e = expectError(await runCli(['backup', path.join(root, 'exists.txt'), missing, '--json'], env), 1, 'PATH_NOT_FOUND');
    assert.equal(e.subject, missing);
    assert.equal((JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as unknown[]).length, 1);
  });
});

describe('unreadable source files', () => {
  it('backup saves the snapshot, warns naming the file, exits 3; the rest restores', async () => {
    const root = newRoot();
    const src = path.join(root, 'src');
    const repo = path.join(root, 'repo');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(src, 'ok-1.txt'), 'readable one\n');
    fs.writeFileSync(path.join(src, 'sub/ok-2.bin'), randomBytes(200_000));
    fs.writeFileSync(path.join(src, 'secret.txt'), 'nobody may read this\n');
    fs.mkdirSync(path.join(src, 'locked-dir'));
    fs.writeFileSync(path.join(src, 'locked-dir/inside.txt'), 'hidden\n');
    fs.chmodSync(path.join(src, 'secret.txt'), 0o000);
    fs.chmodSync(path.join(src, 'locked-dir'), 0o000);
    // As root every file is readable, so run the backup as nobody over a tree nobody owns.
    const as = isRoot ? { uid: 65534, gid: 65534 } : {};
    if (isRoot) {
      fs.chmodSync(root, 0o755);
      for (const p of [root, src, path.join(src, 'sub'), path.join(src, 'ok-1.txt'), path.join(src, 'sub/ok-2.bin'), path.join(src, 'secret.txt'), path.join(src, 'locked-dir')]) {
        fs.chownSync(p, 65534, 65534);
      }
    }
    const env = { BULWARK_REPO: repo, BULWARK_PASSWORD: PASSWORD };
    await runOk(['init'], env, as);
    const text = await runCli(['backup', src], env, as);
    assert.equal(text.code, 3, `exit status; stderr: ${text.stderr}`);
    assert.ok(text.stderr.includes(path.join(src, 'secret.txt')), `warning does not name the file: ${text.stderr}`);
    assert.ok(text.stderr.includes(path.join(src, 'locked-dir')), `warning does not name the directory: ${text.stderr}`);
    assert.match(text.stdout, /saved/);

    const r = await runCli(['backup', src, '--json'], env, as);
    assert.equal(r.code, 3, r.stderr);
    const out = JSON.parse(r.stdout) as { id: string; warnings: Array<{ path: string; code: string }>; snapshot: { summary: { errors: number } } };
    assert.deepEqual(out.warnings.map((w) => w.path).sort(), [path.join(src, 'locked-dir'), path.join(src, 'secret.txt')]);
    assert.ok(out.warnings.every((w) => w.code === 'EACCES'), JSON.stringify(out.warnings));
    assert.equal(out.snapshot.summary.errors, 2);

    const snaps = JSON.parse((await runOk(['snapshots', '--json'], env, as)).stdout) as Array<{ id: string }>;
    assert.deepEqual(snaps.map((s) => s.id).includes(out.id), true, 'the partial snapshot was saved');
    const rows = JSON.parse((await runOk(['ls', out.id, '--json'], env, as)).stdout) as Array<{ path: string }>;
    const listed = rows.map((x) => x.path);
    assert.ok(!listed.includes(path.join(src, 'secret.txt')), 'unreadable file is in the snapshot');
    assert.ok(listed.includes(path.join(src, 'sub/ok-2.bin')));

    const target = path.join(root, 'restored');
    await runOk(['restore', out.id, '--target', target, '--verify'], env);
    const t = path.join(target, src);
    assert.equal(fs.readFileSync(path.join(t, 'ok-1.txt'), 'utf8'), 'readable one\n');
    assert.ok(fs.readFileSync(path.join(t, 'sub/ok-2.bin')).equals(fs.readFileSync(path.join(src, 'sub/ok-2.bin'))));
    assert.equal(fs.existsSync(path.join(t, 'secret.txt')), false);
    if (!isRoot) fs.chmodSync(path.join(src, 'locked-dir'), 0o755); // so the cleanup can remove it
  });
});

describe('key management', () => {
  it('key add: the new password opens the repository, and so does the old one', async () => {
    const { env, root } = await newRepo();
    const NEW = 'second-password-91d2';
    const r = await runOk(['key', 'add', '--json'], { ...env, BULWARK_NEW_PASSWORD: NEW });
    const added = (JSON.parse(r.stdout) as { added: string }).added;
    assert.match(added, /^[0-9a-f]{64}$/);
    assert.ok(!r.stdout.includes(NEW) && !r.stderr.includes(NEW));
    assert.equal((await runOk(['dump', 'latest', 'hello.txt'], { ...env, BULWARK_PASSWORD: NEW })).stdout, 'hello\n');
    await runOk(['snapshots'], env);
    const keys = await keyList({ ...env, BULWARK_PASSWORD: NEW });
    assert.equal(keys.length, 2);
    assert.deepEqual(keys.filter((k) => k.current).map((k) => k.id), [added]);
    // --new-password-file works too.
    const file = path.join(root, 'newpw');
    fs.writeFileSync(file, 'third-password\n');
    await runOk(['key', 'add', '--new-password-file', file], env);
    await runOk(['snapshots'], { ...env, BULWARK_PASSWORD: 'third-password' });
    // Without a new password: NO_PASSWORD.
    expectError(await runCli(['key', 'add', '--json'], env), 2, 'NO_PASSWORD');
    assert.equal((await keyList(env)).length, 3);
  });

  it('key remove: the current key is KEY_LAST; another key can be removed; unknown is KEY_NOT_FOUND', async () => {
    const { env } = await newRepo();
    const NEW = 'other-key-password';
    const newEnv = { ...env, BULWARK_PASSWORD: NEW };
    const only = (await keyList(env))[0]!;
    expectError(await runCli(['key', 'remove', only.id, '--json'], env), 1, 'KEY_LAST');
    await runOk(['key', 'add'], { ...env, BULWARK_NEW_PASSWORD: NEW });
    const e = expectError(await runCli(['key', 'remove', only.id.slice(0, 10), '--json'], env), 1, 'KEY_LAST');
    assert.equal(e.subject, only.id);
    assert.equal((await keyList(env)).length, 2, 'KEY_LAST removed a key');
    expectError(await runCli(['key', 'remove', 'ffffffffffffffff0000', '--json'], env), 1, 'KEY_NOT_FOUND');
    expectError(await runCli(['key', 'remove', '--json'], env), 2, 'USAGE');
    // With the other password, the first key can go; then the first password no longer opens.
    const r = await runOk(['key', 'remove', only.id, '--json'], newEnv);
    assert.equal((JSON.parse(r.stdout) as { removed: string }).removed, only.id);
    expectError(await runCli(['snapshots', '--json'], env), 12, 'WRONG_PASSWORD');
    assert.equal((await keyList(newEnv)).length, 1);
    expectError(await runCli(['key', 'remove', (await keyList(newEnv))[0]!.id, '--json'], newEnv), 1, 'KEY_LAST');
  });

  it('key passwd: the old password stops working, the new one opens the same data', async () => {
    const { env } = await newRepo();
    const NEW = 'changed-password-5e1';
    const before = (await keyList(env))[0]!.id;
    const r = await runOk(['key', 'passwd', '--json'], { ...env, BULWARK_NEW_PASSWORD: NEW });
    const out = JSON.parse(r.stdout) as { added: string; removed: string };
    assert.equal(out.removed, before);
    assert.notEqual(out.added, before);
    assert.ok(!r.stdout.includes(NEW) && !r.stderr.includes(NEW));
    const old = await runCli(['snapshots', '--json'], env);
    expectError(old, 12, 'WRONG_PASSWORD');
    assert.ok(!old.stderr.includes(PASSWORD));
    const newEnv = { ...env, BULWARK_PASSWORD: NEW };
    assert.equal((await runOk(['dump', 'latest', 'hello.txt'], newEnv)).stdout, 'hello\n');
    assert.deepEqual((await keyList(newEnv)).map((k) => k.id), [out.added]);
    // A backup with the new password deduplicates against the old data (same master key).
    const b = JSON.parse((await runOk(['backup', '--stdin', '--stdin-filename', 'hello.txt', '--json'], newEnv, { input: 'hello\n' })).stdout) as { snapshot: { summary: { dataBlobs: number } } };
    assert.equal(b.snapshot.summary.dataBlobs, 0);
  });
});
