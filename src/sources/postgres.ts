// PostgreSQL: one `pg_dump` per database in custom format with pg_dump's own compression off (so
// the repository's chunking sees the same bytes for unchanged tables and deduplicates day-to-day
// dumps), plus `pg_dumpall --globals-only` for roles and tablespaces. Restores go through
// `pg_restore` (one database, under another name, schema only, one table, --clean, parallel jobs)
// and `psql` for the globals.
//
// Connections: the client tools get a libpq URI without the password in argv; the password goes
// in PGPASSWORD. PG* variables of Bulwark's own environment (PGPASSFILE, PGSSLMODE...) are passed on,
// so libpq's usual configuration keeps working.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { BulwarkError, type ErrorCode } from '../errors.js';
import type { StreamItem, StreamItemResult } from '../backup/stream-backup.js';
import { parseDbUrl, type DbUrl } from './db-url.js';
import { findTool, runTool } from './process.js';
import { safeFileName, type BackupPlan, type DbBackupOptions, type DbEngine, type DbRestoreOptions, type RestoreInput, type RestoreReport, type RestoreStep } from './source.js';

const SCHEMES = ['postgresql:', 'postgres:'] as const;
const INSTALL = 'install the PostgreSQL client tools (Debian: apt-get install postgresql-client) matching the server\'s major version';

const resolvedTools = new Map<string, string>();

/**
 * The program to run for a PostgreSQL client tool. On Debian, /usr/bin/pg_dump, psql and the rest
 * are links to pg_wrapper, a Perl script that picks a version and then runs the real program: 50 to
 * 100 ms per call spent starting Perl. When the tool on PATH is that wrapper, run the newest
 * installed version directly, which is what the wrapper itself picks for a connection to a host
 * (a newer pg_dump reads older servers; an older one refuses newer ones). Anything else on PATH
 * is used as found.
 */
export function pgTool(name: string): string {
  // PGCLUSTER (and the wrapper's own configuration) pick a version on purpose: leave it to them.
  if (process.env['PGCLUSTER'] !== undefined) return name;
  let tool = resolvedTools.get(name);
  if (tool !== undefined && (tool === name || executable(tool))) return tool;
  tool = name;
  const onPath = findTool([name]);
  try {
    if (onPath !== undefined && path.basename(fs.realpathSync(onPath)) === 'pg_wrapper') {
      const versions = fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
      for (const v of versions) {
        const real = `/usr/lib/postgresql/${v}/bin/${name}`;
        if (!executable(real)) continue;
        tool = real;
        break;
      }
    }
  } catch {
    // keep the name: PATH lookup at spawn time, as before
  }
  resolvedTools.set(name, tool);
  return tool;
}

function executable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

interface DbInfo {
  name: string;
  encoding: string;
  collate: string;
  ctype: string;
  owner: string;
  size: number | null;
}

interface ServerInfo {
  version: string;
  versionNum: number;
  superuser: boolean;
  databases: DbInfo[];
}

/** Maps libpq's and the tools' messages to stable codes. */
export function classifyPg(stderr: string): ErrorCode | undefined {
  if (/password authentication failed|no password supplied|authentication failed|role ".*" does not exist|pg_hba\.conf rejects/i.test(stderr)) return 'DB_AUTH';
  if (/database ".*" does not exist/i.test(stderr)) return 'DB_NOT_FOUND';
  if (/could not connect|connection refused|could not translate host name|timeout expired|server closed the connection|No such file or directory\s*\n?\s*Is the server running/i.test(stderr)) return 'DB_CONNECT';
  return undefined;
}

class PgConn {
  readonly url: DbUrl;
  constructor(raw: string) {
    this.url = parseDbUrl(raw, SCHEMES);
  }

  /** libpq URI for one database, without the password. */
  uri(database: string): string {
    const u = this.url;
    const auth = u.user !== undefined ? `${encodeURIComponent(u.user)}@` : '';
    const host = u.host.includes(':') ? `[${u.host}]` : encodeURIComponent(u.host);
    const port = u.port !== undefined ? `:${u.port}` : '';
    const q = u.params.toString();
    return `postgresql://${auth}${host}${port}/${encodeURIComponent(database)}${q !== '' ? `?${q}` : ''}`;
  }

  env(): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (k.startsWith('PG') && v !== undefined) env[k] = v;
    if (this.url.password !== undefined) env['PGPASSWORD'] = this.url.password;
    // Our own URIs name the database; a stray PGDATABASE must not override anything.
    delete env['PGDATABASE'];
    return env;
  }

  get maintenanceDb(): string {
    return this.url.database ?? 'postgres';
  }

  /** Runs SQL through psql (stdin, so psql variables are interpolated) and returns stdout. */
  async sql(database: string, sql: string, vars: Record<string, string> = {}, what = 'psql query', failCode: ErrorCode = 'RESTORE_FAILED'): Promise<string> {
    const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', this.uri(database)];
    for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
    const r = await runTool(pgTool('psql'), args, { env: this.env(), input: sql, stdout: 'capture', what, failCode, classify: classifyPg, install: INSTALL });
    return r.stdout.trim();
  }

  async serverInfo(): Promise<ServerInfo> {
    const out = await this.sql(
      this.maintenanceDb,
      `SELECT json_build_object('version', current_setting('server_version'), 'versionNum', current_setting('server_version_num')::int,
        'superuser', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
        'databases', (SELECT coalesce(json_agg(json_build_object('name', datname, 'encoding', pg_encoding_to_char(encoding),
          'collate', datcollate, 'ctype', datctype, 'owner', pg_get_userbyid(datdba),
          'size', CASE WHEN has_database_privilege(datname, 'CONNECT') THEN pg_database_size(datname) END) ORDER BY datname), '[]'::json)
          FROM pg_database WHERE datallowconn AND NOT datistemplate))`,
      {},
      `connecting to ${this.url.redacted}`,
      'DB_CONNECT',
    );
    return JSON.parse(out) as ServerInfo;
  }
}

export const postgres: DbEngine = {
  engine: 'postgresql',
  schemes: SCHEMES,

  redact(url) {
    return parseDbUrl(url, SCHEMES).redacted;
  },

  async prepareBackup(raw, opts): Promise<BackupPlan> {
    const conn = new PgConn(raw);
    const info = await conn.serverInfo();
    const wanted = opts.databases.length > 0 ? opts.databases : conn.url.database !== undefined ? [conn.url.database] : info.databases.map((d) => d.name);
    const dbs: DbInfo[] = [];
    for (const name of wanted) {
      const d = info.databases.find((x) => x.name === name);
      if (d === undefined) {
        throw new BulwarkError('DB_NOT_FOUND', `database ${name} does not exist on ${conn.url.redacted}`, {
          subject: name,
          hint: `databases there: ${info.databases.map((x) => x.name).join(', ')}`,
        });
      }
      dbs.push(d);
    }
    const items: StreamItem[] = [];
    const globalsWarnings: string[] = [];
    // Without superuser rights pg_authid is unreadable: roles are then dumped without passwords.
    if (!info.superuser) globalsWarnings.push('roles were dumped without passwords (only a superuser can read them)');
    const globalsArgs = ['--globals-only', '--no-sync', ...(info.superuser ? [] : ['--no-role-passwords']), '-d', conn.uri(conn.maintenanceDb)];
    items.push({
      name: 'globals.sql',
      produce: async (fd, signal) => {
        await runTool(pgTool('pg_dumpall'), globalsArgs, { env: conn.env(), stdout: fd, signal, what: 'pg_dumpall --globals-only', classify: classifyPg, install: INSTALL });
      },
    });
    for (const d of dbs) {
      const args = ['-Fc', '-Z0', '-d', conn.uri(d.name)];
      for (const t of opts.excludeTables) args.push(`--exclude-table=${t}`);
      if (opts.schemaOnly) args.push('--schema-only');
      items.push({
        name: `${safeFileName(d.name)}.pgdump`,
        produce: async (fd, signal) => {
          await runTool(pgTool('pg_dump'), args, { env: conn.env(), stdout: fd, signal, what: `pg_dump of database ${d.name}`, classify: classifyPg, install: INSTALL });
        },
      });
    }
    return {
      items,
      paths: [conn.url.redacted],
      tags: ['postgresql', ...dbs.map((d) => `db:${d.name}`)],
      databases: dbs.map((d) => d.name),
      describe: (results: StreamItemResult[]) => ({
        engine: 'postgresql',
        url: conn.url.redacted,
        serverVersion: info.version,
        items: results.map((r) => {
          if (r.name === 'globals.sql') return { file: r.name, kind: 'globals', format: 'sql', size: r.size };
          const d = dbs.find((x) => `${safeFileName(x.name)}.pgdump` === r.name)!;
          return {
            file: r.name,
            kind: 'database',
            database: d.name,
            format: 'pg_dump-custom',
            size: r.size,
            meta: { encoding: d.encoding, collate: d.collate, ctype: d.ctype, owner: d.owner, serverSize: d.size },
          };
        }),
        details: {
          schemaOnly: opts.schemaOnly,
          excludeTables: opts.excludeTables,
          serverVersionNum: info.versionNum,
          ...(globalsWarnings.length > 0 ? { warnings: globalsWarnings } : {}),
        },
      }),
    };
  },

  async restore(input, opts) {
    return restorePostgres(input, opts);
  },
};

async function restorePostgres(input: RestoreInput, opts: DbRestoreOptions): Promise<RestoreReport> {
  const conn = new PgConn(opts.to);
  const all = input.source.items.filter((i) => i.kind === 'database');
  let chosen = all;
  if (opts.database !== undefined) {
    chosen = all.filter((i) => i.database === opts.database);
    if (chosen.length === 0) {
      throw new BulwarkError('DB_NOT_FOUND', `snapshot ${input.snapshot.id.slice(0, 8)} holds no database ${opts.database}`, {
        subject: opts.database,
        hint: `it holds: ${all.map((i) => i.database).join(', ')}`,
      });
    }
  }
  if (opts.as !== undefined && chosen.length !== 1) {
    throw new BulwarkError('USAGE', '--as needs exactly one database: add --database NAME', { subject: '--as' });
  }
  const steps: RestoreStep[] = [];
  const warnings: string[] = [];
  const report: RestoreReport = { engine: 'postgresql', target: conn.url.redacted, dryRun: opts.dryRun, steps, warnings };
  // Fails early, with DB_CONNECT/DB_AUTH, before anything is changed.
  const existing = new Set((await conn.serverInfo()).databases.map((d) => d.name));

  const globals = input.source.items.find((i) => i.kind === 'globals');
  const wholeServer = opts.database === undefined && opts.table === undefined;
  if (globals !== undefined && wholeServer && !opts.noGlobals && !opts.schemaOnly) {
    steps.push({ action: 'apply-globals', detail: 'roles and tablespaces (psql; "already exists" errors are expected and ignored)' });
    if (!opts.dryRun) warnings.push(...(await applyGlobals(conn, input.read(globals.file))));
  }

  for (const item of chosen) {
    const name = item.database!;
    const target = opts.as ?? name;
    const exists = existing.has(target);
    if (opts.table === undefined) {
      // Every server has a `postgres` database: a whole-server restore fills it, as pg_dumpall's
      // scripts do, instead of refusing it.
      const maintenance = wholeServer && opts.as === undefined && target === 'postgres';
      if (exists && !opts.clean && !maintenance) {
        throw new BulwarkError('DB_EXISTS', `database ${target} already exists on ${conn.url.redacted}`, {
          subject: target,
          hint: 'add --clean to drop and recreate its objects, or --as NEWNAME to restore beside it',
        });
      }
    } else if (!exists) {
      throw new BulwarkError('DB_NOT_FOUND', `database ${target} does not exist on ${conn.url.redacted}; a single table is restored into an existing database`, {
        subject: target,
        hint: 'restore the whole database first, or pick another with --as',
      });
    }
    if (!exists) {
      steps.push({ action: 'create-database', database: name, target, detail: `encoding ${String(item.meta?.['encoding'] ?? 'default')}` });
      if (!opts.dryRun) warnings.push(...(await createDatabase(conn, target, item.meta ?? {}, opts.noOwner)));
    }
    const args = ['-d', conn.uri(target), '--exit-on-error'];
    if (opts.clean) args.push('--clean', '--if-exists');
    if (opts.schemaOnly) args.push('--schema-only');
    if (opts.noOwner) args.push('--no-owner', '--no-privileges');
    if (opts.table !== undefined) {
      const dot = opts.table.indexOf('.');
      if (dot > 0) args.push('-n', opts.table.slice(0, dot), '-t', opts.table.slice(dot + 1));
      else args.push('-t', opts.table);
    }
    const jobs = opts.jobs ?? 1;
    steps.push({ action: 'pg_restore', database: name, target, detail: ['pg_restore', ...args, ...(jobs > 1 ? ['-j', String(jobs), '(from a temp file)'] : ['(from stdin)'])].join(' ') });
    if (opts.dryRun) continue;
    if (jobs > 1) await restoreParallel(conn, input.read(item.file), args, jobs, name);
    else await runTool(pgTool('pg_restore'), args, { env: conn.env(), input: input.read(item.file), what: `pg_restore of database ${name} into ${target}`, failCode: 'RESTORE_FAILED', classify: classifyPg, install: INSTALL });
  }
  return report;
}

/** psql over the globals dump; returns the errors that matter ("already exists" is normal). */
async function applyGlobals(conn: PgConn, sql: AsyncIterable<Buffer>): Promise<string[]> {
  const r = await runTool(pgTool('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=0', '-d', conn.uri(conn.maintenanceDb)], {
    env: conn.env(),
    input: sql,
    stdout: 'ignore',
    what: 'applying roles and tablespaces (psql)',
    failCode: 'RESTORE_FAILED',
    classify: classifyPg,
    install: INSTALL,
  });
  return r.stderr
    .split('\n')
    .filter((l) => /ERROR:/.test(l) && !/already exists/.test(l))
    .map((l) => `globals: ${l.replace(/^.*?ERROR:\s*/, '')}`);
}

async function createDatabase(conn: PgConn, name: string, meta: Record<string, unknown>, noOwner: boolean): Promise<string[]> {
  const warnings: string[] = [];
  const vars: Record<string, string> = { name };
  const enc = typeof meta['encoding'] === 'string' ? meta['encoding'] : undefined;
  const coll = typeof meta['collate'] === 'string' ? meta['collate'] : undefined;
  const ctype = typeof meta['ctype'] === 'string' ? meta['ctype'] : undefined;
  let sql = 'CREATE DATABASE :"name" TEMPLATE template0';
  if (enc !== undefined) {
    vars['enc'] = enc;
    sql += ' ENCODING :\'enc\'';
  }
  let withLocale = sql;
  if (coll !== undefined && ctype !== undefined) {
    vars['coll'] = coll;
    vars['ctype'] = ctype;
    withLocale += ' LC_COLLATE :\'coll\' LC_CTYPE :\'ctype\'';
  }
  try {
    await conn.sql(conn.maintenanceDb, withLocale + ';', vars, `creating database ${name}`);
  } catch (err) {
    // The target server may lack the source's locale: create with its default locale instead.
    if (withLocale === sql || !(err instanceof BulwarkError) || !/locale|collation|invalid/i.test(err.message)) throw err;
    warnings.push(`database ${name}: locale ${coll}/${ctype} not available on the target, created with the server default`);
    await conn.sql(conn.maintenanceDb, sql + ';', vars, `creating database ${name}`);
  }
  const owner = typeof meta['owner'] === 'string' ? meta['owner'] : undefined;
  if (owner !== undefined && !noOwner) {
    try {
      await conn.sql(conn.maintenanceDb, 'ALTER DATABASE :"name" OWNER TO :"owner";', { name, owner }, `setting the owner of ${name}`);
    } catch (err) {
      warnings.push(`database ${name}: owner ${owner} not set (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`);
    }
  }
  return warnings;
}

/**
 * pg_restore --jobs needs a seekable archive, so the dump is written to a private temp file
 * (0600 in a 0700 directory, removed afterwards) first. Only used when parallel jobs are asked for.
 */
async function restoreParallel(conn: PgConn, data: AsyncIterable<Buffer>, args: string[], jobs: number, name: string): Promise<void> {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'bulwark-pgrestore-'));
  fs.chmodSync(dir, 0o700);
  const file = path.join(dir, 'archive.pgdump');
  try {
    const fh = await fs.promises.open(file, 'wx', 0o600);
    try {
      for await (const b of data) await fh.write(b);
    } finally {
      await fh.close();
    }
    await runTool(pgTool('pg_restore'), [...args, '-j', String(jobs), file], { env: conn.env(), what: `pg_restore of database ${name}`, failCode: 'RESTORE_FAILED', classify: classifyPg, install: INSTALL });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
