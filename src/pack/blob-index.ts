// The in-memory master index: blob ID -> (pack, offset, stored length, raw length).
//
// It must stay small for very large repositories, so it holds no per-entry objects or hex strings:
// a dense table of entries in typed arrays (32-byte ID + four u32 = 48 bytes) and an open-addressing
// hash table of u32 entry numbers (linear probing, load factor at most 3/4, i.e. 5.3 to 10.7 bytes per
// entry). After a load, where the entry count is known in advance, that is at most ~59 bytes per blob
// (restic: 56 bytes per entry plus Go map overhead). `bytesPerEntry()` reports the real figure.
//
// The ID and hash arrays live in SharedArrayBuffers so worker threads can test "is this blob already
// stored?" without a round trip to the main thread (see `SharedIndexView`). A worker's view is a
// snapshot: blobs added later are caught again by the main thread.

export const ID_LEN = 32;

export const BlobType = { data: 0, tree: 1 } as const;
export type BlobTypeCode = (typeof BlobType)[keyof typeof BlobType];

export interface SharedIndexView {
  ids: SharedArrayBuffer;
  table: SharedArrayBuffer;
}

export interface BlobLocation {
  pack: number;
  offset: number;
  stored: number;
  raw: number;
}

function hashOf(id: Uint8Array, off = 0): number {
  return (id[off]! | (id[off + 1]! << 8) | (id[off + 2]! << 16) | (id[off + 3]! << 24)) >>> 0;
}

function sameId(ids: Uint8Array, entry: number, id: Uint8Array, at = 0): boolean {
  const base = entry * ID_LEN;
  for (let i = 0; i < ID_LEN; i++) if (ids[base + i] !== id[at + i]) return false;
  return true;
}

/** Lookup shared by the main thread and workers: entry number, or -1 (the ID is at `at` in `id`). */
export function findEntry(ids: Uint8Array, table: Uint32Array, id: Uint8Array, at = 0): number {
  const mask = table.length - 1;
  let slot = hashOf(id, at) & mask;
  for (;;) {
    const v = table[slot]!;
    if (v === 0) return -1;
    if (sameId(ids, v - 1, id, at)) return v - 1;
    slot = (slot + 1) & mask;
  }
}

/** A read-only membership test over a shared snapshot of the index (used inside workers). */
export class SharedIndexReader {
  private readonly ids: Uint8Array;
  private readonly table: Uint32Array;
  constructor(view: SharedIndexView) {
    this.ids = new Uint8Array(view.ids);
    this.table = new Uint32Array(view.table);
  }
  has(id: Uint8Array): boolean {
    return findEntry(this.ids, this.table, id) >= 0;
  }
}

/** Pack IDs referenced by the index, numbered densely. */
export class PackTable {
  private ids = new Uint8Array(ID_LEN * 64);
  private types = new Uint8Array(64);
  private byHex = new Map<string, number>();
  count = 0;

  add(id: Uint8Array, type: BlobTypeCode): number {
    const hex = Buffer.from(id).toString('hex');
    const known = this.byHex.get(hex);
    if (known !== undefined) return known;
    if (this.count === this.types.length) {
      const n = this.count * 2;
      const ids = new Uint8Array(n * ID_LEN);
      ids.set(this.ids);
      const types = new Uint8Array(n);
      types.set(this.types);
      this.ids = ids;
      this.types = types;
    }
    this.ids.set(id, this.count * ID_LEN);
    this.types[this.count] = type;
    this.byHex.set(hex, this.count);
    return this.count++;
  }

  find(hex: string): number | undefined {
    return this.byHex.get(hex);
  }

  hex(n: number): string {
    return Buffer.from(this.ids.subarray(n * ID_LEN, (n + 1) * ID_LEN)).toString('hex');
  }

  type(n: number): BlobTypeCode {
    return this.types[n] as BlobTypeCode;
  }

  allHex(): string[] {
    return [...this.byHex.keys()];
  }
}

export class BlobIndex {
  readonly packs = new PackTable();
  private cap = 0;
  private n = 0;
  private idsBuf: SharedArrayBuffer = new SharedArrayBuffer(0);
  private ids: Uint8Array = new Uint8Array(0);
  private pack: Uint32Array = new Uint32Array(0);
  private offset: Uint32Array = new Uint32Array(0);
  private stored: Uint32Array = new Uint32Array(0);
  private raw: Uint32Array = new Uint32Array(0);
  private tableBuf: SharedArrayBuffer = new SharedArrayBuffer(16);
  private table: Uint32Array = new Uint32Array(this.tableBuf);

  constructor(expected = 1024) {
    this.reserve(expected);
  }

  get count(): number {
    return this.n;
  }

  /** Makes room for `total` entries without further growth (used when the count is known). */
  reserve(total: number): void {
    if (total > this.cap) this.resizeEntries(total);
    let slots = this.table.length;
    while (total * 4 > slots * 3) slots *= 2;
    if (slots !== this.table.length) this.rehash(slots);
  }

  private resizeEntries(cap: number): void {
    const idsBuf = new SharedArrayBuffer(cap * ID_LEN);
    const ids = new Uint8Array(idsBuf);
    ids.set(this.ids.subarray(0, this.n * ID_LEN));
    const grow = (a: Uint32Array): Uint32Array => {
      const b = new Uint32Array(cap);
      b.set(a.subarray(0, this.n));
      return b;
    };
    this.pack = grow(this.pack);
    this.offset = grow(this.offset);
    this.stored = grow(this.stored);
    this.raw = grow(this.raw);
    this.idsBuf = idsBuf;
    this.ids = ids;
    this.cap = cap;
  }

  private rehash(slots: number): void {
    this.tableBuf = new SharedArrayBuffer(slots * 4);
    this.table = new Uint32Array(this.tableBuf);
    const mask = slots - 1;
    for (let e = 0; e < this.n; e++) {
      let s = hashOf(this.ids, e * ID_LEN) & mask;
      while (this.table[s] !== 0) s = (s + 1) & mask;
      this.table[s] = e + 1;
    }
  }

  /** Drops spare entry capacity and shrinks the hash table to its minimum (after a bulk load). */
  compact(): void {
    if (this.cap > this.n) this.resizeEntries(Math.max(this.n, 16));
    let slots = 16;
    while (this.n * 4 > slots * 3) slots *= 2;
    if (slots !== this.table.length) this.rehash(slots);
  }

  find(id: Uint8Array): number {
    return findEntry(this.ids, this.table, id);
  }

  has(id: Uint8Array): boolean {
    return this.find(id) >= 0;
  }

  private readonly scratch = Buffer.alloc(ID_LEN);

  /** `find` for a hex ID, without allocating (done per chunk when reading trees). */
  findHex(hex: string): number {
    if (this.scratch.write(hex, 'hex') !== ID_LEN) return -1;
    return this.find(this.scratch);
  }

  hasHex(hex: string): boolean {
    return this.findHex(hex) >= 0;
  }

  /** Adds a blob location; returns false (and changes nothing) if the blob is already indexed. */
  add(id: Uint8Array, loc: BlobLocation): boolean {
    return this.addAt(id, 0, loc.pack, loc.offset, loc.stored, loc.raw);
  }

  /** `add` for an ID found at `at` in `src`, with the location as numbers (bulk loads: no object per entry). */
  addAt(src: Uint8Array, at: number, pack: number, offset: number, stored: number, raw: number): boolean {
    if (findEntry(this.ids, this.table, src, at) >= 0) return false;
    // Doubling while small (a load of a few hundred thousand entries then copies them only a few
    // times); beyond a million entries, 1.25x, so the spare capacity stays a quarter at most.
    if (this.n === this.cap) this.resizeEntries(Math.max(1024, this.cap < 1 << 20 ? this.cap * 2 : Math.ceil(this.cap * 1.25)));
    if ((this.n + 1) * 4 > this.table.length * 3) this.rehash(this.table.length * 2);
    const e = this.n++;
    const base = e * ID_LEN;
    for (let i = 0; i < ID_LEN; i++) this.ids[base + i] = src[at + i]!;
    this.pack[e] = pack;
    this.offset[e] = offset;
    this.stored[e] = stored;
    this.raw[e] = raw;
    const mask = this.table.length - 1;
    let s = hashOf(src, at) & mask;
    while (this.table[s] !== 0) s = (s + 1) & mask;
    this.table[s] = e + 1;
    return true;
  }

  location(entry: number): BlobLocation {
    return { pack: this.pack[entry]!, offset: this.offset[entry]!, stored: this.stored[entry]!, raw: this.raw[entry]! };
  }

  packOf(entry: number): number {
    return this.pack[entry]!;
  }

  offsetOf(entry: number): number {
    return this.offset[entry]!;
  }

  storedOf(entry: number): number {
    return this.stored[entry]!;
  }

  rawOf(entry: number): number {
    return this.raw[entry]!;
  }

  /** Copies the ID of `entry` into `dst` at `at` (no allocation). */
  copyId(entry: number, dst: Uint8Array, at: number): void {
    dst.set(this.ids.subarray(entry * ID_LEN, (entry + 1) * ID_LEN), at);
  }

  idAt(entry: number): Buffer {
    return Buffer.from(this.ids.subarray(entry * ID_LEN, (entry + 1) * ID_LEN));
  }

  shared(): SharedIndexView {
    return { ids: this.idsBuf, table: this.tableBuf };
  }

  bytesPerEntry(): number {
    if (this.n === 0) return 0;
    const bytes = this.cap * (ID_LEN + 16) + this.table.length * 4;
    return bytes / this.n;
  }

}
