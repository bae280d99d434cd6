// Redis connection URLs: redis://[user[:password]@]host[:port][/db]. Parsing is strict because a
// typo here would otherwise surface later as a confusing connection error; every error and every
// log line shows the URL through redactRedisUrl so the password never leaves this module.
import { redactUrl } from '../../redact.js';
import { BulwarkError } from '../../errors.js';

export interface RedisTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
}

export const DEFAULT_REDIS_PORT = 6379;

const HINT = 'use redis://[user[:password]@]host[:port][/db], e.g. redis://:secret@127.0.0.1:6379/0';

/** The URL with any password removed (user names are kept: they help to diagnose ACL errors). */
export function redactRedisUrl(url: string): string {
  return redactUrl(url);
}

function invalid(url: string, why: string): BulwarkError {
  const subject = redactRedisUrl(url);
  return new BulwarkError('DB_URL_INVALID', `invalid Redis URL ${subject}: ${why}`, { subject, hint: HINT });
}

function decode(url: string, part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw invalid(url, `the ${what} is not valid percent-encoding`);
  }
}

export function parseRedisUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalid(url, 'not a URL');
  }
  if (u.protocol === 'rediss:') throw invalid(url, 'TLS (rediss://) is not supported');
  if (u.protocol !== 'redis:') throw invalid(url, `scheme ${JSON.stringify(u.protocol)} is not redis:`);
  if (u.search !== '' || u.hash !== '') throw invalid(url, 'query strings and fragments are not supported');
  let host = u.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '') throw invalid(url, 'no host');
  let port = DEFAULT_REDIS_PORT;
  if (u.port !== '') {
    port = Number(u.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(url, `bad port ${u.port}`);
  }
  const target: RedisTarget = { host, port };
  if (u.username !== '') target.username = decode(url, u.username, 'user name');
  if (u.password !== '') target.password = decode(url, u.password, 'password');
  const path = u.pathname;
  if (path !== '' && path !== '/') {
    const m = /^\/(\d{1,5})$/.exec(path);
    if (m === null) throw invalid(url, `the path ${JSON.stringify(path)} is not a database number`);
    target.db = Number(m[1]);
  }
  return target;
}

/** host:port for messages, with IPv6 addresses bracketed. */
export function describeTarget(t: RedisTarget): string {
  return `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}
