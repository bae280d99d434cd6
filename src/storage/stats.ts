// Process-wide counters of storage traffic, for progress output and later metrics. Two views:
//  - per Storage operation (create, list, stat, read, write, adopt, delete): calls, attempts
//    (requests to the backend, retries included), retries, failures (calls that failed after the
//    last attempt) and bytes moved; kept by the wrappers chained in open.ts;
//  - per HTTP request kind (PutObject, GetObject, UploadPart...): counted by the S3 backend for every
//    request it sends, whatever the outcome. This is what a provider bills.
// storageStats() returns a snapshot; resetStorageStats() clears both (tests, benchmarks).

export type StatOp = 'create' | 'list' | 'stat' | 'read' | 'write' | 'adopt' | 'delete';

export interface OpCounters {
  calls: number;
  attempts: number;
  retries: number;
  failures: number;
  bytes: number;
}

export interface StorageStats {
  ops: Record<StatOp, OpCounters>;
  /** HTTP requests sent by S3 backends, by S3 operation name. */
  http: Record<string, number>;
  /** Sum of `http`. */
  httpRequests: number;
}

const OPS: readonly StatOp[] = ['create', 'list', 'stat', 'read', 'write', 'adopt', 'delete'];

function zero(): OpCounters {
  return { calls: 0, attempts: 0, retries: 0, failures: 0, bytes: 0 };
}

let ops = Object.fromEntries(OPS.map((o) => [o, zero()])) as Record<StatOp, OpCounters>;
let http: Record<string, number> = {};

export function opCounters(op: StatOp): OpCounters {
  return ops[op];
}

export function countHttp(name: string): void {
  http[name] = (http[name] ?? 0) + 1;
}

export function storageStats(): StorageStats {
  const copy = Object.fromEntries(OPS.map((o) => [o, { ...ops[o] }])) as Record<StatOp, OpCounters>;
  const h = { ...http };
  return { ops: copy, http: h, httpRequests: Object.values(h).reduce((a, b) => a + b, 0) };
}

export function resetStorageStats(): void {
  ops = Object.fromEntries(OPS.map((o) => [o, zero()])) as Record<StatOp, OpCounters>;
  http = {};
}
