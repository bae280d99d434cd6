// The storage layer: a flat store of named, immutable objects grouped by kind. Everything above it
// (packs, indexes, snapshots, keys, locks) is expressed as whole objects in this interface, so a
// backend needs only these five operations. Contracts every backend must keep (checked by
// test/storage-conformance.ts):
//  - write() is atomic and write-once: readers never see a partial object, and writing a name that
//    already exists fails with OBJECT_EXISTS (content-addressed names make this safe to ignore).
//  - read() returns exactly the requested bytes; an object or range that is shorter than asked is
//    a SHORT_READ error, never a silently short buffer.
//  - a missing object is OBJECT_NOT_FOUND, for read, stat and delete alike.
//  - list() may be expensive on remote stores: callers list once per operation, never in a loop.
// Retry, throttling and fault injection are wrappers that take a Storage and return a Storage.

export type ObjectKind = 'config' | 'keys' | 'data' | 'index' | 'snapshots' | 'locks';

export const OBJECT_KINDS: readonly ObjectKind[] = ['config', 'keys', 'data', 'index', 'snapshots', 'locks'];

export interface Handle {
  kind: ObjectKind;
  /** Lower-case hex for content-addressed kinds; "config" for the single config object. */
  name: string;
}

export interface ObjectInfo {
  name: string;
  size: number;
}

export interface Storage {
  /** Human-readable location for messages, without credentials. */
  readonly location: string;
  /**
   * Optional: the size of one ranged read that bulk readers (restore) should aim for. Remote stores
   * bill and wait per request, so they ask for larger reads than a local disk needs.
   */
  readonly readSize?: number;
  /** Creates the backend's container (directory, bucket prefix). Fails with REPO_EXISTS if a config exists. */
  create(): Promise<void>;
  list(kind: ObjectKind): AsyncIterable<ObjectInfo>;
  stat(h: Handle): Promise<ObjectInfo>;
  /** Reads `length` bytes at `offset` (whole object when length is omitted). */
  read(h: Handle, offset?: number, length?: number): Promise<Buffer>;
  /**
   * Optional: like `read(h, offset, length)` but into `into[0, length)`, so callers that read many
   * ranges can reuse their buffers. Same SHORT_READ and OBJECT_NOT_FOUND contract as `read`.
   */
  readInto?(h: Handle, offset: number, length: number, into: Uint8Array): Promise<void>;
  write(h: Handle, data: Uint8Array): Promise<void>;
  delete(h: Handle): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional: a directory where callers may assemble large objects (packs) in files, on the same
   * filesystem as the store, so that `adopt` can publish them without copying.
   */
  tempDir?(): string;
  /**
   * Optional: publishes a complete file from `tempDir()` as the object `h`, with the same atomic,
   * write-once guarantees as `write`. The file is consumed (moved or removed) on success.
   */
  adopt?(h: Handle, file: string): Promise<void>;
}

export function describe(h: Handle): string {
  return h.kind === 'config' ? 'config' : `${h.kind}/${h.name}`;
}
