// Corrupting Storage wrapper for tests. CorruptingStorage forwards every call to an inner Storage but
// damages what read() returns for objects matching a rule, to prove that callers detect damage:
//  - flipBits:       flip the given bits (absolute bit offsets in the object: bit b is byte b >> 3,
//                    mask 1 << (b & 7));
//  - flipRandomBits: flip `count` distinct bits chosen from a seed mixed with the object's kind and
//                    name, so the same object is damaged the same way on every read (as at rest);
//  - shortReads:     return `missing` bytes fewer than asked. This deliberately breaks the Storage
//                    contract (a short object must be SHORT_READ) to prove callers check lengths.
// Ranged reads see exactly the flipped bits that fall inside their range. Rules combine by XOR: a
// bit flipped by two rules ends up intact. Stored objects are never modified.
import { describe, type Handle, type ObjectInfo, type ObjectKind, type Storage } from '../storage.js';
import { seededRandom } from './faulty.js';

/** Selects objects: a predicate, or a partial handle ({kind}, {kind, name}); omitted = all. */
export type Matcher = ((h: Handle) => boolean) | Partial<Handle>;

type Rule =
  | { type: 'bits'; match: (h: Handle) => boolean; bits: readonly number[] }
  | { type: 'random'; match: (h: Handle) => boolean; seed: number; count: number }
  | { type: 'short'; match: (h: Handle) => boolean; missing: number };

function toPredicate(m: Matcher | undefined): (h: Handle) => boolean {
  if (m === undefined) return () => true;
  if (typeof m === 'function') return m;
  return (h) => (m.kind === undefined || m.kind === h.kind) && (m.name === undefined || m.name === h.name);
}

/** FNV-1a over a string: mixes the object identity into the seed. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export class CorruptingStorage implements Storage {
  readonly location: string;
  readonly readSize?: number;
  private readonly rules: Rule[] = [];
  /** Number of reads whose result was altered. */
  corruptedReads = 0;

  constructor(readonly inner: Storage) {
    this.location = inner.location;
    if (inner.readSize !== undefined) this.readSize = inner.readSize;
  }

  flipBits(match: Matcher | undefined, bits: readonly number[]): this {
    this.rules.push({ type: 'bits', match: toPredicate(match), bits: [...bits] });
    return this;
  }

  flipRandomBits(match: Matcher | undefined, opts: { seed: number; count: number }): this {
    this.rules.push({ type: 'random', match: toPredicate(match), seed: opts.seed, count: opts.count });
    return this;
  }

  shortReads(match: Matcher | undefined, missing = 1): this {
    this.rules.push({ type: 'short', match: toPredicate(match), missing });
    return this;
  }

  clear(): this {
    this.rules.length = 0;
    return this;
  }

  /** The bit offsets (sorted, absolute in the object) that reads of `h` flip, given its size. */
  plannedFlips(h: Handle, size: number): number[] {
    const parity = new Map<number, number>();
    const toggle = (b: number): void => {
      parity.set(b, (parity.get(b) ?? 0) ^ 1);
    };
    for (const r of this.rules) {
      if (!r.match(h)) continue;
      if (r.type === 'bits') {
        for (const b of r.bits) if (b >= 0 && b < size * 8) toggle(b);
      } else if (r.type === 'random') {
        const rnd = seededRandom((r.seed ^ hash32(describe(h))) >>> 0);
        const chosen = new Set<number>();
        const n = Math.min(r.count, size * 8);
        while (chosen.size < n) chosen.add(Math.floor(rnd() * size * 8));
        for (const b of chosen) toggle(b);
      }
    }
    return [...parity].filter(([, p]) => p === 1).map(([b]) => b).sort((a, b) => a - b);
  }

  async read(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const got = await this.inner.read(h, offset, length);
    const rules = this.rules.filter((r) => r.match(h));
    if (rules.length === 0) return got;
    let out = Buffer.from(got);
    if (rules.some((r) => r.type !== 'short')) {
      const whole = offset === 0 && length === undefined;
      const size = whole ? got.length : (await this.inner.stat(h)).size;
      for (const b of this.plannedFlips(h, size)) {
        const i = (b >> 3) - offset;
        if (i >= 0 && i < out.length) out[i] = (out[i] ?? 0) ^ (1 << (b & 7));
      }
    }
    for (const r of rules) if (r.type === 'short') out = out.subarray(0, Math.max(0, out.length - r.missing));
    if (!out.equals(got)) this.corruptedReads++;
    return out;
  }

  create(): Promise<void> {
    return this.inner.create();
  }

  list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    return this.inner.list(kind);
  }

  stat(h: Handle): Promise<ObjectInfo> {
    return this.inner.stat(h);
  }

  write(h: Handle, data: Uint8Array): Promise<void> {
    return this.inner.write(h, data);
  }

  delete(h: Handle): Promise<void> {
    return this.inner.delete(h);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
