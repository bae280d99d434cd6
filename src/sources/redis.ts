// Redis: a point-in-time RDB taken over the replication protocol (as `redis-cli --rdb` does, but
// keeping the replication ID and offset), stored as `dump.rdb`. Restores either load every key into
// a running server with RESTORE (TTL kept) and check the key counts, or write the RDB file for a
// server to start from. The protocol work lives in src/sources/redis/.
import { BulwarkError } from '../errors.js';
import { writeToFd } from './process.js';
import { RespClient } from './redis/resp.js';
import { restoreRdb, writeRdbFile } from './redis/restore.js';
import { openRdbStream } from './redis/sync.js';
import { parseRedisUrl, redactRedisUrl } from './redis/url.js';
import type { BackupPlan, DbEngine, DbRestoreOptions, RestoreInput, RestoreReport } from './source.js';

const RDB_FILE = 'dump.rdb';

/** `INFO keyspace` as { "0": keys, ... }: what the server held when the backup started. */
function parseKeyspace(info: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^db(\d+):keys=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

export const redis: DbEngine = {
  engine: 'redis',
  schemes: ['redis:'],

  redact(url) {
    return redactRedisUrl(url);
  },

  async prepareBackup(url, opts): Promise<BackupPlan> {
    if (opts.databases.length > 0 || opts.excludeTables.length > 0 || opts.schemaOnly) {
      throw new BulwarkError('USAGE', 'a Redis backup is the whole server: --database, --exclude-table and --schema-only do not apply', { subject: redactRedisUrl(url) });
    }
    const target = parseRedisUrl(url);
    // Connect once up front so that a wrong address or password fails with DB_CONNECT/DB_AUTH
    // before anything is stored.
    const probe = await RespClient.connect(target, { selectDb: false });
    let keyspace: Record<string, number>;
    try {
      keyspace = parseKeyspace(String(await probe.command(['INFO', 'keyspace'])));
    } finally {
      await probe.close();
    }
    const redacted = redactRedisUrl(url);
    return {
      items: [
        {
          name: RDB_FILE,
          produce: async (fd, signal) => {
            const rdb = await openRdbStream(target);
            await writeToFd(rdb.stream, fd, signal);
            return { replId: rdb.replId, offset: rdb.offset, serverVersion: rdb.serverVersion, ...(rdb.rdbSize !== undefined ? { rdbSize: rdb.rdbSize } : {}) };
          },
        },
      ],
      paths: [redacted],
      tags: ['redis'],
      databases: Object.keys(keyspace).map((d) => `db${d}`),
      describe: (results) => {
        const meta = results[0]?.meta ?? {};
        return {
          engine: 'redis',
          url: redacted,
          ...(typeof meta['serverVersion'] === 'string' ? { serverVersion: meta['serverVersion'] } : {}),
          items: results.map((r) => ({ file: r.name, kind: 'rdb', format: 'rdb', size: r.size })),
          details: { replicationId: meta['replId'], replicationOffset: meta['offset'], keyspaceAtStart: keyspace },
        };
      },
    };
  },

  async restore(input: RestoreInput, opts: DbRestoreOptions): Promise<RestoreReport> {
    if (opts.database !== undefined || opts.as !== undefined || opts.table !== undefined || opts.schemaOnly || opts.jobs !== undefined) {
      throw new BulwarkError('USAGE', 'a Redis restore loads the whole RDB: --database, --as, --table, --schema-only and --jobs do not apply');
    }
    const item = input.source.items.find((i) => i.kind === 'rdb');
    if (item === undefined) throw new BulwarkError('NOT_A_DB_SNAPSHOT', `snapshot ${input.snapshot.id.slice(0, 8)} holds no RDB file`, { subject: input.snapshot.id });
    if (opts.toFile !== undefined) {
      const steps = [{ action: 'write-rdb', target: opts.toFile, detail: `${item.size} bytes, written atomically (mode 0600)` }];
      if (!opts.dryRun) await writeRdbFile(input.read(item.file), opts.toFile);
      return { engine: 'redis', target: opts.toFile, dryRun: opts.dryRun, steps, warnings: [] };
    }
    const target = parseRedisUrl(opts.to);
    const redacted = redactRedisUrl(opts.to);
    const steps = [
      ...(opts.clean ? [{ action: 'flushall', target: redacted }] : []),
      { action: 'restore-keys', target: redacted, detail: 'RESTORE key ttl payload ABSTTL, pipelined; then DBSIZE per database' },
    ];
    const r = await restoreRdb(input.read(item.file), target, { flush: opts.clean, dryRun: opts.dryRun });
    if (!opts.dryRun && !r.verified) {
      throw new BulwarkError('RESTORE_FAILED', `key counts on ${redacted} do not match the snapshot: ${r.mismatches.join('; ')}`, {
        subject: redacted,
        hint: 'restore into an empty server, or use --clean to flush it first',
      });
    }
    return {
      engine: 'redis',
      target: redacted,
      dryRun: opts.dryRun,
      steps,
      warnings: [],
      details: { keys: r.keys, expiredSkipped: r.expiredSkipped, perDb: r.perDb, verified: r.verified, functions: r.functions },
    };
  },
};
