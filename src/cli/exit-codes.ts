// Exit statuses (documented in docs/cli.md). They follow restic's where the meaning is the same,
// so scripts written for restic keep working.
import type { ErrorCode } from '../errors.js';

export const Exit = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  PARTIAL: 3, // snapshot saved, but some source files could not be read
  REPO_NOT_FOUND: 10,
  LOCKED: 11,
  WRONG_PASSWORD: 12,
  INTERRUPTED: 130,
} as const;

export function exitFor(code: ErrorCode): number {
  switch (code) {
    case 'USAGE':
    case 'NO_PASSWORD':
      return Exit.USAGE;
    case 'REPO_NOT_FOUND':
      return Exit.REPO_NOT_FOUND;
    case 'LOCK_CONFLICT':
      return Exit.LOCKED;
    case 'WRONG_PASSWORD':
      return Exit.WRONG_PASSWORD;
    case 'INTERRUPTED':
      return Exit.INTERRUPTED;
    default:
      return Exit.FAILURE;
  }
}
