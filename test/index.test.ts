// Unit tests of the pieces everything else stands on: the compact in-memory blob index (and its
// shared view for workers), the index-file and pack-trailer formats, the FastCDC chunker, the AEAD
// seal/open and the password-wrapped key slots.
import assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, it } from 'node:test';
import { Chunker, DEFAULT_CHUNKER, type ChunkerParams } from '../src/chunker/fastcdc.js';
import { WasmChunkBuffer } from '../src/chunker/gear-wasm.js';
import { AuthError, NONCE_LEN, open, seal, SEAL_OVERHEAD } from '../src/crypto/aead.js';
import { blobIdFn } from '../src/crypto/blob-id.js';
import { DEFAULT_KDF, deriveKeys, gearTable, unwrapMaster, wrapMaster } from '../src/crypto/keys.js';
import { isBulwarkError } from '../src/errors.js';
import { BlobIndex, BlobType, PackTable, SharedIndexReader, type BlobLocation } from '../src/pack/blob-index.js';
import { decodeIndex, decodeTrailer, encodeIndex, encodeTrailer, type PackBlob, type PackDescriptor } from '../src/pack/formats.js';
import { addSlot, unlock } from '../src/repo/key-slots.js';
import { Repository } from '../src/repo/repository.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { CHEAP_KDF, DIST_SRC } from './fault-helpers.js';

const MiB = 1024 * 1024;

function idAt(ids: Buffer, i: number): Buffer {
  return ids.subarray(i * 32, (i + 1) * 32);
}

function locFor(i: number): BlobLocation {
  return { pack: i % 977, offset: (i * 7919) >>> 0, stored: (i % 65_536) + 29, raw: i };
}

function filled(n: number): { index: BlobIndex; ids: Buffer } {
  const ids = randomBytes(32 * n);
  const index = new BlobIndex();
  for (let i = 0; i < n; i++) assert.equal(index.add(idAt(ids, i), locFor(i)), true);
  return { index, ids };
}

describe('BlobIndex', () => {
  it('finds 200k random IDs with their locations, and no absent ID', () => {
    const n = 200_000;
    const { index, ids } = filled(n);
    assert.equal(index.count, n);
    const check = (): void => {
      for (let i = 0; i < n; i++) {
        const e = index.find(idAt(ids, i));
        assert.ok(e >= 0, `entry ${i} found`);
        assert.deepEqual(index.location(e), locFor(i));
        assert.ok(index.idAt(e).equals(idAt(ids, i)));
      }
      const absent = randomBytes(32 * n);
      let hits = 0;
      for (let i = 0; i < n; i++) if (index.has(idAt(absent, i))) hits++;
      assert.equal(hits, 0, 'false positives for absent IDs');
    };
    check();
    index.compact();
    assert.equal(index.count, n);
    check();
    assert.ok(index.bytesPerEntry() <= 64, `${index.bytesPerEntry()} bytes per entry`);
  });

  it('rejects duplicates without changing anything', () => {
    const { index, ids } = filled(5_000);
    for (const i of [0, 17, 4_999]) {
      assert.equal(index.add(Buffer.from(idAt(ids, i)), { pack: 1, offset: 2, stored: 3, raw: 4 }), false);
      assert.deepEqual(index.location(index.find(idAt(ids, i))), locFor(i));
    }
    assert.equal(index.count, 5_000);
    index.compact();
    assert.equal(index.add(Buffer.from(idAt(ids, 9)), { pack: 1, offset: 2, stored: 3, raw: 4 }), false);
    assert.equal(index.count, 5_000);
  });

  it('handles IDs that collide in the hash (same first bytes)', () => {
    const prefix = randomBytes(8);
    const n = 3_000;
    const ids = randomBytes(32 * n);
    for (let i = 0; i < n; i++) prefix.copy(ids, i * 32);
    const index = new BlobIndex();
    for (let i = 0; i < n; i++) assert.equal(index.add(idAt(ids, i), locFor(i)), true);
    index.compact();
    for (let i = 0; i < n; i++) assert.deepEqual(index.location(index.find(idAt(ids, i))), locFor(i));
    const other = randomBytes(32);
    prefix.copy(other, 0);
    assert.equal(index.has(other), false);
  });

  it('an empty index finds nothing', () => {
    const index = new BlobIndex();
    assert.equal(index.find(randomBytes(32)), -1);
    index.compact();
    assert.equal(index.has(randomBytes(32)), false);
    assert.equal(index.bytesPerEntry(), 0);
  });

  for (const n of [1_000, 100_000, 1_000_000]) {
    it(`uses at most 64 bytes per entry after compact() (${n} entries)`, () => {
      const { index, ids } = filled(n);
      index.compact();
      const bpe = index.bytesPerEntry();
      assert.ok(bpe <= 64, `${bpe.toFixed(1)} bytes per entry`);
      assert.ok(bpe >= 48, `${bpe.toFixed(1)} is below the entry size itself: bytesPerEntry() misreports`);
      for (let i = 0; i < n; i += 997) assert.deepEqual(index.location(index.find(idAt(ids, i))), locFor(i));
    });
  }

  it('SharedIndexReader over shared() sees every entry and nothing else', () => {
    const n = 20_000;
    const { index, ids } = filled(n);
    index.compact();
    const reader = new SharedIndexReader(index.shared());
    for (let i = 0; i < n; i++) assert.ok(reader.has(idAt(ids, i)), `entry ${i}`);
    for (let i = 0; i < 1_000; i++) assert.equal(reader.has(randomBytes(32)), false);
  });

  it('SharedIndexReader in a worker thread sees the entries through shared memory', async () => {
    const n = 20_000;
    const { index, ids } = filled(n);
    index.compact();
    const url = pathToFileURL(path.join(DIST_SRC, 'pack/blob-index.js')).href;
    const absent = randomBytes(32 * 1_000);
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.url).then((m) => {
        const r = new m.SharedIndexReader(workerData.view);
        let found = 0, falsePos = 0;
        for (let i = 0; i < workerData.n; i++) if (r.has(workerData.ids.subarray(i * 32, i * 32 + 32))) found++;
        for (let i = 0; i < 1000; i++) if (r.has(workerData.absent.subarray(i * 32, i * 32 + 32))) falsePos++;
        parentPort.postMessage({ found, falsePos, shared: workerData.view.ids instanceof SharedArrayBuffer });
      });`;
    const w = new Worker(code, { eval: true, workerData: { url, view: index.shared(), ids: new Uint8Array(ids), absent: new Uint8Array(absent), n } });
    try {
      const got = await new Promise<{ found: number; falsePos: number; shared: boolean }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      assert.deepEqual(got, { found: n, falsePos: 0, shared: true });
    } finally {
      await w.terminate();
    }
  });
});

describe('Repository.loadIndex', () => {
  it('loads index files in groups, sized once per group: every entry found, at most 64 bytes each, a damaged file recorded', async () => {
    const storage = new MemoryStorage();
    const repo = await Repository.init(storage, 'pw', { kdf: CHEAP_KDF });
    const all: Buffer[] = [];
    for (let f = 0; f < 5; f++) {
      const packs: PackDescriptor[] = [];
      for (let p = 0; p < 3; p++) {
        const blobs: PackBlob[] = [];
        for (let b = 0; b < 700; b++) {
          const id = randomBytes(32);
          all.push(id);
          blobs.push({ id, offset: b * 100, stored: 100, raw: 200 });
        }
        packs.push({ id: randomBytes(32), type: BlobType.data, blobs });
      }
      const bytes = encodeIndex(repo.keys.enc, packs);
      await storage.write({ kind: 'index', name: createHash('sha256').update(bytes).digest('hex') }, bytes);
    }
    const junk = randomBytes(500);
    await storage.write({ kind: 'index', name: createHash('sha256').update(junk).digest('hex') }, junk);
    for (const groupBytes of [1, 64 * MiB]) {
      const r = await Repository.open(storage, 'pw');
      await r.loadIndex(groupBytes);
      assert.equal(r.index.count, all.length, `groups of ${groupBytes} bytes`);
      for (const id of all) assert.ok(r.index.has(id));
      assert.ok(r.index.bytesPerEntry() <= 64, `${r.index.bytesPerEntry()} bytes per entry`);
      assert.equal(r.indexFiles.size, 5);
      assert.equal(r.damagedIndexes.length, 1);
      assert.equal(r.damagedIndexes[0]!.code, 'INDEX_CORRUPT');
    }
  });
});

describe('PackTable', () => {
  it('numbers packs densely, remembers their types, and finds them by hex', () => {
    const t = new PackTable();
    const ids = Array.from({ length: 300 }, () => randomBytes(32));
    ids.forEach((id, i) => assert.equal(t.add(id, i % 3 === 0 ? BlobType.tree : BlobType.data), i));
    assert.equal(t.add(ids[7]!, BlobType.data), 7, 'same pack, same number');
    assert.equal(t.count, 300);
    ids.forEach((id, i) => {
      assert.equal(t.hex(i), id.toString('hex'));
      assert.equal(t.type(i), i % 3 === 0 ? BlobType.tree : BlobType.data);
      assert.equal(t.find(id.toString('hex')), i);
    });
    assert.equal(t.find(randomBytes(32).toString('hex')), undefined);
  });
});

function randomBlobs(n: number): PackBlob[] {
  const out: PackBlob[] = [];
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const stored = 29 + Math.floor(Math.random() * 5_000_000);
    out.push({ id: randomBytes(32), offset, stored, raw: Math.floor(Math.random() * 9_000_000) });
    offset += stored;
  }
  return out;
}

function sameBlobs(a: readonly PackBlob[], b: readonly PackBlob[]): void {
  assert.equal(a.length, b.length);
  a.forEach((x, i) => {
    const y = b[i]!;
    assert.ok(Buffer.from(x.id).equals(Buffer.from(y.id)), `blob ${i} id`);
    assert.deepEqual([x.offset, x.stored, x.raw], [y.offset, y.stored, y.raw], `blob ${i}`);
  });
}

describe('formats', () => {
  const key = randomBytes(32);

  it('index files round-trip', () => {
    const packs: PackDescriptor[] = [
      { id: randomBytes(32), type: BlobType.data, blobs: randomBlobs(1_000) },
      { id: randomBytes(32), type: BlobType.tree, blobs: randomBlobs(3) },
      { id: randomBytes(32), type: BlobType.data, blobs: [] },
    ];
    const supersedes = [randomBytes(32), randomBytes(32)];
    const sealed = encodeIndex(key, packs, supersedes);
    const back = decodeIndex(key, sealed);
    assert.deepEqual(back.supersedes.map((s) => s.toString('hex')), supersedes.map((s) => s.toString('hex')));
    assert.equal(back.packs.length, packs.length);
    back.packs.forEach((p, i) => {
      assert.ok(Buffer.from(p.id).equals(Buffer.from(packs[i]!.id)));
      assert.equal(p.type, packs[i]!.type);
      sameBlobs(p.blobs, packs[i]!.blobs);
    });
    const empty = decodeIndex(key, encodeIndex(key, []));
    assert.deepEqual([empty.packs.length, empty.supersedes.length], [0, 0]);
  });

  it('index files fail to decode when damaged, under another key, or when given a trailer', () => {
    const sealed = encodeIndex(key, [{ id: randomBytes(32), type: BlobType.data, blobs: randomBlobs(10) }]);
    for (const at of [0, NONCE_LEN + 1, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at]! ^= 0x01;
      assert.throws(() => decodeIndex(key, bad), `flip at ${at}`);
    }
    assert.throws(() => decodeIndex(randomBytes(32), sealed));
    const trailer = encodeTrailer(key, BlobType.data, randomBlobs(2));
    assert.throws(() => decodeIndex(key, trailer.subarray(0, trailer.length - 4)), 'a trailer is not an index');
  });

  it('pack trailers round-trip, end with their length, and recompute offsets', () => {
    for (const [type, blobs] of [
      [BlobType.data, randomBlobs(500)],
      [BlobType.tree, randomBlobs(1)],
      [BlobType.data, []],
    ] as const) {
      const t = encodeTrailer(key, type, blobs);
      const len = t.readUInt32LE(t.length - 4);
      assert.equal(len, t.length - 4);
      const back = decodeTrailer(key, t.subarray(0, len));
      assert.equal(back.type, type);
      sameBlobs(back.blobs, blobs);
      // Offsets come from the order and sizes, not from what the caller claimed.
      const skewed = blobs.map((b) => ({ ...b, offset: b.offset + 12_345 }));
      sameBlobs(decodeTrailer(key, encodeTrailer(key, type, skewed).subarray(0, len)).blobs, blobs);
    }
  });

  it('pack trailers fail to decode when damaged or under another key', () => {
    const t = encodeTrailer(key, BlobType.data, randomBlobs(5));
    const sealed = t.subarray(0, t.length - 4);
    for (const at of [0, 20, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at]! ^= 0x80;
      assert.throws(() => decodeTrailer(key, bad), `flip at ${at}`);
    }
    assert.throws(() => decodeTrailer(randomBytes(32), sealed));
    assert.throws(() => decodeTrailer(key, encodeIndex(key, [])), 'an index is not a trailer');
  });
});

function cuts(c: Chunker, data: Uint8Array): number[] {
  const out: number[] = [];
  for (let pos = 0; pos < data.length; ) {
    const n = c.cut(data, pos, data.length);
    assert.ok(n > 0, 'progress');
    out.push(n);
    pos += n;
  }
  return out;
}

function chunkHashes(c: Chunker, data: Buffer): string[] {
  let pos = 0;
  return cuts(c, data).map((n) => {
    const h = createHash('sha256').update(data.subarray(pos, pos + n)).digest('hex');
    pos += n;
    return h;
  });
}

function assertBounds(lens: number[], p: ChunkerParams, total: number): void {
  assert.equal(lens.reduce((a, b) => a + b, 0), total, 'chunks cover the data exactly');
  lens.forEach((n, i) => {
    assert.ok(n <= p.max, `chunk ${i}: ${n} > max ${p.max}`);
    if (i < lens.length - 1) assert.ok(n >= p.min, `chunk ${i}: ${n} < min ${p.min}`);
  });
}

describe('Chunker (FastCDC)', () => {
  const gearA = gearTable(randomBytes(32));
  const gearB = gearTable(randomBytes(32));
  const small: ChunkerParams = { min: 2 * 1024, avg: 8 * 1024, max: 32 * 1024 };

  it('is deterministic for a gear table, and cuts differently under another', () => {
    const data = randomBytes(16 * MiB);
    const a1 = cuts(new Chunker(gearA), data);
    const a2 = cuts(new Chunker(new Int32Array(gearA)), data);
    const b = cuts(new Chunker(gearB), data);
    assert.deepEqual(a1, a2);
    assert.notDeepEqual(a1, b);
    const s1 = cuts(new Chunker(gearA, small), data.subarray(0, 2 * MiB));
    const s2 = cuts(new Chunker(gearB, small), data.subarray(0, 2 * MiB));
    assert.notDeepEqual(s1, s2);
    // Two repositories' gear tables, derived from their master secrets, differ.
    assert.notDeepEqual([...deriveKeys(randomBytes(32)).gear], [...deriveKeys(randomBytes(32)).gear]);
  });

  it('the WebAssembly cut-point search cuts exactly where the JavaScript one does', () => {
    const text = Buffer.from('1\t1\t0\t' + ' '.repeat(84) + '\n');
    const inputs: Array<[string, Buffer]> = [
      ['random', randomBytes(24 * MiB)],
      ['zeros', Buffer.alloc(20 * MiB)],
      ['table rows', Buffer.concat(Array.from({ length: 200_000 }, (_, i) => Buffer.concat([Buffer.from(String(i)), text])))],
      ['short', randomBytes(1000)],
      ['empty', Buffer.alloc(0)],
    ];
    for (const params of [DEFAULT_CHUNKER, small]) {
      for (const gear of [gearA, gearB]) {
        const js = new Chunker(gear, params);
        const wasm = new WasmChunkBuffer(js, params.max + MiB);
        for (const [what, data] of inputs) {
          // Feed the WebAssembly buffer as the chunk worker does: a window of at most max bytes,
          // or the rest of the data.
          const got: number[] = [];
          for (let pos = 0; pos < data.length; ) {
            const n = Math.min(params.max, data.length - pos);
            wasm.buf.set(data.subarray(pos, pos + n), 7);
            const len = wasm.cut(7, 7 + n);
            got.push(len);
            pos += len;
          }
          assert.deepEqual(got, cuts(js, data), `${what}, max ${params.max}`);
        }
        // Cut points inside a window that starts mid-buffer and ends before the max.
        const data = randomBytes(3 * params.max);
        wasm.buf.set(data.subarray(0, params.max + 100), 0);
        for (const start of [0, 1, 100]) {
          for (const end of [start + params.min, start + params.min + 1, start + params.avg, start + params.max]) {
            assert.equal(wasm.cut(start, end), js.cut(wasm.buf, start, end), `window ${start}..${end}`);
          }
        }
      }
    }
  });

  it('averages 0.7 to 2 MiB per chunk on 64 MiB of random data, within min and max', () => {
    const data = randomBytes(64 * MiB);
    const lens = cuts(new Chunker(gearA), data);
    assertBounds(lens, DEFAULT_CHUNKER, data.length);
    const avg = data.length / lens.length;
    assert.ok(avg >= 0.7 * MiB && avg <= 2 * MiB, `average chunk ${(avg / MiB).toFixed(2)} MiB`);
  });

  it('respects min and max on random, zero and repetitive data, and short inputs', () => {
    for (const p of [DEFAULT_CHUNKER, small]) {
      for (const data of [randomBytes(3 * p.max + 17), Buffer.alloc(5 * p.max), Buffer.alloc(4 * p.max, 'abcdefgh')]) {
        assertBounds(cuts(new Chunker(gearA, p), data), p, data.length);
      }
      const c = new Chunker(gearA, p);
      assert.equal(c.cut(Buffer.alloc(p.min), 0, p.min), p.min, 'data up to min is one chunk');
      assert.equal(c.cut(Buffer.alloc(10), 0, 10), 10);
    }
  });

  it('is content-defined: an insertion disturbs only the chunks around it', () => {
    const c = new Chunker(gearA, small);
    // Fixed pseudo-random bytes (AES-CTR keystream), so the case is the same on every run: with
    // fresh random data, now and then an insertion at the start disturbed a fourth or fifth chunk
    // before the cut points fell back into step.
    const det = (seed: number, n: number): Buffer => createCipheriv('aes-256-ctr', Buffer.alloc(32, seed), Buffer.alloc(16)).update(Buffer.alloc(n));
    const data = det(1, 4 * MiB);
    const orig = chunkHashes(c, data);
    assert.ok(orig.length > 200, `${orig.length} chunks`);
    const origSet = new Set(orig);
    const lost = (changed: Buffer): number => {
      const now = new Set(chunkHashes(c, changed));
      return orig.filter((h) => !now.has(h)).length;
    };
    const atStart = Buffer.concat([det(2, 100), data]);
    assert.ok(lost(atStart) <= 3, `insert at start: ${lost(atStart)} of ${orig.length} chunks changed`);
    const mid = 2 * MiB + 12_345;
    const inMiddle = Buffer.concat([data.subarray(0, mid), det(3, 1), data.subarray(mid)]);
    assert.ok(lost(inMiddle) <= 3, `insert in the middle: ${lost(inMiddle)} chunks changed`);
    const reused = chunkHashes(c, atStart).filter((h) => origSet.has(h)).length;
    assert.ok(reused >= orig.length - 3);
  });

  it('rejects bad parameters and gear tables', () => {
    assert.throws(() => new Chunker(new Int32Array(255)));
    assert.throws(() => new Chunker(gearA, { min: 0, avg: 1024, max: 4096 }));
    assert.throws(() => new Chunker(gearA, { min: 4096, avg: 1024, max: 8192 }));
    assert.throws(() => new Chunker(gearA, { min: 1024, avg: 8192, max: 4096 }));
  });
});

describe('AEAD seal/open', () => {
  const key = randomBytes(32);
  const aad = Buffer.from('bulwark test');

  it('round-trips, with several parts and with or without AAD', () => {
    for (const parts of [[Buffer.alloc(0)], [randomBytes(1)], [randomBytes(1000), Buffer.from('tail')], [randomBytes(3 * MiB)]]) {
      const plain = Buffer.concat(parts);
      const s = seal(key, parts, aad);
      assert.equal(s.length, plain.length + SEAL_OVERHEAD);
      assert.ok(open(key, s, aad).equals(plain));
      assert.ok(open(key, seal(key, parts)).equals(plain));
    }
  });

  it('uses a fresh nonce for every object', () => {
    const seen = new Set<string>();
    const plain = [Buffer.from('same')];
    for (let i = 0; i < 5_000; i++) {
      const s = seal(key, plain);
      seen.add(Buffer.from(s.subarray(0, NONCE_LEN)).toString('hex'));
    }
    assert.equal(seen.size, 5_000, 'a nonce repeated');
  });

  it('fails on any altered byte, a wrong key, a wrong or missing AAD, or truncation', () => {
    const plain = randomBytes(300);
    const s = seal(key, [plain], aad);
    for (const at of [0, NONCE_LEN - 1, NONCE_LEN, NONCE_LEN + 150, s.length - 16, s.length - 1]) {
      const bad = Buffer.from(s);
      bad[at]! ^= 0x01;
      assert.throws(() => open(key, bad, aad), AuthError, `flip at ${at}`);
    }
    assert.throws(() => open(randomBytes(32), s, aad), AuthError);
    assert.throws(() => open(key, s, Buffer.from('bulwark other')), AuthError);
    assert.throws(() => open(key, s), AuthError);
    assert.throws(() => open(key, s.subarray(0, s.length - 1), aad), AuthError);
    assert.throws(() => open(key, s.subarray(0, SEAL_OVERHEAD - 1), aad), AuthError);
  });
});

describe('keys', () => {
  it('derives the same keys from the same master, different ones from another', async () => {
    const m = randomBytes(32);
    const a = deriveKeys(m);
    const b = deriveKeys(Buffer.from(m));
    const c = deriveKeys(randomBytes(32));
    assert.ok(a.enc.equals(b.enc) && a.id.equals(b.id));
    assert.deepEqual([...a.gear], [...b.gear]);
    assert.ok(!a.enc.equals(c.enc) && !a.id.equals(c.id));
    assert.ok(!a.enc.equals(a.id), 'enc and id keys are distinct');
    const data = randomBytes(100);
    for (const kind of ['blake3', 'hmac-sha256'] as const) {
      const [ia, ib, ic] = await Promise.all([a, b, c].map((k) => blobIdFn(kind, k.id)));
      assert.ok(ia!(data).equals(ib!(data)), kind);
      assert.ok(!ia!(data).equals(ic!(data)), `${kind} blob IDs are keyed`);
    }
  });

  it('a key slot unwraps with its password and returns undefined for a wrong one', async () => {
    const master = randomBytes(32);
    const slot = await wrapMaster(master, 'right password', CHEAP_KDF);
    const back = await unwrapMaster(slot, 'right password');
    assert.ok(back !== undefined && back.equals(master));
    assert.equal(await unwrapMaster(slot, 'wrong password'), undefined);
    assert.equal(await unwrapMaster(slot, ''), undefined);
    const other = await wrapMaster(master, 'right password', CHEAP_KDF);
    assert.notEqual(other.salt, slot.salt, 'fresh salt per slot');
    const tampered = { ...slot, data: Buffer.from(Buffer.from(slot.data, 'base64').map((v, i) => (i === 20 ? v ^ 1 : v))).toString('base64') };
    assert.equal(await unwrapMaster(tampered, 'right password'), undefined);
  });

  it('slots record their scrypt cost: the default (16 MiB) and the earlier default (32 MiB) both open', async () => {
    assert.deepEqual(DEFAULT_KDF, { N: 1 << 14, r: 8, p: 5 });
    const master = randomBytes(32);
    for (const kdf of [DEFAULT_KDF, { N: 1 << 15, r: 8, p: 3 }]) {
      const slot = await wrapMaster(master, 'pw', kdf);
      assert.deepEqual([slot.N, slot.r, slot.p], [kdf.N, kdf.r, kdf.p]);
      const back = await unwrapMaster(slot, 'pw');
      assert.ok(back !== undefined && back.equals(master), `N=${kdf.N} p=${kdf.p}`);
    }
  });

  it('unlock tries every slot and fails with WRONG_PASSWORD when none opens', async () => {
    const storage = new MemoryStorage();
    await storage.create();
    const master = randomBytes(32);
    const id1 = await addSlot(storage, master, 'first', CHEAP_KDF);
    const id2 = await addSlot(storage, master, 'second', CHEAP_KDF);
    const u1 = await unlock(storage, 'first');
    const u2 = await unlock(storage, 'second');
    assert.equal(u1.keyId, id1);
    assert.equal(u2.keyId, id2);
    assert.ok(u1.master.equals(master) && u2.master.equals(master));
    await assert.rejects(unlock(storage, 'third'), (err: unknown) => isBulwarkError(err, 'WRONG_PASSWORD'));
  });
});
