/**
 * Database URLs (README "Options and environment"): which values select PostgreSQL, which are refused, and how a
 * URL is shown. Kept free of `pg` so config resolution and `wa status` on SQLite never load it.
 */

/** `postgres://` or `postgresql://` selects PostgreSQL. */
export const isPostgresUrl = (value: string): boolean => /^postgres(ql)?:\/\//i.test(value);

/** Anything of the form `scheme://…`: a URL, never a file path (a `postgress://` typo must not become directories). */
export const hasUrlScheme = (value: string): boolean => /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value);

/**
 * Query parameters that carry secrets or point at key material: libpq's `password` and `sslpassword`, the
 * client certificate and key (`sslkey`, `sslcert`), and anything named like a password, secret or token.
 */
const SECRET_PARAM = /password|secret|token|^sslkey$|^sslcert$/i;

/**
 * A database URL fit to print: the user-info password and every secret query parameter become `***`. A
 * value that does not parse is shown by its scheme alone, since where its password is cannot be known.
 */
export function redactDbUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1];
    return scheme ? `${scheme}://(unparseable URL)` : '(unparseable URL)';
  }
  if (parsed.password) parsed.password = '***';
  const secret = [...parsed.searchParams.keys()].filter((key) => SECRET_PARAM.test(key));
  for (const key of new Set(secret)) parsed.searchParams.set(key, '***');
  return parsed.toString();
}

/**
 * Why a PostgreSQL URL cannot be used, or undefined when it can be. node-postgres parses the URL only when
 * it first connects, where a bad port or a broken escape surfaces as a TypeError ("This is a bug"); checked
 * here, it is a usage error before anything is opened.
 */
export function postgresUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'it is not a valid URL (check the host, the port, 1-65535, and %-escapes in the user and password)';
  }
  try {
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
    decodeURIComponent(parsed.pathname);
  } catch {
    return 'a %-escape in its user, password or database name is invalid';
  }
  return undefined;
}
