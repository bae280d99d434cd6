// One error class for the whole engine. Every failure that reaches a user carries a stable code
// (documented in docs/errors.md), a message naming the object at fault, a hint on what to do, and
// whether retrying the same operation could help. Engine code never prints; the CLI maps codes to
// exit statuses and text.

export const ErrorCodes = {
  USAGE: 'USAGE',
  CONFIG_INVALID: 'CONFIG_INVALID',
  REPO_NOT_FOUND: 'REPO_NOT_FOUND',
  REPO_EXISTS: 'REPO_EXISTS',
  REPO_FOREIGN: 'REPO_FOREIGN',
  REPO_VERSION: 'REPO_VERSION',
  WRONG_PASSWORD: 'WRONG_PASSWORD',
  NO_PASSWORD: 'NO_PASSWORD',
  KEY_NOT_FOUND: 'KEY_NOT_FOUND',
  KEY_LAST: 'KEY_LAST',
  LOCK_CONFLICT: 'LOCK_CONFLICT',
  LOCK_LOST: 'LOCK_LOST',
  OBJECT_NOT_FOUND: 'OBJECT_NOT_FOUND',
  OBJECT_EXISTS: 'OBJECT_EXISTS',
  OBJECT_CORRUPT: 'OBJECT_CORRUPT',
  SHORT_READ: 'SHORT_READ',
  PACK_CORRUPT: 'PACK_CORRUPT',
  INDEX_CORRUPT: 'INDEX_CORRUPT',
  SNAPSHOT_CORRUPT: 'SNAPSHOT_CORRUPT',
  TREE_CORRUPT: 'TREE_CORRUPT',
  BLOB_MISSING: 'BLOB_MISSING',
  SNAPSHOT_NOT_FOUND: 'SNAPSHOT_NOT_FOUND',
  SNAPSHOT_AMBIGUOUS: 'SNAPSHOT_AMBIGUOUS',
  PATH_NOT_FOUND: 'PATH_NOT_FOUND',
  SOURCE_UNREADABLE: 'SOURCE_UNREADABLE',
  DISK_FULL: 'DISK_FULL',
  STORAGE_IO: 'STORAGE_IO',
  STORAGE_AUTH: 'STORAGE_AUTH',
  STORAGE_UNREACHABLE: 'STORAGE_UNREACHABLE',
  STORAGE_REGION: 'STORAGE_REGION',
  CHECK_FAILED: 'CHECK_FAILED',
  PRUNE_UNSAFE: 'PRUNE_UNSAFE',
  REPO_CHANGED: 'REPO_CHANGED',
  VERIFY_FAILED: 'VERIFY_FAILED',
  INTERRUPTED: 'INTERRUPTED',
  TOOL_MISSING: 'TOOL_MISSING',
  DB_URL_INVALID: 'DB_URL_INVALID',
  DB_CONNECT: 'DB_CONNECT',
  DB_AUTH: 'DB_AUTH',
  DB_NOT_FOUND: 'DB_NOT_FOUND',
  DB_EXISTS: 'DB_EXISTS',
  DUMP_FAILED: 'DUMP_FAILED',
  RESTORE_FAILED: 'RESTORE_FAILED',
  NOT_A_DB_SNAPSHOT: 'NOT_A_DB_SNAPSHOT',
  HOOK_FAILED: 'HOOK_FAILED',
  APPEND_ONLY: 'APPEND_ONLY',
  JOB_NOT_FOUND: 'JOB_NOT_FOUND',
  DEPENDENCY_FAILED: 'DEPENDENCY_FAILED',
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface ErrorDetails {
  hint?: string;
  retryable?: boolean;
  subject?: string;
  cause?: unknown;
}

export class BulwarkError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly retryable: boolean;
  readonly subject: string | undefined;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'BulwarkError';
    this.code = code;
    this.hint = details.hint;
    this.retryable = details.retryable ?? false;
    this.subject = details.subject;
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.subject !== undefined) out['subject'] = this.subject;
    if (this.hint !== undefined) out['hint'] = this.hint;
    out['retryable'] = this.retryable;
    return out;
  }
}

export function isBulwarkError(err: unknown, code?: ErrorCode): err is BulwarkError {
  return err instanceof BulwarkError && (code === undefined || err.code === code);
}

/** Node's system errors carry `code` (ENOENT, ENOSPC...); this reads it without `any`. */
export function sysCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const c = (err as { code: unknown }).code;
    return typeof c === 'string' ? c : undefined;
  }
  return undefined;
}
