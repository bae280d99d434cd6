// Database URLs (postgresql://user:secret@host:port/db?opts, mysql://..., redis://...). The
// password is split off at once so that nothing downstream (argv, messages, snapshots) can carry
// it; everything else is kept for the client tools.
import { BulwarkError } from '../errors.js';
import { redactUrl } from '../redact.js';

export interface DbUrl {
  scheme: string;
  host: string;
  port: number | undefined;
  user: string | undefined;
  password: string | undefined;
  database: string | undefined;
  params: URLSearchParams;
  /** The URL without the password. */
  redacted: string;
}

export function parseDbUrl(raw: string, schemes: readonly string[]): DbUrl {
  if (/[?&]sslpassword=/i.test(raw)) {
    throw new BulwarkError('DB_URL_INVALID', `sslpassword in ${redactUrl(raw)} cannot be passed to the client tools safely`, {
      subject: redactUrl(raw),
      hint: 'use an unencrypted client key file with restricted permissions, or PGSSLKEY',
    });
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new BulwarkError('DB_URL_INVALID', `not a valid database URL: ${redactUrl(raw)}`, {
      subject: redactUrl(raw),
      hint: `use ${schemes[0]}//USER@HOST:PORT/DATABASE (the password in the URL, or in the engine's usual environment variable)`,
    });
  }
  if (!schemes.includes(u.protocol)) {
    throw new BulwarkError('DB_URL_INVALID', `unsupported URL scheme ${u.protocol} in ${redactUrl(raw)}`, { subject: redactUrl(raw) });
  }
  const port = u.port === '' ? undefined : Number(u.port);
  const path = decodeURIComponent(u.pathname.replace(/^\//, ''));
  // libpq also takes the password as a query parameter: take it out of what goes to argv.
  const queryPassword = u.searchParams.get('password');
  u.searchParams.delete('password');
  const password = u.password !== '' ? decodeURIComponent(u.password) : queryPassword !== null && queryPassword !== '' ? queryPassword : undefined;
  const user = u.username === '' ? undefined : decodeURIComponent(u.username);
  const r = new URL(raw);
  r.password = '';
  r.searchParams.delete('password');
  return {
    scheme: u.protocol,
    host: decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1'),
    port,
    user,
    password,
    database: path === '' ? undefined : path,
    params: u.searchParams,
    redacted: redactUrl(r.toString()),
  };
}
