// Authenticated encryption of every stored object: AES-256-GCM with a random 96-bit nonce per
// object. Layout of a sealed object: nonce (12) || ciphertext || tag (16). The optional AAD binds an
// object to its role so a sealed blob cannot be replayed as, say, a snapshot.
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';

export const NONCE_LEN = 12;
export const TAG_LEN = 16;
export const SEAL_OVERHEAD = NONCE_LEN + TAG_LEN;

export class AuthError extends Error {
  constructor() {
    super('authentication failed');
    this.name = 'AuthError';
  }
}

// Nonces are random, drawn from a pool refilled from the system CSPRNG: one syscall per 1,024 nonces
// instead of one per sealed blob.
const POOL_NONCES = 1024;
const pool = Buffer.alloc(NONCE_LEN * POOL_NONCES);
let poolPos = pool.length;

function nextNonce(): Buffer {
  if (poolPos === pool.length) {
    randomFillSync(pool);
    poolPos = 0;
  }
  const n = pool.subarray(poolPos, poolPos + NONCE_LEN);
  poolPos += NONCE_LEN;
  return n;
}

/** Seals `parts` (concatenated) into a fresh, exactly sized Uint8Array (safe to transfer between threads). */
export function seal(key: Uint8Array, parts: readonly Uint8Array[], aad?: Uint8Array): Uint8Array {
  const nonce = nextNonce();
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  if (aad !== undefined) cipher.setAAD(aad);
  let plainLen = 0;
  for (const p of parts) plainLen += p.length;
  const out = new Uint8Array(NONCE_LEN + plainLen + TAG_LEN);
  out.set(nonce, 0);
  let off = NONCE_LEN;
  for (const p of parts) {
    const c = cipher.update(p);
    out.set(c, off);
    off += c.length;
  }
  const fin = cipher.final();
  out.set(fin, off);
  off += fin.length;
  out.set(cipher.getAuthTag(), off);
  return out;
}

// 64 KiB: under glibc's initial mmap threshold (128 KiB), so the cipher's output buffers come from
// the thread's heap and are reused, instead of each being mapped and unmapped. A freed mapping also
// raises glibc's threshold, after which larger buffers fragment the thread's heap; that kept a
// first backup's resident set about 15 MiB higher with 256 KiB slices.
const SEAL_SLICE = 64 * 1024;

/**
 * Like `seal`, but hands the sealed bytes to `write` piece by piece (nonce, ciphertext, tag) instead
 * of assembling them: a chunk worker streams them straight into its pack file, so no buffer the size
 * of the blob is allocated for it. Returns the sealed length.
 */
export function sealTo(key: Uint8Array, parts: readonly Uint8Array[], write: (piece: Uint8Array) => void, aad?: Uint8Array): number {
  const nonce = nextNonce();
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  if (aad !== undefined) cipher.setAAD(aad);
  write(nonce);
  let n = NONCE_LEN;
  for (const p of parts) {
    // Large parts go through in slices, so the cipher's output buffers stay small (each is written
    // out and dropped at once) instead of one the size of the blob.
    for (let at = 0; at < p.length; at += SEAL_SLICE) {
      const c = cipher.update(p.subarray(at, Math.min(p.length, at + SEAL_SLICE)));
      write(c);
      n += c.length;
    }
  }
  const fin = cipher.final();
  if (fin.length > 0) write(fin);
  write(cipher.getAuthTag());
  return n + fin.length + TAG_LEN;
}

/** Opens a sealed object; throws AuthError if it was altered or the key is wrong. */
export function open(key: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Buffer {
  if (sealed.length < SEAL_OVERHEAD) throw new AuthError();
  const nonce = sealed.subarray(0, NONCE_LEN);
  const tag = sealed.subarray(sealed.length - TAG_LEN);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  if (aad !== undefined) decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const body = decipher.update(sealed.subarray(NONCE_LEN, sealed.length - TAG_LEN));
  try {
    const fin = decipher.final();
    return fin.length === 0 ? body : Buffer.concat([body, fin]);
  } catch {
    throw new AuthError();
  }
}
