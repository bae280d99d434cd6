// Turns a repository location given by the user into a Storage:
//   /path, ./path, C:\path, local:/path  → LocalStorage
//   memory:, memory:NAME                 → MemoryStorage, one instance per NAME within the process
//   s3:...                               → USAGE error (S3 is not supported in this version)
//   other SCHEME:...                     → USAGE error naming the location
// A scheme is a letter followed by letters, digits, '+', '-' or '.', at least two characters long,
// so a Windows drive letter ("C:\backups") is a path, not a scheme.
import { BulwarkError } from '../errors.js';
import { LocalStorage } from './local.js';
import { MemoryStorage } from './memory.js';
import type { Storage } from './storage.js';

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
      throw new BulwarkError('USAGE', `S3 repositories are not supported in this version (${url})`, {
        subject: url,
        hint: 'use a local path (or local:/path), for example a mounted network filesystem',
      });
    default:
      throw new BulwarkError('USAGE', `unknown repository scheme ${JSON.stringify(`${scheme}:`)} in ${JSON.stringify(url)}`, {
        subject: url,
        hint: 'supported locations are a directory path, local:/path and memory:NAME',
      });
  }
}
