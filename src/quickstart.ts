// `npm start`: Bulwark's main job, the daemon, on embedded defaults. Creates (once) ./data with a
// random repository password (./data/password, mode 0600), a repository (./data/repo) and a config
// (./data/bulwark.yaml) that backs up this project's sources every 20 seconds with a retention
// policy and a prune every 5 minutes, then runs `bulwark daemon` in the foreground until Ctrl-C.
// BULWARK_QUICKSTART_PATHS (":"-separated) picks other paths; BULWARK_QUICKSTART_SECONDS stops the
// daemon after that many seconds and prints `bulwark status`.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { YOUNG_CAP_OPTION } from './cli/heap-mode.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const data = path.join(root, 'data');
const repo = path.join(data, 'repo');
const pwFile = path.join(data, 'password');
const configFile = path.join(data, 'bulwark.yaml');
const cli = path.join(root, 'dist', 'src', 'cli', 'main.js');

fs.mkdirSync(data, { recursive: true, mode: 0o700 });
if (!fs.existsSync(pwFile)) fs.writeFileSync(pwFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
const env: NodeJS.ProcessEnv = { ...process.env, BULWARK_REPO: repo, BULWARK_PASSWORD_FILE: pwFile, BULWARK_CONFIG: configFile };
delete env['BULWARK_PASSWORD'];

const paths = (process.env['BULWARK_QUICKSTART_PATHS'] ?? ['src', 'docs', 'README.md'].map((p) => path.join(root, p)).join(':'))
  .split(':')
  .filter((p) => p !== '');

const CONFIG = `# Written by \`npm start\`: the daemon's embedded default configuration. Edit it and send the
# daemon SIGHUP (or restart it) to apply. See docs/config.md.
version: 1
repositories:
  local:
    url: ${JSON.stringify(repo)}
    password-file: ${JSON.stringify(pwFile)}
sources:
  project:
    type: files
    paths: ${JSON.stringify(paths)}
    exclude: ["node_modules", "*.tmp"]
jobs:
  project:
    source: project
    repository: local
    schedule: "*/20 * * * * *"
    tier: critical
    retention: { keep-last: 10, keep-hourly: 24, keep-daily: 30, keep-weekly: 12, keep-monthly: 12, keep-yearly: 7 }
daemon:
  catalog: ${JSON.stringify(`sqlite:${path.join(data, 'catalog.db')}`)}
  reports: ${JSON.stringify(path.join(data, 'reports'))}
  prune: { schedule: "0 */5 * * * *", max-unused: 5% }
`;

function run(args: string[]): number {
  process.stdout.write(`\n$ bulwark ${args.join(' ')}\n`);
  return spawnSync(process.execPath, [YOUNG_CAP_OPTION, cli, ...args], { env, stdio: 'inherit' }).status ?? 1;
}

if (!fs.existsSync(path.join(repo, 'config')) && run(['init']) !== 0) process.exit(1);
if (!fs.existsSync(configFile)) fs.writeFileSync(configFile, CONFIG, { mode: 0o600 });
if (run(['config', 'validate']) !== 0) process.exit(1);
process.stdout.write(
  `\nStarting the daemon (Ctrl-C stops it). In another terminal:\n` +
    `  BULWARK_CONFIG=${configFile} npx bulwark status\n` +
    `  BULWARK_CONFIG=${configFile} npx bulwark runs\n` +
    `  BULWARK_REPO=${repo} BULWARK_PASSWORD_FILE=${pwFile} npx bulwark snapshots\n\n$ bulwark daemon\n`,
);
const daemon = spawn(process.execPath, [YOUNG_CAP_OPTION, cli, 'daemon'], { env, stdio: 'inherit' });
const seconds = Number(process.env['BULWARK_QUICKSTART_SECONDS'] ?? '0');
if (seconds > 0) setTimeout(() => daemon.kill('SIGTERM'), seconds * 1000);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => daemon.kill(sig));
daemon.on('exit', (code) => {
  if (seconds > 0) run(['status']);
  process.exit(code ?? 0);
});
