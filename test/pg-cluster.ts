// A throwaway PostgreSQL cluster for tests that need their own server (password authentication,
// stopping the server mid-dump): initdb in a temp dir as the postgres user, on a free loopback
// port, removed by stop().
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const BIN = '/usr/lib/postgresql/15/bin';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a !== null ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface PgCluster {
  port: number;
  dir: string;
  /** psql as the superuser `postgres` (password in the environment). */
  psql(sql: string, db?: string): string;
  stop(): void;
}

function asPostgres(cmd: string, args: string[], env: Record<string, string> = {}): void {
  execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: 'pipe', env: { PATH: process.env['PATH'] ?? '', ...env } });
}

/** Starts a cluster whose superuser `postgres` needs `password` (scram-sha-256 on TCP). */
export async function startCluster(password: string): Promise<PgCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-pg-'));
  fs.chmodSync(dir, 0o755);
  const data = path.join(dir, 'data');
  const pwfile = path.join(dir, 'pw');
  fs.writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  asPostgres(`${BIN}/initdb`, ['-D', data, '-U', 'postgres', '--auth-host=scram-sha-256', '--auth-local=trust', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  asPostgres(`${BIN}/pg_ctl`, ['-D', data, '-w', '-l', path.join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  return {
    port,
    dir,
    psql(sql, db = 'postgres') {
      const r = spawnSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db], {
        input: sql,
        env: { PATH: process.env['PATH'] ?? '', PGPASSWORD: password },
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
      return r.stdout.trim();
    },
    stop() {
      try {
        asPostgres(`${BIN}/pg_ctl`, ['-D', data, '-m', 'immediate', 'stop']);
      } catch {
        // already stopped
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
