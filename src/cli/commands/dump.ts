// bulwark dump: write one file of a snapshot to stdout, blob by blob (bounded memory).
import { BulwarkError } from '../../errors.js';
import { findSnapshot } from '../../snapshot/snapshot.js';
import { fileContent } from '../../restore/file-stream.js';
import { resolvePath } from '../../tree/tree-reader.js';
import type { Command } from '../command.js';

async function write(chunk: Uint8Array): Promise<void> {
  if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
}

export const dump: Command = {
  name: 'dump',
  usage: 'bulwark dump SNAPSHOT FILE',
  options: {},
  async run(ctx, args) {
    const [ref, file] = args;
    if (ref === undefined || file === undefined) throw new BulwarkError('USAGE', 'dump needs SNAPSHOT and FILE', { hint: this.usage });
    const repo = await ctx.openRepo();
    const snap = await findSnapshot(repo, ref);
    await repo.loadIndex();
    const { node } = await resolvePath(repo, snap.tree, file);
    if (node.type !== 'file') {
      throw new BulwarkError('USAGE', `${file} is a ${node.type} in snapshot ${snap.id.slice(0, 8)}, not a file`, { subject: file });
    }
    for await (const blob of fileContent(repo, node)) await write(blob);
    return 0;
  },
};
