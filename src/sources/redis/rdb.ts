// Streaming RDB parser (RDB versions 9-11: Redis 6.0-7.2). It does not decode values: it finds
// where each value's encoding ends and copies those bytes verbatim into a DUMP/RESTORE payload
// (type byte + value bytes + RDB version + CRC-64), which is exactly what RESTORE expects.
//
// Parsing is synchronous over one buffer. Each top-level item (an opcode or a key with its value)
// is parsed from its first byte; if the buffer ends inside it, more input is read and the item
// is parsed again. The buffer grows at least geometrically, so a large key costs O(size) overall,
// and everything before the current item is dropped: memory holds one entry plus one read chunk.
import { BulwarkError, type ErrorCode } from '../../errors.js';
import { Crc64 } from './crc64.js';
import { Incomplete, Reader } from './rdb-reader.js';

export { lzfDecompress } from './rdb-reader.js';

export interface RdbEntry {
  db: number;
  key: Buffer;
  type: number;
  /** The DUMP serialization of the value, ready for RESTORE. */
  payload: Buffer;
  /** Absolute expiry, Unix ms. */
  expireAtMs?: number;
}

export interface RdbParseOptions {
  /** Check the file's trailing CRC-64 (when the writer stored one); default true. */
  verifyChecksum?: boolean;
  /** Largest single item accepted (guards against a corrupt length); default 1 GiB. */
  maxEntryBytes?: number;
  /** Code for malformed or truncated input; default RESTORE_FAILED. */
  errorCode?: ErrorCode;
  onHeader?: (rdbVersion: number) => void;
  onAux?: (key: Buffer, value: Buffer) => void;
  /** Redis 7 function libraries (the source code, as FUNCTION LOAD takes it). */
  onFunction?: (code: Buffer) => void;
}

export const RDB_MIN_VERSION = 9;
export const RDB_MAX_VERSION = 11;

const OP = { FUNCTION_PRE_GA: 246, MODULE_AUX: 247, IDLE: 248, FREQ: 249, AUX: 250, RESIZEDB: 251 } as const;
const OP_EXPIRETIME_MS = 252;
const OP_EXPIRETIME = 253;
const OP_SELECTDB = 254;
const OP_EOF = 255;
const OP_FUNCTION2 = 245;

type Item =
  | { kind: 'entry'; type: number; key: Buffer; valueStart: number }
  | { kind: 'db'; db: number }
  | { kind: 'expire'; at: number }
  | { kind: 'aux'; key: Buffer; value: Buffer }
  | { kind: 'function'; code: Buffer }
  | { kind: 'skip' }
  | { kind: 'eof'; checksum: Buffer | undefined };

function readItem(r: Reader): Item {
  const at = r.pos;
  const op = r.u8();
  switch (op) {
    case OP_EOF:
      return { kind: 'eof', checksum: Buffer.from(r.take(8)) };
    case OP_SELECTDB:
      return { kind: 'db', db: r.len() };
    case OP_EXPIRETIME_MS:
      return { kind: 'expire', at: Number(r.take(8).readBigInt64LE(0)) };
    case OP_EXPIRETIME:
      return { kind: 'expire', at: r.take(4).readInt32LE(0) * 1000 };
    case OP.RESIZEDB:
      r.len();
      r.len();
      return { kind: 'skip' };
    case OP.AUX:
      return { kind: 'aux', key: r.str(true), value: r.str(true) };
    case OP.FREQ:
      r.u8();
      return { kind: 'skip' };
    case OP.IDLE:
      r.len();
      return { kind: 'skip' };
    case OP.MODULE_AUX:
      r.skipLen(); // module id
      r.len(); // when-opcode
      r.len(); // when
      r.skipModuleValues();
      return { kind: 'skip' };
    case OP_FUNCTION2:
      return { kind: 'function', code: r.str(true) };
    case OP.FUNCTION_PRE_GA:
      throw r.bad('functions from a Redis 7.0 release candidate are not supported', at);
    default: {
      const key = r.str(true);
      const valueStart = r.pos;
      r.skipValue(op);
      return { kind: 'entry', type: op, key, valueStart };
    }
  }
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Builds a RESTORE payload: type, value bytes, RDB version (LE16), CRC-64 (LE64). */
export function makeDumpPayload(type: number, value: Uint8Array, rdbVersion: number): Buffer {
  const out = Buffer.allocUnsafe(1 + value.length + 10);
  out[0] = type;
  out.set(value, 1);
  out.writeUInt16LE(rdbVersion, 1 + value.length);
  new Crc64().update(out, 0, out.length - 8).writeLE(out, out.length - 8);
  return out;
}

export async function* parseRdb(source: AsyncIterable<Uint8Array>, opts: RdbParseOptions = {}): AsyncGenerator<RdbEntry> {
  const code = opts.errorCode ?? 'RESTORE_FAILED';
  const maxEntry = opts.maxEntryBytes ?? 1024 * 1024 * 1024;
  const verify = opts.verifyChecksum ?? true;
  const r = new Reader(code);
  const it = source[Symbol.asyncIterator]();
  let ended = false;
  const crc = new Crc64();
  let crcPos = 0; // bytes of buf before this are in crc

  // Makes buf hold at least needEnd bytes (relative to the current buf), reading toward wantEnd;
  // drops what lies before `keep` (already parsed and checksummed).
  const fill = async (keep: number, needEnd: number, wantEnd: number): Promise<void> => {
    const parts: Buffer[] = [r.buf.subarray(keep)];
    let have = r.buf.length;
    while (have < wantEnd && !ended) {
      const n = await it.next();
      if (n.done) ended = true;
      else if (n.value.byteLength > 0) {
        parts.push(toBuffer(n.value));
        have += n.value.byteLength;
      }
    }
    r.buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    r.base += keep;
    r.pos -= keep;
    crcPos -= keep;
    if (have < needEnd) {
      throw new BulwarkError(code, `RDB truncated at byte offset ${r.base + r.buf.length} (input ended mid-record)`, {
        hint: 'the RDB transfer or file is incomplete',
      });
    }
  };

  // Runs `read` from the current position, reading more input until the item is complete.
  const item = async <T>(read: () => T): Promise<T> => {
    let start = r.pos;
    for (;;) {
      try {
        return read();
      } catch (e) {
        if (!(e instanceof Incomplete)) throw e;
        if (e.needEnd - start > maxEntry) {
          throw r.bad(`record larger than the ${maxEntry}-byte limit (corrupt length?)`, start);
        }
        const soFar = r.buf.length - start;
        r.pos = start;
        await fill(start, e.needEnd, Math.max(e.needEnd, start + 2 * soFar, r.buf.length + 64 * 1024));
        start = r.pos; // the buffer now begins at the item
      }
    }
  };

  try {
    const version = await item(() => {
      const magic = r.take(9).toString('latin1');
      const m = /^REDIS(\d{4})$/.exec(magic);
      if (m === null) throw r.bad('not an RDB file (no REDIS header)', 0);
      return Number(m[1]);
    });
    if (version < RDB_MIN_VERSION || version > RDB_MAX_VERSION) {
      throw new BulwarkError(code, `unsupported RDB version ${version} (supported: ${RDB_MIN_VERSION}-${RDB_MAX_VERSION})`, {
        hint: 'RDB 9-11 is written by Redis 6.0 to 7.2',
      });
    }
    opts.onHeader?.(version);
    let db = 0;
    let expireAt: number | undefined;
    for (;;) {
      const start = r.pos;
      const it2 = await item(() => readItem(r));
      if (verify) crc.update(r.buf, crcPos, it2.kind === 'eof' ? r.pos - 8 : r.pos);
      crcPos = r.pos;
      switch (it2.kind) {
        case 'entry': {
          const payload = makeDumpPayload(it2.type, r.buf.subarray(it2.valueStart, r.pos), version);
          const e: RdbEntry = { db, key: it2.key, type: it2.type, payload };
          if (expireAt !== undefined) e.expireAtMs = expireAt;
          expireAt = undefined;
          yield e;
          break;
        }
        case 'db':
          db = it2.db;
          break;
        case 'expire':
          expireAt = it2.at;
          break;
        case 'aux':
          opts.onAux?.(it2.key, it2.value);
          break;
        case 'function':
          opts.onFunction?.(it2.code);
          break;
        case 'skip':
          break;
        case 'eof': {
          const stored = it2.checksum;
          if (verify && stored !== undefined && !stored.equals(Buffer.alloc(8))) {
            const want = Buffer.alloc(8);
            crc.writeLE(want, 0);
            if (!stored.equals(want)) {
              throw new BulwarkError(
                code,
                `RDB checksum mismatch at byte offset ${r.base + start + 1}: stored ${stored.toString('hex')}, computed ${want.toString('hex')}`,
                { hint: 'the RDB is damaged' },
              );
            }
          }
          return;
        }
      }
    }
  } finally {
    if (!ended) await it.return?.();
  }
}

export interface RdbSummary {
  version: number;
  keys: number;
  perDb: Record<string, number>;
  withExpiry: number;
  bytes: number;
}

/** Counts keys per database without keeping any (for listings and dry runs). */
export async function countRdbKeys(source: AsyncIterable<Uint8Array>, opts: RdbParseOptions = {}): Promise<RdbSummary> {
  const s: RdbSummary = { version: 0, keys: 0, perDb: {}, withExpiry: 0, bytes: 0 };
  for await (const e of parseRdb(source, { ...opts, onHeader: (v) => (s.version = v) })) {
    s.keys++;
    s.perDb[String(e.db)] = (s.perDb[String(e.db)] ?? 0) + 1;
    if (e.expireAtMs !== undefined) s.withExpiry++;
    s.bytes += e.payload.length;
  }
  return s;
}
