// CRC-64 as Redis computes it (src/crc64.c, "Jones" polynomial 0xad93d23594c935a9, reflected, init 0,
// no final xor). It guards both whole RDB files and each DUMP/RESTORE payload. JavaScript has no
// fast 64-bit integers, so the register is kept as two 32-bit halves and the input is processed
// eight bytes at a time with eight lookup tables ("slicing-by-8"): a multi-GB RDB is checked at
// several hundred MB/s instead of tens.

const POLY_REFLECTED = 0x95ac9329ac4bc9b5n; // bit-reversed 0xad93d23594c935a9

// T[k] low halves at LO[k*256 + i], high halves at HI[k*256 + i].
const LO = new Uint32Array(8 * 256);
const HI = new Uint32Array(8 * 256);
for (let i = 0; i < 256; i++) {
  let c = BigInt(i);
  for (let j = 0; j < 8; j++) c = c & 1n ? (c >> 1n) ^ POLY_REFLECTED : c >> 1n;
  LO[i] = Number(c & 0xffffffffn);
  HI[i] = Number(c >> 32n);
}
for (let k = 1; k < 8; k++) {
  for (let i = 0; i < 256; i++) {
    const plo = LO[(k - 1) * 256 + i]!;
    const phi = HI[(k - 1) * 256 + i]!;
    const idx = plo & 0xff;
    LO[k * 256 + i] = ((plo >>> 8) | (phi << 24)) ^ LO[idx]!;
    HI[k * 256 + i] = (phi >>> 8) ^ HI[idx]!;
  }
}

/** A running CRC-64: feed update() any number of times, read value() or writeLE(). */
export class Crc64 {
  lo = 0;
  hi = 0;

  update(data: Uint8Array, start = 0, end = data.length): this {
    let lo = this.lo;
    let hi = this.hi;
    let i = start;
    for (; i + 8 <= end; i += 8) {
      lo ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
      hi ^= data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
      const nlo =
        LO[7 * 256 + (lo & 0xff)]! ^
        LO[6 * 256 + ((lo >>> 8) & 0xff)]! ^
        LO[5 * 256 + ((lo >>> 16) & 0xff)]! ^
        LO[4 * 256 + (lo >>> 24)]! ^
        LO[3 * 256 + (hi & 0xff)]! ^
        LO[2 * 256 + ((hi >>> 8) & 0xff)]! ^
        LO[256 + ((hi >>> 16) & 0xff)]! ^
        LO[hi >>> 24]!;
      const nhi =
        HI[7 * 256 + (lo & 0xff)]! ^
        HI[6 * 256 + ((lo >>> 8) & 0xff)]! ^
        HI[5 * 256 + ((lo >>> 16) & 0xff)]! ^
        HI[4 * 256 + (lo >>> 24)]! ^
        HI[3 * 256 + (hi & 0xff)]! ^
        HI[2 * 256 + ((hi >>> 8) & 0xff)]! ^
        HI[256 + ((hi >>> 16) & 0xff)]! ^
        HI[hi >>> 24]!;
      lo = nlo;
      hi = nhi;
    }
    for (; i < end; i++) {
      const idx = (lo ^ data[i]!) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ LO[idx]!;
      hi = (hi >>> 8) ^ HI[idx]!;
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
    return this;
  }

  value(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** The 8 little-endian bytes Redis stores after an RDB or a DUMP payload. */
  writeLE(out: Buffer, at: number): void {
    out.writeUInt32LE(this.lo, at);
    out.writeUInt32LE(this.hi, at + 4);
  }
}

export function crc64(data: Uint8Array): bigint {
  return new Crc64().update(data).value();
}
