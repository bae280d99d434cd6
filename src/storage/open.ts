// Turns a repository location given by the user into a Storage:
//   /path, ./path, C:\path, local:/path  → LocalStorage
//   memory:, memory:NAME                 → MemoryStorage, one instance per NAME within the process
//   s3:https://host:port/bucket/prefix,
//   s3:http://host:port/bucket/prefix,
//   s3:bucket/prefix, s3://bucket/prefix → S3Storage (src/storage/s3.ts) behind the resilience
//                                          wrappers chained by resilient() below
//   other SCHEME:...                     → USAGE error naming the location
// A scheme is a letter followed by letters, digits, '+', '-' or '.', at least two characters long,
// so a Windows drive letter ("C:\backups") is a path, not a scheme.
import { BulwarkError } from '../errors.js';
import { LocalStorage } from './local.js';
import { MemoryStorage } from './memory.js';
import { RetryStorage, retryPolicyFromEnv } from './retry.js';
import { parseS3Url, S3Storage, s3OptionsFromEnv } from './s3.js';
import type { Storage } from './storage.js';
import { LimitStorage, limitsFromEnv } from './throttle.js';

/**
 * The one place where remote backends get their resilience wrappers, outermost first:
 *   RetryStorage  retries retryable failures with full-jitter backoff; counts calls, attempts,
 *                 retries and failures per operation (storageStats());
 *   LimitStorage  at most BULWARK_S3_CONNECTIONS operations in flight, BULWARK_LIMIT_UPLOAD /
 *                 BULWARK_LIMIT_DOWNLOAD (KiB/s) token buckets;
 *   the backend   which classifies errors and applies the per-request timeout (BULWARK_S3_TIMEOUT).
 * Retry sits outside the limiter so that a backoff sleep does not hold a connection slot.
 */
export function resilient(inner: Storage, env: NodeJS.ProcessEnv = process.env): Storage {
  return new RetryStorage(new LimitStorage(inner, limitsFromEnv(env)), retryPolicyFromEnv(env));
}

export function openS3(rest: string, env: NodeJS.ProcessEnv = process.env): Storage {
  const opts = s3OptionsFromEnv(env);
  opts.retry = retryPolicyFromEnv(env);
  return resilient(new S3Storage(parseS3Url(rest), opts), env);
}

const memoryStores = new Map<string, MemoryStorage>();

/** Drops a named in-memory repository (or all of them), so the next open starts empty. */
export function forgetMemoryStorage(name?: string): void {
  if (name === undefined) memoryStores.clear();
  else memoryStores.delete(name);
}

export function openStorage(url: string): Storage {
  if (url.trim() === '') {
    throw new BulwarkError('USAGE', 'the repository location is empty', {
      hint: 'give a directory path (or local:/path), e.g. --repo /mnt/backup/repo',
    });
  }
  const m = /^([a-z][a-z0-9+.-]+):/i.exec(url);
  if (m === null) return new LocalStorage(url);
  const scheme = (m[1] ?? '').toLowerCase();
  const rest = url.slice(m[0].length);
  switch (scheme) {
    case 'local':
      if (rest === '') {
        throw new BulwarkError('USAGE', `repository location ${JSON.stringify(url)} has no path`, {
          subject: url,
          hint: 'write it as local:/path/to/repo',
        });
      }
      return new LocalStorage(rest);
    case 'memory': {
      const name = rest === '' ? 'default' : rest;
      let store = memoryStores.get(name);
      if (store === undefined) {
        store = new MemoryStorage(name);
        memoryStores.set(name, store);
      }
      return store;
    }
    case 's3':
      return openS3(rest);
    default:
      throw new BulwarkError('USAGE', `unknown repository scheme ${JSON.stringify(`${scheme}:`)} in ${JSON.stringify(url)}`, {
        subject: url,
        hint: 'supported locations are a directory path, local:/path, s3:https://host/bucket/prefix, s3:bucket/prefix and memory:NAME',
      });
  }
}
