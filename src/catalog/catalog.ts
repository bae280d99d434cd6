// The run catalog: one row per backup of a job into one repository (and per maintenance run),
// with its timing, outcome, sizes, snapshot and error; plus the scheduler's memory of when each
// job was last due (for catch-up after downtime). Times are epoch milliseconds in BIGINT columns
// and lists are JSON text, so the same statements run on SQLite and PostgreSQL.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { openDriver, type Row, type SqlDriver } from './driver.js';

export type RunStatus = 'running' | 'success' | 'partial' | 'failed' | 'interrupted' | 'skipped';

export interface RunRecord {
  id: string;
  job: string;
  kind: 'backup' | 'prune';
  source: string;
  repository: string;
  trigger: string;
  attempt: number;
  scheduledFor: number | null;
  startedAt: number;
  endedAt: number | null;
  status: RunStatus;
  bytesRead: number | null;
  bytesAdded: number | null;
  bytesStored: number | null;
  files: number | null;
  snapshotId: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  warnings: string[];
  host: string;
  pid: number;
  details: Record<string, unknown>;
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    repository TEXT NOT NULL,
    trigger_reason TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    scheduled_for BIGINT,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    status TEXT NOT NULL,
    bytes_read BIGINT,
    bytes_added BIGINT,
    bytes_stored BIGINT,
    files BIGINT,
    snapshot_id TEXT,
    error_code TEXT,
    error_message TEXT,
    warnings TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    details TEXT NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS runs_job_started ON runs (job, started_at)',
  'CREATE INDEX IF NOT EXISTS runs_status ON runs (status)',
  `CREATE TABLE IF NOT EXISTS job_state (
    job TEXT PRIMARY KEY,
    last_scheduled BIGINT NOT NULL
  )`,
];

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toRecord(r: Row): RunRecord {
  return {
    id: String(r['id']),
    job: String(r['job']),
    kind: r['kind'] === 'prune' ? 'prune' : 'backup',
    source: String(r['source']),
    repository: String(r['repository']),
    trigger: String(r['trigger_reason']),
    attempt: Number(r['attempt']),
    scheduledFor: num(r['scheduled_for']),
    startedAt: Number(r['started_at']),
    endedAt: num(r['ended_at']),
    status: String(r['status']) as RunStatus,
    bytesRead: num(r['bytes_read']),
    bytesAdded: num(r['bytes_added']),
    bytesStored: num(r['bytes_stored']),
    files: num(r['files']),
    snapshotId: r['snapshot_id'] === null || r['snapshot_id'] === undefined ? null : String(r['snapshot_id']),
    errorCode: r['error_code'] === null || r['error_code'] === undefined ? null : String(r['error_code']),
    errorMessage: r['error_message'] === null || r['error_message'] === undefined ? null : String(r['error_message']),
    warnings: JSON.parse(String(r['warnings'] ?? '[]')) as string[],
    host: String(r['host']),
    pid: Number(r['pid']),
    details: JSON.parse(String(r['details'] ?? '{}')) as Record<string, unknown>,
  };
}

export interface RunStart {
  job: string;
  kind?: 'backup' | 'prune';
  source: string;
  repository: string;
  trigger: string;
  attempt: number;
  scheduledFor?: number;
  startedAt: number;
}

export interface RunEnd {
  status: RunStatus;
  endedAt: number;
  bytesRead?: number;
  bytesAdded?: number;
  bytesStored?: number;
  files?: number;
  snapshotId?: string;
  errorCode?: string;
  errorMessage?: string;
  warnings?: string[];
  details?: Record<string, unknown>;
}

export class Catalog {
  private constructor(private readonly db: SqlDriver) {}

  static async open(url: string): Promise<Catalog> {
    const db = openDriver(url);
    for (const s of SCHEMA) await db.exec(s);
    return new Catalog(db);
  }

  get location(): string {
    return this.db.location;
  }

  async startRun(r: RunStart): Promise<string> {
    const id = randomBytes(8).toString('hex');
    await this.db.run(
      `INSERT INTO runs (id, job, kind, source, repository, trigger_reason, attempt, scheduled_for, started_at, status, warnings, host, pid, details)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', '[]', ?, ?, '{}')`,
      [id, r.job, r.kind ?? 'backup', r.source, r.repository, r.trigger, r.attempt, r.scheduledFor ?? null, r.startedAt, hostname(), process.pid],
    );
    return id;
  }

  async endRun(id: string, e: RunEnd): Promise<void> {
    await this.db.run(
      `UPDATE runs SET status = ?, ended_at = ?, bytes_read = ?, bytes_added = ?, bytes_stored = ?, files = ?, snapshot_id = ?,
         error_code = ?, error_message = ?, warnings = ?, details = ? WHERE id = ?`,
      [
        e.status,
        e.endedAt,
        e.bytesRead ?? null,
        e.bytesAdded ?? null,
        e.bytesStored ?? null,
        e.files ?? null,
        e.snapshotId ?? null,
        e.errorCode ?? null,
        e.errorMessage ?? null,
        JSON.stringify(e.warnings ?? []),
        JSON.stringify(e.details ?? {}),
        id,
      ],
    );
  }

  /**
   * Runs left 'running' by a daemon on this host that no longer exists (killed, crashed): they
   * did not finish, so they are failed as interrupted. Returns how many.
   */
  async failInterrupted(now: number, alive: (pid: number) => boolean): Promise<number> {
    const rows = await this.db.all(`SELECT id, pid FROM runs WHERE status = 'running' AND host = ?`, [hostname()]);
    let n = 0;
    for (const r of rows) {
      if (Number(r['pid']) !== process.pid && alive(Number(r['pid']))) continue;
      n += await this.db.run(`UPDATE runs SET status = 'interrupted', ended_at = ?, error_code = 'INTERRUPTED', error_message = ? WHERE id = ? AND status = 'running'`, [
        now,
        'the daemon stopped while this run was in progress; no snapshot was saved by it',
        String(r['id']),
      ]);
    }
    return n;
  }

  async runs(filter: { job?: string; limit?: number; status?: RunStatus } = {}): Promise<RunRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.job !== undefined) {
      where.push('job = ?');
      params.push(filter.job);
    }
    if (filter.status !== undefined) {
      where.push('status = ?');
      params.push(filter.status);
    }
    params.push(filter.limit ?? 100);
    const rows = await this.db.all(`SELECT * FROM runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, id DESC LIMIT ?`, params);
    return rows.map(toRecord);
  }

  async run(id: string): Promise<RunRecord | undefined> {
    const rows = await this.db.all('SELECT * FROM runs WHERE id = ?', [id]);
    return rows[0] === undefined ? undefined : toRecord(rows[0]);
  }

  /** Per job and repository: the latest successful backup's end time. */
  async lastSuccess(job: string): Promise<Map<string, number>> {
    const rows = await this.db.all(`SELECT repository, MAX(ended_at) AS t FROM runs WHERE job = ? AND kind = 'backup' AND status IN ('success', 'partial') GROUP BY repository`, [job]);
    return new Map(rows.map((r) => [String(r['repository']), Number(r['t'])]));
  }

  /** Failures since the job's last success (consecutive), and failures in the last `sinceMs`. */
  async failureCounts(job: string, since: number): Promise<{ consecutive: number; recent: number }> {
    const last = await this.db.all(`SELECT MAX(started_at) AS t FROM runs WHERE job = ? AND status IN ('success', 'partial')`, [job]);
    const lastOk = num(last[0]?.['t']) ?? 0;
    const c = await this.db.all(`SELECT COUNT(*) AS n FROM runs WHERE job = ? AND status IN ('failed', 'interrupted') AND started_at > ?`, [job, lastOk]);
    const r = await this.db.all(`SELECT COUNT(*) AS n FROM runs WHERE job = ? AND status IN ('failed', 'interrupted') AND started_at > ?`, [job, since]);
    return { consecutive: Number(c[0]?.['n'] ?? 0), recent: Number(r[0]?.['n'] ?? 0) };
  }

  async lastScheduled(job: string): Promise<number | undefined> {
    const rows = await this.db.all('SELECT last_scheduled FROM job_state WHERE job = ?', [job]);
    return rows[0] === undefined ? undefined : Number(rows[0]['last_scheduled']);
  }

  async allLastScheduled(): Promise<Map<string, number>> {
    const rows = await this.db.all('SELECT job, last_scheduled FROM job_state');
    return new Map(rows.map((r) => [String(r['job']), Number(r['last_scheduled'])]));
  }

  async recordScheduled(job: string, at: number): Promise<void> {
    await this.db.run(
      'INSERT INTO job_state (job, last_scheduled) VALUES (?, ?) ON CONFLICT (job) DO UPDATE SET last_scheduled = excluded.last_scheduled',
      [job, at],
    );
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
