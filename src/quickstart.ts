// `npm start`: Bulwark's main job on embedded defaults. Creates (once) a repository under ./data/repo
// with a random password kept in ./data/password (mode 0600), backs up this project's sources (or the
// paths in BULWARK_QUICKSTART_PATHS, separated by ":"), then lists snapshots and checks the repository.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const data = path.join(root, 'data');
const repo = path.join(data, 'repo');
const pwFile = path.join(data, 'password');
const cli = path.join(root, 'dist', 'src', 'cli', 'main.js');

fs.mkdirSync(data, { recursive: true, mode: 0o700 });
if (!fs.existsSync(pwFile)) fs.writeFileSync(pwFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
const env: NodeJS.ProcessEnv = { ...process.env, BULWARK_REPO: repo, BULWARK_PASSWORD_FILE: pwFile };
delete env['BULWARK_PASSWORD'];

function run(args: string[]): number {
  process.stdout.write(`\n$ bulwark ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { env, stdio: 'inherit' });
  return r.status ?? 1;
}

const paths = (process.env['BULWARK_QUICKSTART_PATHS'] ?? ['src', 'docs', 'README.md'].map((p) => path.join(root, p)).join(':'))
  .split(':')
  .filter((p) => p !== '');
if (!fs.existsSync(path.join(repo, 'config')) && run(['init']) !== 0) process.exit(1);
const steps = [['backup', ...paths], ['snapshots'], ['stats'], ['check', '--read-data-subset', '25%']];
for (const s of steps) {
  const code = run(s);
  if (code !== 0 && !(s[0] === 'backup' && code === 3)) process.exit(code);
}
process.stdout.write(`\nRepository: ${repo}\nPassword file: ${pwFile}\nRestore with: BULWARK_REPO=${repo} BULWARK_PASSWORD_FILE=${pwFile} npx bulwark restore latest --target /tmp/restore\n`);
