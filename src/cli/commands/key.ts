// bulwark key list|add|remove|passwd: manage the passwords (key slots) that open the repository.
// The new password comes from --new-password-file or BULWARK_NEW_PASSWORD, never from argv.
import { BulwarkError } from '../../errors.js';
import { APPEND_ONLY_HINT } from '../../storage/append-only.js';
import { listSlots, removeSlot } from '../../repo/key-slots.js';
import { kdfFromEnv } from '../kdf.js';
import { str, type Command } from '../command.js';

export const key: Command = {
  name: 'key',
  usage: 'bulwark key list | add | remove ID | passwd   (new password: --new-password-file FILE or BULWARK_NEW_PASSWORD)',
  options: { 'new-password-file': { type: 'string' } },
  async run(ctx, args, values) {
    const [sub, arg] = args;
    if (!['list', 'add', 'remove', 'passwd'].includes(sub ?? '')) {
      throw new BulwarkError('USAGE', `unknown key subcommand ${JSON.stringify(sub ?? '')}`, { hint: this.usage });
    }
    if (sub === 'remove' && arg === undefined) throw new BulwarkError('USAGE', 'key remove needs a key ID', { hint: this.usage });
    const repo = await ctx.openRepo();
    if (repo.appendOnly && (sub === 'remove' || sub === 'passwd')) {
      // passwd adds a key and removes the old one: refuse before adding anything.
      throw new BulwarkError('APPEND_ONLY', `key ${sub} removes a key, which this append-only repository refuses without its delete token`, {
        subject: repo.storage.location,
        hint: APPEND_ONLY_HINT,
      });
    }
    const newPassword = (): string => ctx.newPassword(str(values, 'new-password-file'));
    switch (sub) {
      case 'list': {
        const keys = await listSlots(repo.storage);
        ctx.result(
          keys.map((k) => ({ ...k, current: k.id === repo.keyId })),
          () => keys.map((k) => `${k.id === repo.keyId ? '*' : ' '}${k.id.slice(0, 8)}  ${k.created.replace('T', ' ').slice(0, 19)}  ${k.username}@${k.host}`).join('\n'),
        );
        return 0;
      }
      case 'add': {
        const id = await repo.addKey(newPassword(), kdfFromEnv());
        ctx.result({ added: id }, `added key ${id.slice(0, 8)}`);
        return 0;
      }
      case 'remove': {
        if (arg === undefined) throw new BulwarkError('USAGE', 'key remove needs a key ID', { hint: this.usage });
        const id = await removeSlot(repo.storage, arg, repo.keyId);
        ctx.result({ removed: id }, `removed key ${id.slice(0, 8)}`);
        return 0;
      }
      case 'passwd': {
        // Add the new slot before removing the old one, so a crash in between leaves both usable.
        const id = await repo.addKey(newPassword(), kdfFromEnv());
        await repo.storage.delete({ kind: 'keys', name: repo.keyId });
        ctx.result({ added: id, removed: repo.keyId }, `changed password: key ${repo.keyId.slice(0, 8)} replaced by ${id.slice(0, 8)}`);
        return 0;
      }
      default:
        throw new BulwarkError('USAGE', `unknown key subcommand ${JSON.stringify(sub ?? '')}`, { hint: this.usage });
    }
  },
};
