// One file of a snapshot as a byte stream, blob by blob, with a few blobs fetched ahead so that
// reading the repository overlaps with whoever consumes the stream (stdout, pg_restore's stdin).
// Memory is bounded by the read-ahead: at most `ahead` decoded blobs at a time.
import type { Repository } from '../repo/repository.js';
import type { TreeNode } from '../tree/node.js';

export async function* fileContent(repo: Repository, node: TreeNode, ahead = 4): AsyncGenerator<Buffer> {
  const content = node.content ?? [];
  const queue: Array<Promise<Buffer>> = [];
  // Attach a handler at once so a failed prefetch that is never awaited is not an unhandled rejection.
  const fetch = (i: number): Promise<Buffer> => {
    const p = repo.readBlob(Buffer.from(content[i]!, 'hex'));
    p.catch(() => undefined);
    return p;
  };
  for (let i = 0; i < content.length; i++) {
    while (queue.length < ahead && i + queue.length < content.length) queue.push(fetch(i + queue.length));
    yield await queue.shift()!;
  }
}
