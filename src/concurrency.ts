// Bounded concurrency for async work over a list, shared by every layer (storage listings, index
// loading, restore, check, prune).

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first failure. */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}
