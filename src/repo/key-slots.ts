// Key slots: keys/<id> objects, each wrapping the master secret under one password. Opening tries
// every slot (scrypt is deliberately slow, so there are few); adding, removing and changing a
// password never touches the master secret, so no data is re-encrypted.
import { isKeySlot, unwrapMaster, wrapMaster, type KdfParams, type KeySlotFile } from '../crypto/keys.js';
import { BulwarkError } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import { putObject } from './objects.js';

export interface KeyInfo {
  id: string;
  created: string;
  host: string;
  username: string;
}

export async function readSlots(storage: Storage): Promise<Array<{ id: string; slot: KeySlotFile }>> {
  const out: Array<{ id: string; slot: KeySlotFile }> = [];
  let foreign = 0;
  for await (const o of storage.list('keys')) {
    const bytes = await storage.read({ kind: 'keys', name: o.name });
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    if (isKeySlot(parsed)) out.push({ id: o.name, slot: parsed });
    else foreign++;
  }
  if (out.length === 0 && foreign > 0) {
    throw new BulwarkError('REPO_FOREIGN', `${storage.location} is not a Bulwark repository (its keys are in another format)`, {
      subject: storage.location,
      hint: 'point --repo at a repository made by `bulwark init`',
    });
  }
  return out;
}

/**
 * Yields every slot the password opens (ID and master secret). Usually there is one; an `init`
 * killed between writing its key and its config can leave an orphan slot, so callers try each
 * until one opens the config.
 */
export async function* unlockAll(storage: Storage, password: string): AsyncGenerator<{ keyId: string; master: Buffer }> {
  const slots = await readSlots(storage);
  if (slots.length === 0) {
    throw new BulwarkError('REPO_NOT_FOUND', `no repository keys found at ${storage.location}`, {
      subject: storage.location,
      hint: 'run `bulwark init` to create a repository there',
    });
  }
  let opened = 0;
  for (const { id, slot } of slots) {
    const master = await unwrapMaster(slot, password);
    if (master === undefined) continue;
    opened++;
    yield { keyId: id, master };
  }
  if (opened > 0) return;
  throw new BulwarkError('WRONG_PASSWORD', `the password opens none of the ${slots.length} key(s) of ${storage.location}`, {
    subject: storage.location,
    hint: 'check BULWARK_PASSWORD / --password-file; `bulwark key list` shows the keys that exist',
  });
}

export async function addSlot(storage: Storage, master: Uint8Array, password: string, kdf: KdfParams): Promise<string> {
  const slot = await wrapMaster(master, password, kdf);
  return putObject(storage, 'keys', Buffer.from(JSON.stringify(slot, null, 2)));
}

export async function listSlots(storage: Storage): Promise<KeyInfo[]> {
  const slots = await readSlots(storage);
  return slots
    .map(({ id, slot }) => ({ id, created: slot.created, host: slot.host, username: slot.username }))
    .sort((a, b) => a.created.localeCompare(b.created));
}

export async function removeSlot(storage: Storage, idOrPrefix: string, currentKeyId: string): Promise<string> {
  const slots = await readSlots(storage);
  const matches = slots.filter((s) => s.id.startsWith(idOrPrefix));
  if (matches.length !== 1) {
    throw new BulwarkError('KEY_NOT_FOUND', `no single key matches ${JSON.stringify(idOrPrefix)} (${matches.length} match)`, {
      subject: idOrPrefix,
      hint: '`bulwark key list` shows key IDs',
    });
  }
  const id = matches[0]!.id;
  if (id === currentKeyId) {
    throw new BulwarkError('KEY_LAST', `key ${id.slice(0, 8)} is the one this command was opened with and cannot remove itself`, {
      subject: id,
      hint: 'open the repository with another key to remove this one (this also guarantees one key remains)',
    });
  }
  await storage.delete({ kind: 'keys', name: id });
  return id;
}

/** The first slot the password opens (WRONG_PASSWORD if none). */
export async function unlock(storage: Storage, password: string): Promise<{ keyId: string; master: Buffer }> {
  for await (const u of unlockAll(storage, password)) return u;
  throw new BulwarkError('WRONG_PASSWORD', `the password opens no key of ${storage.location}`, { subject: storage.location });
}
