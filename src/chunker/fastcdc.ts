// Content-defined chunking with FastCDC (Xia et al., 2016/2020): a gear rolling hash, cut-point
// skipping below the minimum size, and normalized chunking (a stricter mask before the normal size,
// a looser one after it) so chunk sizes cluster around the average. The gear table comes from the
// repository secret, so the same file cuts differently in different repositories and boundaries
// reveal nothing about content to someone without the key.
//
// The gear hash shifts left by one per byte, so its high bits depend on the most recent 32 bytes and
// its low bits on very few; the masks therefore test high bits.

export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };

function highMask(bits: number): number {
  return bits >= 32 ? -1 : ~((1 << (32 - bits)) - 1);
}

export class Chunker {
  readonly min: number;
  readonly avg: number;
  readonly max: number;
  private readonly gear: Int32Array;
  private readonly maskS: number;
  private readonly maskL: number;

  /** The gear table (for the WebAssembly version, gear-wasm.ts). */
  get gearTable(): Int32Array {
    return this.gear;
  }

  /** The strict and loose masks (before and after the normal size). */
  get masks(): readonly [number, number] {
    return [this.maskS, this.maskL];
  }

  constructor(gear: Int32Array, params: ChunkerParams = DEFAULT_CHUNKER) {
    if (gear.length !== 256) throw new Error('gear table must have 256 entries');
    if (!(params.min > 0 && params.min <= params.avg && params.avg <= params.max)) {
      throw new Error(`invalid chunker sizes ${params.min}/${params.avg}/${params.max}`);
    }
    this.gear = gear;
    this.min = params.min;
    this.avg = params.avg;
    this.max = params.max;
    const bits = Math.round(Math.log2(params.avg));
    // Normalization level 2.
    this.maskS = highMask(bits + 2);
    this.maskL = highMask(bits - 2);
  }

  /**
   * Length of the chunk that starts at `start`, given `end - start` available bytes. The caller must
   * supply at least `max` bytes unless the data ends at `end`; then the result is always final.
   */
  cut(buf: Uint8Array, start: number, end: number): number {
    const avail = end - start;
    if (avail <= this.min) return avail;
    const limit = avail < this.max ? avail : this.max;
    const normal = limit < this.avg ? limit : this.avg;
    const gear = this.gear;
    const maskS = this.maskS;
    const maskL = this.maskL;
    let h = 0;
    let i = start + this.min;
    const normalEnd = start + normal;
    const limitEnd = start + limit;
    for (; i < normalEnd; i++) {
      h = ((h << 1) + (gear[buf[i]!] as number)) | 0;
      if ((h & maskS) === 0) return i + 1 - start;
    }
    for (; i < limitEnd; i++) {
      h = ((h << 1) + (gear[buf[i]!] as number)) | 0;
      if ((h & maskL) === 0) return i + 1 - start;
    }
    return limit;
  }
}
