// Local-filesystem backend. Layout mirrors the object kinds: <root>/config, <root>/keys/<id>,
// <root>/data/<first two hex chars>/<id>, <root>/index/<id>, <root>/snapshots/<id>, <root>/locks/<id>,
// plus <root>/tmp for writes in progress.
//
// Writes are crash-safe: the bytes go to a temp file that is fsynced, then hard-linked to the final
// name (link fails if the name exists, which gives write-once without a check-then-act race), then
// the temp name is removed and the directory fsynced. A crash at any point leaves either no final
// object or a complete one; stray temp files are ignored by readers.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { mapLimit } from '../concurrency.js';
import { BulwarkError, sysCode } from '../errors.js';
import { describe, type Handle, type ObjectInfo, type ObjectKind, type Storage } from './storage.js';

const DIR_KINDS: readonly ObjectKind[] = ['keys', 'data', 'index', 'snapshots', 'locks'];
/** Data directories being read at once while listing packs. */
const LIST_AHEAD = 16;
/** Stats in flight per directory being listed. */
const STATS_AT_ONCE = 8;

export class LocalStorage implements Storage {
  readonly location: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = this.root;
  }

  async create(): Promise<void> {
    if (fs.existsSync(path.join(this.root, 'config'))) {
      throw new BulwarkError('REPO_EXISTS', `a repository already exists at ${this.location}`, {
        subject: this.location,
        hint: 'choose an empty directory, or use the existing repository',
      });
    }
    try {
      await fsp.mkdir(this.root, { recursive: true, mode: 0o700 });
      for (const k of DIR_KINDS) await fsp.mkdir(path.join(this.root, k), { recursive: true, mode: 0o700 });
      await fsp.mkdir(path.join(this.root, 'tmp'), { recursive: true, mode: 0o700 });
      for (let i = 0; i < 256; i++) {
        await fsp.mkdir(path.join(this.root, 'data', i.toString(16).padStart(2, '0')), { recursive: true, mode: 0o700 });
      }
    } catch (err) {
      throw this.ioError(err, 'create', this.location);
    }
  }

  private pathOf(h: Handle): string {
    if (h.kind === 'config') return path.join(this.root, 'config');
    if (!/^[0-9a-f]{8,64}$/.test(h.name)) {
      throw new BulwarkError('INTERNAL', `invalid object name ${JSON.stringify(h.name)}`, { subject: describe(h) });
    }
    if (h.kind === 'data') return path.join(this.root, 'data', h.name.slice(0, 2), h.name);
    return path.join(this.root, h.kind, h.name);
  }

  async *list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    if (kind === 'config') {
      try {
        const st = await fsp.stat(path.join(this.root, 'config'));
        yield { name: 'config', size: st.size };
      } catch (err) {
        if (sysCode(err) !== 'ENOENT') throw this.ioError(err, 'list', 'config');
      }
      return;
    }
    const dirs = kind === 'data' ? await this.subdirs(path.join(this.root, 'data')) : [path.join(this.root, kind)];
    // The 256 data directories are read up to LIST_AHEAD ahead of the one being yielded, each with
    // a few stats at a time: one after the other, a listing waited for 256 + N round trips to the
    // thread pool.
    const pending = dirs.map(() => undefined as Promise<ObjectInfo[]> | undefined);
    const ahead = (i: number): void => {
      const p = this.listDir(dirs[i]!);
      // Its error surfaces when its turn comes (or never, if the caller stops early).
      p.catch(() => undefined);
      pending[i] = p;
    };
    for (let i = 0; i < Math.min(LIST_AHEAD, dirs.length); i++) ahead(i);
    for (let i = 0; i < dirs.length; i++) {
      if (i + LIST_AHEAD < dirs.length) ahead(i + LIST_AHEAD);
      const found = await pending[i]!;
      pending[i] = undefined;
      yield* found;
    }
  }

  /** One directory's objects with their sizes (names that are not object IDs are skipped). */
  private async listDir(dir: string): Promise<ObjectInfo[]> {
    let entries: string[];
    try {
      entries = await fsp.readdir(dir);
    } catch (err) {
      if (sysCode(err) === 'ENOENT') return [];
      throw this.ioError(err, 'list', dir);
    }
    // Stats a few at a time per directory: the index and snapshot directories can hold thousands.
    const names = entries.filter((name) => /^[0-9a-f]{8,64}$/.test(name));
    const infos: Array<ObjectInfo | undefined> = new Array(names.length);
    await mapLimit(names, STATS_AT_ONCE, async (name, i) => {
      try {
        const st = await fsp.stat(path.join(dir, name));
        infos[i] = { name, size: st.size };
      } catch (err) {
        if (sysCode(err) !== 'ENOENT') throw this.ioError(err, 'list', name);
      }
    });
    return infos.filter((o): o is ObjectInfo => o !== undefined);
  }

  private async subdirs(dir: string): Promise<string[]> {
    try {
      const names = await fsp.readdir(dir);
      return names.filter((n) => /^[0-9a-f]{2}$/.test(n)).map((n) => path.join(dir, n));
    } catch (err) {
      if (sysCode(err) === 'ENOENT') return [];
      throw this.ioError(err, 'list', dir);
    }
  }

  async stat(h: Handle): Promise<ObjectInfo> {
    try {
      const st = await fsp.stat(this.pathOf(h));
      return { name: h.name, size: st.size };
    } catch (err) {
      throw this.ioError(err, 'stat', describe(h));
    }
  }

  async read(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const p = this.pathOf(h);
    let fh: fsp.FileHandle | undefined;
    try {
      if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
        throw shortRead(h, offset, length ?? 0, 0);
      }
      fh = await fsp.open(p, 'r');
      let want = length;
      if (want === undefined || want === 0) {
        const size = (await fh.stat()).size;
        if (offset > size) throw shortRead(h, offset, want ?? 0, 0);
        want ??= size - offset;
      }
      const buf = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < want) throw shortRead(h, offset, want, got);
      return buf;
    } catch (err) {
      throw this.ioError(err, 'read', describe(h));
    } finally {
      await fh?.close();
    }
  }

  async readInto(h: Handle, offset: number, length: number, into: Uint8Array): Promise<void> {
    let fh: fsp.FileHandle | undefined;
    try {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || length > into.length) {
        throw shortRead(h, offset, length, 0);
      }
      fh = await fsp.open(this.pathOf(h), 'r');
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(into, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < length) throw shortRead(h, offset, length, got);
    } catch (err) {
      throw this.ioError(err, 'read', describe(h));
    } finally {
      await fh?.close();
    }
  }

  async write(h: Handle, data: Uint8Array): Promise<void> {
    const final = this.pathOf(h);
    const tmp = path.join(this.root, 'tmp', `${h.kind}-${h.name.slice(0, 16)}-${randomBytes(6).toString('hex')}`);
    try {
      const fh = await fsp.open(tmp, 'wx', 0o400).catch(async (err: unknown) => {
        if (sysCode(err) !== 'ENOENT') throw err;
        await fsp.mkdir(path.dirname(tmp), { recursive: true, mode: 0o700 });
        return fsp.open(tmp, 'wx', 0o400);
      });
      try {
        let off = 0;
        while (off < data.length) {
          const { bytesWritten } = await fh.write(data, off, data.length - off);
          off += bytesWritten;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await this.linkInto(tmp, final);
    } catch (err) {
      throw this.ioError(err, 'write', describe(h));
    } finally {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  tempDir(): string {
    return path.join(this.root, 'tmp');
  }

  async adopt(h: Handle, file: string): Promise<void> {
    const final = this.pathOf(h);
    try {
      const fh = await fsp.open(file, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.chmod(file, 0o400);
      await this.linkInto(file, final);
      await fsp.rm(file, { force: true });
    } catch (err) {
      throw this.ioError(err, 'write', describe(h));
    }
  }

  private async linkInto(tmp: string, final: string): Promise<void> {
    try {
      await fsp.link(tmp, final);
    } catch (err) {
      if (sysCode(err) !== 'ENOENT') throw err;
      // The kind's directory is missing (a data subdirectory removed by hand): recreate it once.
      await fsp.mkdir(path.dirname(final), { recursive: true, mode: 0o700 });
      await fsp.link(tmp, final);
    }
    await syncDir(path.dirname(final));
  }

  async delete(h: Handle): Promise<void> {
    try {
      await fsp.unlink(this.pathOf(h));
    } catch (err) {
      throw this.ioError(err, 'delete', describe(h));
    }
  }

  async close(): Promise<void> {}

  private ioError(err: unknown, op: string, subject: string): BulwarkError {
    if (err instanceof BulwarkError) return err;
    const code = sysCode(err);
    if (code === 'ENOENT') {
      return new BulwarkError('OBJECT_NOT_FOUND', `${subject} not found in ${this.location}`, { subject, cause: err });
    }
    if (code === 'EEXIST') {
      return new BulwarkError('OBJECT_EXISTS', `${subject} already exists in ${this.location}`, { subject, cause: err });
    }
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      return new BulwarkError('DISK_FULL', `no space left while trying to ${op} ${subject} in ${this.location}`, {
        subject,
        cause: err,
        hint: 'free space on the repository disk; earlier snapshots are intact',
      });
    }
    const msg = err instanceof Error ? err.message : String(err);
    return new BulwarkError('STORAGE_IO', `cannot ${op} ${subject} in ${this.location}: ${msg}`, {
      subject,
      cause: err,
      retryable: code === 'EAGAIN' || code === 'EBUSY' || code === 'EIO',
    });
  }
}

function shortRead(h: Handle, offset: number, want: number, got: number): BulwarkError {
  return new BulwarkError('SHORT_READ', `${describe(h)}: wanted ${want} bytes at offset ${offset}, got ${got}`, {
    subject: describe(h),
    hint: 'the object is truncated; run `bulwark check` to see what is affected',
  });
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the data itself was already synced.
  } finally {
    await fh.close();
  }
}
