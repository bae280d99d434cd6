// One redactor for every URL Bulwark prints, records or stores. It works on the raw string, so a
// URL that does not even parse (a password holding '/', '#' or '?') is redacted too: everything
// between "scheme://" and the LAST '@' of the authority is user information, of which only the user
// name (up to the first ':') is kept. Password-like query parameters are masked as well.
const SECRET_PARAMS = /([?&](?:password|sslpassword|pass|pwd|secret|token|access_token|api_key)=)[^&#]*/gi;

export function redactUrl(raw: string, mask = ''): string {
  let out = raw;
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)@/is.exec(raw);
  if (m !== null) {
    const userinfo = m[2]!;
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    // A '/' before any ':' means the '@' belongs to the path, not to user information.
    if (!(colon < 0 && userinfo.includes('/'))) {
      const name = user.includes('/') ? '' : user;
      const secret = colon >= 0 && mask !== '' ? `:${mask}` : '';
      // Nothing left of the user information (no user, password removed): no '@' either.
      out = `${m[1]}${name}${secret}${name !== '' || secret !== '' ? '@' : ''}${raw.slice(m[0].length)}`;
    }
  }
  return out.replace(SECRET_PARAMS, `$1${mask === '' ? '***' : mask}`);
}
