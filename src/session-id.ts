import { usageError } from './errors.js';

/** README "Commands": session ids are safe as file names, URL path segments and SQL values without quoting games. */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function assertSessionId(id: string): string {
  if (!SESSION_ID_PATTERN.test(id)) {
    const shown = id.length > 80 ? `${id.slice(0, 77)}...` : id;
    throw usageError(
      'E_SESSION_ID',
      `invalid session id ${JSON.stringify(shown)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
      { hint: 'wa add my-bot' },
    );
  }
  return id;
}
