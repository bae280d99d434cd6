// Blob-ID hashes: keyed BLAKE3 (native binding and WebAssembly) against the official BLAKE3 test
// vectors, HMAC-SHA-256 against node's own HMAC, and repositories of both format versions (through
// the library and through the CLI, whose workers compute the IDs of file chunks).
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { blake3Impl, blobIdFn, hmacSha256Id, loadNativeBlake3 } from '../src/crypto/blob-id.js';
import { isBulwarkError } from '../src/errors.js';
import { idHashOf, Repository } from '../src/repo/repository.js';
import { sealJSON } from '../src/repo/objects.js';
import { findSnapshot } from '../src/snapshot/snapshot.js';
import { LocalStorage } from '../src/storage/local.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { resolvePath } from '../src/tree/tree-reader.js';
import { CHEAP_KDF } from './fault-helpers.js';
import { compareTrees, jsonError, runCli, runOk, tempRoots, writeRandomFile } from './helpers.js';

// From BLAKE3's test_vectors/test_vectors.json: the key is the 32 ASCII bytes below, input byte i
// is i % 251, and these are the first 32 bytes of each keyed_hash output.
const KEY = Buffer.from('whats the Elvish word for friend', 'ascii');
const KEYED: Array<[number, string]> = [
  [0, '92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26'],
  [1, '6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b'],
  [1023, 'c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e'],
  [1025, '357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69'],
  [4097, '00df940cd36bb9fa7cbbc3556744e0dbc8191401afe70520ba292ee3ca80abbc'],
  [7169, 'ed9b1a922c046fdb3d423ae34e143b05ca1bf28b710432857bf738bcedbfa511'],
];

function input(len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = i % 251;
  return b;
}

describe('blob IDs', () => {
  it('the native BLAKE3 binding loads on this platform (CI runs on one it supports)', () => {
    assert.notEqual(loadNativeBlake3(), null);
    assert.equal(blake3Impl(), 'native');
  });

  for (const impl of ['native', 'wasm'] as const) {
    it(`keyed BLAKE3 (${impl}) gives the official test vectors, hasher reused between blobs`, async () => {
      const id = await blobIdFn('blake3', KEY, impl);
      for (const [len, hex] of KEYED) assert.equal(id(input(len)).toString('hex'), hex, `input of ${len} bytes`);
      // Again in another order: a reused hasher must not carry state from the previous blob.
      for (const [len, hex] of [...KEYED].reverse()) assert.equal(id(input(len)).toString('hex'), hex, `again, ${len} bytes`);
    });
  }

  it('native and WebAssembly BLAKE3 agree on chunk-sized inputs and on subarrays', async () => {
    const key = randomBytes(32);
    const [n, w] = await Promise.all([blobIdFn('blake3', key, 'native'), blobIdFn('blake3', key, 'wasm')]);
    const big = randomBytes(3 * 1024 * 1024 + 17);
    for (const len of [0, 64, 1024, 17_000, 65_536, 1024 * 1024 + 1, big.length]) {
      const part = big.subarray(5, 5 + Math.min(len, big.length - 5));
      assert.ok(n(part).equals(w(part)), `${part.length} bytes`);
    }
  });

  it('HMAC-SHA-256 IDs are node HMAC-SHA-256 under the id key', () => {
    const key = randomBytes(32);
    const data = randomBytes(5000);
    assert.ok(hmacSha256Id(key)(data).equals(createHmac('sha256', key).update(data).digest()));
  });

  it('BULWARK_BLAKE3 picks the implementation; another value is a USAGE error naming it', async () => {
    const before = process.env['BULWARK_BLAKE3'];
    try {
      process.env['BULWARK_BLAKE3'] = 'fast';
      await assert.rejects(blobIdFn('blake3', KEY), (err: unknown) => isBulwarkError(err, 'USAGE') && (err as { subject?: string }).subject === 'BULWARK_BLAKE3');
      process.env['BULWARK_BLAKE3'] = 'wasm';
      assert.equal((await blobIdFn('blake3', KEY))(input(1025)).toString('hex'), KEYED[3]![1]);
    } finally {
      if (before === undefined) delete process.env['BULWARK_BLAKE3'];
      else process.env['BULWARK_BLAKE3'] = before;
    }
  });

  it('rejects a key that is not 32 bytes', async () => {
    await assert.rejects(blobIdFn('blake3', randomBytes(16)), (err: unknown) => isBulwarkError(err, 'INTERNAL'));
  });

  it('a new repository is format 2 with BLAKE3 IDs; a format-1 one keeps HMAC-SHA-256 IDs across open', async () => {
    for (const version of [undefined, 1, 2] as const) {
      const storage = new MemoryStorage();
      const made = await Repository.init(storage, 'pw', { kdf: CHEAP_KDF, ...(version === undefined ? {} : { version }) });
      const want = version ?? 2;
      assert.equal(made.config.version, want);
      assert.equal(made.idHash, idHashOf(want));
      const data = randomBytes(1000);
      const expect = want === 1 ? createHmac('sha256', made.keys.id).update(data).digest() : (await blobIdFn('blake3', made.keys.id))(data);
      assert.ok(made.blobId(data).equals(expect), `format ${want}`);
      const opened = await Repository.open(storage, 'pw');
      assert.equal(opened.config.version, want);
      assert.ok(opened.blobId(data).equals(expect), `format ${want} after open`);
    }
  });
});

describe('repositories of both formats through the CLI', () => {
  const newRoot = tempRoots('bulwark-idhash-');

  for (const [version, blake3] of [['1', undefined], ['2', undefined], ['2', 'wasm']] as const) {
    it(`format ${version}${blake3 === undefined ? '' : ` with BULWARK_BLAKE3=${blake3}`}: backup, incremental, restore --verify and check --read-data; IDs use the format's hash`, async () => {
      const root = newRoot();
      const src = path.join(root, 'src');
      fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
      const small = randomBytes(3000);
      fs.writeFileSync(path.join(src, 'small.bin'), small);
      writeRandomFile(path.join(src, 'sub', 'big.bin'), 5 * 1024 * 1024);
      fs.writeFileSync(path.join(src, 'sub', 'text.txt'), 'hello\n'.repeat(1000));
      const env = { BULWARK_REPO: path.join(root, 'repo'), BULWARK_PASSWORD: 'pw', ...(blake3 === undefined ? {} : { BULWARK_BLAKE3: blake3 }) };
      const made = JSON.parse((await runOk(['init', '--repository-version', version, '--json'], env)).stdout) as { version: number };
      assert.equal(made.version, Number(version));
      await runOk(['backup', src], env);
      fs.appendFileSync(path.join(src, 'sub', 'text.txt'), 'changed\n');
      const second = JSON.parse((await runOk(['backup', src, '--json'], env)).stdout) as { snapshot: { summary: Record<string, number> } };
      assert.equal(second.snapshot.summary['filesChanged'], 1);
      assert.equal(second.snapshot.summary['filesUnmodified'], 2);
      const target = path.join(root, 'restore');
      await runOk(['restore', 'latest', '--target', target, '--verify'], env);
      compareTrees(src, path.join(target, src));
      const check = JSON.parse((await runOk(['check', '--read-data', '--json'], env)).stdout) as { ok: boolean };
      assert.equal(check.ok, true);
      // The small file is one chunk: its ID is the format's keyed hash of its bytes.
      const repo = await Repository.open(new LocalStorage(env.BULWARK_REPO), 'pw');
      await repo.loadIndex();
      const snap = await findSnapshot(repo, 'latest');
      const node = (await resolvePath(repo, snap.tree, `${src}/small.bin`)).node;
      const want = version === '1' ? createHmac('sha256', repo.keys.id).update(small).digest() : (await blobIdFn('blake3', repo.keys.id, 'wasm'))(small);
      assert.deepEqual(node.content, [want.toString('hex')]);
    });
  }

  it('copy moves snapshots from a format-1 repository into a format-2 one (the upgrade path)', async () => {
    const root = newRoot();
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    writeRandomFile(path.join(src, 'big.bin'), 3 * 1024 * 1024);
    fs.writeFileSync(path.join(src, 'small.txt'), 'small\n');
    const old = { BULWARK_REPO: path.join(root, 'v1'), BULWARK_PASSWORD: 'pw1' };
    const cur = { BULWARK_REPO: path.join(root, 'v2'), BULWARK_PASSWORD: 'pw2' };
    await runOk(['init', '--repository-version', '1'], old);
    await runOk(['init'], cur);
    await runOk(['backup', src], old);
    const both = { ...cur, BULWARK_FROM_REPO: old.BULWARK_REPO, BULWARK_FROM_PASSWORD: old.BULWARK_PASSWORD, XDG_CACHE_HOME: path.join(root, 'cache') };
    const copied = JSON.parse((await runOk(['copy', '--json'], both)).stdout) as { copied: unknown[] };
    assert.equal(copied.copied.length, 1);
    const target = path.join(root, 'out');
    await runOk(['restore', 'latest', '--target', target], cur);
    compareTrees(src, path.join(target, src));
    assert.equal((JSON.parse((await runOk(['check', '--read-data', '--json'], cur)).stdout) as { ok: boolean }).ok, true);
    // The copy's chunk IDs are the new format's: a backup of the same files there stores no data
    // blob (only trees, as the directories above the source have changed since).
    const again = JSON.parse((await runOk(['backup', src, '--json'], cur)).stdout) as { snapshot: { summary: Record<string, number> } };
    assert.equal(again.snapshot.summary['dataBlobs'], 0);
  });

  it('init rejects an unknown --repository-version (CLI and library) and writes nothing; open rejects a format it does not read', async () => {
    const root = newRoot();
    const env = { BULWARK_REPO: path.join(root, 'repo'), BULWARK_PASSWORD: 'pw' };
    const bad = await runCli(['init', '--repository-version', '3', '--json'], env);
    assert.notEqual(bad.code, 0);
    assert.equal(jsonError(bad).code, 'USAGE');
    assert.equal(fs.existsSync(env.BULWARK_REPO), false);
    const empty = new MemoryStorage();
    await assert.rejects(Repository.init(empty, 'pw', { kdf: CHEAP_KDF, version: 3 as unknown as 2 }), (err: unknown) => isBulwarkError(err, 'REPO_VERSION'));
    for (const kind of ['config', 'keys'] as const) {
      for await (const o of empty.list(kind)) assert.fail(`init of an unknown format wrote ${kind}/${o.name}`);
    }
    const storage = new MemoryStorage();
    const repo = await Repository.init(storage, 'pw', { kdf: CHEAP_KDF });
    await storage.delete({ kind: 'config', name: 'config' });
    await storage.write({ kind: 'config', name: 'config' }, sealJSON(repo.keys.enc, 'config', { ...repo.config, version: 3 }));
    await assert.rejects(Repository.open(storage, 'pw'), (err: unknown) => isBulwarkError(err, 'REPO_VERSION') && /reads 1 and 2/.test((err as Error).message));
  });
});
