// Indexing packs that no index file lists. They appear when a backup is killed after writing packs
// but before writing the index that names them. Their trailers hold everything an index entry needs,
// so they are indexed again (and their blobs reused) instead of being rewritten.
import { BulwarkError } from '../errors.js';
import { decodeTrailer, encodeIndex, type PackDescriptor } from '../pack/formats.js';
import { putObject } from './objects.js';
import type { Repository } from './repository.js';

export async function readPackTrailer(repo: Repository, name: string, size: number): Promise<PackDescriptor> {
  const fail = (why: string): BulwarkError =>
    new BulwarkError('PACK_CORRUPT', `pack ${name}: trailer is damaged (${why})`, {
      subject: `data/${name}`,
      hint: 'run `bulwark check --read-data`; a damaged pack cannot be reused',
    });
  if (size < 4 + 28) throw fail('pack too small');
  const lenBuf = await repo.storage.read({ kind: 'data', name }, size - 4, 4);
  const len = lenBuf.readUInt32LE(0);
  if (len > size - 4 || len < 28) throw fail('bad trailer length');
  const sealed = await repo.storage.read({ kind: 'data', name }, size - 4 - len, len);
  try {
    const t = decodeTrailer(repo.keys.enc, sealed);
    return { id: Buffer.from(name, 'hex'), type: t.type, blobs: t.blobs };
  } catch (err) {
    throw fail(err instanceof Error ? err.message : String(err));
  }
}

export interface RecoverResult {
  recovered: number;
  damaged: string[];
}

/** Lists packs, indexes those missing from the loaded index, and writes one index file for them. */
export async function recoverPacks(repo: Repository): Promise<RecoverResult> {
  const missing: Array<{ name: string; size: number }> = [];
  for await (const o of repo.storage.list('data')) {
    if (repo.index.packs.find(o.name) === undefined) missing.push(o);
  }
  const packs: PackDescriptor[] = [];
  const damaged: string[] = [];
  for (const m of missing) {
    try {
      packs.push(await readPackTrailer(repo, m.name, m.size));
    } catch (err) {
      if (!(err instanceof BulwarkError)) throw err;
      damaged.push(m.name);
    }
  }
  if (packs.length > 0) {
    const name = await putObject(repo.storage, 'index', encodeIndex(repo.keys.enc, packs));
    repo.indexFiles.add(name);
    repo.addToIndex(packs);
  }
  return { recovered: packs.length, damaged };
}
