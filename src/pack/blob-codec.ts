// How one blob is stored: seal(enc, [flag, payload]) where flag 0 means the payload is the raw bytes
// and flag 1 means it is a zstd frame. Data that zstd cannot shrink is kept raw, so incompressible
// files cost no decompression on restore. Compression goes through zstd's context API into one
// reusable output buffer: the only copy of a chunk made here is the sealed result.
import binding from 'zstd-napi/binding.js';
import { Decompressor } from 'zstd-napi';
import { open, seal, sealTo } from '../crypto/aead.js';

const RAW = new Uint8Array([0]);
const ZSTD = new Uint8Array([1]);

export class BlobCodec {
  private readonly cctx: InstanceType<typeof binding.CCtx> | undefined;
  private scratch: Buffer = Buffer.alloc(0);
  private readonly decompressor = new Decompressor();

  /**
   * `maxRaw`, when given, is the largest blob this codec will compress (the chunker's maximum): the
   * output buffer is then allocated once at its final size, whose untouched pages cost no memory,
   * instead of growing in steps whose freed buffers fragment the thread's malloc heap.
   */
  constructor(
    private readonly encKey: Uint8Array,
    level: number,
    private readonly maxRaw = 0,
  ) {
    if (level !== 0) {
      this.cctx = new binding.CCtx();
      this.cctx.setParameter(binding.CParameter.compressionLevel, level);
      this.cctx.setParameter(binding.CParameter.checksumFlag, 0);
    }
  }

  /** The blob's [flag, payload]: zstd if that saves more than 8 bytes, else raw. */
  private payload(raw: Uint8Array): [Uint8Array, Uint8Array] {
    if (this.cctx !== undefined && raw.length >= 64) {
      const bound = binding.compressBound(raw.length);
      if (this.scratch.length < bound) this.scratch = Buffer.allocUnsafe(Math.max(bound, binding.compressBound(this.maxRaw), 64 * 1024));
      const n = this.cctx.compress2(this.scratch, raw);
      if (n + 8 < raw.length) return [ZSTD, this.scratch.subarray(0, n)];
    }
    return [RAW, raw];
  }

  encode(raw: Uint8Array): Uint8Array {
    return seal(this.encKey, this.payload(raw));
  }

  /**
   * Like `encode`, but streams the sealed bytes to `write` (see aead `sealTo`); returns their length.
   */
  encodeTo(raw: Uint8Array, write: (piece: Uint8Array) => void): number {
    return sealTo(this.encKey, this.payload(raw), write);
  }

  private readonly dctx = new binding.DCtx();
  private out: Buffer = Buffer.alloc(0);

  /**
   * Like `decode`, but decompresses into a buffer reused across calls: the result is only valid
   * until the next call (restore writes it out at once, so no per-blob allocation is needed).
   */
  decodeTransient(stored: Uint8Array, rawLen: number): Buffer {
    const plain = open(this.encKey, stored);
    const flag = plain[0];
    if (flag === 0) return plain.subarray(1);
    if (flag !== 1) throw new Error(`unknown blob encoding ${String(flag)}`);
    if (this.out.length < rawLen) this.out = Buffer.allocUnsafe(Math.max(rawLen, 1024 * 1024));
    const n = this.dctx.decompress(this.out, plain.subarray(1));
    return this.out.subarray(0, n);
  }

  /** Throws AuthError if the blob was altered; Error if its payload is not what the flag says. */
  decode(stored: Uint8Array): Buffer {
    const plain = open(this.encKey, stored);
    const flag = plain[0];
    if (flag === 0) return plain.subarray(1);
    if (flag === 1) return this.decompressor.decompress(plain.subarray(1));
    throw new Error(`unknown blob encoding ${String(flag)}`);
  }
}
