// A repository: storage + keys + config + the master index. This is the "pack" layer's public face:
// callers above it (tree, snapshot, commands) see blobs by ID, sealed JSON documents and locks, and
// never touch pack offsets or storage names themselves.
import { mapLimit } from '../concurrency.js';
import { randomBytes } from 'node:crypto';
import { DEFAULT_CHUNKER, type ChunkerParams } from '../chunker/fastcdc.js';
import { blobIdFn, type BlobIdFn, type IdHash } from '../crypto/blob-id.js';
import { DEFAULT_KDF, sha256, deriveKeys, newMasterSecret, type KdfParams, type RepoKeys } from '../crypto/keys.js';
import { BulwarkError, isBulwarkError } from '../errors.js';
import { BlobCodec } from '../pack/blob-codec.js';
import { BlobIndex } from '../pack/blob-index.js';
import { decodeIndex, feedIndexBody, openIndexBody, type IndexBody, type IndexSink } from '../pack/formats.js';
import { AppendOnlyStorage, appendOnly } from '../storage/append-only.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { addSlot, unlockAll } from './key-slots.js';
import { corrupt, getJSON, sealJSON } from './objects.js';
import { recoverPacks } from './recover.js';

/**
 * The repository format this Bulwark writes. Version 2 differs from version 1 only in how blob IDs
 * are computed (keyed BLAKE3 instead of HMAC-SHA-256, see crypto/blob-id.ts); both are read.
 */
export const REPO_VERSION = 2;
/** The formats this Bulwark reads (and writes, with `InitOptions.version`). */
const READ_VERSIONS: readonly number[] = [1, 2];

/** Index files are opened and loaded in groups of at most this many bytes (see `loadIndex`). */
const INDEX_GROUP_BYTES = 64 * 1024 * 1024;

/** The blob-ID hash of each format version; REPO_VERSION for a version this Bulwark does not read. */
export function idHashOf(version: number): IdHash {
  switch (version) {
    case 1:
      return 'hmac-sha256';
    case 2:
      return 'blake3';
    default:
      throw new BulwarkError('REPO_VERSION', `repository format ${String(version)} is not supported (this Bulwark reads ${READ_VERSIONS.join(' and ')})`, {
        subject: 'config',
        hint: 'upgrade Bulwark',
      });
  }
}

export interface RepoConfig {
  version: number;
  id: string;
  created: string;
  chunker: ChunkerParams;
  compression: number;
  packSize: number;
  /** Append-only repositories: SHA-256 (hex) of the delete token that lifts the restriction. */
  appendOnly?: { deleteTokenSha256: string };
}

export interface InitOptions {
  kdf?: KdfParams;
  chunker?: ChunkerParams;
  compression?: number;
  packSize?: number;
  /** Make the repository append-only; deleting then needs this token. */
  deleteToken?: string;
  /** Write format version 1 (HMAC-SHA-256 blob IDs), which Bulwark 0.1 reads too. Default: 2. */
  version?: 1 | 2;
}

export interface OpenOptions {
  /** The delete token of an append-only repository (lifts the restriction when it matches). */
  deleteToken?: string;
}

export class Repository {
  /** Replaced (not mutated) by `resetIndex`, so hold the Repository, not the index, across operations. */
  index = new BlobIndex();
  readonly indexFiles = new Set<string>();
  private readonly codec: BlobCodec;
  private readonly treePacks = new Map<number, Promise<Buffer>>();

  private constructor(
    readonly storage: Storage,
    readonly keys: RepoKeys,
    readonly config: RepoConfig,
    readonly keyId: string,
    readonly master: Buffer,
    /** Computes blob IDs as this repository's format says (see crypto/blob-id.ts). */
    readonly blobId: BlobIdFn,
  ) {
    this.codec = new BlobCodec(keys.enc, config.compression);
  }

  /** The keyed hash behind this repository's blob IDs (workers build their own `blobId` from it). */
  get idHash(): IdHash {
    return idHashOf(this.config.version);
  }

  static async init(storage: Storage, password: string, opts: InitOptions = {}): Promise<Repository> {
    if (password.length === 0) {
      throw new BulwarkError('NO_PASSWORD', 'an empty password is not allowed', { hint: 'set BULWARK_PASSWORD or --password-file' });
    }
    const version = opts.version ?? REPO_VERSION;
    // Refuses a version this Bulwark cannot write before anything is stored.
    const idHash = idHashOf(version);
    await storage.create();
    const master = newMasterSecret();
    const keys = deriveKeys(master);
    const config: RepoConfig = {
      version,
      id: randomBytes(16).toString('hex'),
      created: new Date().toISOString(),
      chunker: opts.chunker ?? DEFAULT_CHUNKER,
      compression: opts.compression ?? 1,
      packSize: opts.packSize ?? 16 * 1024 * 1024,
      ...(opts.deleteToken !== undefined ? { appendOnly: { deleteTokenSha256: sha256(Buffer.from(opts.deleteToken)).toString('hex') } } : {}),
    };
    const blobId = await blobIdFn(idHash, keys.id);
    const keyId = await addSlot(storage, master, password, opts.kdf ?? DEFAULT_KDF);
    try {
      await storage.write({ kind: 'config', name: 'config' }, sealJSON(keys.enc, 'config', config));
    } catch (err) {
      // Our key slot belongs to no repository now: remove it (a crash here leaves an orphan slot,
      // which `open` skips because it does not open the config).
      await storage.delete({ kind: 'keys', name: keyId }).catch(() => undefined);
      if (isBulwarkError(err, 'OBJECT_EXISTS')) {
        throw new BulwarkError('REPO_EXISTS', `a repository already exists at ${storage.location}`, { subject: storage.location });
      }
      throw err;
    }
    return new Repository(storage, keys, config, keyId, master, blobId);
  }

  /** True when this handle may not delete (an append-only repository opened without its token). */
  get appendOnly(): boolean {
    return this.config.appendOnly !== undefined && this.storage instanceof AppendOnlyStorage;
  }

  static async open(storage: Storage, password: string, opts: OpenOptions = {}): Promise<Repository> {
    let hasConfig = false;
    for await (const _ of storage.list('config')) hasConfig = true;
    if (!hasConfig) {
      throw new BulwarkError('REPO_NOT_FOUND', `there is no repository at ${storage.location}`, {
        subject: storage.location,
        hint: 'check --repo / BULWARK_REPO, or run `bulwark init` to create one',
      });
    }
    let found: { keyId: string; master: Buffer; keys: RepoKeys; raw: unknown } | undefined;
    for await (const { keyId, master } of unlockAll(storage, password)) {
      const keys = deriveKeys(master);
      try {
        found = { keyId, master, keys, raw: await getJSON(storage, keys.enc, 'config', 'config') };
        break;
      } catch (err) {
        if (!isBulwarkError(err, 'OBJECT_CORRUPT')) throw err;
      }
    }
    if (found === undefined) {
      throw new BulwarkError('REPO_FOREIGN', `the config of ${storage.location} does not belong to its keys`, {
        subject: 'config',
        hint: 'the repository config was replaced or damaged',
      });
    }
    const { keyId, master, keys, raw } = found;
    const config = raw as RepoConfig;
    const idHash = idHashOf(config.version);
    let access = storage;
    if (config.appendOnly !== undefined) {
      const token = opts.deleteToken;
      if (token !== undefined && sha256(Buffer.from(token)).toString('hex') !== config.appendOnly.deleteTokenSha256) {
        throw new BulwarkError('APPEND_ONLY', `the delete token does not match the one of ${storage.location}`, {
          subject: storage.location,
          hint: 'check BULWARK_DELETE_TOKEN_FILE / BULWARK_DELETE_TOKEN, or leave them unset to use the repository append-only',
        });
      }
      if (token === undefined) access = appendOnly(storage);
    }
    return new Repository(access, keys, config, keyId, master, await blobIdFn(idHash, keys.id));
  }

  /** Index files that could not be read by `loadIndex` (their packs look unindexed; see recoverPacks). */
  readonly damagedIndexes: BulwarkError[] = [];

  /**
   * Loads every index file into the master index. A damaged index file does not stop the others:
   * it is recorded in `damagedIndexes`, and the packs it listed can be indexed again from their
   * trailers (`recoverPacks`, which every backup runs), so one bad file blocks nothing.
   */
  async loadIndex(groupBytes = INDEX_GROUP_BYTES): Promise<void> {
    // Files are opened a group at a time (up to INDEX_GROUP_BYTES of them), and the index is sized
    // once for the whole group before its entries go in. Growing it entry by entry (doubling, then
    // compacting) left about three times its final size in dropped buffers: array buffers grew by
    // 28 MiB while the Linux tree's 3.4 MB of index files loaded, and by 15 MiB this way.
    const groups: ObjectInfo[][] = [[]];
    let inGroup = 0;
    for await (const o of this.storage.list('index')) {
      if (this.indexFiles.has(o.name)) continue;
      if (inGroup + o.size > groupBytes && groups[groups.length - 1]!.length > 0) {
        groups.push([]);
        inGroup = 0;
      }
      groups[groups.length - 1]!.push(o);
      inGroup += o.size;
    }
    for (const group of groups) {
      const opened: Array<{ name: string; file: IndexBody }> = [];
      await mapLimit(group, 8, async ({ name }) => {
        try {
          const bytes = await this.readIndexBytes(name);
          try {
            opened.push({ name, file: openIndexBody(this.keys.enc, bytes) });
          } catch (err) {
            throw corrupt('index', name, err instanceof Error ? err.message : String(err));
          }
        } catch (err) {
          if (!isBulwarkError(err, 'INDEX_CORRUPT')) throw err;
          this.damagedIndexes.push(err);
        }
      });
      this.index.reserve(this.index.count + opened.reduce((n, o) => n + o.file.blobs, 0));
      // Taken out one at a time, so each body is garbage once fed.
      for (let o = opened.pop(); o !== undefined; o = opened.pop()) {
        feedIndexBody(o.file, this.indexSink);
        this.indexFiles.add(o.name);
      }
    }
    this.index.compact();
    if (this.damagedIndexes.length > 0) await recoverPacks(this);
  }

  private readonly indexSink: IndexSink = {
    pack: (id, type) => this.index.packs.add(id, type),
    blob: (body, at, pack, offset, stored, raw) => {
      this.index.addAt(body, at, pack, offset, stored, raw);
    },
  };

  private async readIndexBytes(name: string): Promise<Uint8Array> {
    const bytes = await this.storage.read({ kind: 'index', name });
    if (sha256(bytes).toString('hex') !== name) throw corrupt('index', name, 'content does not match its name');
    return bytes;
  }

  async readIndexFile(name: string): Promise<ReturnType<typeof decodeIndex>> {
    const bytes = await this.readIndexBytes(name);
    try {
      return decodeIndex(this.keys.enc, bytes);
    } catch (err) {
      throw corrupt('index', name, err instanceof Error ? err.message : String(err));
    }
  }

  addToIndex(packs: ReturnType<typeof decodeIndex>['packs']): void {
    for (const p of packs) {
      const pack = this.index.packs.add(p.id, p.type);
      for (const b of p.blobs) this.index.add(b.id, { pack, offset: b.offset, stored: b.stored, raw: b.raw });
    }
  }

  newCodec(): BlobCodec {
    return new BlobCodec(this.keys.enc, this.config.compression);
  }

  /** Reads one blob, checking its authenticity and that its content matches its ID. */
  async readBlob(id: Uint8Array): Promise<Buffer> {
    const e = this.index.find(id);
    const hex = Buffer.from(id).toString('hex');
    if (e < 0) {
      throw new BulwarkError('BLOB_MISSING', `blob ${hex} is not in the index`, {
        subject: `blob ${hex}`,
        hint: 'run `bulwark check` to see which snapshots are affected',
      });
    }
    const loc = this.index.location(e);
    const pack = this.index.packs.hex(loc.pack);
    const stored = await this.storage.read({ kind: 'data', name: pack }, loc.offset, loc.stored);
    return this.decodeBlob(stored, id, pack, loc.offset);
  }

  decodeBlob(stored: Uint8Array, id: Uint8Array, pack: string, offset: number, codec: BlobCodec = this.codec): Buffer {
    const hex = Buffer.from(id).toString('hex');
    let plain: Buffer;
    try {
      plain = codec.decode(stored);
    } catch (err) {
      throw packCorrupt(pack, hex, offset, err instanceof Error ? err.message : String(err));
    }
    if (!this.blobId(plain).equals(id)) throw packCorrupt(pack, hex, offset, 'content does not match blob ID');
    return plain;
  }

  /**
   * Trees are read in bulk (backup's parent lookups, ls, diff, restore planning, check), and tree
   * packs are small and few: read a whole tree pack once and serve its blobs from memory (at most two
   * packs held), instead of one small ranged read per directory.
   */
  async readTreeBlob(id: Uint8Array): Promise<Buffer> {
    const e = this.index.find(id);
    if (e < 0) return this.readBlob(id);
    const loc = this.index.location(e);
    if (this.index.packs.type(loc.pack) !== 1) return this.readBlob(id);
    let pack = this.treePacks.get(loc.pack);
    if (pack === undefined) {
      const name = this.index.packs.hex(loc.pack);
      pack = this.storage.read({ kind: 'data', name });
      if (this.treePacks.size >= 2) this.treePacks.delete(this.treePacks.keys().next().value as number);
      this.treePacks.set(loc.pack, pack);
      pack.catch(() => this.treePacks.delete(loc.pack));
    }
    const bytes = await pack;
    const name = this.index.packs.hex(loc.pack);
    if (loc.offset + loc.stored > bytes.length) throw packCorrupt(name, Buffer.from(id).toString('hex'), loc.offset, 'pack is shorter than the index says');
    return this.decodeBlob(bytes.subarray(loc.offset, loc.offset + loc.stored), id, name, loc.offset);
  }

  /**
   * Forgets everything loaded from index files. Prune calls it after deleting packs, so a
   * Repository object used again (a daemon's) never dedups against blobs whose packs are gone.
   */
  resetIndex(): void {
    this.index = new BlobIndex();
    this.indexFiles.clear();
    this.damagedIndexes.length = 0;
    this.treePacks.clear();
  }

  /** Releases cached tree packs (after planning a restore, say). */
  dropCaches(): void {
    this.treePacks.clear();
  }

  async addKey(password: string, kdf: KdfParams = DEFAULT_KDF): Promise<string> {
    return addSlot(this.storage, this.master, password, kdf);
  }
}

export function packCorrupt(pack: string, blob: string, offset: number, why: string): BulwarkError {
  return new BulwarkError('PACK_CORRUPT', `pack ${pack}: blob ${blob} at offset ${offset} is damaged (${why})`, {
    subject: `data/${pack}`,
    hint: 'run `bulwark check --read-data` to list every damaged object; restore from another copy of the repository',
  });
}
