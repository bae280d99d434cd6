// Sealed JSON documents (config, snapshots, locks) and the naming rule for every content-addressed
// object: its name is the SHA-256 of its stored bytes, so any storage-level damage is detectable
// without the key, and a second write of the same object is a harmless no-op.
import { open, seal } from '../crypto/aead.js';
import { sha256 } from '../crypto/keys.js';
import { BulwarkError, isBulwarkError } from '../errors.js';
import { describe, type ObjectKind, type Storage } from '../storage/storage.js';

export function aadFor(kind: ObjectKind): Buffer {
  return Buffer.from(`bulwark ${kind}`);
}

export function sealJSON(encKey: Uint8Array, kind: ObjectKind, doc: unknown): Uint8Array {
  return seal(encKey, [Buffer.from(JSON.stringify(doc))], aadFor(kind));
}

/** Writes a content-addressed object; an existing object of the same name is the same content. */
export async function putObject(storage: Storage, kind: ObjectKind, bytes: Uint8Array): Promise<string> {
  const name = sha256(bytes).toString('hex');
  try {
    await storage.write({ kind, name }, bytes);
  } catch (err) {
    if (!isBulwarkError(err, 'OBJECT_EXISTS')) throw err;
  }
  return name;
}

export async function putJSON(storage: Storage, encKey: Uint8Array, kind: ObjectKind, doc: unknown): Promise<string> {
  return putObject(storage, kind, sealJSON(encKey, kind, doc));
}

const CORRUPT_CODE: Partial<Record<ObjectKind, 'SNAPSHOT_CORRUPT' | 'INDEX_CORRUPT'>> = {
  snapshots: 'SNAPSHOT_CORRUPT',
  index: 'INDEX_CORRUPT',
};

export function corrupt(kind: ObjectKind, name: string, why: string): BulwarkError {
  const subject = describe({ kind, name });
  return new BulwarkError(CORRUPT_CODE[kind] ?? 'OBJECT_CORRUPT', `${subject} is damaged: ${why}`, {
    subject,
    hint: 'run `bulwark check --read-data` to see everything affected; restore from another copy of the repository',
  });
}

/** Reads, verifies (name = hash of bytes, then AEAD) and parses a sealed JSON object. */
export async function getJSON(storage: Storage, encKey: Uint8Array, kind: ObjectKind, name: string): Promise<unknown> {
  const bytes = await storage.read({ kind, name });
  if (kind !== 'config' && sha256(bytes).toString('hex') !== name) throw corrupt(kind, name, 'content does not match its name');
  let plain: Buffer;
  try {
    plain = open(encKey, bytes, aadFor(kind));
  } catch {
    throw corrupt(kind, name, 'authentication failed');
  }
  try {
    return JSON.parse(plain.toString('utf8')) as unknown;
  } catch {
    throw corrupt(kind, name, 'not valid JSON');
  }
}
