// Repository locks: shared locks coexist, exclusive ones exclude everything, leases expire unless
// refreshed, locks of dead processes on this host are ignored at once, and waiting acquirers get
// the lock when it is released.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isBulwarkError } from '../src/errors.js';
import { Lock, type LockDoc } from '../src/repo/lock.js';
import { putJSON } from '../src/repo/objects.js';
import type { Repository } from '../src/repo/repository.js';
import { LocalStorage } from '../src/storage/local.js';
import { FaultyStorage } from '../src/storage/testkit/faulty.js';
import { cli, describeRun, DIST_SRC, errorOf, initRepo, listNames, makeTmp, openRepo, PASSWORD, removeDir, sleep } from './fault-helpers.js';

const NO_REFRESH = 3_600_000;

let base = '';
let root = '';
let repo: Repository;

async function lockCount(): Promise<number> {
  return (await listNames(repo.storage, 'locks')).length;
}

async function assertConflict(p: Promise<Lock>, what: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isBulwarkError(err, 'LOCK_CONFLICT'), `${what}: got ${String(err)}`);
    assert.equal(err.retryable, true);
    return true;
  });
}

before(async () => {
  base = makeTmp('locks');
  root = path.join(base, 'repo');
  repo = await initRepo(root);
});

after(() => {
  if (base !== '') removeDir(base);
});

beforeEach(async () => {
  // Every test releases what it takes.
  assert.equal(await lockCount(), 0, 'no lock left over from an earlier test');
});

describe('shared and exclusive', () => {
  it('two shared locks coexist', async () => {
    const a = await Lock.acquire(repo, 'shared', 'backup');
    const b = await Lock.acquire(repo, 'shared', 'check');
    assert.equal(await lockCount(), 2);
    await a.release();
    await b.release();
    assert.equal(await lockCount(), 0);
  });

  it('an exclusive lock conflicts with a shared one, and the loser leaves no lock behind', async () => {
    const a = await Lock.acquire(repo, 'shared', 'backup');
    await assertConflict(Lock.acquire(repo, 'exclusive', 'prune'), 'exclusive vs shared');
    assert.equal(await lockCount(), 1);
    await a.release();
    const x = await Lock.acquire(repo, 'exclusive', 'prune');
    await assertConflict(Lock.acquire(repo, 'shared', 'backup'), 'shared vs exclusive');
    await assertConflict(Lock.acquire(repo, 'exclusive', 'prune'), 'exclusive vs exclusive');
    assert.equal(await lockCount(), 1);
    await x.release();
  });

  it('of two racing exclusive lockers, at most one wins', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await Promise.allSettled([Lock.acquire(repo, 'exclusive', 'a'), Lock.acquire(repo, 'exclusive', 'b')]);
      const won = r.filter((x): x is PromiseFulfilledResult<Lock> => x.status === 'fulfilled');
      assert.ok(won.length <= 1, `round ${i}: both exclusive lockers succeeded`);
      for (const x of r) if (x.status === 'rejected') assert.ok(isBulwarkError(x.reason, 'LOCK_CONFLICT'), String(x.reason));
      for (const w of won) await w.value.release();
    }
  });
});

describe('leases', () => {
  it('a lock not refreshed within the TTL expires (injected clock)', async () => {
    let t = 1_700_000_000_000;
    const now = (): number => t;
    const a = await Lock.acquire(repo, 'shared', 'backup', { now, ttlMs: 10_000, refreshMs: NO_REFRESH });
    t += 9_000;
    await assertConflict(Lock.acquire(repo, 'exclusive', 'prune', { now, ttlMs: 10_000 }), 'within the TTL');
    t += 2_000;
    const x = await Lock.acquire(repo, 'exclusive', 'prune', { now, ttlMs: 10_000 });
    assert.equal(await lockCount(), 1, 'the exclusive locker removed the expired lock');
    await x.release();
    await a.release();
  });

  it('a refreshed lock stays valid past the TTL (injected clock)', async () => {
    let t = 1_700_000_000_000;
    const now = (): number => t;
    const a = await Lock.acquire(repo, 'shared', 'backup', { now, ttlMs: 10_000, refreshMs: NO_REFRESH });
    t += 8_000;
    await a.refresh();
    a.assertHeld();
    t += 8_000; // 16 s after acquiring, 8 s after the refresh
    await assertConflict(Lock.acquire(repo, 'exclusive', 'prune', { now, ttlMs: 10_000 }), 'refreshed lease');
    assert.equal(await lockCount(), 1, 'a refresh replaces the lock object');
    t += 3_000;
    const x = await Lock.acquire(repo, 'exclusive', 'prune', { now, ttlMs: 10_000 });
    await x.release();
    await a.release();
  });

  it('the refresh timer keeps a lock alive in real time; without it the lease lapses', async () => {
    // The refresh interval stays well above a lock write's latency (see the overlapping-refresh test).
    const ttlMs = 1000;
    const kept = await Lock.acquire(repo, 'shared', 'backup', { ttlMs, refreshMs: 250 });
    await sleep(2000);
    await assertConflict(Lock.acquire(repo, 'exclusive', 'prune', { ttlMs }), 'refreshed by its timer');
    kept.assertHeld();
    await kept.release();

    const lapsed = await Lock.acquire(repo, 'shared', 'backup', { ttlMs, refreshMs: NO_REFRESH });
    await sleep(2000);
    const x = await Lock.acquire(repo, 'exclusive', 'prune', { ttlMs });
    await x.release();
    await lapsed.release();
  });

  it(
    'refreshes slower than the refresh interval neither lose the lock nor leave lock objects behind',
    async () => {
      // Lock writes take 300 ms; the lease is refreshed every 100 ms.
      const slow = new FaultyStorage(new LocalStorage(root)).delay('write', 300, (c) => c.kind === 'locks');
      const r = await openRepo(slow);
      const l = await Lock.acquire(r, 'shared', 'backup', { ttlMs: 60_000, refreshMs: 100 });
      let left = -1;
      try {
        await sleep(1000);
        l.assertHeld();
      } finally {
        await l.release();
        await sleep(700); // let refresh writes still in flight land
        left = await lockCount();
        for (const o of await listNames(repo.storage, 'locks')) await repo.storage.delete({ kind: 'locks', name: o.name }).catch(() => undefined);
      }
      assert.equal(left, 0, 'release() left lock objects behind');
    },
  );

  it('BULWARK_LOCK_TTL_SECONDS sets the TTL the CLI applies', async () => {
    // A live process (this one) holding an exclusive lock whose lease is a minute old.
    const x = await Lock.acquire(repo, 'exclusive', 'prune', { now: () => Date.now() - 60_000, refreshMs: NO_REFRESH });
    try {
      const blocked = await cli(['--json', 'check'], root);
      assert.equal(blocked.code, 11, describeRun(['check'], blocked));
      assert.equal(errorOf(blocked).code, 'LOCK_CONFLICT');
      const stillValid = await cli(['--json', 'check'], root, { BULWARK_LOCK_TTL_SECONDS: '120' });
      assert.equal(stillValid.code, 11, describeRun(['check'], stillValid));
      const expired = await cli(['--json', 'check'], root, { BULWARK_LOCK_TTL_SECONDS: '30' });
      assert.equal(expired.code, 0, describeRun(['check'], expired));
    } finally {
      await x.release();
    }
  });
});

describe('dead holders', () => {
  it('a lock left by a SIGKILLed process on this host is ignored at once', async () => {
    const script = path.join(base, 'hold-lock.mjs');
    const url = (f: string): string => pathToFileURL(path.join(DIST_SRC, f)).href;
    fs.writeFileSync(
      script,
      [
        `import { Repository } from ${JSON.stringify(url('repo/repository.js'))};`,
        `import { LocalStorage } from ${JSON.stringify(url('storage/local.js'))};`,
        `import { Lock } from ${JSON.stringify(url('repo/lock.js'))};`,
        `const repo = await Repository.open(new LocalStorage(process.argv[2]), process.env.LOCK_PW);`,
        `await Lock.acquire(repo, 'exclusive', 'child');`,
        `process.stdout.write('locked\\n');`,
        `setInterval(() => {}, 1000);`,
      ].join('\n'),
    );
    const child = spawn(process.execPath, [script, root], { env: { ...process.env, LOCK_PW: PASSWORD }, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          if (out.includes('locked')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`lock holder exited early (${String(code)})`)));
      });
      // While the holder lives, its lock counts.
      await assertConflict(Lock.acquire(repo, 'shared', 'backup'), 'live holder');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    assert.equal(await lockCount(), 1, 'the dead process left its lock');
    const start = Date.now();
    const x = await Lock.acquire(repo, 'exclusive', 'prune'); // default TTL: minutes
    assert.ok(Date.now() - start < 5_000, 'no waiting for the TTL');
    assert.equal(await lockCount(), 1, 'the dead lock was removed');
    await x.release();
  });

  it('a recent lock from another host is not assumed dead', async () => {
    const doc: LockDoc = { kind: 'exclusive', host: 'some-other-host.invalid', pid: 999_999, time: Date.now(), operation: 'prune' };
    const name = await putJSON(repo.storage, repo.keys.enc, 'locks', doc);
    try {
      await assertConflict(Lock.acquire(repo, 'shared', 'backup'), 'foreign host');
    } finally {
      await repo.storage.delete({ kind: 'locks', name });
    }
  });
});

describe('waiting', () => {
  it('waitMs lets an acquirer wait for a release', async () => {
    const x = await Lock.acquire(repo, 'exclusive', 'prune');
    const start = Date.now();
    setTimeout(() => void x.release(), 700);
    const s = await Lock.acquire(repo, 'shared', 'backup', { waitMs: 10_000 });
    const waited = Date.now() - start;
    assert.ok(waited >= 650, `got the lock after ${waited} ms, before the release`);
    assert.ok(waited < 5_000, `waited ${waited} ms`);
    await s.release();
  });

  it('waitMs gives up with LOCK_CONFLICT once the wait is over', async () => {
    const x = await Lock.acquire(repo, 'exclusive', 'prune');
    try {
      const start = Date.now();
      await assertConflict(Lock.acquire(repo, 'shared', 'backup', { waitMs: 600 }), 'wait ran out');
      assert.ok(Date.now() - start >= 600, 'it waited');
      assert.equal(await lockCount(), 1);
    } finally {
      await x.release();
    }
  });
});
