// Heavy dependencies (the AWS SDK, the PostgreSQL and SQLite drivers, the YAML parser, croner) are
// loaded on first use, not when the CLI starts: most commands need none of them, and loading all
// of them up front cost about 0.3 s on every invocation. They are CommonJS packages, so a
// synchronous require keeps the APIs that use them synchronous.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Returns a function that loads module `id` on its first call and returns it ever after. */
export function lazy<T>(id: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= require(id) as T);
}
