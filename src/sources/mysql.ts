// MySQL and MariaDB: one `mariadb-dump` (or `mysqldump`) per database with --single-transaction
// (a consistent InnoDB snapshot without locking), routines, triggers and events; the dump has no
// CREATE DATABASE/USE lines, so it loads into any database name. On MariaDB, users and grants are
// dumped as `globals.sql` (--system=users). Restores go through the `mariadb`/`mysql` client.
//
// Credentials go to the tools in a 0600 options file (--defaults-extra-file) in a private 0700
// directory that is removed afterwards: never in argv, where `ps` would show them.
import { BulwarkError, type ErrorCode } from '../errors.js';
import type { StreamItemResult } from '../backup/stream-backup.js';
import { parseDbUrl, type DbUrl } from './db-url.js';
import { findTool, runTool, SecretDir, type ToolOptions } from './process.js';
import { safeFileName, type BackupPlan, type DbEngine, type DbRestoreOptions, type RestoreInput, type RestoreReport, type RestoreStep } from './source.js';

const SCHEMES = ['mysql:', 'mariadb:'] as const;
const INSTALL = 'install the MariaDB or MySQL client tools (Debian: apt-get install mariadb-client)';
const SYSTEM_DBS = new Set(['information_schema', 'performance_schema', 'sys', 'mysql']);

export function classifyMysql(stderr: string): ErrorCode | undefined {
  if (/Access denied for user/i.test(stderr)) return 'DB_AUTH';
  if (/Unknown database/i.test(stderr)) return 'DB_NOT_FOUND';
  if (/Can't connect|Unknown (MySQL|MariaDB) server host|Lost connection|Connection refused|Got timeout/i.test(stderr)) return 'DB_CONNECT';
  return undefined;
}

/** `<db>.sql`; a database named "globals" is encoded so it cannot collide with globals.sql. */
function dbFile(name: string): string {
  const f = `${safeFileName(name)}.sql`;
  return f === 'globals.sql' ? '%67lobals.sql' : f;
}

interface DbInfo {
  name: string;
  charset: string;
  collation: string;
}

/** A quoted option-file value: backslash and double quote escaped. */
function optValue(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

function ident(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

function literal(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

class MyConn {
  readonly url: DbUrl;
  constructor(raw: string) {
    this.url = parseDbUrl(raw, SCHEMES);
  }

  /** Runs `fn` with the path of a fresh options file holding the connection and password. */
  async withOptions<T>(fn: (file: string) => Promise<T>): Promise<T> {
    const dir = new SecretDir();
    try {
      const u = this.url;
      const lines = ['[client]'];
      const socket = u.params.get('socket');
      if (socket !== null) lines.push(`socket=${optValue(socket)}`);
      else lines.push(`host=${optValue(u.host)}`);
      if (u.port !== undefined) lines.push(`port=${u.port}`);
      if (u.user !== undefined) lines.push(`user=${optValue(u.user)}`);
      const pw = u.password ?? process.env['MYSQL_PWD'];
      if (pw !== undefined) lines.push(`password=${optValue(pw)}`);
      // A host name (not "localhost") means TCP; the clients would otherwise try the socket.
      if (socket === null && u.host !== 'localhost') lines.push('protocol=TCP');
      return await fn(dir.write('client.cnf', lines.join('\n') + '\n'));
    } finally {
      dir.dispose();
    }
  }

  client(): string {
    const t = findTool(['mariadb', 'mysql']);
    if (t === undefined) throw new BulwarkError('TOOL_MISSING', 'neither mariadb nor mysql (the client) is installed', { subject: 'mariadb', hint: INSTALL });
    return t;
  }

  dumper(): string {
    const t = findTool(['mariadb-dump', 'mysqldump']);
    if (t === undefined) throw new BulwarkError('TOOL_MISSING', 'neither mariadb-dump nor mysqldump is installed', { subject: 'mariadb-dump', hint: INSTALL });
    return t;
  }

  async sql(sql: string, what: string, failCode: ErrorCode = 'RESTORE_FAILED', database?: string): Promise<string> {
    const client = this.client();
    return this.withOptions(async (cnf) => {
      const args = [`--defaults-extra-file=${cnf}`, '-N', '-B', '--default-character-set=utf8mb4', ...(database !== undefined ? [database] : [])];
      const r = await runTool(client, args, { input: sql, stdout: 'capture', what, failCode, classify: classifyMysql, install: INSTALL });
      return r.stdout;
    });
  }

  async serverInfo(): Promise<{ version: string; databases: DbInfo[] }> {
    const out = await this.sql(
      'SELECT VERSION();\nSELECT schema_name, default_character_set_name, default_collation_name FROM information_schema.schemata ORDER BY schema_name;\n',
      `connecting to ${this.url.redacted}`,
      'DB_CONNECT',
    );
    const lines = out.split('\n').filter((l) => l !== '');
    const version = lines.shift() ?? '';
    const databases = lines.map((l) => {
      const [name, charset, collation] = l.split('\t').map(unescapeBatch);
      return { name: name ?? '', charset: charset ?? 'utf8mb4', collation: collation ?? '' };
    });
    return { version, databases };
  }
}

/** Undoes the mysql client's batch-mode escaping (\t, \n, \\, \0). */
function unescapeBatch(s: string): string {
  return s.replace(/\\([tn0\\])/g, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === '0' ? '\0' : '\\'));
}

export const mysql: DbEngine = {
  engine: 'mysql',
  schemes: SCHEMES,

  redact(url) {
    return parseDbUrl(url, SCHEMES).redacted;
  },

  async prepareBackup(raw, opts): Promise<BackupPlan> {
    const conn = new MyConn(raw);
    const dumper = conn.dumper();
    const info = await conn.serverInfo();
    const mariadb = /mariadb/i.test(info.version);
    const wanted = opts.databases.length > 0 ? opts.databases : conn.url.database !== undefined ? [conn.url.database] : info.databases.map((d) => d.name).filter((n) => !SYSTEM_DBS.has(n));
    const dbs: DbInfo[] = wanted.map((name) => {
      const d = info.databases.find((x) => x.name === name);
      if (d === undefined) {
        throw new BulwarkError('DB_NOT_FOUND', `database ${name} does not exist on ${conn.url.redacted}`, {
          subject: name,
          hint: `databases there: ${info.databases.map((x) => x.name).join(', ')}`,
        });
      }
      return d;
    });
    const run = (args: string[], fd: number, what: string, signal: AbortSignal): Promise<unknown> =>
      conn.withOptions((cnf) => runTool(dumper, [`--defaults-extra-file=${cnf}`, ...args], { stdout: fd, signal, what, classify: classifyMysql, install: INSTALL }));
    const items: BackupPlan['items'] = [];
    const warnings: string[] = [];
    // Users and grants need read access to mysql.user; an account limited to its own databases
    // backs those up without them.
    const canReadUsers = await conn.sql('SELECT COUNT(*) FROM mysql.user;\n', 'checking access to mysql.user', 'DB_CONNECT').then(
      () => true,
      () => false,
    );
    if (mariadb && !canReadUsers) warnings.push('users and grants were not dumped: this account cannot read mysql.user');
    if (mariadb && canReadUsers) {
      items.push({ name: 'globals.sql', produce: async (fd, signal) => void (await run(['--system=users', '--insert-ignore', '--skip-dump-date'], fd, 'mariadb-dump --system=users', signal)) });
    }
    for (const d of dbs) {
      const args = ['--single-transaction', '--routines', '--triggers', '--events', '--hex-blob', '--default-character-set=utf8mb4', '--skip-dump-date', '--max-allowed-packet=1G'];
      if (opts.schemaOnly) args.push('--no-data');
      for (const t of opts.excludeTables) args.push(`--ignore-table=${t.includes('.') ? t : `${d.name}.${t}`}`);
      args.push('--', d.name);
      items.push({ name: dbFile(d.name), produce: async (fd, signal) => void (await run(args, fd, `dump of database ${d.name}`, signal)) });
    }
    return {
      items,
      paths: [conn.url.redacted],
      tags: ['mysql', ...dbs.map((d) => `db:${d.name}`)],
      databases: dbs.map((d) => d.name),
      describe: (results: StreamItemResult[]) => ({
        engine: 'mysql',
        url: conn.url.redacted,
        serverVersion: info.version,
        items: results.map((r) => {
          if (r.name === 'globals.sql') return { file: r.name, kind: 'globals', format: 'sql', size: r.size };
          const d = dbs.find((x) => dbFile(x.name) === r.name)!;
          return { file: r.name, kind: 'database', database: d.name, format: 'sql', size: r.size, meta: { charset: d.charset, collation: d.collation } };
        }),
        details: { flavor: mariadb ? 'mariadb' : 'mysql', schemaOnly: opts.schemaOnly, excludeTables: opts.excludeTables, ...(warnings.length > 0 ? { warnings } : {}) },
      }),
    };
  },

  async restore(input, opts) {
    return restoreMysql(input, opts);
  },
};

async function restoreMysql(input: RestoreInput, opts: DbRestoreOptions): Promise<RestoreReport> {
  if (opts.table !== undefined || opts.schemaOnly || opts.jobs !== undefined) {
    throw new BulwarkError('USAGE', 'MySQL/MariaDB snapshots are SQL dumps: --table, --schema-only and --jobs apply to PostgreSQL restores only', {
      hint: 'back up with `db backup --schema-only` for a schema dump',
    });
  }
  const conn = new MyConn(opts.to);
  const all = input.source.items.filter((i) => i.kind === 'database');
  const chosen = opts.database === undefined ? all : all.filter((i) => i.database === opts.database);
  if (chosen.length === 0) {
    throw new BulwarkError('DB_NOT_FOUND', `snapshot ${input.snapshot.id.slice(0, 8)} holds no database ${opts.database ?? ''}`, {
      subject: opts.database ?? '',
      hint: `it holds: ${all.map((i) => i.database).join(', ')}`,
    });
  }
  if (opts.as !== undefined && chosen.length !== 1) throw new BulwarkError('USAGE', '--as needs exactly one database: add --database NAME', { subject: '--as' });
  const client = conn.client();
  const steps: RestoreStep[] = [];
  const warnings: string[] = [];
  const existing = new Set((await conn.serverInfo()).databases.map((d) => d.name));
  const globals = input.source.items.find((i) => i.kind === 'globals');
  if (globals !== undefined && opts.database === undefined && !opts.noGlobals) {
    steps.push({ action: 'apply-globals', detail: 'users and grants (CREATE USER IF NOT EXISTS, GRANT)' });
    if (!opts.dryRun) {
      await conn.withOptions(async (cnf) => {
        const r = await runTool(client, [`--defaults-extra-file=${cnf}`, '--force'], { input: input.read(globals.file), what: 'applying users and grants', failCode: 'RESTORE_FAILED', classify: classifyMysql, install: INSTALL });
        warnings.push(...r.stderr.split('\n').filter((l) => /^ERROR/.test(l)).map((l) => `globals: ${l}`));
      });
    }
  }
  for (const item of chosen) {
    const name = item.database!;
    const target = opts.as ?? name;
    if (existing.has(target) && !opts.clean) {
      throw new BulwarkError('DB_EXISTS', `database ${target} already exists on ${conn.url.redacted}`, {
        subject: target,
        hint: 'add --clean to replace the tables in the dump, or --as NEWNAME to restore beside it',
      });
    }
    if (!existing.has(target)) {
      const cs = typeof item.meta?.['charset'] === 'string' ? item.meta['charset'] : 'utf8mb4';
      const coll = typeof item.meta?.['collation'] === 'string' && item.meta['collation'] !== '' ? ` COLLATE ${literal(item.meta['collation'])}` : '';
      steps.push({ action: 'create-database', database: name, target, detail: `character set ${cs}` });
      if (!opts.dryRun) await conn.sql(`CREATE DATABASE ${ident(target)} CHARACTER SET ${literal(cs)}${coll};\n`, `creating database ${target}`);
    }
    steps.push({ action: 'load-sql', database: name, target, detail: `${client.split('/').pop()} ${target} < ${item.file}` });
    if (opts.dryRun) continue;
    const toolOpts: ToolOptions = { input: input.read(item.file), what: `loading database ${name} into ${target}`, failCode: 'RESTORE_FAILED', classify: classifyMysql, install: INSTALL };
    await conn.withOptions((cnf) => runTool(client, [`--defaults-extra-file=${cnf}`, '--default-character-set=utf8mb4', '--max-allowed-packet=1G', '--', target], toolOpts));
  }
  return { engine: 'mysql', target: conn.url.redacted, dryRun: opts.dryRun, steps, warnings };
}
