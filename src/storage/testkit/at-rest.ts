// Test helpers that damage objects at rest, bypassing the Storage interface: XOR a byte of an object
// held by a MemoryStorage, or of a LocalStorage file (which local.ts creates read-only, mode 0400, so
// the helpers make it writable for the edit and restore the mode afterwards). localObjectPath mirrors
// the directory layout documented in local.ts; the tests that use it read back through LocalStorage,
// so a layout drift fails loudly.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BulwarkError } from '../../errors.js';
import type { MemoryStorage } from '../memory.js';
import { describe, type Handle } from '../storage.js';

function checkXor(xor: number): void {
  if (!Number.isInteger(xor) || xor < 1 || xor > 0xff) throw new RangeError(`xor mask must be 1..255, got ${xor}`);
}

function outOfRange(h: Handle, offset: number, size: number): BulwarkError {
  return new BulwarkError('INTERNAL', `cannot corrupt ${describe(h)} at offset ${offset}: object has ${size} bytes`);
}

/** XORs the byte at `offset` of an object stored in `store` with `xor` (default 0xff). */
export function corruptMemoryObject(store: MemoryStorage, h: Handle, offset: number, xor = 0xff): void {
  checkXor(xor);
  const raw = store.raw(h);
  if (raw === undefined) throw new BulwarkError('OBJECT_NOT_FOUND', `${describe(h)} not found in ${store.location}`);
  const v = raw[offset];
  if (!Number.isInteger(offset) || v === undefined) throw outOfRange(h, offset, raw.length);
  raw[offset] = v ^ xor;
}

/** Path of an object's file under a LocalStorage root (its `location`). */
export function localObjectPath(root: string, h: Handle): string {
  if (h.kind === 'config') return path.join(root, 'config');
  if (h.kind === 'data') return path.join(root, 'data', h.name.slice(0, 2), h.name);
  return path.join(root, h.kind, h.name);
}

/** Runs `edit` on an object's file with write permission, restoring its mode afterwards. */
async function withWritable<T>(file: string, edit: () => Promise<T>): Promise<T> {
  const { mode } = await fsp.stat(file);
  await fsp.chmod(file, (mode & 0o777) | 0o200);
  try {
    return await edit();
  } finally {
    await fsp.chmod(file, mode & 0o7777);
  }
}

/** XORs the byte at `offset` of an object in a LocalStorage directory with `xor` (default 0xff). */
export async function corruptLocalObject(root: string, h: Handle, offset: number, xor = 0xff): Promise<void> {
  checkXor(xor);
  const file = localObjectPath(root, h);
  await withWritable(file, async () => {
    const fh = await fsp.open(file, 'r+');
    try {
      const size = (await fh.stat()).size;
      if (!Number.isInteger(offset) || offset < 0 || offset >= size) throw outOfRange(h, offset, size);
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, offset);
      b[0] = (b[0] ?? 0) ^ xor;
      await fh.write(b, 0, 1, offset);
    } finally {
      await fh.close();
    }
  });
}

/** Cuts an object in a LocalStorage directory down to `size` bytes (simulates a torn file). */
export async function truncateLocalObject(root: string, h: Handle, size: number): Promise<void> {
  const file = localObjectPath(root, h);
  await withWritable(file, () => fsp.truncate(file, size));
}
