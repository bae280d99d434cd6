// Append-only repositories: backups and restores work, nothing can be deleted (forget, prune,
// key remove are refused, nothing is removed), lock objects still come and go, and the operator
// holding the delete token can forget and prune.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jsonError, rmrf, runCli, runOk, tmpdir } from './helpers.js';

describe('append-only repositories', () => {
  let dir: string;
  let env: Record<string, string>;
  let token: string;
  const count = async (kind: string): Promise<number> => fs.readdirSync(path.join(env['BULWARK_REPO']!, kind), { recursive: true }).filter((f) => /[0-9a-f]{64}$/.test(String(f))).length;

  before(async () => {
    dir = tmpdir('bulwark-ao-');
    env = { BULWARK_REPO: path.join(dir, 'repo'), BULWARK_PASSWORD: 'append-only-pw' };
    token = path.join(dir, 'delete-token');
    const bad = await runCli(['init', '--append-only', '--json'], env);
    assert.equal(jsonError(bad).code, 'USAGE');
    const r = JSON.parse((await runOk(['init', '--append-only', '--delete-token-file', token, '--json'], env)).stdout) as { appendOnly: boolean };
    assert.equal(r.appendOnly, true);
    assert.equal(fs.statSync(token).mode & 0o777, 0o600);
    fs.mkdirSync(path.join(dir, 'src'));
    for (let i = 0; i < 3; i++) {
      fs.writeFileSync(path.join(dir, 'src', 'f.txt'), `version ${i}\n`.repeat(1000 * (i + 1)));
      await runOk(['backup', path.join(dir, 'src')], env);
    }
  });
  after(() => rmrf(dir));

  test('backups, restores and check work; locks are released', async () => {
    await runOk(['check', '--read-data'], env);
    await runOk(['restore', 'latest', '--target', path.join(dir, 'out')], env);
    assert.equal(await count('locks'), 0);
  });

  test('forget, prune and forget by ID are refused without the token, and nothing is deleted', async () => {
    const snaps = await count('snapshots');
    const packs = await count('data');
    const forget = await runCli(['forget', '--keep-last', '1', '--prune', '--json'], env);
    assert.equal(forget.code, 1);
    assert.equal(jsonError(forget).code, 'APPEND_ONLY');
    const ids = JSON.parse((await runOk(['snapshots', '--json'], env)).stdout) as Array<{ id: string }>;
    assert.equal(jsonError(await runCli(['forget', ids[0]!.id, '--json'], env)).code, 'APPEND_ONLY');
    assert.equal(jsonError(await runCli(['prune', '--json'], env)).code, 'APPEND_ONLY');
    assert.equal(await count('snapshots'), snaps);
    assert.ok((await count('data')) >= packs);
    assert.equal(await count('locks'), 0, 'refused operations leave no lock behind');
    // A wrong token is refused outright.
    fs.writeFileSync(path.join(dir, 'wrong'), 'not-the-token\n');
    assert.equal(jsonError(await runCli(['snapshots', '--json'], { ...env, BULWARK_DELETE_TOKEN_FILE: path.join(dir, 'wrong') })).code, 'APPEND_ONLY');
  });

  test('with the delete token, forget and prune run', async () => {
    const r = JSON.parse((await runOk(['forget', '--keep-last', '1', '--prune', '--json'], { ...env, BULWARK_DELETE_TOKEN_FILE: token })).stdout) as { removed: string[] };
    assert.equal(r.removed.length, 2);
    assert.equal(await count('snapshots'), 1);
    await runOk(['check', '--read-data'], env);
  });
});
