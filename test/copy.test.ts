// bulwark copy between repositories with different keys: restores from the copy are bit-identical,
// a second copy transfers nothing, a new snapshot transfers only what changed, and a copy killed
// part-way and re-run completes without storing data twice.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { compareTrees, makeTree, rmrf, runCli, runOk, tmpdir, writeRandomFile } from './helpers.js';

function du(dir: string): number {
  let n = 0;
  const walk = (p: string): void => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      const q = path.join(p, e.name);
      if (e.isDirectory()) walk(q);
      else if (e.isFile()) n += fs.statSync(q).size;
    }
  };
  walk(dir);
  return n;
}

describe('bulwark copy', () => {
  let dir: string;
  let src: string;
  let a: Record<string, string>;
  let b: Record<string, string>;
  const both = (): Record<string, string> => ({ ...b, BULWARK_FROM_REPO: a['BULWARK_REPO']!, BULWARK_FROM_PASSWORD: a['BULWARK_PASSWORD']!, XDG_CACHE_HOME: path.join(dir, 'cache') });

  before(async () => {
    dir = tmpdir('bulwark-copy-');
    src = path.join(dir, 'src');
    fs.mkdirSync(src);
    makeTree(src, { big: false, owners: false });
    writeRandomFile(path.join(src, 'big.bin'), 24 * 1024 * 1024);
    a = { BULWARK_REPO: path.join(dir, 'a'), BULWARK_PASSWORD: 'password-of-a' };
    b = { BULWARK_REPO: path.join(dir, 'b'), BULWARK_PASSWORD: 'password-of-b' };
    await runOk(['init'], a);
    await runOk(['init'], b);
    await runOk(['backup', src, '--tag', 'first'], a);
  });
  after(() => rmrf(dir));

  test('copies a snapshot; the copy restores bit-identically; a second copy transfers nothing', async () => {
    const dry = JSON.parse((await runOk(['copy', '--dry-run', '--json'], both())).stdout) as { planned: string[]; copied: unknown[] };
    assert.equal(dry.planned.length, 1);
    assert.equal(dry.copied.length, 0);
    assert.equal((JSON.parse((await runOk(['snapshots', '--json'], b)).stdout) as unknown[]).length, 0);

    const r = JSON.parse((await runOk(['copy', '--json'], both())).stdout) as { copied: Array<{ source: string; target: string; blobsCopied: number; bytesCopied: number }> };
    assert.equal(r.copied.length, 1);
    assert.ok(r.copied[0]!.bytesCopied > 24 * 1024 * 1024);
    const snaps = JSON.parse((await runOk(['snapshots', '--json'], b)).stdout) as Array<{ id: string; original: string; tags: string[]; paths: string[] }>;
    assert.equal(snaps[0]?.original, r.copied[0]!.source);
    assert.deepEqual(snaps[0]?.tags, ['first']);
    const out = path.join(dir, 'restored');
    await runOk(['restore', 'latest', '--target', out], b);
    compareTrees(src, path.join(out, src), { owners: false });
    await runOk(['check', '--read-data'], b);

    const again = JSON.parse((await runOk(['copy', '--json'], both())).stdout) as { copied: unknown[]; alreadyPresent: string[] };
    assert.equal(again.copied.length, 0);
    assert.deepEqual(again.alreadyPresent, [r.copied[0]!.source]);
  });

  test('a new snapshot copies only the changed data', async () => {
    fs.writeFileSync(path.join(src, 'new.txt'), 'a new file\n'.repeat(1000));
    await runOk(['backup', src], a);
    const r = JSON.parse((await runOk(['copy', '--json'], both())).stdout) as { copied: Array<{ bytesCopied: number; blobsSkipped: number }> };
    assert.equal(r.copied.length, 1);
    assert.ok(r.copied[0]!.bytesCopied < 1024 * 1024, `copied ${r.copied[0]!.bytesCopied} bytes`);
    assert.ok(r.copied[0]!.blobsSkipped > 0);
  });

  test('a copy killed part-way and re-run completes without storing data twice', async () => {
    const c = { BULWARK_REPO: path.join(dir, 'c'), BULWARK_PASSWORD: 'password-of-c' };
    const ref = { BULWARK_REPO: path.join(dir, 'ref'), BULWARK_PASSWORD: 'password-of-ref' };
    await runOk(['init'], c);
    await runOk(['init'], ref);
    const fromA = { BULWARK_FROM_REPO: a['BULWARK_REPO']!, BULWARK_FROM_PASSWORD: a['BULWARK_PASSWORD']! };
    // Kill as soon as the first pack of the target is written.
    const killed = await runCli(['copy'], { ...c, ...fromA, XDG_CACHE_HOME: path.join(dir, 'cache-c') }, {
      onSpawn: async (pid) => {
        const data = path.join(c.BULWARK_REPO, 'data');
        for (let i = 0; i < 2000; i++) {
          const n = fs.existsSync(data) ? fs.readdirSync(data, { recursive: true }).filter((f) => /[0-9a-f]{64}$/.test(String(f))).length : 0;
          if (n > 0) break;
          await new Promise((r) => setTimeout(r, 5));
        }
        process.kill(pid, 'SIGKILL');
      },
    });
    assert.notEqual(killed.code, 0);
    assert.equal((JSON.parse((await runOk(['snapshots', '--json'], c)).stdout) as unknown[]).length, 0, 'no snapshot from the killed copy');
    await runOk(['copy'], { ...c, ...fromA, XDG_CACHE_HOME: path.join(dir, 'cache-c') });
    await runOk(['copy'], { ...ref, ...fromA, XDG_CACHE_HOME: path.join(dir, 'cache-ref') });
    assert.equal((JSON.parse((await runOk(['snapshots', '--json'], c)).stdout) as unknown[]).length, 2);
    await runOk(['check', '--read-data'], c);
    const [dc, dr] = [du(path.join(c.BULWARK_REPO, 'data')), du(path.join(ref.BULWARK_REPO, 'data'))];
    assert.ok(dc <= dr * 1.02 + 65536, `re-run stored ${dc} bytes, a clean copy ${dr}`);
  });

  test('a job with two repositories: backup into the first, copy into the second', async () => {
    const cfg = path.join(dir, 'two.yaml');
    fs.writeFileSync(
      cfg,
      `repositories:
  one: { url: ${JSON.stringify(a['BULWARK_REPO'])}, password: ${a['BULWARK_PASSWORD']} }
  two: { url: ${JSON.stringify(b['BULWARK_REPO'])}, password: ${b['BULWARK_PASSWORD']} }
sources:
  s: { type: files, paths: [${JSON.stringify(src)}] }
jobs:
  both: { source: s, repositories: [one, two], retention: false }
daemon: { catalog: ${JSON.stringify(`sqlite:${path.join(dir, 'two.db')}`)}, reports: ${JSON.stringify(path.join(dir, 'reports'))} }
`,
    );
    fs.writeFileSync(path.join(src, 'job.txt'), 'written before the job\n');
    const r = JSON.parse((await runOk(['run', 'both', '--config', cfg, '--json'], { XDG_CACHE_HOME: path.join(dir, 'cache') })).stdout) as { ok: boolean; repositories: Array<{ repository: string; status: string; snapshotId: string }> };
    assert.equal(r.ok, true);
    assert.deepEqual(r.repositories.map((x) => [x.repository, x.status]), [['one', 'success'], ['two', 'success']]);
    const inTwo = JSON.parse((await runOk(['snapshots', '--json'], b)).stdout) as Array<{ id: string; original?: string; tags: string[] }>;
    const copied = inTwo.find((x) => x.id === r.repositories[1]!.snapshotId)!;
    assert.equal(copied.original, r.repositories[0]!.snapshotId);
    assert.deepEqual(copied.tags, ['job:both']);
    const out = path.join(dir, 'restored-two');
    await runOk(['restore', copied.id, '--target', out], b);
    assert.equal(fs.readFileSync(path.join(out, src, 'job.txt'), 'utf8'), 'written before the job\n');
    const runs = JSON.parse((await runOk(['runs', '--config', cfg, '--json'], {})).stdout) as Array<{ repository: string; status: string; details: { copiedFrom?: { snapshot: string } } }>;
    assert.equal(runs.find((x) => x.repository === 'two')?.details.copiedFrom?.snapshot, r.repositories[0]!.snapshotId);
  });
});
