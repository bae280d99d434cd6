// How one blob is stored: seal(enc, [flag, payload]) where flag 0 means the payload is the raw bytes
// and flag 1 means it is a zstd frame. Data that zstd cannot shrink is kept raw, so incompressible
// files cost no decompression on restore.
import { Compressor, Decompressor } from 'zstd-napi';
import { open, seal } from '../crypto/aead.js';

const RAW = new Uint8Array([0]);
const ZSTD = new Uint8Array([1]);

export class BlobCodec {
  private readonly compressor: Compressor | undefined;
  private readonly decompressor = new Decompressor();

  constructor(
    private readonly encKey: Uint8Array,
    level: number,
  ) {
    if (level > 0) {
      this.compressor = new Compressor();
      this.compressor.setParameters({ compressionLevel: level, contentSizeFlag: true, checksumFlag: false });
    }
  }

  encode(raw: Uint8Array): Uint8Array {
    if (this.compressor !== undefined && raw.length >= 64) {
      const z = this.compressor.compress(raw);
      if (z.length + 8 < raw.length) return seal(this.encKey, [ZSTD, z]);
    }
    return seal(this.encKey, [RAW, raw]);
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
