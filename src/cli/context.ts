// What a command gets from the CLI: global options, the password source, output helpers (text or
// JSON), and a TTY-only progress line. Secrets are read from the environment or files, never argv.
import * as fs from 'node:fs';
import { BulwarkError } from '../errors.js';
import { Repository } from '../repo/repository.js';
import { readTokenFile } from '../storage/append-only.js';
import { openStorage } from '../storage/open.js';
import type { Storage } from '../storage/storage.js';

export interface GlobalOptions {
  repo: string | undefined;
  passwordFile: string | undefined;
  config?: string | undefined;
  json: boolean;
  quiet: boolean;
}

export class Context {
  private lastProgress = 0;
  constructor(
    readonly opts: GlobalOptions,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get json(): boolean {
    return this.opts.json;
  }

  storage(): Storage {
    const url = this.opts.repo ?? this.env['BULWARK_REPO'];
    if (url === undefined || url === '') {
      throw new BulwarkError('USAGE', 'no repository given', { hint: 'pass --repo LOCATION or set BULWARK_REPO' });
    }
    return openStorage(url);
  }

  /** Reads the repository password from --password-file, BULWARK_PASSWORD_FILE or BULWARK_PASSWORD. */
  password(): string {
    return this.secret(this.opts.passwordFile, 'BULWARK_PASSWORD', 'BULWARK_PASSWORD_FILE');
  }

  /** The source repository's password for `copy`: its own option and variables only. */
  fromPassword(fileOpt: string | undefined): string {
    return this.secret(fileOpt, 'BULWARK_FROM_PASSWORD', 'BULWARK_FROM_PASSWORD_FILE');
  }

  /** Reads a new password (key add/passwd): only from its own option and variables, never the current ones. */
  newPassword(fileOpt: string | undefined): string {
    return this.secret(fileOpt, 'BULWARK_NEW_PASSWORD', 'BULWARK_NEW_PASSWORD_FILE');
  }

  private secret(fileOpt: string | undefined, envVar: string, fileEnv: string): string {
    const file = fileOpt ?? this.env[fileEnv];
    if (file !== undefined && file !== '') {
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        throw new BulwarkError('NO_PASSWORD', `cannot read password file ${file}: ${(err as Error).message}`, { subject: file });
      }
      const pw = text.replace(/\r?\n$/, '');
      if (pw === '') throw new BulwarkError('NO_PASSWORD', `password file ${file} is empty`, { subject: file });
      return pw;
    }
    const pw = this.env[envVar];
    if (pw === undefined || pw === '') {
      throw new BulwarkError('NO_PASSWORD', 'no password given', { hint: `set ${envVar}, ${fileEnv} or --password-file` });
    }
    return pw;
  }

  /** The config file: --config, else BULWARK_CONFIG, else ./bulwark.yaml. */
  configPath(): string {
    const c = this.opts.config ?? this.env['BULWARK_CONFIG'];
    return c !== undefined && c !== '' ? c : 'bulwark.yaml';
  }

  async openRepo(): Promise<Repository> {
    const token = this.deleteToken();
    return Repository.open(this.storage(), this.password(), token !== undefined ? { deleteToken: token } : {});
  }

  /** The delete token of an append-only repository, if the operator holds it. */
  deleteToken(): string | undefined {
    const file = this.env['BULWARK_DELETE_TOKEN_FILE'];
    if (file !== undefined && file !== '') return readTokenFile(file);
    const t = this.env['BULWARK_DELETE_TOKEN'];
    return t === undefined || t === '' ? undefined : t;
  }

  /** Prints a result: the JSON value with --json, otherwise the text. */
  result(value: unknown, text: string | (() => string)): void {
    this.clearProgress();
    if (this.opts.json) process.stdout.write(JSON.stringify(value, null, 2) + '\n');
    else if (!this.opts.quiet) {
      const t = typeof text === 'function' ? text() : text;
      if (t !== '') process.stdout.write(t.endsWith('\n') ? t : t + '\n');
    }
  }

  /** A warning on stderr (suppressed in --json mode, where warnings are part of the result). */
  warn(message: string): void {
    if (this.opts.json) return;
    this.clearProgress();
    process.stderr.write(`warning: ${message}\n`);
  }

  progress(line: string): void {
    if (this.opts.json || this.opts.quiet || !process.stderr.isTTY) return;
    const now = Date.now();
    if (now - this.lastProgress < 100) return;
    this.lastProgress = now;
    const width = process.stderr.columns ?? 80;
    process.stderr.write(`\r\x1b[K${line.slice(0, width - 1)}`);
  }

  clearProgress(): void {
    if (this.lastProgress !== 0 && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    this.lastProgress = 0;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(2)} ${units[u]}`;
}
