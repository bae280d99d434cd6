// The `bulwark` command as npm installs it: bin/bulwark, reached through a symlink, starts the CLI
// with its process-start settings and passes arguments, exit codes and output through unchanged.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { YOUNG_CAP_OPTION } from '../src/cli/heap-mode.js';
import { VERSION } from '../src/version.js';
import { tempRoots } from './helpers.js';

const BIN = fileURLToPath(new URL('../../bin/bulwark', import.meta.url));
const newRoot = tempRoots('bulwark-bin-');

describe('bin/bulwark', () => {
  it('runs the CLI through a symlink, with arguments and exit codes passed through', () => {
    const dir = newRoot();
    const link = path.join(dir, 'bulwark');
    fs.symlinkSync(BIN, link);
    const ok = spawnSync(link, ['--json', 'version'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { version: VERSION });
    // The start options (bin/bulwark's young-generation cap, the run-time heap flags) are accepted
    // without a word from node or V8.
    assert.equal(ok.stderr, '');
    const bad = spawnSync(link, ['no-such-command'], { encoding: 'utf8' });
    assert.equal(bad.status, 2, 'usage errors keep their exit code');
    assert.match(bad.stderr, /USAGE/);
  });

  it('sets MALLOC_ARENA_MAX for the process unless the caller set it', () => {
    // The script with its final `exec node ...` replaced by printing the variable it exports.
    const probe = (env: NodeJS.ProcessEnv): string =>
      spawnSync('sh', ['-c', `sed 's/^exec node .*/printf %s "$MALLOC_ARENA_MAX"/' "${BIN}" | sh`], { encoding: 'utf8', env }).stdout;
    const env = { ...process.env };
    delete env['MALLOC_ARENA_MAX'];
    assert.equal(probe(env), '2');
    assert.equal(probe({ ...env, MALLOC_ARENA_MAX: '4' }), '4');
    assert.match(fs.readFileSync(BIN, 'utf8'), /^exec node --max-semi-space-size=4 "\$here\/\.\.\/dist\/src\/cli\/main\.js" "\$@"$/m, 'the probe replaced the real start line');
    // The cap the script gives node is the one the CLI recognises (and npm start passes).
    assert.ok(fs.readFileSync(BIN, 'utf8').includes(`exec node ${YOUNG_CAP_OPTION} "`), 'bin/bulwark starts node with YOUNG_CAP_OPTION');
  });
});
