// The database engines, looked up by URL scheme (backup) or by a snapshot's recorded engine (restore).
import { BulwarkError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { mysql } from './mysql.js';
import { postgres } from './postgres.js';
import { redis } from './redis.js';
import type { DbEngine } from './source.js';

export const engines: readonly DbEngine[] = [postgres, mysql, redis];

export function engineForUrl(url: string): DbEngine {
  const m = /^([a-z][a-z0-9+.-]*:)/i.exec(url);
  const scheme = m?.[1]?.toLowerCase();
  const e = engines.find((x) => scheme !== undefined && x.schemes.includes(scheme));
  if (e === undefined) {
    throw new BulwarkError('DB_URL_INVALID', `no database engine for ${redactUrl(url)}`, {
      subject: redactUrl(url),
      hint: `use one of: ${engines.flatMap((x) => x.schemes.map((s) => `${s}//...`)).join(', ')}`,
    });
  }
  return e;
}

export function engineByName(name: string): DbEngine | undefined {
  return engines.find((x) => x.engine === name);
}
