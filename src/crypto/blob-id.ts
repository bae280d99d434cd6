// Blob IDs: a keyed hash of a blob's plaintext under the repository's `id` key, so an ID never
// reveals a plain hash of the content. Which keyed hash is a property of the repository format:
//   blake3      - keyed BLAKE3 (format version 2, the default): 2.3-3.6x as fast as HMAC-SHA-256
//                 with SHA extensions on the chunk sizes a backup meets (17 KB to 1 MiB), which
//                 matters because every byte backed up, restored or checked is hashed;
//   hmac-sha256 - HMAC-SHA-256 (format version 1), still read and written for such repositories.
// BLAKE3 runs in a native binding (@napi-rs/blake-hash, SIMD dispatched at run time) when it loads
// on this platform, and otherwise in WebAssembly (hash-wasm), which gives the same IDs more slowly:
// a repository stays readable wherever Node runs.
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { BulwarkError } from '../errors.js';

export type IdHash = 'blake3' | 'hmac-sha256';

/** Computes the 32-byte ID of a blob's plaintext. */
export type BlobIdFn = (data: Uint8Array) => Buffer;

/** Which BLAKE3 implementation a process uses (see `blake3Impl`). */
export type Blake3Impl = 'native' | 'wasm';

interface NativeHasher {
  reset(): void;
  update(input: Uint8Array): unknown;
  digest(format: 'hex'): string;
}
interface NativeModule {
  Blake3Hasher: { newKeyed(key: Buffer): NativeHasher };
}

let native: NativeModule | null | undefined;

/** The native BLAKE3 binding, or null when it does not load here (no build for this platform). */
export function loadNativeBlake3(): NativeModule | null {
  if (native === undefined) {
    try {
      native = createRequire(import.meta.url)('@napi-rs/blake-hash') as NativeModule;
    } catch {
      native = null;
    }
  }
  return native;
}

export function hmacSha256Id(key: Uint8Array): BlobIdFn {
  return (data) => createHmac('sha256', key).update(data).digest();
}

/**
 * Keyed BLAKE3 in the native binding: one hasher, reset per blob. The digest comes back as hex, not
 * as the binding's Buffer: each of those is native memory that V8 frees only when a collection
 * finalizes it, and a backup's hundreds of thousands of IDs piled up 20 MiB of it (measured: 80,000
 * IDs of 17 KB inputs, peak 29 MiB above the start with Buffers, 8 MiB with hex, which is also no
 * slower).
 */
export function nativeBlake3Id(mod: NativeModule, key: Uint8Array): BlobIdFn {
  const h = mod.Blake3Hasher.newKeyed(Buffer.from(key));
  return (data) => {
    h.reset();
    h.update(data);
    return Buffer.from(h.digest('hex'), 'hex');
  };
}

/** Keyed BLAKE3 in WebAssembly: the same IDs as the native binding, for platforms without it. */
export async function wasmBlake3Id(key: Uint8Array): Promise<BlobIdFn> {
  const { createBLAKE3 } = await import('hash-wasm');
  const h = await createBLAKE3(256, key);
  return (data) => {
    h.init();
    h.update(data);
    return Buffer.from(h.digest('binary'));
  };
}

/**
 * The BLAKE3 implementation that BULWARK_BLAKE3 asks for: `native` or `wasm`, unset for the default
 * (native where it loads). Worker threads see the same environment, so one setting covers them all.
 */
export function blake3ImplFromEnv(): Blake3Impl | undefined {
  const v = process.env['BULWARK_BLAKE3'];
  if (v === undefined || v === '') return undefined;
  if (v === 'native' || v === 'wasm') return v;
  throw new BulwarkError('USAGE', `BULWARK_BLAKE3 must be native or wasm, not ${JSON.stringify(v)}`, {
    subject: 'BULWARK_BLAKE3',
    hint: 'unset it to use the native binding where it loads',
  });
}

/**
 * The blob-ID function of a repository whose format uses `kind`, keyed with its 32-byte `id` key.
 * `impl` (else BULWARK_BLAKE3) forces a BLAKE3 implementation; by default the native one is used
 * when it loads.
 */
export async function blobIdFn(kind: IdHash, key: Uint8Array, impl: Blake3Impl | undefined = blake3ImplFromEnv()): Promise<BlobIdFn> {
  if (key.length !== 32) throw new BulwarkError('INTERNAL', `a blob-ID key has 32 bytes, not ${key.length}`);
  if (kind === 'hmac-sha256') return hmacSha256Id(key);
  if (kind !== 'blake3') throw new BulwarkError('INTERNAL', `unknown blob-ID hash ${String(kind)}`);
  const mod = impl === 'wasm' ? null : loadNativeBlake3();
  if (mod !== null) return nativeBlake3Id(mod, key);
  if (impl === 'native') throw new BulwarkError('INTERNAL', 'the native BLAKE3 binding (@napi-rs/blake-hash) does not load on this platform');
  return wasmBlake3Id(key);
}

/** The BLAKE3 implementation `blobIdFn` picks in this process without BULWARK_BLAKE3. */
export function blake3Impl(): Blake3Impl {
  return loadNativeBlake3() === null ? 'wasm' : 'native';
}
