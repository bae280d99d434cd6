// Append-only access to a repository: everything can be read and new objects written (writes are
// write-once anyway), but nothing can be deleted, except lock objects, which are not repository
// content and must come and go for backups to run. A repository initialised with --append-only is
// opened through this wrapper unless the operator presents the delete token; forget and prune then
// refuse to run. This guards against a client's mistakes and against a stolen repository password;
// against a compromised host, pair it with storage that enforces it too (S3 Object Lock, or
// credentials without delete rights).
import * as fs from 'node:fs';
import { BulwarkError } from '../errors.js';
import { describe, type Handle, type ObjectInfo, type ObjectKind, type Storage } from './storage.js';

export const APPEND_ONLY_HINT = 'this repository is append-only: forget, prune and other deletions need its delete token (BULWARK_DELETE_TOKEN_FILE or BULWARK_DELETE_TOKEN)';

export class AppendOnlyStorage implements Storage {
  constructor(private readonly inner: Storage) {}

  get location(): string {
    return this.inner.location;
  }
  create(): Promise<void> {
    return this.inner.create();
  }
  list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    return this.inner.list(kind);
  }
  stat(h: Handle): Promise<ObjectInfo> {
    return this.inner.stat(h);
  }
  read(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    return this.inner.read(h, offset, length);
  }
  write(h: Handle, data: Uint8Array): Promise<void> {
    return this.inner.write(h, data);
  }
  async delete(h: Handle): Promise<void> {
    if (h.kind !== 'locks') {
      throw new BulwarkError('APPEND_ONLY', `refusing to delete ${describe(h)} from ${this.inner.location}`, { subject: describe(h), hint: APPEND_ONLY_HINT });
    }
    return this.inner.delete(h);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

// tempDir/adopt are optional: expose them only when the wrapped storage has them.
export function appendOnly(inner: Storage): Storage {
  const s = new AppendOnlyStorage(inner) as AppendOnlyStorage & Partial<Pick<Storage, 'tempDir' | 'adopt' | 'readInto'>> & { readSize?: number };
  if (inner.readSize !== undefined) s.readSize = inner.readSize;
  if (inner.readInto !== undefined) s.readInto = (h, offset, length, into) => inner.readInto!(h, offset, length, into);
  if (inner.tempDir !== undefined) s.tempDir = () => inner.tempDir!();
  if (inner.adopt !== undefined) s.adopt = (h, file) => inner.adopt!(h, file);
  return s;
}

/** Reads a delete token file (one line). */
export function readTokenFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new BulwarkError('APPEND_ONLY', `cannot read the delete token file ${file}: ${(err as Error).message}`, { subject: file });
  }
}
