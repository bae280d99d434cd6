// SQL drivers for the run catalog. The catalog's queries are written once, in the SQL that SQLite
// and PostgreSQL share, with `?` placeholders; the PostgreSQL driver renumbers them to `$1, $2...`.
// That is the whole dialect switch: one machine uses an embedded SQLite file, many hosts point
// their daemons at one PostgreSQL database.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Database from 'better-sqlite3';
import type pg from 'pg';
import { BulwarkError } from '../errors.js';
import { lazy } from '../lazy.js';
import { redactUrl } from '../redact.js';

const sqlite = lazy<typeof Database>('better-sqlite3');
const pgDriver = lazy<typeof pg>('pg');

export type Row = Record<string, unknown>;

export interface SqlDriver {
  readonly dialect: 'sqlite' | 'postgresql';
  readonly location: string;
  exec(sql: string): Promise<void>;
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  all(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  close(): Promise<void>;
}

class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  constructor(readonly location: string) {
    fs.mkdirSync(path.dirname(location), { recursive: true, mode: 0o700 });
    this.db = new (sqlite())(location);
    // WAL lets `bulwark status` read while the daemon writes; a busy timeout instead of SQLITE_BUSY.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('synchronous = NORMAL');
  }
  async exec(sql: string): Promise<void> {
    this.db.exec(sql);
  }
  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return this.db.prepare(sql).run(...params).changes;
  }
  async all(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return this.db.prepare(sql).all(...params) as Row[];
  }
  async close(): Promise<void> {
    this.db.close();
  }
}

class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgresql' as const;
  private readonly pool: pg.Pool;
  constructor(
    url: string,
    readonly location: string,
  ) {
    this.pool = new (pgDriver().Pool)({ connectionString: url, max: 4 });
    this.pool.on('error', () => undefined);
  }
  private static numbered(sql: string): string {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  }
  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }
  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.pool.query(PostgresDriver.numbered(sql), [...params])).rowCount ?? 0;
  }
  async all(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.pool.query(PostgresDriver.numbered(sql), [...params])).rows as Row[];
  }
  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** `sqlite:PATH` or `postgresql://user@host/db` (password from the URL or PGPASSWORD). */
export function openDriver(url: string): SqlDriver {
  if (url.startsWith('sqlite:')) return new SqliteDriver(url.slice('sqlite:'.length));
  if (/^postgres(ql)?:\/\//.test(url)) return new PostgresDriver(url, redactUrl(url));
  throw new BulwarkError('CONFIG_INVALID', `unsupported catalog location ${redactUrl(url)}`, {
    subject: 'daemon.catalog',
    hint: 'use sqlite:PATH or postgresql://USER@HOST/DB',
  });
}
