// bulwark init: create a repository and its first key.
import { Repository } from '../../repo/repository.js';
import { kdfFromEnv } from '../kdf.js';
import type { Command } from '../command.js';

export const init: Command = {
  name: 'init',
  usage: 'bulwark init [--compression LEVEL]',
  summary: 'create a new repository',
  options: { compression: { type: 'string' } },
  async run(ctx, _args, values) {
    const storage = ctx.storage();
    const level = values['compression'] === undefined ? undefined : Number(values['compression']);
    const repo = await Repository.init(storage, ctx.password(), {
      kdf: kdfFromEnv(),
      ...(level !== undefined && Number.isInteger(level) && level >= 0 && level <= 19 ? { compression: level } : {}),
    });
    ctx.result({ id: repo.config.id, location: storage.location, keyId: repo.keyId }, `created repository ${repo.config.id} at ${storage.location}`);
    return 0;
  },
};
