// Binary layouts of pack trailers and index files (see docs/design.md, "Packs" and "Index").
// Both are sealed with AES-256-GCM under role-specific AAD, so one cannot be swapped for the other.
import { Compressor, Decompressor } from 'zstd-napi';
import { open, seal } from '../crypto/aead.js';
import { ID_LEN, type BlobTypeCode } from './blob-index.js';

export const TRAILER_AAD = Buffer.from('bulwark pack trailer');
export const INDEX_AAD = Buffer.from('bulwark index');
const PACK_MAGIC = 0x4b505742; // "BWPK" little-endian
const INDEX_MAGIC = 0x58495742; // "BWIX"
const VERSION = 1;

export interface PackBlob {
  id: Uint8Array;
  offset: number;
  stored: number;
  raw: number;
}

export interface PackDescriptor {
  id: Uint8Array;
  type: BlobTypeCode;
  blobs: PackBlob[];
}

const TRAILER_ENTRY = 8 + ID_LEN;

/** Sealed trailer followed by its length as u32 LE: the last bytes of every pack. */
export function encodeTrailer(encKey: Uint8Array, type: BlobTypeCode, blobs: readonly PackBlob[]): Buffer {
  const body = Buffer.allocUnsafe(10 + blobs.length * TRAILER_ENTRY);
  body.writeUInt32LE(PACK_MAGIC, 0);
  body.writeUInt8(VERSION, 4);
  body.writeUInt8(type, 5);
  body.writeUInt32LE(blobs.length, 6);
  let o = 10;
  for (const b of blobs) {
    body.writeUInt32LE(b.stored, o);
    body.writeUInt32LE(b.raw, o + 4);
    body.set(b.id, o + 8);
    o += TRAILER_ENTRY;
  }
  const sealed = seal(encKey, [body], TRAILER_AAD);
  const out = Buffer.allocUnsafe(sealed.length + 4);
  out.set(sealed, 0);
  out.writeUInt32LE(sealed.length, sealed.length);
  return out;
}

/** Parses a sealed trailer (without the length suffix). Offsets are recomputed from blob order. */
export function decodeTrailer(encKey: Uint8Array, sealed: Uint8Array): { type: BlobTypeCode; blobs: PackBlob[] } {
  const body = open(encKey, sealed, TRAILER_AAD);
  if (body.length < 10 || body.readUInt32LE(0) !== PACK_MAGIC || body.readUInt8(4) !== VERSION) {
    throw new Error('bad pack trailer header');
  }
  const type = body.readUInt8(5) as BlobTypeCode;
  const count = body.readUInt32LE(6);
  if (body.length !== 10 + count * TRAILER_ENTRY) throw new Error('bad pack trailer length');
  const blobs: PackBlob[] = [];
  let o = 10;
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const stored = body.readUInt32LE(o);
    blobs.push({ stored, raw: body.readUInt32LE(o + 4), id: Buffer.from(body.subarray(o + 8, o + 8 + ID_LEN)), offset });
    offset += stored;
    o += TRAILER_ENTRY;
  }
  return { type, blobs };
}

const INDEX_ENTRY = 12 + ID_LEN;

export function encodeIndex(encKey: Uint8Array, packs: readonly PackDescriptor[], supersedes: readonly Uint8Array[] = []): Uint8Array {
  return sealIndex(encKey, packs.map(indexPackPart), supersedes);
}

/**
 * One pack's part of an index body: its ID, type and blob count, then one entry per blob. A backup
 * keeps the packs it stored in this form until it writes their index file: 44 bytes per blob in
 * one buffer per pack, where descriptors would cost about 150 bytes of JavaScript heap per blob.
 */
export function indexPackPart(p: PackDescriptor): Uint8Array {
  const part = Buffer.allocUnsafe(ID_LEN + 5 + p.blobs.length * INDEX_ENTRY);
  part.set(p.id, 0);
  part.writeUInt8(p.type, ID_LEN);
  part.writeUInt32LE(p.blobs.length, ID_LEN + 1);
  let o = ID_LEN + 5;
  for (const b of p.blobs) {
    part.writeUInt32LE(b.offset, o);
    part.writeUInt32LE(b.stored, o + 4);
    part.writeUInt32LE(b.raw, o + 8);
    part.set(b.id, o + 12);
    o += INDEX_ENTRY;
  }
  return part;
}

/** An index file from pack parts (see `indexPackPart`) and the IDs of index files it supersedes. */
export function sealIndex(encKey: Uint8Array, parts: readonly Uint8Array[], supersedes: readonly Uint8Array[] = []): Uint8Array {
  let size = 13 + supersedes.length * ID_LEN;
  for (const p of parts) size += p.length;
  const body = Buffer.allocUnsafe(size);
  body.writeUInt32LE(INDEX_MAGIC, 0);
  body.writeUInt8(VERSION, 4);
  body.writeUInt32LE(supersedes.length, 5);
  let o = 9;
  for (const s of supersedes) {
    body.set(s, o);
    o += ID_LEN;
  }
  body.writeUInt32LE(parts.length, o);
  o += 4;
  for (const p of parts) {
    body.set(p, o);
    o += p.length;
  }
  const c = new Compressor();
  c.setParameters({ compressionLevel: 3 });
  return seal(encKey, [c.compress(body)], INDEX_AAD);
}

export interface IndexFile {
  supersedes: Buffer[];
  packs: PackDescriptor[];
}

/** Receives an index file's entries without an object per blob (see `feedIndexBody`). */
export interface IndexSink {
  /** A pack of the file; returns the number the blobs refer to. */
  pack(id: Uint8Array, type: BlobTypeCode): number;
  /** A blob whose 32-byte ID is at `at` in `body`. */
  blob(body: Uint8Array, at: number, pack: number, offset: number, stored: number, raw: number): void;
}

/**
 * An index file opened and checked in full, not yet passed to a sink. Bulk loads (every command
 * loads the whole index) open files with `openIndexBody` and feed them with `feedIndexBody`, with
 * no object per blob: `decodeIndex` builds one per blob, which for a repository of a few hundred
 * thousand blobs cost more in garbage collection than the decoding itself. The layout is checked in
 * full when the file is opened, so a bad file adds nothing.
 */
export interface IndexBody {
  body: Buffer;
  /** Blob entries in the file: a caller can size its index once before feeding several files. */
  blobs: number;
}

/** Decrypts and decompresses an index file and checks its layout in full (throws if it is bad). */
export function openIndexBody(encKey: Uint8Array, sealed: Uint8Array): IndexBody {
  const body = indexBody(encKey, sealed);
  const ns = body.readUInt32LE(5);
  let o = 9 + ns * ID_LEN;
  if (o + 4 > body.length) throw new Error('index truncated');
  const np = body.readUInt32LE(o);
  o += 4;
  let blobs = 0;
  for (let i = 0; i < np; i++) {
    if (o + ID_LEN + 5 > body.length) throw new Error('index truncated');
    const nb = body.readUInt32LE(o + ID_LEN + 1);
    blobs += nb;
    o += ID_LEN + 5 + nb * INDEX_ENTRY;
    if (o > body.length) throw new Error('index truncated');
  }
  if (o !== body.length) throw new Error('index has trailing bytes');
  return { body, blobs };
}

/** Passes an opened index file's packs and blobs to `sink`; returns the superseded index IDs. */
export function feedIndexBody({ body }: IndexBody, sink: IndexSink): Buffer[] {
  const ns = body.readUInt32LE(5);
  const supersedes: Buffer[] = [];
  for (let i = 0; i < ns; i++) supersedes.push(Buffer.from(body.subarray(9 + i * ID_LEN, 9 + (i + 1) * ID_LEN)));
  let o = 9 + ns * ID_LEN;
  const np = body.readUInt32LE(o);
  o += 4;
  for (let i = 0; i < np; i++) {
    const pack = sink.pack(body.subarray(o, o + ID_LEN), body.readUInt8(o + ID_LEN) as BlobTypeCode);
    const nb = body.readUInt32LE(o + ID_LEN + 1);
    o += ID_LEN + 5;
    for (let j = 0; j < nb; j++, o += INDEX_ENTRY) {
      sink.blob(body, o + 12, pack, body.readUInt32LE(o), body.readUInt32LE(o + 4), body.readUInt32LE(o + 8));
    }
  }
  return supersedes;
}

function indexBody(encKey: Uint8Array, sealed: Uint8Array): Buffer {
  const body = new Decompressor().decompress(open(encKey, sealed, INDEX_AAD));
  if (body.length < 13 || body.readUInt32LE(0) !== INDEX_MAGIC || body.readUInt8(4) !== VERSION) {
    throw new Error('bad index header');
  }
  return body;
}

export function decodeIndex(encKey: Uint8Array, sealed: Uint8Array): IndexFile {
  const packs: PackDescriptor[] = [];
  const supersedes = feedIndexBody(openIndexBody(encKey, sealed), {
    pack: (id, type) => packs.push({ id: Buffer.from(id), type, blobs: [] }) - 1,
    blob: (body, at, pack, offset, stored, raw) => {
      packs[pack]!.blobs.push({ offset, stored, raw, id: body.subarray(at, at + ID_LEN) });
    },
  });
  return { supersedes, packs };
}
