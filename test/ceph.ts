// A real S3 endpoint for the tests: Ceph RADOS Gateway on a one-node in-memory Ceph cluster on
// loopback, started by test/ceph-s3.sh once per test process (in a temp dir, on free ports) and
// stopped when the process ends. Each test gets its own bucket (newBucket), which the backend's
// create() makes.
//
// Without the Ceph binaries the S3 tests are skipped with a message saying how to install them,
// unless CI is set: then missing binaries fail the run.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Ceph {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  dir: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** The script lives in test/ of the sources; the compiled harness runs from dist/test/. */
export const CEPH_SCRIPT = [path.join(here, 'ceph-s3.sh'), path.join(here, '..', '..', 'test', 'ceph-s3.sh')].find((p) => fs.existsSync(p)) ?? path.join(here, 'ceph-s3.sh');

export const INSTALL_HINT = 'S3 tests need a local Ceph RGW: apt-get install -y ceph-mon ceph-osd radosgw ceph-common (Debian/Ubuntu)';

const BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph-authtool', 'monmaptool', 'ceph'];

function onPath(bin: string): boolean {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    for (const d of [dir, '/usr/sbin', '/sbin']) {
      try {
        fs.accessSync(path.join(d, bin), fs.constants.X_OK);
        return true;
      } catch {
        // next
      }
    }
  }
  return false;
}

/** Why the S3 tests cannot run here, or undefined if they can. Throws under CI. */
export function cephUnavailable(): string | undefined {
  const missing = BINARIES.filter((b) => !onPath(b));
  if (missing.length === 0) return undefined;
  const msg = `missing ${missing.join(', ')}. ${INSTALL_HINT}`;
  if (process.env['CI'] !== undefined && process.env['CI'] !== '' && process.env['CI'] !== 'false') {
    throw new Error(`CI is set but the S3 tests cannot run: ${msg}`);
  }
  return msg;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A port p such that p and p+1 are free (S3 and monitor), below Linux's ephemeral range
 * (32768-60999) so that no outgoing connection or port-0 listener takes it before Ceph binds it.
 */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 12000 + Math.floor(Math.random() * 20000);
    if ((await portFree(p)) && (await portFree(p + 1))) return p;
  }
  throw new Error('no free port pair found for Ceph');
}

/** True if an S3 server (RGW answers anonymous GET / with a bucket listing) listens on `port`. */
async function isRgw(port: number): Promise<boolean> {
  for (let i = 0; i < 10; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) });
      const body = await res.text();
      if (body.includes('ListAllMyBucketsResult') || body.includes('<Error>')) return true;
    } catch {
      // not yet, or not RGW
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

let started: Promise<Ceph> | undefined;
let stopDir: string | undefined;

function stopNow(): void {
  if (stopDir === undefined) return;
  const top = stopDir;
  const d = path.join(top, 'c');
  stopDir = undefined;
  try {
    execFileSync('bash', [CEPH_SCRIPT, 'stop', d], { stdio: 'ignore', timeout: 20_000 });
  } catch {
    // best effort
  }
  // Give the daemons a moment to exit before their directory goes.
  for (let i = 0; i < 20; i++) {
    const alive = fs.existsSync(path.join(d, 'run')) && fs.readdirSync(path.join(d, 'run')).some((f) => {
      if (!f.endsWith('.pid')) return false;
      try {
        process.kill(Number(fs.readFileSync(path.join(d, 'run', f), 'utf8')), 0);
        return true;
      } catch {
        return false;
      }
    });
    if (!alive) break;
    execFileSync('sleep', ['0.25']);
  }
  fs.rmSync(top, { recursive: true, force: true });
}

/**
 * Starts Ceph RGW once for this process (later calls share it) and puts its credentials into
 * process.env (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) for the SDK's default chain.
 */
export function startCeph(): Promise<Ceph> {
  started ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-ceph-'));
    const firstPort = await freePortPair();
    stopDir = dir;
    process.once('exit', stopNow);
    let out = '';
    // Another process may still take the port between the check and the bind; then RGW exits and
    // whatever took the port does not speak S3. Check it is RGW answering, else try other ports.
    for (let attempt = 1; ; attempt++) {
      const port = attempt === 1 ? firstPort : await freePortPair();
      out = await new Promise<string>((resolve, reject) => {
        execFile('bash', [CEPH_SCRIPT, 'start', path.join(dir, 'c'), String(port)], { timeout: 180_000 }, (err, stdout, stderr) => {
          if (err !== null) reject(new Error(`starting Ceph failed: ${err.message}\n${stderr}`));
          else resolve(stdout);
        });
      });
      if (await isRgw(port)) break;
      execFileSync('bash', [CEPH_SCRIPT, 'stop', path.join(dir, 'c')], { stdio: 'ignore' });
      if (attempt >= 3) throw new Error(`Ceph RGW did not come up on a free port (logs in ${path.join(dir, 'c', 'log')})`);
    }
    const vars = Object.fromEntries(
      out
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const ceph: Ceph = {
      endpoint: vars['S3_ENDPOINT'] ?? '',
      accessKeyId: vars['AWS_ACCESS_KEY_ID'] ?? '',
      secretAccessKey: vars['AWS_SECRET_ACCESS_KEY'] ?? '',
      region: vars['AWS_REGION'] ?? 'us-east-1',
      dir: path.join(dir, 'c'),
    };
    Object.assign(process.env, cephEnv(ceph));
    return ceph;
  })();
  return started;
}

export function stopCeph(): void {
  stopNow();
}

/** Environment for child processes (the CLI) that talk to this Ceph. */
export function cephEnv(c: Ceph): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: c.accessKeyId, AWS_SECRET_ACCESS_KEY: c.secretAccessKey, AWS_REGION: c.region };
}

let counter = 0;
/** A bucket name no other test of this process uses (the bucket itself is made by create()). */
export function newBucket(tag = 't'): string {
  return `bw-${tag}-${process.pid}-${++counter}-${randomBytes(3).toString('hex')}`.toLowerCase().slice(0, 63);
}

/** s3: location of a fresh bucket (and prefix) at `endpoint` (default: the RGW itself). */
export function bucketUrl(c: Ceph, opts: { endpoint?: string; prefix?: string; tag?: string } = {}): string {
  const prefix = opts.prefix ?? 'repo';
  return `s3:${opts.endpoint ?? c.endpoint}/${newBucket(opts.tag)}${prefix === '' ? '' : `/${prefix}`}`;
}
