// bulwark init: create a repository and its first key. With --append-only, a random delete token
// is written to a new 0600 file: deletions (forget, prune) need it; keep it away from the hosts
// that back up.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { BulwarkError } from '../../errors.js';
import { Repository } from '../../repo/repository.js';
import { kdfFromEnv } from '../kdf.js';
import type { Command } from '../command.js';

export const init: Command = {
  name: 'init',
  usage: 'bulwark init [--compression LEVEL] [--repository-version 1|2] [--append-only --delete-token-file FILE]',
  options: { compression: { type: 'string' }, 'repository-version': { type: 'string' }, 'append-only': { type: 'boolean' }, 'delete-token-file': { type: 'string' } },
  async run(ctx, _args, values) {
    const tokenFile = typeof values['delete-token-file'] === 'string' ? values['delete-token-file'] : undefined;
    const appendOnly = values['append-only'] === true;
    if (appendOnly !== (tokenFile !== undefined)) {
      throw new BulwarkError('USAGE', '--append-only and --delete-token-file go together', { hint: 'bulwark init --append-only --delete-token-file /secure/place/delete-token' });
    }
    // Format 2 (the default) has keyed-BLAKE3 blob IDs; format 1 (HMAC-SHA-256) is for repositories
    // that Bulwark 0.1 must read too.
    const versionArg = values['repository-version'];
    if (versionArg !== undefined && versionArg !== '1' && versionArg !== '2') {
      throw new BulwarkError('USAGE', `--repository-version must be 1 or 2, not ${String(versionArg)}`, { subject: '--repository-version', hint: 'leave it out for the current format (2)' });
    }
    const version = versionArg === '1' ? 1 : 2;
    let deleteToken: string | undefined;
    if (tokenFile !== undefined) {
      deleteToken = randomBytes(32).toString('base64url');
      try {
        fs.writeFileSync(tokenFile, deleteToken + '\n', { mode: 0o600, flag: 'wx' });
      } catch (err) {
        throw new BulwarkError('USAGE', `cannot create the delete token file ${tokenFile}: ${(err as Error).message}`, { subject: tokenFile, hint: 'name a file that does not exist yet' });
      }
    }
    const storage = ctx.storage();
    const level = values['compression'] === undefined ? undefined : Number(values['compression']);
    const repo = await Repository.init(storage, ctx.password(), {
      kdf: kdfFromEnv(),
      version,
      ...(deleteToken !== undefined ? { deleteToken } : {}),
      ...(level !== undefined && Number.isInteger(level) && level >= 0 && level <= 19 ? { compression: level } : {}),
    });
    ctx.result(
      { id: repo.config.id, location: storage.location, keyId: repo.keyId, appendOnly, version: repo.config.version },
      `created ${appendOnly ? 'append-only ' : ''}repository ${repo.config.id} at ${storage.location}${tokenFile !== undefined ? `\ndelete token written to ${tokenFile} (forget and prune need it)` : ''}`,
    );
    return 0;
  },
};
