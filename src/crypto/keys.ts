// Key hierarchy. A repository has one random 32-byte master secret. Everything is derived from it
// with HKDF-SHA-256 under distinct labels:
//   enc  - AES-256-GCM key for every stored object,
//   id   - key of the keyed hash behind blob IDs (so IDs never reveal a plain hash of content; see
//          blob-id.ts),
//   gear - seed of the chunker's gear table (so chunk boundaries do not leak content).
// The master secret is stored only wrapped: each key slot (keys/<id>) seals it with a key derived
// from a password by scrypt. Several slots may exist; any one opens the repository.
import { createCipheriv, createHash, hkdfSync, randomBytes, scrypt as scryptCb } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { promisify } from 'node:util';
import { AuthError, open, seal } from './aead.js';

const scrypt = promisify(scryptCb) as (pw: string, salt: Uint8Array, len: number, opts: object) => Promise<Buffer>;

export interface RepoKeys {
  enc: Buffer;
  id: Buffer;
  gear: Int32Array;
}

export interface KdfParams {
  N: number;
  r: number;
  p: number;
}

/**
 * Default scrypt cost for new key slots: N=2^14, r=8, p=5, one of the five equivalent settings
 * OWASP's password storage guidance lists for scrypt (2^17/p=1 down to 2^13/p=10). It needs 16 MiB
 * at a time (p runs sequentially), which keeps the start of every command small: a backup that
 * finds nothing changed peaks while the key is derived. Slots record their own parameters, so
 * slots made with the earlier default (N=2^15, p=3, 32 MiB) open as before.
 */
export const DEFAULT_KDF: KdfParams = { N: 1 << 14, r: 8, p: 5 };

export interface KeySlotFile {
  format: 'bulwark-key-v1';
  created: string;
  host: string;
  username: string;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  /** base64 of seal(kek, master secret JSON). */
  data: string;
}

export function deriveKeys(master: Uint8Array): RepoKeys {
  const salt = Buffer.from('bulwark-v1');
  const enc = Buffer.from(hkdfSync('sha256', master, salt, 'bulwark enc', 32));
  const id = Buffer.from(hkdfSync('sha256', master, salt, 'bulwark id', 32));
  const gearSeed = Buffer.from(hkdfSync('sha256', master, salt, 'bulwark gear', 32));
  return { enc, id, gear: gearTable(gearSeed) };
}

/** 256 pseudo-random 32-bit values from AES-256-CTR keyed by the repository's gear seed. */
export function gearTable(seed: Uint8Array): Int32Array {
  const cipher = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  const stream = cipher.update(Buffer.alloc(1024));
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) t[i] = stream.readInt32LE(i * 4);
  return t;
}

export function newMasterSecret(): Buffer {
  return randomBytes(32);
}

async function kek(password: string, salt: Uint8Array, p: KdfParams): Promise<Buffer> {
  return scrypt(password, salt, 32, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 64 * 1024 * 1024 });
}

export async function wrapMaster(master: Uint8Array, password: string, params: KdfParams): Promise<KeySlotFile> {
  const salt = randomBytes(32);
  const k = await kek(password, salt, params);
  const inner = Buffer.from(JSON.stringify({ master: Buffer.from(master).toString('base64') }));
  return {
    format: 'bulwark-key-v1',
    created: new Date().toISOString(),
    host: hostname(),
    username: safeUser(),
    kdf: 'scrypt',
    N: params.N,
    r: params.r,
    p: params.p,
    salt: salt.toString('base64'),
    data: Buffer.from(seal(k, [inner], Buffer.from('bulwark key'))).toString('base64'),
  };
}

/** Returns the master secret, or undefined if the password does not open this slot. */
export async function unwrapMaster(slot: KeySlotFile, password: string): Promise<Buffer | undefined> {
  const k = await kek(password, Buffer.from(slot.salt, 'base64'), slot);
  try {
    const inner = JSON.parse(open(k, Buffer.from(slot.data, 'base64'), Buffer.from('bulwark key')).toString()) as {
      master: string;
    };
    return Buffer.from(inner.master, 'base64');
  } catch (err) {
    if (err instanceof AuthError) return undefined;
    throw err;
  }
}

export function isKeySlot(v: unknown): v is KeySlotFile {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    o['format'] === 'bulwark-key-v1' &&
    o['kdf'] === 'scrypt' &&
    typeof o['N'] === 'number' &&
    typeof o['r'] === 'number' &&
    typeof o['p'] === 'number' &&
    typeof o['salt'] === 'string' &&
    typeof o['data'] === 'string'
  );
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}
